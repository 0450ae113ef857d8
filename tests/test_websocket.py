"""WebSocket servers (codec=sk.WebSocket()) on every engine, over ws:// and wss://: the
websockets library's client as the peer no one here wrote, and a raw client for the frames
a well-behaved one never sends (each answered with its close code, counted)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

import socketkit as sk
from conftest import CONCURRENT, wait_until
from socketkit.codecs.websocket_frames import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    Close,
    FrameReader,
    close_payload,
    frame,
)
from socketkit.codecs.websocket_handshake import client_request, new_key
from socketkit.layers.websocket import WebSocketLayer
from socketkit.tls import client_context, server_context

WAIT = 10.0


def echo(message: Any, conn: sk.Connection) -> Any:
    return message


def ws_url(server: sk.Server, scheme: str = "ws") -> str:
    host, port = server.addresses[0][:2]
    return f"{scheme}://{host}:{port}/chat"


def client(server: sk.Server, **options: Any) -> ClientConnection:
    return ws_connect(ws_url(server), open_timeout=WAIT, close_timeout=WAIT, **options)


def test_text_binary_fragments_and_pings_on_every_engine(engine: str) -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=engine).start() as server:
        with client(server) as ws:
            ws.send("hello ✓")
            assert ws.recv(timeout=WAIT) == "hello ✓"
            ws.send(b"\x00\xffbinary")
            assert ws.recv(timeout=WAIT) == b"\x00\xffbinary"
            ws.send(["frag", "men", "ted"])  # three frames, one message
            assert ws.recv(timeout=WAIT) == "fragmented"
            big = bytes(range(256)) * 2000  # 512 KB: 64-bit lengths both ways
            ws.send(big)
            assert ws.recv(timeout=WAIT) == big
            assert ws.ping(b"are you there").wait(WAIT)
        assert ws.close_code == 1000  # our close answered
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to end")


def test_wss_through_the_tls_layer(engine: str, test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    with sk.Server(
        "tls://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=engine, tls=server_context(cert)
    ).start() as server:
        with ws_connect(ws_url(server, "wss"), ssl=client_context(ca), open_timeout=WAIT) as ws:
            ws.send("over TLS")
            assert ws.recv(timeout=WAIT) == "over TLS"


class Closer(sk.Protocol):
    """Closes the way each message says."""

    def __init__(self) -> None:
        self.closed: list[BaseException | None] = []
        self.done = threading.Event()

    def on_message(self, conn: sk.Connection, message: Any) -> None:
        if message == "code":
            conn.send(Close(4000, "done here"))
        elif message == "close":
            conn.send("bye")
            conn.close()
        elif message == "raise":
            raise RuntimeError("a bug in the handler")

    def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
        self.closed.append(error)
        self.done.set()


@pytest.mark.parametrize(
    ("say", "code", "reason"),
    [("code", 4000, "done here"), ("close", 1000, ""), ("raise", 1011, "internal error")],
)
def test_the_handler_closes_with_a_code(engine: str, say: str, code: int, reason: str) -> None:
    handler = Closer()
    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.WebSocket(), engine=engine).start() as server:
        with client(server) as ws:
            ws.send(say)
            if say == "close":
                assert ws.recv(timeout=WAIT) == "bye"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=WAIT)
        assert (ws.close_code, ws.close_reason) == (code, reason)
        assert handler.done.wait(WAIT)


def test_the_peers_close_is_answered_with_its_code(engine: str) -> None:
    handler = Closer()
    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.WebSocket(), engine=engine).start() as server:
        with client(server) as ws:
            ws.close(4321, "leaving")
        assert ws.close_code == 4321  # the server's close frame echoed it
        assert handler.done.wait(WAIT) and handler.closed == [None]


def test_a_stop_says_going_away(engine: str) -> None:
    server = sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=engine).start()
    try:
        with client(server) as ws:
            ws.send("still here")
            assert ws.recv(timeout=WAIT) == "still here"
            server.stop(grace=WAIT)
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=WAIT)
        assert ws.close_code == 1001
    finally:
        server.stop()


# -- a raw client, for what websockets never sends --------------------------------------------


class RawClient:
    """A client that writes frames by hand (those a well-behaved one never sends) and reads
    what the server sends as frames: one at a time (:meth:`next`), or all (:meth:`events`)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT)
        self.sock.sendall(client_request("127.0.0.1", "/", new_key()))
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.reader = FrameReader(masked=False, max_message=1 << 24)
        self.pending: list[Any] = []

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.sock.sendall(frame(opcode, payload, fin=fin, masked=True))

    def next(self) -> Any:
        """The next frame from the server (None when it closed the connection)."""
        while not self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.pending += self.reader.feed(chunk)
        return self.pending.pop(0)

    def events(self) -> list[Any]:
        """Everything the server sends, until it closes the connection."""
        got, self.pending = self.pending, []
        while chunk := self.sock.recv(65536):
            got += self.reader.feed(chunk)
        return got


