"""Who may connect: Server(allow=..., deny=...) and serve --allow/--deny, on every engine."""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import pytest

import socketkit as sk
from conftest import ENGINES, echo, wait_until
from socketkit.access import AccessList
from socketkit.ratelimit import RatePerAddress
from test_cli import SK, WAIT, cli_server

V1_FROM_DOCUMENTATION_NET = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"


def test_the_lists_decide_by_address_and_network() -> None:
    access = AccessList.make(allow=["127.0.0.0/8", "::1", "10.1.0.0/16"], deny=["127.0.0.9"])
    assert access.refusal("127.0.0.1") is None
    assert access.refusal("::1") is None
    assert access.refusal("::ffff:127.0.0.1") is None  # a dual-stack listener's IPv4 peer
    assert access.refusal("10.1.2.3") is None
    assert access.refusal("127.0.0.9") == "127.0.0.9 is in the deny list"  # deny wins over allow
    assert access.refusal("192.0.2.1") == "192.0.2.1 is not in the allow list"
    assert AccessList.make(deny=["fe80::/10"]).refusal("fe80::1%eth0") == "fe80::1%eth0 is in the deny list"
    assert not AccessList.make().limited
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an address or network"):
        AccessList.make(allow=["10.0.0.300"])
    with pytest.raises(ValueError, match="would refuse everyone"):
        AccessList.make(allow=[])


@pytest.mark.parametrize(
    ("allow", "deny"),
    [(["10.0.0.0/8"], []), (None, ["127.0.0.0/8"]), (["127.0.0.0/8"], ["127.0.0.1"])],
    ids=["not-allowed", "denied", "deny-over-allow"],
)
def test_a_refused_peer_is_closed_counted_and_the_server_goes_on(
    engine: str, allow: list[str] | None, deny: list[str]
) -> None:
    with sk.Server(
        ["tcp://127.0.0.1:0", "tcp://[::1]:0"], echo, codec=sk.Lines(), engine=engine, allow=allow, deny=deny
    ).start() as server:
        with sk.connect(server.urls[0], codec=sk.Lines(), timeout=WAIT) as client:
            with pytest.raises((sk.ClosedError, sk.BrokenError)):
                client.request(b"let me in")
        wait_until(lambda: server.stats.connections_rejected == 1, what="the refusal to be counted")
        with sk.connect(server.urls[1], codec=sk.Lines(), timeout=WAIT) as client:  # ::1 is neither
            if allow is None:
                assert client.request(b"ipv6") == b"ipv6"
            else:
                with pytest.raises((sk.ClosedError, sk.BrokenError)):
                    client.request(b"ipv6")


def test_an_allowed_peer_is_served_as_ever(engine: str) -> None:
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine, allow=["127.0.0.1"], deny=["10.0.0.0/8"]
    ).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"in") == b"in"
    assert server.stats.connections_rejected == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_behind_a_proxy_header_the_real_peer_is_checked(engine: str) -> None:
    """The balancer (loopback, trusted) may connect; the client it names is what is judged."""
    with sk.Server(
        "tcp://127.0.0.1:0?proxy=v1", echo, codec=sk.Lines(), engine=engine, deny=["203.0.113.0/24"]
    ).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(V1_FROM_DOCUMENTATION_NET + b"hello\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        wait_until(lambda: server.stats.connections_rejected == 1, what="the refusal to be counted")
    assert b"hello" not in reply


def test_serve_allow_and_deny_from_the_command_line() -> None:
    with cli_server("echo", "--codec", "lines", "-l", "tcp://127.0.0.1:0", "--deny", "127.0.0.1") as (
        proc,
        urls,
    ):
        sent = subprocess.run([*SK, "send", urls[0], "hi"], capture_output=True, timeout=WAIT, check=False)
        assert sent.returncode == 1, sent
        proc.send_signal(2)
        _, log = proc.communicate(timeout=WAIT)
    assert "rejected 127.0.0.1: 127.0.0.1 is in the deny list" in log
    with cli_server("echo", "--codec", "lines", "-l", "tcp://127.0.0.1:0", "--allow", "127.0.0.0/8") as (
        _,
        urls,
    ):
        sent = subprocess.run([*SK, "send", urls[0], "hi"], capture_output=True, timeout=WAIT, check=False)
        assert sent.stdout == b"hi\n", sent


def test_the_rate_per_address_lets_a_seconds_burst_through_then_refills() -> None:
    rate = RatePerAddress(3)
    assert [rate.allow("192.0.2.1", 100.0) for _ in range(4)] == [True, True, True, False]
    assert rate.allow("192.0.2.2", 100.0)  # every address its own bucket
    assert not rate.allow("192.0.2.1", 100.2)  # 0.6 of a token back: not yet
    assert rate.allow("192.0.2.1", 100.5)  # one token back (and taken)
    assert [rate.allow("192.0.2.1", 200.0) for _ in range(4)] == [True, True, True, False]  # full, no more


def test_a_client_over_the_connection_rate_is_closed_counted_and_logged(
    engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """max_connection_rate=1: the first connection is served; a client reconnecting at once is
    closed unanswered, counted as rejected and logged; the server goes on."""
    with (
        caplog.at_level(logging.WARNING, logger="socketkit"),
        sk.Server(
            "tcp://127.0.0.1:0",
            echo,
            codec=sk.Lines(),
            engine=engine,
            limits=sk.Limits(max_connection_rate=1),
        ).start() as server,
    ):
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"first") == b"first"
        refused = False
        deadline = time.monotonic() + WAIT
        while not refused and time.monotonic() < deadline:  # (each try spends the token a second brings)
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                try:
                    client.request(b"again")
                except (sk.ClosedError, sk.BrokenError):
                    refused = True
        assert refused
        wait_until(lambda: server.stats.connections_rejected >= 1, what="the refusal to be counted")
    assert any("(max_connection_rate)" in r.getMessage() for r in caplog.records), caplog.text


def test_the_rate_must_be_a_finite_number_of_at_least_one() -> None:
    for bad in (0, 0.5, float("inf"), True):
        with pytest.raises(ValueError, match="max_connection_rate must be a finite number >= 1"):
            sk.Limits(max_connection_rate=bad)
