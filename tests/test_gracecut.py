"""GraceCut: the process's grace deadline, without a process to end (the exit is a stand-in).
The whole path, a stuck handler and SIGTERM, is in the conformance suite."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from socketkit.gracecut import EXIT_CUT, GraceCut, where

WAIT = 10.0


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_a_deadline_that_passes_logs_what_is_running_and_exits(caplog: pytest.LogCaptureFixture) -> None:
    exits = Exits()
    cut = GraceCut(lambda: "grace period over: handler h still running", margin=0.0, exit=exits)
    with caplog.at_level(logging.CRITICAL, logger="socketkit"):
        cut.arm(time.monotonic() - 1)
        assert exits.called.wait(WAIT)
    assert exits.codes == [EXIT_CUT]
    assert [r.getMessage() for r in caplog.records] == ["grace period over: handler h still running"]


def test_an_earlier_deadline_replaces_a_later_one() -> None:
    """A second SIGTERM ends the grace period now: the watchdog does not wait out the first."""
    exits = Exits()
    cut = GraceCut(lambda: "cut", margin=0.0, exit=exits)
    cut.arm(time.monotonic() + 3600)
    cut.arm(time.monotonic() + 7200)  # a later one changes nothing
    cut.arm(time.monotonic())
    assert exits.called.wait(WAIT)
    assert exits.codes == [EXIT_CUT]


def test_serving_that_ended_is_never_cut() -> None:
    exits = Exits()
    cut = GraceCut(lambda: "cut", margin=0.0, exit=exits)
    before = set(threading.enumerate())
    cut.arm(time.monotonic() + 3600)
    (watcher,) = set(threading.enumerate()) - before
    cut.finished()
    watcher.join(WAIT)
    assert not watcher.is_alive() and exits.codes == []
    cut.arm(time.monotonic() - 1)  # a signal after serving ended: nothing to cut, no thread
    assert exits.codes == [] and set(threading.enumerate()) <= before


def test_where_names_the_line_a_thread_is_running() -> None:
    inside = threading.Event()
    leave = threading.Event()

    def blocked_here() -> None:
        inside.set()
        leave.wait(WAIT)

    thread = threading.Thread(target=blocked_here)
    thread.start()
    try:
        assert inside.wait(WAIT)
        assert thread.ident is not None
        assert where(thread.ident).endswith(" in wait")  # threading.Event.wait, called from blocked_here
    finally:
        leave.set()
        thread.join(WAIT)
    assert where(None) == ""


def test_where_takes_the_frames_with_the_collector_off_and_leaves_it_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython 3.11's sys._current_frames can deadlock with a collection it sets off
    (python/cpython#106883): a stall watch hung a server under load so."""
    import gc
    import sys

    seen: list[bool] = []
    real = sys._current_frames

    def frames() -> dict[int, Any]:
        seen.append(gc.isenabled())
        return real()

    monkeypatch.setattr(sys, "_current_frames", frames)
    assert gc.isenabled()
    where(threading.get_ident())
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        where(threading.get_ident())
        assert not gc.isenabled()  # (off before: left off)
    finally:
        gc.enable()
