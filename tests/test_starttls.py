"""STARTTLS: ``conn.start_tls()`` on every engine and handler style, the clients' ``start_tls``,
and the refusal of plaintext injected between the request and the handshake."""

from __future__ import annotations

import select
import socket
import ssl
from typing import Any

import pytest

import socketkit as sk
from conftest import THREADED, wait_until
from socketkit.layers.tls import TlsLayer
from socketkit.tls import client_context, server_context

WAIT = 10.0


def server_tls(test_pki: tuple[str, str]) -> ssl.SSLContext:
    return server_context(test_pki[1])


def tls_of(conn: sk.Connection) -> str:
    layer = conn.layer(TlsLayer)  # type: ignore[attr-defined]
    return "plain" if layer is None else str(layer.version)


def smtp_like(context: ssl.SSLContext) -> sk.Protocol:
    """A greeting, "STARTTLS" answered with a go-ahead and then TLS, every other line echoed
    with what carried it."""

    class Smtpish(sk.Protocol):
        def on_connect(self, conn: sk.Connection) -> None:
            conn.send(b"220 ready")

        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            if message == b"STARTTLS":
                conn.send(b"220 go ahead")
                conn.start_tls(context)
            else:
                conn.send(b"250 " + message + b" over " + tls_of(conn).encode())

    return Smtpish()


def upgrade(client: sk.Client, ca: str) -> None:
    assert client.recv() == b"220 ready"
    assert client.request(b"HELO before") == b"250 HELO before over plain"
    assert client.request(b"STARTTLS") == b"220 go ahead"
    client.start_tls(client_context(ca), server_hostname="localhost")


def test_a_protocol_upgrades_on_every_engine(engine: str, test_pki: tuple[str, str]) -> None:
    ca, _ = test_pki
    with sk.Server(
        "tcp://127.0.0.1:0", smtp_like(server_tls(test_pki)), codec=sk.Lines(), engine=engine
    ).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            upgrade(client, ca)
            reply = client.request(b"HELO after")
            assert reply in (b"250 HELO after over TLSv1.3", b"250 HELO after over TLSv1.2")
            assert isinstance(client.sock, sk.tls.TlsStream)
            client.shutdown_write()  # close_notify; the server's own follows
            assert list(client) == []


def test_a_reply_function_returns_its_go_ahead_in_the_clear(engine: str, test_pki: tuple[str, str]) -> None:
    """The go-ahead a function returns after calling start_tls() still goes out before TLS."""
    ca, _ = test_pki
    context = server_tls(test_pki)

    def handler(message: bytes, conn: sk.Connection) -> bytes:
        if message == b"STARTTLS":
            conn.start_tls(context)
            return b"go ahead"
        return message + b" over " + tls_of(conn).encode()

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"STARTTLS") == b"go ahead"
            client.start_tls(client_context(ca), server_hostname="localhost")
            assert client.request(b"x").startswith(b"x over TLSv1.")


@pytest.mark.parametrize("engine", ["asyncio", "uvloop"])
def test_an_async_handler_upgrades(engine: str, test_pki: tuple[str, str]) -> None:
    ca, _ = test_pki
    context = server_tls(test_pki)

    async def handler(message: bytes, conn: sk.Connection) -> bytes:
        if message == b"STARTTLS":
            conn.start_tls(context)
            return b"go ahead"
        return message + b" over " + tls_of(conn).encode()

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"STARTTLS") == b"go ahead"
            client.start_tls(client_context(ca), server_hostname="localhost")
            assert client.request(b"x").startswith(b"x over TLSv1.")


@pytest.mark.parametrize("engine", [name for name in THREADED if name != "pool"])
def test_a_blocking_handler_upgrades_on_its_own_thread(engine: str, test_pki: tuple[str, str]) -> None:
    ca, _ = test_pki
    context = server_tls(test_pki)

    @sk.blocking
    def handler(conn: sk.Connection) -> None:
        conn.send(b"220 ready")
        for message in conn:
            if message == b"STARTTLS":
                conn.send(b"220 go ahead")
                conn.start_tls(context)
            else:
                conn.send(b"250 " + message + b" over " + tls_of(conn).encode())

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            upgrade(client, ca)
            assert client.request(b"HELO after").startswith(b"250 HELO after over TLSv1.")