@pytest.mark.parametrize(
    ("frames", "code", "kind"),
    [
        ([(TEXT, b"\xff\xfe")], 1007, "protocol"),
        ([(0x3, b"x")], 1002, "protocol"),
        ([(BINARY, b"x" * 2000)], 1009, "limit"),
        ([(PING, b"x" * 10), (BINARY, b"y" * 1500, False)], 1009, "limit"),
    ],
    ids=["bad-utf8", "bad-opcode", "too-big", "too-big-after-a-ping"],
)
def test_bad_frames_get_their_close_code_and_are_counted(
    engine: str, frames: list[Any], code: int, kind: str
) -> None:
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.WebSocket(max_length=1000), engine=engine
    ).start() as server:
        raw = RawClient(server.addresses[0][:2])
        raw.send(TEXT, b"good first")
        for opcode, payload, *fin in frames:
            raw.send(opcode, payload, *fin)
        got = raw.events()
        assert got[0] == "good first"  # the message before the bad frame is answered first
        assert isinstance(got[-1], Close) and got[-1].code == code, got
        raw.sock.close()
        wait_until(lambda: server.stats.errors.get(kind, 0) == 1, what=f"a {kind} error to be counted")
        with client(server) as ws:  # and everyone else is still served
            ws.send("next")
            assert ws.recv(timeout=WAIT) == "next"


def test_a_ping_gets_its_pong_between_fragments(engine: str) -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=engine).start() as server:
        raw = RawClient(server.addresses[0][:2])
        raw.send(TEXT, b"one ", fin=False)
        raw.send(PING, b"beat")
        raw.send(0x0, b"message")
        raw.send(CLOSE, close_payload(1000))
        assert raw.events() == [sk.codecs.websocket_frames.Pong(b"beat"), "one message", Close(1000, "")]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            b"426",
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"400"),  # a TLS hello: refused at once
        (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\n", b"400"),
    ],
)
def test_a_request_that_is_not_an_upgrade_gets_its_status(
    engine: str, request_bytes: bytes, status: bytes
) -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(request_bytes)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 " + status), reply


def test_the_subprotocol_the_server_prefers_is_agreed() -> None:
    chosen: list[str | None] = []

    def which(message: Any, conn: Any) -> Any:
        layer = conn.layer(WebSocketLayer)
        chosen.append(layer.subprotocol)
        return f"{layer.request.target.decode()} {layer.subprotocol}"

    codec = sk.WebSocket(subprotocols=["v2.chat", "v1.chat"])
    with sk.Server("tcp://127.0.0.1:0", which, codec=codec).start() as server:
        with client(server, subprotocols=["v1.chat", "v2.chat"]) as ws:
            assert ws.subprotocol == "v2.chat"
            ws.send("which?")
            assert ws.recv(timeout=WAIT) == "/chat v2.chat"


# -- the layer and its codec, whole or split ----------------------------------------------


def through(chunks: list[bytes], max_length: int = 1 << 20) -> tuple[list[Any], int | None]:
    layer = WebSocketLayer(max_length)
    decoder = sk.WebSocket(max_length).decoder()
    got: list[Any] = []
    for chunk in chunks:
        try:
            got += decoder.feed(layer.feed(chunk))
        except sk.ProtocolError as exc:
            return got + exc.messages, getattr(exc, "code", None)
    return got, None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40).map(lambda t: frame(TEXT, t.encode(), masked=True)),
            st.binary(max_size=300).map(lambda b: frame(BINARY, b, masked=True)),
            st.binary(max_size=20).map(lambda b: frame(PING, b, masked=True)),
            st.sampled_from([frame(TEXT, b"\xff", masked=True), frame(BINARY, b"x", masked=False)]),
        ),
        max_size=5,
    ),
    st.data(),
)
def test_the_layer_and_codec_give_the_same_whole_or_split(frames: list[bytes], data: st.DataObject) -> None:
    stream = client_request("h", "/", new_key()) + b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert through([c for c in chunks if c]) == through([stream])


