"""UDP to many: a multicast group (joined on bind, sent to with ttl/loop/interface) and a
broadcast address (``?broadcast=1``), on loopback, on every engine."""

from __future__ import annotations

import socket

import pytest

import socketkit as sk
from conftest import ENGINES

WAIT = 10.0
GROUP = "239.255.0.1"  # organisation-local scope; sent with ttl=1 on loopback only
SEND = "multicast_interface=127.0.0.1&ttl=1&loop=1"


def shout(message: bytes, conn: sk.Connection) -> bytes:
    return message.upper()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_on_a_group_answers_a_client_that_sends_to_the_group(engine: str) -> None:
    url = f"udp://{GROUP}:0?multicast_interface=127.0.0.1"
    with sk.Server(url, shout, codec=sk.Lines(), engine=engine).start() as server:
        port = server.addresses[0][1]
        with sk.DatagramClient(f"udp://{GROUP}:{port}?{SEND}", codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"anyone there?") == b"ANYONE THERE?"


def test_every_member_of_the_group_gets_the_datagram() -> None:
    url = f"udp://{GROUP}:0?multicast_interface=127.0.0.1"
    with sk.Server(url, shout, codec=sk.Lines()).start() as first:
        port = first.addresses[0][1]
        second_url = f"udp://{GROUP}:{port}?multicast_interface=127.0.0.1"  # the same port: shared
        with sk.Server(second_url, lambda m, c: b"second " + m, codec=sk.Lines()).start():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
                sender.settimeout(WAIT)
                sender.sendto(b"roll call\n", (GROUP, port))
                replies = {sender.recvfrom(1024)[0], sender.recvfrom(1024)[0]}
    assert replies == {b"ROLL CALL\n", b"second roll call\n"}


def test_a_broadcast_needs_the_option_and_then_reaches_the_server() -> None:
    with sk.Server("udp://127.255.255.255:0", shout, codec=sk.Lines()).start() as server:
        port = server.addresses[0][1]
        with pytest.raises(sk.ConnectError, match=r"a broadcast address needs \?broadcast=1"):
            sk.DatagramClient(f"udp://127.255.255.255:{port}", codec=sk.Lines(), timeout=WAIT)
        url = f"udp://127.255.255.255:{port}?broadcast=1"
        with sk.DatagramClient(url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"hello, subnet") == b"HELLO, SUBNET"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"udp://{GROUP}:5000?ttl=0", "ttl must be a number of hops from 1 to 255"),
        (f"udp://{GROUP}:5000?multicast_interface=eth0", "must be a local IPv4 address"),
        ("tcp://127.0.0.1:5000?broadcast=1", "?broadcast= is for udp:// endpoints"),
        ("unix:///tmp/x.sock?loop=1", "?loop= is for udp:// endpoints"),
    ],
)
def test_group_options_are_checked(url: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("?", r"\?")):
        sk.Server(url, shout)
