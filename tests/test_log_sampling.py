"""Log lines a peer can cause are sampled; every event is still counted."""

from __future__ import annotations

import logging
import socket

import pytest

import socketkit as sk
from conftest import echo, wait_until
from socketkit.closing import LogSampler


def test_a_burst_then_a_steady_rate_and_the_count_of_what_was_left_out() -> None:
    now = [0.0]
    sampler = LogSampler(rate=2.0, burst=3, clock=lambda: now[0])
    assert [sampler.take("limit") for _ in range(5)] == [0, 0, 0, None, None]
    assert sampler.take("protocol") == 0  # each kind has its own bucket
    now[0] += 0.5  # one more line's worth
    assert sampler.take("limit") == 2  # and it says two were left out
    assert sampler.take("limit") is None
    now[0] += 100.0  # refills to the burst, no further
    assert [sampler.take("limit") for _ in range(4)] == [1, 0, 0, None]


@pytest.mark.parametrize("engine", ["threads", "epoll"])
def test_a_flood_of_bad_datagrams_is_counted_whole_and_logged_in_samples(
    engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="socketkit")
    sent = 500
    with sk.Server("udp://127.0.0.1:0", echo, codec=sk.Json(), engine=engine).start() as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(10.0)
            for _ in range(sent):
                sock.sendto(b"{bad json}\n", server.addresses[0][:2])
                sock.recv(65536)  # the error reply: one at a time, so none is dropped
        wait_until(lambda: server.stats.errors.get("protocol") == sent, what="every datagram counted")
    lines = [r.getMessage() for r in caplog.records if "bad input" in r.getMessage()]
    assert 1 <= len(lines) < sent // 2
