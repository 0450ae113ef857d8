"""engine="asyncio" and "uvloop": async def handlers awaited in order, and a server on the
caller's own loop. (The conformance suite runs on both as on every engine; these are what
only they offer.)"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest
import uvloop

import socketkit as sk
from conftest import wait_until

WAIT = 10.0
LOOPS = pytest.mark.parametrize("engine", ["asyncio", "uvloop"])


def test_async_reply_handlers_await_asyncio_libraries_in_request_order() -> None:
    """The handler awaits another server through asyncio's own streams; replies keep order."""

    async def lookup(message: bytes, conn: sk.Connection) -> bytes:
        reader, writer = await asyncio.open_connection(*backend.addresses[0][:2])
        writer.write(message + b"\n")
        answer = await reader.readline()
        writer.close()
        await asyncio.sleep(0.001 * (5 - int(message) % 5))  # later requests finish sooner alone
        return answer.strip()

    backend = sk.Server("tcp://127.0.0.1:0", lambda m, c: m[::-1], codec=sk.Lines()).start()
    with backend, sk.Server("tcp://127.0.0.1:0", lookup, codec=sk.Lines()).start() as server:
        assert server.engine_name == "uvloop"  # auto: the best loop installed
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"".join(b"%d\n" % n for n in range(10, 30)))
            assert [client.recv() for _ in range(20)] == [(b"%d" % n)[::-1] for n in range(10, 30)]


@LOOPS
def test_an_async_protocol_on_message_and_its_sync_callbacks(engine: str) -> None:
    events: list[str] = []

    class Greeter(sk.Protocol):
        def on_connect(self, conn: sk.Connection) -> None:
            events.append("connect")
            conn.send(b"hello")

        async def on_message(self, conn: sk.Connection, message: bytes) -> None:
            await asyncio.sleep(0)
            conn.send(b"you said " + message)

        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            events.append("close")

    with sk.Server("tcp://127.0.0.1:0", Greeter, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.recv() == b"hello"
            assert client.request(b"hi") == b"you said hi"
        wait_until(lambda: events == ["connect", "close"], what="on_close")


@LOOPS
def test_async_on_connect_comes_before_every_message_and_async_on_close_is_awaited(engine: str) -> None:
    """A message sent while on_connect is still awaited waits for it; the server stops only
    once the async on_close has run (within the grace period)."""
    events: list[object] = []

    class Session(sk.Protocol):
        async def on_connect(self, conn: sk.Connection) -> None:
            await asyncio.sleep(0.01)  # e.g. a look-up of the peer
            events.append("connect")
            conn.send(b"welcome")

        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            events.append(message)
            conn.send(b"echo " + message)

        async def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            await asyncio.sleep(0.01)  # e.g. a write to a database
            events.append("close")

    with sk.Server("tcp://127.0.0.1:0", Session, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"early\n")  # before on_connect has returned
            assert [client.recv(), client.recv(), client.request(b"two")] == [
                b"welcome",
                b"echo early",
                b"echo two",
            ]
    assert events == ["connect", b"early", b"two", "close"]


@LOOPS
def test_an_async_on_connect_that_raises_ends_only_its_connection(engine: str) -> None:
    connects: list[sk.Connection] = []

    class Refusing(sk.Protocol):
        async def on_connect(self, conn: sk.Connection) -> None:
            connects.append(conn)
            await asyncio.sleep(0)
            if len(connects) == 1:
                raise PermissionError("not the first one")

        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            conn.send(message)

    with sk.Server("tcp://127.0.0.1:0", Refusing, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as refused:
            refused.sock.sendall(b"hello\n")
            try:  # closed with no reply (reset, when the server had not read the line yet)
                assert refused.sock.recv(100) == b""
            except ConnectionResetError:
                pass
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"hello") == b"hello"
        wait_until(lambda: server.stats.errors.get("handler") == 1, what="the error counted")


@LOOPS
def test_a_disconnect_cancels_the_awaited_handler(engine: str) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def slow(message: bytes, conn: sk.Connection) -> bytes:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return message

    with sk.Server("tcp://127.0.0.1:0", slow, codec=sk.Lines(), engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"wait\n")
            assert started.wait(WAIT)
            # gone, not half-closed (after an end of stream a reply could still go out): a reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert cancelled.wait(WAIT)
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to be gone")


@LOOPS
def test_an_async_http_handler_that_raises_gets_a_500(engine: str) -> None:
    async def broken(request: sk.Request, conn: sk.Connection) -> sk.HttpResponse:
        await asyncio.sleep(0)
        raise RuntimeError("secret")

    with sk.Server("tcp://127.0.0.1:0", broken, codec=sk.HttpRequest(), engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            received = b""
            while data := sock.recv(4096):
                received += data
    assert received.startswith(b"HTTP/1.1 500 Internal Server Error") and b"secret" not in received


@LOOPS
def test_await_serve_on_the_callers_loop(engine: str) -> None:
    """On the application's loop, an asyncio one or a uvloop one."""

    async def app() -> list[bytes]:
        async def shout(message: bytes, conn: sk.Connection) -> bytes:
            return message.upper()

        server = sk.Server("tcp://127.0.0.1:0", shout, codec=sk.Lines(), engine=engine)
        serving = asyncio.create_task(server.serve())
        while not server.addresses:  # bound once serve() has started
            await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection(*server.addresses[0][:2])
        replies = []
        for word in (b"one", b"two"):
            writer.write(word + b"\n")
            replies.append((await reader.readline()).strip())
        server.stop()  # from the loop's own thread: returns at once; serve() then drains
        assert await reader.read() == b""  # the idle connection is closed
        writer.close()
        await asyncio.wait_for(serving, WAIT)
        assert not server.running and server.stats.messages_in == 2
        return replies

    loop = uvloop.new_event_loop() if engine == "uvloop" else asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(app()) == [b"ONE", b"TWO"]
    finally:
        loop.close()


def test_await_serve_needs_the_asyncio_engine() -> None:
    with pytest.raises(ValueError, match="engine='asyncio'"):
        asyncio.run(sk.Server("tcp://127.0.0.1:0", lambda m, c: m, engine="epoll").serve())


def test_await_serve_with_workers_blames_the_workers() -> None:
    """One process serves on the caller's loop: the message names what to drop (workers),
    not the engine that was right."""
    server = sk.Server("tcp://127.0.0.1:0", lambda m, c: m, engine="asyncio", workers=2)
    with pytest.raises(ValueError, match="leave out workers") as raised:
        asyncio.run(server.serve())
    assert "use engine=" not in str(raised.value)
