"""The PROXY protocol layer (v1, v2) alone and on every engine: the real client as
conn.peer, counted against max_connections_per_ip; refusals for what a client
talking to the port directly could send."""

from __future__ import annotations

import socket
import struct

import pytest

import socketkit as sk
from conftest import CONCURRENT, ENGINES, wait_until
from socketkit.errors import RemoteProtocolError
from socketkit.layers.proxy import PP2_TYPE_AUTHORITY, ProxyProtocolLayer, trusted_networks

WAIT = 10.0
V1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"


def v2(source: str, port: int, *, tlvs: bytes = b"", local: bool = False, six: bool = False) -> bytes:
    family = socket.AF_INET6 if six else socket.AF_INET
    destination = "::1" if six else "192.0.2.1"
    body = (
        socket.inet_pton(family, source)
        + socket.inet_pton(family, destination)
        + struct.pack("!HH", port, 443)
    )
    return (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + bytes([0x20 if local else 0x21, 0x21 if six else 0x11])
        + struct.pack("!H", len(body + tlvs))
        + body
        + tlvs
    )


def parsed(data: bytes, chunk: int | None = None) -> tuple[ProxyProtocolLayer, bytes]:
    layer = ProxyProtocolLayer()
    layer.opened(("127.0.0.1", 40000))
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    rest = b"".join(layer.feed(piece) for piece in pieces)
    return layer, rest


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_v1_and_v2_headers_name_the_client_whatever_the_split(chunk: int | None) -> None:
    layer, rest = parsed(V1 + b"hello\n", chunk)
    assert (layer.version, layer.command, layer.peer_address, rest) == (
        "v1",
        "PROXY",
        ("203.0.113.7", 56324),
        b"hello\n",
    )
    authority = bytes([PP2_TYPE_AUTHORITY]) + struct.pack("!H", 11) + b"example.com"
    layer, rest = parsed(v2("198.51.100.9", 4444, tlvs=authority) + b"hi", chunk)
    assert (layer.version, layer.peer_address, layer.tlvs, rest) == (
        "v2",
        ("198.51.100.9", 4444),
        {2: b"example.com"},
        b"hi",
    )
    layer, _ = parsed(v2("2001:db8::5", 8080, six=True), chunk)
    assert layer.peer_address == ("2001:db8::5", 8080, 0, 0)


def test_a_local_or_unknown_header_keeps_the_sockets_own_peer() -> None:
    layer, rest = parsed(v2("10.0.0.1", 1, local=True) + b"check")
    assert (layer.command, layer.peer_address, rest, layer.in_progress) == ("LOCAL", None, b"check", False)
    layer, _ = parsed(b"PROXY UNKNOWN\r\n")
    assert (layer.command, layer.peer_address) == ("UNKNOWN", None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GET / HTTP/1.1\r\n", "no PROXY protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n", "malformed"),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n", "malformed"),
        # a broken proxy is not believed: the destination must be an address and a port too
        (b"PROXY TCP4 203.0.113.7 nowhere 4444 99999\r\n", "malformed"),
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 4444 99999\r\n", "malformed"),
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 4444 0443\r\n", "malformed"),
        (b"PROXY TCP4 203.0.113.7 ::1 4444 443\r\n", "malformed"),
        (b"PROXY TCP6 ::1 192.0.2.1 4444 443\r\n", "malformed"),
        # the line ends in CRLF; a bare LF is refused as soon as it comes, not waited on
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\n", "must end in CRLF"),
        (b"PROXY UNKNOWN\n", "must end in CRLF"),
        (b"PROXY " + b"x" * 120, "longer than 107"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00", "version/command"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04abcd", "shorter than its addresses"),
    ],
)
def test_bad_headers_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(RemoteProtocolError, match=problem):
        parsed(data)


