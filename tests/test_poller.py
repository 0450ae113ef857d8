"""The reactor's pollers: the same readiness answers from epoll, poll and select."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from socketkit.engines.loop.poller import ERROR, READ, WRITE, Poller, SelectPoller, poller_class

NAMES = ["epoll", "poll", "select"]


@pytest.fixture(params=NAMES)
def poller(request: pytest.FixtureRequest) -> Iterator[Poller]:
    instance = poller_class(request.param)()
    yield instance
    instance.close()


def test_read_and_write_readiness(poller: Poller) -> None:
    a, b = socket.socketpair()
    with a, b:
        poller.register(a.fileno(), READ)
        assert poller.poll(0) == []
        b.send(b"x")
        assert poller.poll(1.0) == [(a.fileno(), READ)]
        poller.modify(a.fileno(), READ | WRITE)
        assert poller.poll(1.0) == [(a.fileno(), READ | WRITE)]
        a.recv(1)
        poller.modify(a.fileno(), WRITE)
        assert poller.poll(1.0) == [(a.fileno(), WRITE)]
        poller.unregister(a.fileno())
        assert poller.poll(0) == []


def test_peer_closing_makes_the_socket_readable(poller: Poller) -> None:
    a, b = socket.socketpair()
    with a:
        poller.register(a.fileno(), READ)
        b.close()
        [(fd, mask)] = poller.poll(1.0)
        assert fd == a.fileno()
        assert mask & (READ | ERROR)
        assert a.recv(1) == b""


def test_forget_before_close_leaves_nothing_behind(poller: Poller) -> None:
    a, b = socket.socketpair()
    with b:
        fd = a.fileno()
        poller.register(fd, READ)
        poller.forget(fd)
        a.close()  # b now reads as hung up, but a is no longer watched
        assert poller.poll(0) == []
        # The number may be reused at once; it registers afresh.
        c, d = socket.socketpair()
        with c, d:
            poller.register(c.fileno(), READ)
            d.send(b"y")
            assert poller.poll(1.0) == [(c.fileno(), READ)]


def test_timeout_none_waits_until_ready(poller: Poller) -> None:
    a, b = socket.socketpair()
    with a, b:
        poller.register(a.fileno(), READ)
        b.send(b"x")
        assert poller.poll(None) == [(a.fileno(), READ)]


def test_select_refuses_descriptors_it_cannot_watch() -> None:
    a, b = socket.socketpair()
    high = 1500  # above FD_SETSIZE (1024)
    with a, b:
        try:
            os.dup2(a.fileno(), high)
        except OSError as exc:
            pytest.fail(f"the test needs a descriptor limit above {high}: {exc}")
        try:
            with pytest.raises(ValueError):
                SelectPoller().register(high, READ)
        finally:
            os.close(high)


def test_a_poller_this_system_lacks_names_the_fix() -> None:
    with pytest.raises(ValueError, match="use 'reactor'"):
        poller_class("kqueue")  # BSD and macOS only
    assert poller_class("auto").name == "epoll"  # Linux: the best there is