def test_on_the_pool_a_blocking_fn_conn_is_told_to_use_another_engine(test_pki: tuple[str, str]) -> None:
    context = server_tls(test_pki)
    said: list[str] = []

    @sk.blocking
    def handler(conn: sk.Connection) -> None:
        for _ in conn:
            try:
                conn.start_tls(context)
            except RuntimeError as exc:
                said.append(str(exc))
                conn.send(b"refused")

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine="pool").start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"STARTTLS") == b"refused"
    assert said and "needs engine threads or iterative" in said[0]


def test_plaintext_after_the_request_is_refused_not_handled(engine: str, test_pki: tuple[str, str]) -> None:
    """A request to start TLS with a command glued behind it (what an attacker on the path
    injects, CVE-2011-0411): the command is never handled in the clear, the connection is
    refused as bad input and counted, and the server serves the next client."""
    handled: list[bytes] = []
    context = server_tls(test_pki)

    class Recording(sk.Protocol):
        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            handled.append(message)
            if message == b"STARTTLS":
                conn.send(b"go ahead")
                conn.start_tls(context)

    with sk.Server("tcp://127.0.0.1:0", Recording(), codec=sk.Lines(), engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as raw:
            raw.sendall(b"STARTTLS\nRCPT TO:<attacker>\n")
            received = b""
            while chunk := raw.recv(4096):
                received += chunk
        assert received.startswith(b"go ahead\n")  # then the error reply, and the close
        assert b"RCPT TO:<attacker>" not in handled
        wait_until(lambda: server.stats.errors.get("protocol") == 1, what="the refusal to be counted")
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.send(b"hello")  # still serving
            wait_until(lambda: b"hello" in handled, what="the next client's line")


def test_start_tls_twice_and_on_a_tls_connection_is_refused(test_pki: tuple[str, str]) -> None:
    ca, _ = test_pki
    context = server_tls(test_pki)
    said: list[str] = []

    def handler(message: bytes, conn: sk.Connection) -> bytes:
        try:
            conn.start_tls(context)
            conn.start_tls(context)
        except ValueError as exc:
            said.append(str(exc))
        return b"ok"

    with sk.Server("tls://127.0.0.1:0", handler, codec=sk.Lines(), tls=context).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), tls=client_context(ca), timeout=WAIT) as client:
            assert client.request(b"STARTTLS") == b"ok"
            with pytest.raises(ValueError, match="TLS is on already"):
                client.start_tls(client_context(ca))
    assert said and "TLS is on already" in said[0]


def test_the_blocking_client_refuses_what_came_after_the_go_ahead(test_pki: tuple[str, str]) -> None:
    """The client's side of the same rule: lines after the server's go-ahead, before TLS, are
    what someone on the path injected; start_tls() refuses them and closes."""
    from test_aio import starttls_server

    ca, cert = test_pki
    listener, thread = starttls_server(cert, after_go_ahead=b"250 injected\n")
    with (
        listener,
        sk.connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}", codec=sk.Lines(), timeout=WAIT) as client,
    ):
        assert client.recv() == b"ready"
        assert client.request(b"STARTTLS") == b"go ahead"
        sock = client.sock
        assert isinstance(sock, socket.socket)
        wait_until(  # (read already, with the go-ahead, or still in the socket)
            lambda: client._pending or select.select([sock], [], [], 0)[0], what="the injected line"
        )
        with pytest.raises(sk.RemoteProtocolError, match="sent data after its go-ahead"):
            client.start_tls(client_context(ca))
        assert client.closed
    thread.join(WAIT)


def test_datagrams_have_no_connection_to_secure(test_pki: tuple[str, str]) -> None:
    said: list[str] = []

    def handler(message: bytes, conn: sk.Connection) -> Any:
        try:
            conn.start_tls(server_tls(test_pki))
        except TypeError as exc:
            said.append(str(exc))
        return message

    with sk.Server("udp://127.0.0.1:0", handler, codec=sk.Lines()).start() as server:
        with sk.DatagramClient(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"x") == b"x"
    assert said and "a datagram has no connection to start TLS on" in said[0]
