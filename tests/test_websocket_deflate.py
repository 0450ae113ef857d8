"""permessage-deflate (RFC 7692): the offer and its answer (wsproto's side of each as the
oracle), compressed messages whole or split anywhere, the bound against decompression
bombs, and the websockets library (which offers compression by default) against our
server on every engine and our client against its server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect as ws_connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

import socketkit as sk
import socketkit.aio
from conftest import wait_until
from socketkit.codecs.websocket import Deflate
from socketkit.codecs.websocket_deflate import (
    Deflater,
    Inflater,
    accept_offer,
    check_answer,
    client_offer,
)
from socketkit.codecs.websocket_frames import (
    BINARY,
    CONTINUATION,
    PING,
    TEXT,
    Close,
    FrameReader,
    WebSocketError,
    WebSocketTooBig,
    frame,
)
from socketkit.codecs.websocket_handshake import client_request, new_key
from socketkit.layers.websocket import WebSocketLayer
from socketkit.tls import client_context, server_context

WAIT = 10.0
MiB = 1 << 20


def echo(message: Any, conn: sk.Connection) -> Any:
    return message


# -- the offer and its answer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("offers", "answer", "windows"),
    [
        (["permessage-deflate"], "permessage-deflate; server_max_window_bits=12", (12, 15)),
        (
            ["permessage-deflate; client_max_window_bits"],
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            (12, 12),
        ),
        (
            ["permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"],
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
            (10, 11),
        ),
        (
            ['permessage-deflate; server_no_context_takeover; client_max_window_bits="15"'],
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
            (12, 12),
        ),
        (  # an offer we cannot keep (zlib has no 256-byte window) is passed over for the next
            ["permessage-deflate; server_max_window_bits=8, permessage-deflate"],
            "permessage-deflate; server_max_window_bits=12",
            (12, 15),
        ),
        (
            ["x-webkit-deflate-frame", "permessage-deflate"],
            "permessage-deflate; server_max_window_bits=12",
            (12, 15),
        ),
    ],
    ids=["plain", "client-bits", "both-windows", "no-takeover-quoted", "second-offer", "second-header"],
)
def test_a_server_accepts_the_first_offer_it_can_keep(
    offers: list[str], answer: str, windows: tuple[int, int]
) -> None:
    agreed = accept_offer([offer.encode() for offer in offers], Deflate())
    assert agreed is not None and agreed.answer == answer
    assert (agreed.send_window, agreed.receive_window) == windows
    assert agreed.send_takeover == ("server_no_context_takeover" not in answer)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; foo=1",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_no_context_takeover=1",
        "x-webkit-deflate-frame",
    ],
)
def test_an_offer_that_breaks_the_rfc_is_declined_not_fatal(offer: str) -> None:
    assert accept_offer([offer.encode()], Deflate()) is None


def test_our_offer_and_answer_agree_with_wsprotos() -> None:
    # wsproto's client offer, answered by us, finalized by wsproto
    theirs = PerMessageDeflate()
    offer = theirs.offer()
    assert isinstance(offer, str)
    agreed = accept_offer([f"permessage-deflate; {offer}".encode()], Deflate())
    assert agreed is not None
    theirs.finalize(agreed.answer)  # (wsproto's finalize and accept read past the name)
    assert (theirs.client_max_window_bits, theirs.server_max_window_bits) == (12, 12)
    # our offer, answered by wsproto's server side, taken by our client
    server = PerMessageDeflate(client_max_window_bits=10, server_max_window_bits=11)
    accepted = server.accept(client_offer(Deflate()))
    assert isinstance(accepted, str)
    ours = check_answer([f"permessage-deflate; {accepted}".encode()], Deflate())
    # (we asked the server's window nothing: it may use all 15 bits, and we inflate with 15)
    assert ours is not None and (ours.send_window, ours.receive_window) == (10, 15)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("x-other", "extensions we did not offer"),
        ("permessage-deflate, permessage-deflate", "extensions we did not offer"),
        ("permessage-deflate; client_max_window_bits", "a window size needs a value"),
        ("permessage-deflate; mystery", "unknown parameter mystery"),
        ("permessage-deflate; client_max_window_bits=8", "256-byte window"),
    ],
)
def test_a_client_refuses_an_answer_it_did_not_offer(answer: str, said: str) -> None:
    with pytest.raises(sk.RemoteProtocolError, match=said):
        check_answer([answer.encode()], Deflate())


def test_deflate_settings_out_of_range_are_refused_when_made() -> None:
    for bad, said in [
        ({"window_bits": 8}, "9 to 15"),
        ({"level": 10}, "0 to 9"),
        ({"mem_level": 0}, "1 to 9"),
    ]:
        with pytest.raises(ValueError, match=said):
            Deflate(**bad)
    with pytest.raises(TypeError, match="deflate is True, False or"):
        sk.WebSocket(deflate="yes")  # type: ignore[arg-type]


# -- compressed frames --------------------------------------------------------------------------


def compressed(messages: list[str | bytes], *, takeover: bool = True, pieces: int = 1) -> bytes:
    """A client's frames for ``messages``, compressed, each in ``pieces`` fragments."""
    deflater = Deflater(12, takeover)
    out = b""
    for message in messages:
        data = message.encode() if isinstance(message, str) else message
        payload = deflater.compress(data)
        size = max(1, len(payload) // pieces)
        parts = [payload[at : at + size] for at in range(0, len(payload), size)] or [b""]
        for index, part in enumerate(parts):
            opcode = (TEXT if isinstance(message, str) else BINARY) if index == 0 else CONTINUATION
            out += frame(opcode, part, fin=index == len(parts) - 1, masked=True, compressed=index == 0)
    return out


def read(data: bytes, *, takeover: bool = True, max_message: int = MiB, step: int = 0) -> list[Any]:
    reader = FrameReader(masked=True, max_message=max_message, inflater=Inflater(12, takeover))
    if not step:
        return reader.feed(data)
    return [m for at in range(0, len(data), step) for m in reader.feed(data[at : at + step])]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=600)), min_size=1, max_size=6),
    st.booleans(),
    st.integers(1, 4),
    st.integers(1, 50),
)
def test_compressed_messages_come_through_whole_or_split(
    messages: list[str | bytes], takeover: bool, pieces: int, step: int
) -> None:
    data = compressed(messages, takeover=takeover, pieces=pieces)
    assert read(data, takeover=takeover) == messages
    assert read(data, takeover=takeover, step=step) == messages