# -- socketkit's client: against the websockets library's server, and ours ------------------


@pytest.fixture
def websockets_server() -> Any:
    """The websockets library's sync server: echoes, fragments, pings and closes as told."""
    from websockets.http11 import Response
    from websockets.sync.server import ServerConnection, serve

    pongs: list[bool] = []

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            if message == "close please":
                ws.close(4001, "as asked")
                return
            if message == "fragments":
                ws.send(["from ", "the ", "server"])
            elif message == "ping":
                pongs.append(ws.ping(b"hello?").wait(WAIT))
                ws.send("pinged")
            else:
                ws.send(message)

    def refuse(connection: ServerConnection, request: Any) -> Response | None:
        if request.path == "/nowhere":
            return connection.respond(404, "no such path\n")
        return None

    server = serve(handler, "127.0.0.1", 0, process_request=refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1], pongs
    finally:
        server.shutdown()
        thread.join(WAIT)


def test_our_client_against_the_websockets_server(websockets_server: Any) -> None:
    port, pongs = websockets_server
    url = f"ws://127.0.0.1:{port}/chat?room=1"
    with sk.connect(url, timeout=WAIT) as ws:
        assert ws.request("text ✓") == "text ✓"
        assert ws.request(b"\x00binary") == b"\x00binary"
        big = "x" * 300_000
        assert ws.request(big) == big
        assert ws.request("fragments") == "from the server"
        assert ws.request("ping") == "pinged" and pongs == [True]  # our client answered its ping
        ws.send("close please")
        with pytest.raises(sk.ClosedError, match=re.escape(f"{url} closed the connection: 4001 as asked")):
            ws.recv()
    with pytest.raises(sk.ConnectError, match="refused the WebSocket upgrade: HTTP 404"):
        sk.connect(f"ws://127.0.0.1:{port}/nowhere", timeout=WAIT)


def test_our_client_against_our_server_on_every_engine(engine: str, test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    handler = Closer()
    with sk.Server(
        "tls://127.0.0.1:0", handler, codec=sk.WebSocket(), engine=engine, tls=server_context(cert)
    ).start() as server:
        with sk.connect(ws_url(server, "wss"), tls=client_context(ca), timeout=WAIT) as ws:
            ws.send("close")
            assert ws.recv() == "bye"
            with pytest.raises(sk.ClosedError, match="closed the connection: 1000"):
                ws.recv()
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=engine).start() as server:
        with sk.connect(ws_url(server), timeout=WAIT) as ws:
            assert [ws.request(m) for m in ("one", b"two")] == ["one", b"two"]
        wait_until(lambda: server.stats.connections_open == 0, what="our goodbye to close it")
        assert not server.stats.errors


def test_websocket_urls_that_cannot_work_are_refused() -> None:
    for url, said in [
        ("ws://:80/", "has no host"),
        ("ws://127.0.0.1:99999/", "bad port"),
    ]:
        with pytest.raises(ValueError, match=said):
            sk.connect(url)
    with pytest.raises(TypeError, match=r"its codec is socketkit\.WebSocket, not lines"):
        sk.connect("ws://127.0.0.1:1/", codec=sk.Lines())


# -- the command line: serve --codec ws, connect ws:// ------------------------------------------


