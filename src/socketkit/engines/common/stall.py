"""Nothing silent: an event handler that holds its engine's loop is named once, with the fix.

Why: on a loop engine (select, poll, epoll, pool, asyncio, uvloop) every
event handler runs on the loop (DESIGN §4's one rule), so a handler that waits
(``time.sleep``, a database call, ``requests.get``) makes every other
connection wait with it, and nothing else would say so: 200 clients of a
handler that sleeps 0.2 s take 40 s.

How, at no cost per request: a watcher thread posts a heartbeat to the loop
(``call_soon_threadsafe``) every half of ``Limits.stall_warning`` (0.1 s); a
heartbeat not run within it means one callback holds the loop, and the
watcher logs, once per server, the handler, where the loop thread is (file,
line, function) and what to do instead. An idle loop runs the heartbeat at
once; the loop's own timing is never touched, and where the loop says it is
waiting for events (the reactor) no heartbeat is posted at all, so an idle
server is not woken 20 times a second. The threads engine makes its
event handler calls one at a time under a lock (``threaded/serial``), so there
the watcher takes that lock itself, briefly (:class:`LockWatch`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ...closing import log
from ...gracecut import where

__all__ = ["LockWatch", "StallWatch"]


class StallWatch:
    """Watches one loop thread; :meth:`start` on that thread, :meth:`stop` when it ends.
    ``post`` runs a callable on the loop soon, from any thread."""

    def __init__(
        self,
        engine_name: str,
        handler_name: str,
        fix: str,
        post: Callable[[Callable[[], None]], None],
        after: float,
        waiting: Callable[[], bool] | None = None,
    ) -> None:
        """``after``: seconds the loop may be held before the watcher says so. ``waiting``:
        whether the loop is waiting for events now (then nothing holds it, and no heartbeat
        wakes an idle server)."""
        self._after = after
        self._waiting = waiting
        self._engine_name = engine_name
        self._handler_name = handler_name
        self._fix = fix
        self._post = post
        self._stopped = threading.Event()
        self._loop_thread: int | None = None
        self._posted_at: float | None = None  # a heartbeat waits for the loop since then
        self.warned = False
        #: what a slow handler holds, in the warning
        self.held_what = "loop"

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        threading.Thread(target=self._watch, name="socketkit-stall-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self) -> None:  # on the loop
        self._posted_at = None

    def _watch(self) -> None:
        after = self._after
        while not self._stopped.wait(after / 2):
            posted = self._posted_at
            if posted is None:
                if self._waiting is not None and self._waiting():
                    continue
                self._posted_at = time.monotonic()
                self._post(self._beat)
            elif time.monotonic() - posted >= after:
                self._warn(time.monotonic() - posted)
                return  # once per server

    def _warn(self, held: float) -> None:
        self.warned = True
        at = where(self._loop_thread)
        log.warning(
            "handler %s has held the %s %s for %.1fs%s: every other connection waits meanwhile. %s",
            self._handler_name,
            self._engine_name,
            self.held_what,
            held,
            f" (now at {at})" if at else "",
            self._fix,
        )


class LockWatch(StallWatch):
    """The same watch over the lock that serializes a threaded engine's event handlers: the
    watcher takes the lock itself, briefly, every half of ``after``; not getting it within
    ``after`` means a handler call holds everyone else's turn. (No heartbeat thread: an
    idle server costs one short wake of the watcher.)"""

    def __init__(
        self, engine_name: str, handler_name: str, fix: str, lock: threading.RLock, after: float
    ) -> None:
        super().__init__(engine_name, handler_name, fix, lambda beat: None, after)
        self._lock = lock
        self.held_what = "engine's handler lock"

    def start(self) -> None:
        self._loop_thread = None  # the holder is whichever connection's thread it is
        threading.Thread(target=self._watch, name="socketkit-stall-watch", daemon=True).start()

    def _watch(self) -> None:
        after = self._after
        while not self._stopped.wait(after / 2):
            asked = time.monotonic()
            if not self._lock.acquire(timeout=after):
                self._warn(time.monotonic() - asked)
                return  # once per server
            self._lock.release()