def test_a_message_may_come_uncompressed_between_compressed_ones() -> None:
    data = compressed(["one one one"]) + frame(TEXT, b"plain", masked=True) + compressed(["one one one"])
    assert read(data) == ["one one one", "plain", "one one one"]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (
            frame(TEXT, b"x", fin=False, masked=True)
            + frame(CONTINUATION, b"y", masked=True, compressed=True),
            "first",
        ),
        (frame(PING, b"", masked=True, compressed=True), "first"),
        (bytes((0x80 | 0x20 | TEXT, 0x80)) + b"\x00" * 4, "reserved bits"),
        (frame(BINARY, b"\xff\xff\xff not deflate", masked=True, compressed=True), "does not inflate"),
    ],
    ids=["rsv1-on-a-continuation", "rsv1-on-a-ping", "rsv2", "not-deflate"],
)
def test_a_compressed_frame_that_breaks_the_rfc_is_a_protocol_error(data: bytes, said: str) -> None:
    with pytest.raises(WebSocketError, match=said) as caught:
        read(data)
    assert caught.value.code == 1002


def test_rsv1_without_deflate_agreed_is_a_protocol_error() -> None:
    with pytest.raises(WebSocketError, match="no extension was agreed") as caught:
        FrameReader(masked=True, max_message=MiB).feed(compressed(["hello"]))
    assert caught.value.code == 1002


def test_compressed_text_that_is_not_utf8_is_1007() -> None:
    deflated = Deflater(12, True).compress(b"fine, then \xff")
    with pytest.raises(WebSocketError) as caught:
        read(frame(TEXT, deflated, masked=True, compressed=True))
    assert caught.value.code == 1007


