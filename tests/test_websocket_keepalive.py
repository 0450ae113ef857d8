"""WebSocket keepalive pings (``WebSocket(ping_interval=...)``) on every engine: a quiet peer
that answers is kept past idle_timeout; one that answers nothing is cut off as timed out
and counted; a peer that talks is never pinged (on a clock of our own). The timer is the
session's own deadline, so no engine needs a thread of its own for it. And WebSocket's
other wait: our close frame asks for the peer's, which the lingering close waits for
(bounded)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import socketkit as sk
from conftest import wait_until
from socketkit.codecs.websocket_frames import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    Ping,
    close_payload,
    frame,
)
from socketkit.codecs.websocket_handshake import client_request, new_key
from socketkit.layers.websocket import WebSocketLayer
from test_websocket import RawClient

WAIT = 10.0
INTERVAL = 0.1


def echo(message: Any, conn: sk.Connection) -> Any:
    return message


def keepalive_server(engine: str, idle: float, interval: float = INTERVAL) -> sk.Server:
    return sk.Server(
        "tcp://127.0.0.1:0",
        echo,
        codec=sk.WebSocket(ping_interval=interval),
        engine=engine,
        limits=sk.Limits(idle_timeout=idle),
    )


def test_a_quiet_peer_that_answers_pings_outlives_idle_timeout(engine: str) -> None:
    # (an interval of 0.3 s: the time the peer has to answer each ping, on a busy machine too)
    with keepalive_server(engine, idle=0.6, interval=0.3).start() as server:
        peer = RawClient(server.addresses[0][:2])
        pings = 0
        while pings < 2:  # 0.9 s at least (pings come every other interval): past idle_timeout
            got = peer.next()
            assert isinstance(got, Ping), got
            peer.sock.sendall(frame(PONG, got.payload, masked=True))
            pings += 1
        peer.sock.sendall(frame(TEXT, b"still here", masked=True))
        while (got := peer.next()) != "still here":
            assert isinstance(got, Ping), got
        assert not server.stats.errors
        peer.sock.close()


def test_a_peer_that_answers_nothing_is_cut_off_and_counted(engine: str) -> None:
    with keepalive_server(engine, idle=60.0).start() as server:
        peer = RawClient(server.addresses[0][:2])
        got = peer.next()
        assert isinstance(got, Ping) and got.payload == b"keepalive"
        while isinstance(got := peer.next(), Ping):  # (more may come before the verdict)
            pass
        assert got is None  # cut off, as at any timeout: no close frame for a peer that is gone
        wait_until(lambda: server.stats.errors.get("timeout", 0) == 1, what="the timeout to be counted")
        peer.sock.close()


def upgraded_layer() -> WebSocketLayer:
    layer = WebSocketLayer(1 << 20, ping_interval=1.0)
    layer.feed(client_request("h", "/", new_key()))
    assert layer.take_output().startswith(b"HTTP/1.1 101 ")
    return layer


def test_the_keepalive_policy_on_a_clock_of_our_own() -> None:
    layer = upgraded_layer()
    assert layer.due == 0.0  # the clock starts at the first tick
    assert layer.tick(100.0) is None and layer.due == 101.0 and layer.take_output() == b""
    for now in (101.0, 102.0, 103.0):  # a peer that talks between ticks is never pinged
        layer.feed(frame(TEXT, b"hi", masked=True))
        assert layer.tick(now) is None and layer.take_output() == b""
    assert layer.tick(104.0) is None  # a silent interval: a ping
    assert layer.take_output() == frame(PING, b"keepalive")
    layer.feed(frame(PONG, b"keepalive", masked=True))
    assert layer.tick(105.0) is None and layer.take_output() == b""  # answered: none
    assert layer.tick(106.0) is None and layer.take_output() == frame(PING, b"keepalive")
    error = layer.tick(107.0)  # nothing since the ping: gone
    assert isinstance(error, sk.Timeout) and "no answer to a keepalive ping within 1s" in str(error)


def test_no_keepalive_no_clock() -> None:
    layer = WebSocketLayer(1 << 20)
    layer.feed(client_request("h", "/", new_key()))
    assert not layer.keeps_time and layer.due == float("inf")


def test_ping_interval_must_be_positive() -> None:
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="ping_interval is seconds > 0"):
            sk.WebSocket(ping_interval=bad)


def test_serve_ping_interval_pings_and_is_websockets_alone() -> None:
    import subprocess

    from test_cli import SK, cli_server

    with cli_server("echo", "--codec", "ws", "--ping-interval", "0.1", "-l", "tcp://127.0.0.1:0") as (
        _,
        urls,
    ):
        host, port = urls[0].removeprefix("tcp://").rsplit(":", 1)
        peer = RawClient((host, int(port)))
        got = peer.next()
        assert isinstance(got, Ping) and got.payload == b"keepalive"
        peer.sock.close()
    out = subprocess.run(
        [*SK, "serve", "echo", "--ping-interval", "5", "-l", "tcp://127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert out.returncode == 2 and "--ping-interval is WebSocket's: add --codec ws" in out.stderr, out.stderr


# -- our close asks for the peer's: the lingering close waits for it (bounded) ---------------


def test_a_close_we_sent_is_an_answer_due_until_the_peers_comes() -> None:
    layer = upgraded_layer()
    assert not layer.answer_due
    layer.close()
    assert layer.take_output() == frame(CLOSE, close_payload(1000)) and layer.answer_due
    layer.feed(frame(CLOSE, close_payload(1000), masked=True))
    assert not layer.answer_due  # (answered: nothing to wait for)


def test_an_answer_due_makes_the_close_linger_with_nothing_waiting_yet() -> None:
    from socketkit.engines.common import linger

    for answer_due, lingers in [(False, False), (True, True)]:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            ours.setblocking(False)
            assert linger.begin(ours, answer_due) is lingers
            theirs.settimeout(WAIT)
            if lingers:  # our sending side is shut: the peer reads our end, and may answer
                assert theirs.recv(1) == b""
                theirs.sendall(b"the peer's close frame")
                ours.setblocking(True)
                assert ours.recv(100) == b"the peer's close frame"
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.close()  # the peer ended already: nothing to wait for
        assert linger.begin(ours, answer_due=True) is False
