"""The grace deadline kept for the process, even while a handler blocks the loop thread.

Why a thread of its own: an engine keeps its grace deadline in its loop, but a
handler that blocks the loop thread (a reply function that sleeps on the
reactor or the asyncio engines, any handler on the iterative engine) keeps that
loop from looking at the clock again until it returns, and CPython runs a
signal handler on the main thread only between bytecodes of that same handler.
So when ``serve_forever()`` owns the process (a signal began the stop), the
stop also arms this watchdog: if serving has not ended ``margin`` seconds past
the deadline, it logs which handler is still running, where, and which
connections are cut, and ends the process with :data:`EXIT_CUT` (what a
supervisor's kill would do later, with nothing said). A server embedded with
``start()`` is never exited: its ``stop()`` returns at the deadline instead.

It waits on its own condition, told of each change (an earlier deadline from a
second SIGTERM, the end of serving): no polling interval.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

__all__ = ["EXIT_CUT", "GraceCut", "where"]

log = logging.getLogger("socketkit")

#: The process's exit status when the grace deadline cut a handler that would not return.
EXIT_CUT = 1


def where(thread_id: int | None) -> str:
    """Where the thread ``thread_id`` is now (``file:line in function``), or "" if unknown.

    The garbage collector is off while the frames are taken: on CPython 3.11 a collection
    that ``sys._current_frames()`` sets off can deadlock the whole process against a thread
    that is starting or ending (python/cpython#106883, fixed in 3.12 only): a stall watch
    that names a slow handler (a TLS handshake, under load) hung a server that way.
    """
    if thread_id is None:
        return ""
    collecting = gc.isenabled()
    gc.disable()
    try:
        frame = sys._current_frames().get(thread_id)
    finally:
        if collecting:
            gc.enable()
    if frame is None:
        return ""
    last = traceback.extract_stack(frame, limit=1)[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


class GraceCut:
    """Ends the process at ``deadline + margin`` unless :meth:`finished` came first.

    ``describe`` says, at that moment, what is still running and what is cut (one line).
    """

    def __init__(
        self,
        describe: Callable[[], str],
        margin: float,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        self._describe = describe
        self._margin = margin
        self._exit = exit
        self._changed = threading.Condition()
        self._deadline: float | None = None
        self._finished = False
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> None:
        """Serving must end by ``deadline`` (``time.monotonic()``); an earlier one replaces a
        later one. Safe from a signal handler: it starts a thread once, and never waits."""
        with self._changed:
            if self._finished or (self._deadline is not None and self._deadline <= deadline):
                return
            self._deadline = deadline
            self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="socketkit-grace", daemon=True)
                self._thread.start()

    @property
    def armed(self) -> bool:
        """Whether a deadline was set (a signal-driven stop began)."""
        return self._deadline is not None

    def finished(self) -> None:
        """Serving ended: nothing is cut."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def _watch(self) -> None:
        with self._changed:
            while not self._finished:
                assert self._deadline is not None
                remaining = self._deadline + self._margin - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            if self._finished:
                return
        log.critical("%s", self._describe())
        for handler in logging.getLogger().handlers + log.handlers:
            try:
                handler.flush()
            except Exception:  # a broken log handler must not stop the exit
                pass
        sys.stderr.flush()
        self._exit(EXIT_CUT)
