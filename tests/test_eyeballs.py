"""The client's connect: happy eyeballs (RFC 8305), its URL's socket options, and what it refuses."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import socketkit as sk
from conftest import echo
from socketkit.eyeballs import connect_first, interleave

WAIT = 10.0


@contextlib.contextmanager
def blackholed_v6() -> Iterator[int]:
    """A port on ::1 that drops connection attempts, as a broken IPv6 route does: a listener
    whose accept queue is full (Linux then drops new SYNs; the client waits for ever)."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind(("::1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        for _ in range(8):  # until an attempt is dropped: the queue is full
            try:
                queued.append(socket.create_connection(("::1", port), timeout=0.3))
            except TimeoutError:
                break
        else:
            pytest.fail("the kernel kept accepting into a full queue: no blackhole to test with")
        yield port
    finally:
        for sock in queued:
            sock.close()
        listener.close()


def info(family: int, host: str, port: int) -> tuple[int, int, int, str, Any]:
    address: Any = (host, port, 0, 0) if family == socket.AF_INET6 else (host, port)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)


def test_addresses_alternate_by_family_starting_with_the_first() -> None:
    v6 = [info(socket.AF_INET6, f"::{n}", 1) for n in (1, 2, 3)]
    v4 = [info(socket.AF_INET, f"127.0.0.{n}", 1) for n in (1, 2)]
    ordered = interleave([v6[0], v6[1], v6[2], v4[0], v4[1]])
    assert ordered == [v6[0], v4[0], v6[1], v4[1], v6[2]]
    assert interleave([v4[0], v6[0], v6[1]]) == [v4[0], v6[0], v6[1]]


def test_a_blackholed_address_costs_the_delay_not_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose IPv6 address drops packets and whose IPv4 one serves: the client is
    connected (to IPv4) a happy-eyeballs delay later, where trying them in turn waited out
    the whole timeout first (3 s before this, with ``timeout=3``)."""
    with blackholed_v6() as dead, sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as server:
        live = server.addresses[0][1]
        answers = [info(socket.AF_INET6, "::1", dead), info(socket.AF_INET, "127.0.0.1", live)]
        real = socket.getaddrinfo
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda host, *args, **kwargs: answers if host == "dual.test" else real(host, *args, **kwargs),
        )
        started = time.monotonic()
        with sk.connect(f"tcp://dual.test:{live}", codec=sk.Lines(), timeout=3) as client:
            took = time.monotonic() - started
            assert client.sock.getpeername()[0] == "127.0.0.1"
            assert client.request(b"hi") == b"hi"
    assert took < 2.0, f"{took:.2f}s: the IPv4 attempt waited for the IPv6 one"


def test_the_delay_is_the_callers_and_the_race_has_one_deadline() -> None:
    with blackholed_v6() as dead:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect_first([info(socket.AF_INET6, "::1", dead)] * 3, timeout=0.5, delay=0.05)
        assert time.monotonic() - started < 3.0  # one deadline for the race (not one per attempt)


def test_every_address_refused_says_refused() -> None:
    ports = []
    for _ in range(2):  # ports that were free a moment ago: nothing listens there now
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    with pytest.raises(ConnectionRefusedError):
        connect_first([info(socket.AF_INET, "127.0.0.1", port) for port in ports], timeout=WAIT)
    with pytest.raises(sk.ConnectError, match="connection refused"):
        sk.connect(f"tcp://127.0.0.1:{ports[0]}", timeout=WAIT)


def test_the_urls_socket_options_are_set_on_the_clients_socket() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as server:
        url = f"{server.url}?keepalive=1&keepalive_idle=30&rcvbuf=8192&nodelay=0"
        with sk.connect(url, codec=sk.Lines(), timeout=WAIT) as client:
            sock = client.sock
            assert isinstance(sock, socket.socket)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            with socket.socket() as reference:  # what the kernel makes of 8192 (Linux doubles it)
                reference.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
                expected = reference.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == expected
            assert client.request(b"still works") == b"still works"
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # the default


@pytest.mark.parametrize("option", ["backlog=16", "proxy=v1", "reuseport=1", "v6only=1"])
def test_a_listeners_option_in_a_clients_url_is_refused(option: str) -> None:
    with pytest.raises(ValueError, match=r"is for a listener, not a URL to connect to"):
        sk.connect(f"tcp://127.0.0.1:9?{option}", timeout=WAIT)


def test_timeout_zero_is_refused_with_what_to_write() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as server:
        with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds \(or None"):
            sk.connect(server.url, timeout=0)
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds"):
                client.timeout = 0
            assert client.request(b"fine") == b"fine"  # (the refused value changed nothing)
