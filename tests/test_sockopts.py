"""Socket options from endpoint URLs: read back from the listener and from an accepted
connection (Linux passes them on), and refused clearly when they do not fit."""

from __future__ import annotations

import os
import pwd
import socket
import stat

import pytest

import socketkit as sk
from conftest import echo
from socketkit.endpoints import Listener, bind, parse

WAIT = 10.0


def accepted_from(listener: Listener) -> socket.socket:
    client = socket.create_connection(listener.sock.getsockname()[:2], timeout=WAIT)
    listener.sock.setblocking(True)
    conn, _ = listener.sock.accept()
    client.close()
    return conn


def test_tcp_options_reach_the_listener_and_every_accepted_connection() -> None:
    url = "tcp://127.0.0.1:0?keepalive=1&keepalive_idle=42&keepalive_interval=7&keepalive_count=3&rcvbuf=65536&nodelay=0"
    listener = bind(parse(url))
    try:
        conn = accepted_from(listener)
        with conn:
            for sock in (listener.sock, conn):
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 42
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 65536  # Linux doubles it
    finally:
        listener.close()
    default = bind(parse("tcp://127.0.0.1:0"))
    try:
        assert default.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # on unless told
    finally:
        default.close()


def test_nodelay_0_holds_for_what_the_engines_accept() -> None:
    """The engines' accept sets TCP_NODELAY where it is not inherited; not over ?nodelay=0."""
    from socketkit.engines.common.accept import AcceptGate
    from socketkit.stats import StatsRecorder

    for url, expected in (("tcp://127.0.0.1:0?nodelay=0", 0), ("tcp://127.0.0.1:0", 1)):
        listener = bind(parse(url))
        gate = AcceptGate(sk.Limits(), StatsRecorder())
        client = socket.create_connection(listener.sock.getsockname()[:2], timeout=WAIT)
        try:
            listener.sock.setblocking(True)
            accepted = gate.accept(listener)
            assert accepted is not None
            with accepted[0] as conn:
                assert bool(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) == bool(expected), url
        finally:
            client.close()
            listener.close()


def test_reuseport_lets_two_servers_share_a_port() -> None:
    with sk.Server("tcp://127.0.0.1:0?reuseport=1", echo).start() as first:
        port = first.addresses[0][1]
        with sk.Server(f"tcp://127.0.0.1:{port}?reuseport=1", echo).start() as second:
            assert second.addresses[0][1] == port
    with sk.Server("tcp://127.0.0.1:0", echo).start() as alone:
        with pytest.raises(sk.BindError, match="in use"):
            sk.Server(f"tcp://127.0.0.1:{alone.addresses[0][1]}?reuseport=1", echo).start()


def test_interface_binds_to_one_network_device() -> None:
    try:
        listener = bind(parse("tcp://127.0.0.1:0?interface=lo"))
    except sk.BindError as exc:  # SO_BINDTODEVICE needs CAP_NET_RAW
        assert "not permitted" in str(exc).lower()
        return
    try:
        assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0") == b"lo"
    finally:
        listener.close()
    with sk.Server("tcp://127.0.0.1:0?interface=lo", echo, codec=sk.Lines()).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"on lo") == b"on lo"


def test_v6only_on_the_ipv6_wildcard() -> None:
    both = bind(parse("tcp://[::]:0?v6only=0"))
    only = bind(parse("tcp://*:0?v6only=1"))
    try:
        assert both.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        assert only.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert "(every interface, IPv4 and IPv6)" in both.described
    finally:
        both.close()
        only.close()


def test_unix_sockets_are_0600_unless_told_and_take_an_owner(short_tmp: str) -> None:
    path = os.path.join(short_tmp, "private.sock")
    with sk.Server(f"unix://{path}", echo).start():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # only the owner may connect
    me = pwd.getpwuid(os.getuid()).pw_name
    shared = os.path.join(short_tmp, "shared.sock")
    with sk.Server(f"unix://{shared}?mode=0660&owner={me}", echo).start():
        info = os.stat(shared)
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o660, os.getuid())


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("tcp://127.0.0.1:0?keepalive=yes", "keepalive must be 0 or 1"),
        ("tcp://127.0.0.1:0?rcvbuf=-1", "rcvbuf must be a positive integer"),
        ("udp://127.0.0.1:0?keepalive=1", "for TCP"),
        ("tcp://127.0.0.1:0?mode=0600", "for unix://"),
        ("unix:///tmp/x.sock?rcvbuf=1000", "for tcp://"),
        ("unix:///tmp/x.sock?mode=999", "octal permissions"),
        ("unix:///tmp/x.sock?owner=no-such-user-here", "no such user"),
        ("tcp://127.0.0.1:0?interface=" + "x" * 20, "interface name"),
        ("tcp://127.0.0.1:0?colour=red", "known options are"),
    ],
)
def test_options_that_do_not_fit_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(url)


def test_a_client_connects_from_a_source_address() -> None:
    with sk.Server(
        "tcp://127.0.0.1:0", lambda m, c: str(c.peer[0]).encode(), codec=sk.Lines()
    ).start() as server:
        with sk.connect(
            server.url, codec=sk.Lines(), timeout=WAIT, source_address=("127.0.0.2", 0)
        ) as client:
            assert client.request(b"who") == b"127.0.0.2"