def test_a_decompression_bomb_is_refused_as_it_inflates_past_the_limit() -> None:
    bomb = Deflater(15, False, level=9).compress(b"\x00" * (64 * MiB))  # 64 MiB in about 64 KB
    assert len(bomb) < 100_000
    inflater = Inflater(15, True)
    assert len(inflater.inflate(bomb, 1000, True)) == 1001  # never more than the room and one byte
    for step in (0, 997):  # whole, or as it trickles in
        with pytest.raises(WebSocketTooBig, match=f"inflates past {MiB} bytes") as caught:
            read(frame(BINARY, bomb, masked=True, compressed=True), step=step)
        assert caught.value.code == 1009


def test_a_message_of_the_limit_exactly_inflates_and_one_byte_more_does_not() -> None:
    limit = 5000
    assert read(compressed([b"a" * limit]), max_message=limit) == [b"a" * limit]
    with pytest.raises(WebSocketTooBig):
        read(compressed([b"a" * (limit + 1)]), max_message=limit)
    noise = zlib.compress(bytes(range(256)) * 20)[:limit]  # incompressible: a little larger on the wire
    assert read(compressed([noise]), max_message=limit) == [noise]


def test_wsprotos_compressed_messages_and_ours_read_each_other() -> None:
    """wsproto's client (permessage-deflate on) through our layer and codec, and back."""
    client = WSConnection(ConnectionType.CLIENT)
    layer = WebSocketLayer(MiB, deflate=Deflate())
    codec = sk.WebSocket(deflate=True)
    decoder = codec.decoder()
    hello = client.send(Request(host="h", target="/", extensions=[PerMessageDeflate()]))
    assert decoder.feed(layer.feed(hello)) == []
    client.receive_data(layer.take_output())
    accepted = next(client.events())
    assert isinstance(accepted, AcceptConnection) and accepted.extensions
    messages: list[str | bytes] = ["hello " * 50, b"\x00\x01" * 3000, "ü ✓" * 100, "hello " * 50]
    wire = b"".join(client.send(TextMessage(m) if isinstance(m, str) else BytesMessage(m)) for m in messages)
    assert wire[0] & 0x40  # compressed
    assert decoder.feed(layer.feed(wire)) == messages
    client.receive_data(layer.wrap(b"".join(codec.encode(m) for m in messages)))
    assert [event.data for event in client.events()] == messages


# -- on every engine, against the websockets library ------------------------------------------


def test_the_websockets_client_compresses_with_our_server_on_every_engine(engine: str) -> None:
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.WebSocket(deflate=True), engine=engine
    ).start() as server:
        host, port = server.addresses[0][:2]
        with ws_connect(f"ws://{host}:{port}/", open_timeout=WAIT, close_timeout=WAIT) as ws:
            assert ws.protocol.extensions, "permessage-deflate was not agreed"
            for message in ["hello " * 200, b"\x00" * 300_000, "ü" * 5000, "short"]:
                ws.send(message)
                assert ws.recv(timeout=WAIT) == message
            ws.send(["frag", "men", "ted " * 100])
            assert ws.recv(timeout=WAIT) == "fragmented " + "ted " * 99
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to end")
        assert not server.stats.errors
        # a client that offers nothing is served uncompressed
        with ws_connect(f"ws://{host}:{port}/", compression=None, open_timeout=WAIT) as ws:
            assert not ws.protocol.extensions
            ws.send("plain")
            assert ws.recv(timeout=WAIT) == "plain"


def test_a_bomb_gets_1009_and_the_server_serves_everyone_else(engine: str) -> None:
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.WebSocket(max_length=64 * 1024, deflate=True), engine=engine
    ).start() as server:
        sock = socket.create_connection(server.addresses[0][:2], timeout=WAIT)
        request = client_request("h", "/", new_key(), extensions="permessage-deflate; client_max_window_bits")
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert b"permessage-deflate" in head
        bomb = Deflater(12, True, level=9).compress(b"\x00" * (16 * MiB))
        sock.sendall(frame(BINARY, bomb, masked=True, compressed=True))
        reader = FrameReader(masked=False, max_message=MiB, inflater=Inflater(12, True))
        got: list[Any] = []
        while chunk := sock.recv(65536):
            got += reader.feed(chunk)
        assert isinstance(got[-1], Close) and got[-1].code == 1009, got
        sock.close()
        wait_until(lambda: server.stats.errors.get("limit", 0) == 1, what="the bomb to be counted")
        with sk.connect(ws_url(server), codec=sk.WebSocket(deflate=True), timeout=WAIT) as ws:
            assert ws.request("still here") == "still here"


