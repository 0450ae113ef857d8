"""Reactor internals that the conformance suite cannot see from outside."""

from __future__ import annotations

import pytest

import socketkit as sk
from conftest import REACTORS, echo

WAIT = 10.0


@pytest.mark.parametrize("engine", REACTORS)
def test_churn_leaves_no_timer_entries_or_handlers_behind(engine: str) -> None:
    """Many short connections: the lazy timer heap is compacted, closed descriptors are forgotten."""
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine).start() as server:
        for i in range(400):
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"%d" % i) == b"%d" % i
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"last") == b"last"  # the loop has finished the closes before it
            reactor = server._engine
            assert reactor is not None
            assert len(reactor._timers) <= 2 * reactor._open + 64  # type: ignore[attr-defined]
            # the wake socket, the listener and this one connection
            assert len(reactor._handlers) == 3  # type: ignore[attr-defined]
