"""socketkit.aio: the asyncio client, on asyncio's loop and uvloop's, against socketkit's
servers (and an ``ssl``-module server for STARTTLS), over tcp, unix and tls."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

import socketkit as sk
from conftest import echo
from socketkit import aio
from socketkit.tls import client_context, server_context
from test_eyeballs import blackholed_v6, info

WAIT = 10.0
LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def run(loop: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


@LOOPS
def test_request_send_recv_and_async_for_on_every_stream_transport(loop: str, stream_url: str) -> None:
    with sk.Server(stream_url, echo, codec=sk.Lines()).start() as server:

        async def main() -> list[Any]:
            async with await aio.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert await client.request(b"hello") == b"hello"
                for n in range(3):
                    await client.send(b"%d" % n)
                got = [await client.recv() for _ in range(3)]
                await client.shutdown_write()  # the server answers what it has, then closes
                got += [message async for message in client]
                if server.url.startswith("tls://"):
                    assert client.tls is not None and client.tls.version in ("TLSv1.2", "TLSv1.3")
                return got

        assert run(loop, main) == [b"0", b"1", b"2"]


@LOOPS
def test_a_half_close_still_reads_what_the_server_sends_after_it(loop: str, stream_url: str) -> None:
    """Everything sent before shutdown_write() is answered, over TLS as over TCP (close_notify)."""

    with sk.Server(stream_url, echo, codec=sk.Lines()).start() as server:

        async def main() -> list[Any]:
            async with await aio.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                for n in range(50):
                    await client.send(b"line %d" % n)
                await client.shutdown_write()
                return [message async for message in client]

        assert run(loop, main) == [b"line %d" % n for n in range(50)]


def test_an_async_handler_calls_a_second_socketkit_server_without_blocking_its_loop() -> None:
    """The issue's case: an async def handler on engine asyncio asks a backend through
    socketkit.aio; while one request waits on a slow backend, others are answered."""
    release = threading.Event()

    @sk.blocking  # (each call on a thread of its own: the slow one holds up no other)
    def backend_handler(message: bytes, conn: sk.Connection) -> bytes:
        if message == b"slow":
            release.wait(WAIT)
        return message.upper()

    backend = sk.Server("tcp://127.0.0.1:0", backend_handler, codec=sk.Lines(), engine="threads").start()

    async def front(message: bytes, conn: sk.Connection) -> bytes:
        async with await aio.connect(backend.url, codec=sk.Lines(), timeout=WAIT) as upstream:
            return b"backend says " + await upstream.request(message)

    with backend, sk.Server("tcp://127.0.0.1:0", front, codec=sk.Lines(), engine="asyncio").start() as server:
        slow = sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)
        slow.send(b"slow")
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as quick:
            assert quick.request(b"quick") == b"backend says QUICK"  # the loop was not blocked
        release.set()
        with slow:
            assert slow.recv() == b"backend says SLOW"


@LOOPS
def test_happy_eyeballs_tries_the_next_address_after_the_delay(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with blackholed_v6() as dead, sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as server:
        live = server.addresses[0][1]
        answers = [info(socket.AF_INET6, "::1", dead), info(socket.AF_INET, "127.0.0.1", live)]

        async def main() -> tuple[float, str]:
            running = asyncio.get_running_loop()
            real = running.getaddrinfo

            async def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
                return answers if host == "dual.test" else await real(host, *args, **kwargs)

            monkeypatch.setattr(running, "getaddrinfo", resolve)
            started = time.monotonic()
            async with await aio.connect(f"tcp://dual.test:{live}", codec=sk.Lines(), timeout=3) as client:
                took = time.monotonic() - started
                assert await client.request(b"hi") == b"hi"
                return took, client.transport.get_extra_info("peername")[0]

        took, peer = run(loop, main)
        assert peer == "127.0.0.1"
        assert took < 2.0, f"{took:.2f}s: the IPv4 attempt waited for the IPv6 one"


@LOOPS
def test_connect_errors_name_the_address(loop: str, test_pki: tuple[str, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]  # nothing listens there once the probe is closed
    ca, cert = test_pki

    async def main() -> None:
        with pytest.raises(sk.ConnectError, match=rf"connection refused: tcp://127.0.0.1:{free}"):
            await aio.connect(f"tcp://127.0.0.1:{free}", timeout=WAIT)
        with pytest.raises(sk.ConnectError, match=r"no such socket: unix:///nonexistent/x.sock"):
            await aio.connect("unix:///nonexistent/x.sock", timeout=WAIT)
        with pytest.raises(ValueError, match=r"datagram-based: use await socketkit\.aio\.open_datagram"):
            await aio.connect("udp://127.0.0.1:9")
        with pytest.raises(ValueError, match="is for a listener"):
            await aio.connect("tcp://127.0.0.1:9?backlog=5")
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            await aio.connect("tcp://127.0.0.1:9", timeout=0)
        with sk.Server(
            "tls://127.0.0.1:0", echo, codec=sk.Lines(), tls=server_context(cert)
        ).start() as server:
            # the system's CAs do not know the test CA: refused, saying why
            with pytest.raises(sk.ConnectError, match=r"certificate verify failed.*with tls://127.0.0.1"):
                await aio.connect(server.url, timeout=WAIT)
            async with await aio.connect(server.url, codec=sk.Lines(), tls=client_context(ca)) as client:
                assert await client.request(b"trusted") == b"trusted"

    run(loop, main)


@LOOPS
def test_a_silent_server_is_a_timeout_and_a_closed_one_is_closed(loop: str) -> None:
    class Silent(sk.Protocol):
        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            if message == b"bye":
                conn.close()

    with sk.Server("tcp://127.0.0.1:0", Silent, codec=sk.Lines()).start() as server:

        async def main() -> None:
            client = await aio.connect(server.url, codec=sk.Lines(), timeout=0.2)
            with pytest.raises(sk.Timeout, match=rf"no reply from {server.url} within 0.2s"):
                await client.request(b"anyone?")
            await client.send(b"bye")
            client.timeout = WAIT
            with pytest.raises(sk.ClosedError, match="closed the connection"):
                await client.recv()
            client.close()
            with pytest.raises(sk.ClosedError, match="is closed"):
                await client.send(b"again")

        run(loop, main)


@LOOPS
def test_the_servers_refusal_is_the_clients_error(loop: str) -> None:
    """The server answers an oversize message with its error reply and closes; the client,
    cut off mid-send, reports that reply's reason (as the blocking client does), not a bare
    reset."""
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as server:

        async def main() -> None:
            async with await aio.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                with pytest.raises(
                    sk.BrokenError, match=r"refused the message and closed: line longer than 65536"
                ):
                    await client.send(b"x" * (32 << 20))

        run(loop, main)


@LOOPS
def test_datagrams_request_and_a_closed_port(loop: str, datagram_url: str) -> None:
    with sk.Server(datagram_url, echo, codec=sk.Lines()).start() as server:

        async def main() -> None:
            async with await aio.open_datagram(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert await client.request(b"ping") == b"ping"
                await client.send(b"one")
                assert await client.recv() == b"one"

        run(loop, main)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]

    async def closed_port() -> None:
        async with await aio.open_datagram(f"udp://127.0.0.1:{free}", timeout=WAIT, retries=0) as client:
            with pytest.raises(sk.ConnectError, match="connection refused"):
                await client.request(b"anyone?")

    run(loop, closed_port)


def starttls_server(cert: str, after_go_ahead: bytes = b"") -> tuple[socket.socket, threading.Thread]:
    """A minimal STARTTLS server made with the ssl module (not socketkit): it says "ready",
    answers "STARTTLS" with "go ahead" (and ``after_go_ahead``), then echoes lines over TLS."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = server_context(cert)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"ready\n")
            if conn.recv(100) != b"STARTTLS\n":
                return
            conn.sendall(b"go ahead\n" + after_go_ahead)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(100).upper())
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@LOOPS
def test_start_tls_upgrades_a_plain_connection(loop: str, test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    listener, thread = starttls_server(cert)
    port = listener.getsockname()[1]

    async def main() -> None:
        async with await aio.connect(f"tcp://127.0.0.1:{port}", codec=sk.Lines(), timeout=WAIT) as client:
            assert await client.recv() == b"ready"
            assert await client.request(b"STARTTLS") == b"go ahead"
            await client.start_tls(client_context(ca), server_hostname="localhost")
            assert client.tls is not None
            assert await client.request(b"secret") == b"SECRET"

    with listener:
        run(loop, main)
        thread.join(WAIT)


@LOOPS
def test_start_tls_refuses_plaintext_that_came_after_the_go_ahead(
    loop: str, test_pki: tuple[str, str]
) -> None:
    """Bytes after "go ahead" and before TLS are what an attacker on the path would inject
    (CVE-2011-0411's kind): the client refuses them rather than read them as the server's."""
    ca, cert = test_pki
    listener, thread = starttls_server(cert, after_go_ahead=b"250 injected\n")
    port = listener.getsockname()[1]

    async def main() -> None:
        client = await aio.connect(f"tcp://127.0.0.1:{port}", codec=sk.Lines(), timeout=WAIT)
        assert await client.recv() == b"ready"
        await client.send(b"STARTTLS")
        assert await client.recv() == b"go ahead"
        deadline = time.monotonic() + WAIT
        while not client._pending and not client._wire.received and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # (until the injected line has arrived)
        with pytest.raises(sk.RemoteProtocolError, match="sent data after its go-ahead"):
            await client.start_tls(client_context(ca), server_hostname="localhost")
        assert client.closed

    with listener:
        run(loop, main)
        thread.join(WAIT)