def ws_url(server: sk.Server, scheme: str = "ws") -> str:
    host, port = server.addresses[0][:2]
    return f"{scheme}://{host}:{port}/"


def test_our_client_compresses_with_our_server_over_wss(engine: str, test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    with sk.Server(
        "tls://127.0.0.1:0", echo, codec=sk.WebSocket(deflate=True), engine=engine, tls=server_context(cert)
    ).start() as server:
        codec = sk.WebSocket(deflate=Deflate(window_bits=10, context_takeover=False))
        with sk.connect(ws_url(server, "wss"), codec=codec, tls=client_context(ca), timeout=WAIT) as ws:
            assert ws.codec.agreed is not None and ws.codec.agreed.send_window == 10
            for message in ["abc" * 10_000, b"\x01" * 100_000, "x"]:
                assert ws.request(message) == message
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to end")
        assert not server.stats.errors


def test_our_client_compresses_with_the_websockets_server() -> None:
    from websockets.sync.server import ServerConnection, serve

    agreed: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        agreed.append(ws.protocol.extensions)
        for message in ws:
            ws.send(message)

    server = serve(handler, "127.0.0.1", 0)  # (compression on, as by default)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        with sk.connect(url, codec=sk.WebSocket(deflate=True), timeout=WAIT) as ws:
            assert ws.codec.agreed is not None
            for message in ["hello " * 1000, b"\x00\xff" * 50_000, "✓"]:
                assert ws.request(message) == message
        assert agreed and agreed[0], "the websockets server did not agree to compress"
    finally:
        server.shutdown()
        thread.join(WAIT)


async def _async_round_trip(url: str) -> list[Any]:
    async with await socketkit.aio.connect(url, codec=sk.WebSocket(deflate=True), timeout=WAIT) as ws:
        return [await ws.request(m) for m in ("zip " * 500, b"\x00" * 70_000)]


def test_the_async_client_compresses_too() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket(deflate=True)).start() as server:
        assert asyncio.run(_async_round_trip(ws_url(server))) == ["zip " * 500, b"\x00" * 70_000]


# -- the command line ---------------------------------------------------------------------------


def test_serve_and_connect_deflate_and_their_usage_errors() -> None:
    from test_cli import SK, cli_server

    with cli_server("echo", "--codec", "ws", "--deflate", "-l", "tcp://127.0.0.1:0") as (_, urls):
        target = urls[0].replace("tcp://", "ws://") + "/"
        out = subprocess.run(
            [*SK, "connect", "--deflate", target],
            input="squeeze " * 100 + "\nsecond\n",
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert (out.returncode, out.stdout) == (0, "squeeze " * 100 + "\nsecond\n"), out.stderr
        sent = subprocess.run(
            [*SK, "send", "--deflate", target, "one squeezed message"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert (sent.returncode, sent.stdout) == (0, "one squeezed message\n"), sent.stderr
    for args, said in [
        (
            ["serve", "echo", "--deflate", "-l", "tcp://127.0.0.1:0"],
            "--deflate is WebSocket's: add --codec ws",
        ),
        (["connect", "--deflate", "tcp://127.0.0.1:1"], "--deflate is for ws:// and wss:// URLs"),
        (["send", "--deflate", "tcp://127.0.0.1:1", "x"], "--deflate is WebSocket's: use a ws:// URL"),
    ]:
        out = subprocess.run(
            [*SK, *args], capture_output=True, text=True, timeout=WAIT, check=False, stdin=subprocess.DEVNULL
        )
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, out.stderr