@pytest.mark.parametrize("chunk", [None, 1])
def test_a_v1_header_ending_in_a_bare_lf_is_refused_at_the_lf(chunk: int | None) -> None:
    """Whatever the split, the refusal comes with the LF, so the connection is closed at
    once instead of waiting for a CRLF that will not come (until read_timeout)."""
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\n"
    layer = ProxyProtocolLayer()
    layer.opened(("127.0.0.1", 40000))
    pieces = [data] if chunk is None else [data[i : i + 1] for i in range(len(data))]
    for piece in pieces[:-1]:
        assert layer.feed(piece) == b""
    with pytest.raises(RemoteProtocolError, match="must end in CRLF"):
        layer.feed(pieces[-1])


def test_only_trusted_proxies_may_send_the_header() -> None:
    layer = ProxyProtocolLayer(trusted=trusted_networks(["10.0.0.0/8"]))
    layer.opened(("192.0.2.50", 1234))
    with pytest.raises(RemoteProtocolError, match=r"192\.0\.2\.50 is not one"):
        layer.feed(V1)
    mapped = ProxyProtocolLayer(trusted=trusted_networks(["10.0.0.0/8"]))
    mapped.opened(("::ffff:10.1.2.3", 1234, 0, 0))  # a dual-stack socket's IPv4 peer
    assert mapped.feed(V1) == b""
    with pytest.raises(ValueError, match="not an address or network"):
        trusted_networks(["10.0.0.0/33"])


def who(message: bytes, conn: sk.Connection) -> bytes:
    return conn.peer_url.encode()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_handler_sees_the_client_the_header_names(engine: str) -> None:
    with sk.Server("tcp://127.0.0.1:0?proxy=any", who, codec=sk.Lines(), engine=engine).start() as server:
        for header, expected in [
            (V1, b"tcp://203.0.113.7:56324"),
            (v2("2001:db8::5", 80, six=True), b"tcp://[2001:db8::5]:80"),
        ]:
            with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
                sock.sendall(header + b"who\n")
                assert sock.recv(1000) == expected + b"\n"
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"who\n")  # straight to the port, no header: refused
            assert sock.recv(1000).startswith(b"error: no PROXY protocol")
        wait_until(lambda: server.stats.connections_open == 0, what="the connections to close")
        assert server.stats.errors == {"protocol": 1}


@pytest.mark.parametrize("engine", CONCURRENT)
def test_the_per_ip_limit_counts_the_real_client_not_the_proxy(engine: str) -> None:
    limits = sk.Limits(max_connections_per_ip=2)
    with sk.Server(
        "tcp://127.0.0.1:0?proxy=v1", who, codec=sk.Lines(), engine=engine, limits=limits
    ).start() as server:
        socks = [socket.create_connection(server.addresses[0][:2], timeout=WAIT) for _ in range(4)]
        try:
            clients = ["203.0.113.7", "203.0.113.7", "198.51.100.1", "198.51.100.2"]  # all via one proxy
            for sock, client in zip(socks, clients, strict=True):
                sock.sendall(f"PROXY TCP4 {client} 192.0.2.1 1000 80\r\nwho\n".encode())
                assert sock.recv(1000) == f"tcp://{client}:1000\n".encode()  # four from 127.0.0.1: all in
            extra = socket.create_connection(server.addresses[0][:2], timeout=WAIT)
            socks.append(extra)
            extra.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 1001 80\r\nwho\n")  # a third from .7
            assert b"max_connections_per_ip" in extra.recv(1000)
        finally:
            for sock in socks:
                sock.close()
        wait_until(lambda: server.stats.connections_open == 0, what="the connections to close")
        assert server.stats.connections_rejected == 1


def test_untrusted_peers_and_udp_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="stream endpoints"):
        sk.Server("udp://127.0.0.1:0?proxy=v2", who)
    with pytest.raises(ValueError, match="v1, v2 or any"):
        sk.Server("tcp://127.0.0.1:0?proxy=v3", who)
    with sk.Server(
        "tcp://127.0.0.1:0?proxy=v1", who, codec=sk.Lines(), trusted_proxies=["10.0.0.0/8"]
    ).start() as s:
        with socket.create_connection(s.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(V1 + b"who\n")
            assert b"is not one" in sock.recv(1000)
