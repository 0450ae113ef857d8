"""Client and DatagramClient: errors that name the address, timeouts, retries."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

import socketkit as sk
from conftest import echo
from socketkit import client as client_module


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound (port 0) but not listening: connecting to it is refused, and no one else can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def test_connection_refused_names_the_address(refused_port: int) -> None:
    port = refused_port
    with pytest.raises(sk.ConnectError, match=rf"connection refused: tcp://127.0.0.1:{port} \(is a server"):
        sk.connect(f"tcp://127.0.0.1:{port}", timeout=2)


def test_missing_unix_socket_names_the_path() -> None:
    with pytest.raises(sk.ConnectError, match=r"no such socket: unix:///nonexistent/x\.sock"):
        sk.connect("unix:///nonexistent/x.sock", timeout=2)


def test_connect_retries_with_backoff(monkeypatch: pytest.MonkeyPatch, refused_port: int) -> None:
    port = refused_port
    attempts: list[object] = []
    real = client_module.connect_socket

    def counting(endpoint: object, timeout: float | None, *rest: object) -> socket.socket:
        attempts.append(endpoint)
        return real(endpoint, timeout)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module, "connect_socket", counting)
    with pytest.raises(sk.ConnectError):
        sk.connect(f"tcp://127.0.0.1:{port}", timeout=2, retries=2, backoff=0.001)
    assert len(attempts) == 3


def test_connect_retry_succeeds_once_the_server_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    server = sk.Server("tcp://127.0.0.1:0", echo)
    real = client_module.connect_socket
    calls = 0

    def start_on_second_try(endpoint: object, timeout: float | None, *rest: object) -> socket.socket:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sk.ConnectError("connection refused: simulated")
        return real(endpoint, timeout)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module, "connect_socket", start_on_second_try)
    with server.start(), sk.connect(server.url, timeout=2, retries=3, backoff=0.001) as client:
        assert client.request(b"up") == b"up"
    assert calls == 2


def test_read_timeout_raises_timeout() -> None:
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: None).start() as server:
        with sk.connect(server.url, timeout=0.2) as client:
            client.send(b"no reply comes")
            with pytest.raises(sk.Timeout, match=r"no reply from tcp://127\.0\.0\.1"):
                client.recv()
            with pytest.raises(TimeoutError):  # also the builtin
                client.recv()


def test_connect_timeout_is_a_connect_timeout() -> None:
    # A listener with a full backlog: SYNs are dropped, so connecting times out.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        held = []
        try:
            with pytest.raises(sk.ConnectTimeout, match="timed out connecting"):
                for _ in range(64):
                    held.append(sk.connect(url, timeout=0.2))
        finally:
            for c in held:
                c.close()


def test_server_closing_raises_closed_and_iteration_ends() -> None:
    def reply_then_close(message: bytes, conn: sk.Connection) -> None:
        conn.send(b"a")
        conn.send(b"b")
        conn.close()

    with sk.Server("tcp://127.0.0.1:0", reply_then_close, codec=sk.Lines()).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=5) as client:
            client.send(b"go")
            assert list(client) == [b"a", b"b"]
            with pytest.raises(sk.ClosedError):
                client.recv()


def test_server_closing_mid_message_is_a_protocol_error() -> None:
    def partial_then_close(message: bytes, conn: sk.Connection) -> None:
        conn.send(b"half a li")  # Raw on the server: no delimiter
        conn.close()

    with sk.Server("tcp://127.0.0.1:0", partial_then_close).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=5) as client:
            client.send(b"x")
            with pytest.raises(sk.RemoteProtocolError, match="inside a line"):
                client.recv()


def test_using_a_closed_client_raises() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo).start() as server:
        client = sk.connect(server.url, timeout=5)
        client.close()
        assert client.closed
        with pytest.raises(sk.ClosedError):
            client.send(b"x")


def test_connect_refuses_datagram_urls_and_vice_versa() -> None:
    with pytest.raises(ValueError, match="DatagramClient"):
        sk.connect("udp://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"socketkit.connect"):
        sk.DatagramClient("tcp://127.0.0.1:9")


def test_datagram_request_resends_on_loss() -> None:
    """The first datagram is 'lost' (ignored by the server); the retry gets the reply."""
    seen: list[bytes] = []
    lock = threading.Lock()

    def lossy(message: bytes, conn: sk.Connection) -> bytes | None:
        with lock:
            seen.append(message)
            first = len(seen) == 1
        return None if first else message

    with sk.Server("udp://127.0.0.1:0", lossy).start() as server:
        with sk.DatagramClient(server.url, timeout=0.3, retries=2) as client:
            assert client.request(b"again") == b"again"
    assert seen == [b"again", b"again"]


def test_datagram_request_gives_up_after_retries() -> None:
    with sk.Server("udp://127.0.0.1:0", lambda m, c: None).start() as server:
        with sk.DatagramClient(server.url, timeout=0.1, retries=1) as client:
            with pytest.raises(sk.Timeout):
                client.request(b"into the void")
        assert server.stats.messages_in == 2


def test_datagram_to_a_closed_port_is_refused() -> None:
    # Refused means no socket at all on the port: the one the kernel just gave and took back.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with sk.DatagramClient(f"udp://127.0.0.1:{port}", timeout=2, retries=0) as client:
        with pytest.raises(sk.ConnectError, match="connection refused"):
            client.request(b"anyone?")


def test_json_client_and_server() -> None:
    def add(message: dict[str, int], conn: sk.Connection) -> dict[str, int]:
        return {"sum": message["a"] + message["b"]}

    with sk.Server("tcp://127.0.0.1:0", add, codec=sk.Json()).start() as server:
        with sk.connect(server.url, codec=sk.Json(), timeout=5) as client:
            assert client.request({"a": 2, "b": 3}) == {"sum": 5}


def test_a_send_that_breaks_with_nothing_said_is_a_plain_broken_error() -> None:
    """Cut off by a peer that said nothing: the broken pipe as it is (no reason invented, and
    the client's decoder is not told the stream ended)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with (
        listener,
        sk.connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}", codec=sk.Lines(), timeout=10) as client,
    ):
        accepted, _ = listener.accept()
        accepted.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )  # close with a reset
        accepted.close()
        with pytest.raises(sk.BrokenError) as raised:
            for _ in range(100):  # the first send may still be taken before the reset arrives
                client.send(b"x" * 65536)
        assert "refused" not in str(raised.value)