def test_connect_ws_sends_lines_and_prints_what_comes_back(websockets_server: Any) -> None:
    from test_cli import SK, cli_server

    with cli_server("echo", "--codec", "ws", "-l", "tcp://127.0.0.1:0") as (_, urls):
        target = urls[0].replace("tcp://", "ws://") + "/"
        out = subprocess.run(
            [*SK, "connect", target],
            input="hello\nsecond ✓\n",
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert (out.returncode, out.stdout) == (0, "hello\nsecond ✓\n"), out.stderr
        for args in (["--codec", "ws", urls[0]], [target + "path"]):
            sent = subprocess.run(
                [*SK, "send", *args, "one message ✓"],
                capture_output=True,
                text=True,
                timeout=WAIT,
                check=False,
            )
            assert (sent.returncode, sent.stdout) == (0, "one message ✓\n"), sent.stderr
    port, _ = websockets_server  # a server no one here wrote
    out = subprocess.run(
        [*SK, "connect", f"ws://127.0.0.1:{port}/"],
        input="fragments\n",
        capture_output=True,
        check=False,
        text=True,
        timeout=WAIT,
    )
    assert (out.returncode, out.stdout) == (0, "from the server\n"), out.stderr


def test_connect_ws_usage_errors_are_one_line_exit_2() -> None:
    from test_cli import SK

    for args, said in [
        (["-u", "ws://127.0.0.1:1/"], "takes no -u, -o or -x"),
        (["ws://127.0.0.1:99999/"], "has a bad port"),
        (["--insecure", "ws://127.0.0.1:1/"], "are for wss:// URLs"),
    ]:
        out = subprocess.run(
            [*SK, "connect", *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, out.stderr
    for args, said in [  # (send checks its TLS options as connect does)
        (["--tls-ca", "ca.pem", "--insecure", "wss://127.0.0.1:1/", "x"], "exclude each other"),
        (["--insecure", "ws://127.0.0.1:1/", "x"], "are for wss:// URLs"),
    ]:
        out = subprocess.run([*SK, "send", *args], capture_output=True, text=True, timeout=WAIT, check=False)
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, out.stderr


# -- a page and its WebSocket on one port (serve_http), and serve chat --------------------------


@pytest.mark.parametrize("engine", CONCURRENT)  # (a room needs two connections at once)
def test_the_chat_service_serves_its_page_and_relays_between_members(engine: str) -> None:
    import http.client

    from socketkit.services import load_service

    chat = load_service("chat")
    with sk.Server("tcp://127.0.0.1:0", chat.handler, codec=chat.codec, engine=engine).start() as server:
        host, port = server.addresses[0][:2]
        for method, path, status in [
            ("GET", "/", 200),
            ("HEAD", "/", 200),
            ("GET", "/x", 404),
            ("POST", "/", 405),
        ]:
            page = http.client.HTTPConnection(host, port, timeout=WAIT)
            page.request(method, path)
            response = page.getresponse()
            body = response.read()
            assert response.status == status, (method, path)
            assert response.getheader("Connection") == "close"  # one request, then closed
            if (method, status) == ("GET", 200):
                assert body.startswith(b"<!doctype html>") and b"new WebSocket(" in body
            page.close()
        with client(server) as alice, client(server) as bob:
            wait_until(lambda: chat.handler.members == 2, what="both to join")
            alice.send("hello, Bob")
            assert bob.recv(timeout=WAIT) == "hello, Bob"
            bob.send("")  # an empty line: said to no one
            bob.send(b"bytes become text")
            assert alice.recv(timeout=WAIT) == "bytes become text"
        wait_until(lambda: chat.handler.members == 0, what="both to leave")


def test_without_serve_http_a_plain_request_is_refused_and_the_handler_never_sees_it() -> None:
    seen: list[Any] = []

    def note(message: Any, conn: sk.Connection) -> None:
        seen.append(message)

    with sk.Server("tcp://127.0.0.1:0", note, codec=sk.WebSocket()).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
        with client(server) as ws:
            ws.send("only this")
            wait_until(lambda: seen == ["only this"], what="the message")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_async_client_against_our_server_and_the_websockets_one(
    loop: str, websockets_server: Any, test_pki: tuple[str, str]
) -> None:
    import asyncio

    from socketkit import aio

    ca, cert = test_pki
    port, pongs = websockets_server

    async def talk(server_url: str) -> None:
        async with await aio.connect(server_url, timeout=WAIT, tls=client_context(ca)) as ws:
            assert await ws.request("async ✓") == "async ✓"
            assert await ws.request(b"\x00bytes") == b"\x00bytes"
        async with await aio.connect(f"ws://127.0.0.1:{port}/", timeout=WAIT) as theirs:
            assert await theirs.request("fragments") == "from the server"
            assert await theirs.request("ping") == "pinged"  # our pong answered its ping
            await theirs.send("close please")
            with pytest.raises(sk.ClosedError, match="4001 as asked"):
                await theirs.recv()

    with sk.Server(
        "tls://127.0.0.1:0", echo, codec=sk.WebSocket(), engine=loop, tls=server_context(cert)
    ).start() as server:
        if loop == "uvloop":
            import uvloop

            uvloop.run(talk(ws_url(server, "wss")))
        else:
            asyncio.run(talk(ws_url(server, "wss")))
        wait_until(lambda: server.stats.connections_open == 0, what="our goodbye to close it")
    assert pongs == [True]
