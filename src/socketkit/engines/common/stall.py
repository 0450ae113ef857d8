"""Nothing silent: an event handler that holds its engine's loop is named once, with the fix.

Why: on a loop engine (select, poll, epoll, pool, asyncio, uvloop) every
event handler runs on the loop (DESIGN §4's one rule), so a handler that waits
(``time.sleep``, a database call, ``requests.get``) makes every other
connection wait with it, and nothing else would say so: 200 clients of a
handler that sleeps 0.2 s take 40 s.

How, at no cost per request: a watcher thread posts a heartbeat to the loop
(``call_soon_threadsafe``) every half of :data:`STALL_AFTER`; a heartbeat not
run within :data:`STALL_AFTER` means one callback holds the loop, and the
watcher logs, once per server, the handler, where the loop thread is (file,
line, function) and what to do instead. An idle loop runs the heartbeat at
once; the loop's own timing is never touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ...closing import log
from ...gracecut import where

__all__ = ["STALL_AFTER", "StallWatch"]

#: seconds a loop may be held by one callback before the watcher says so
STALL_AFTER = 1.0


class StallWatch:
    """Watches one loop thread; :meth:`start` on that thread, :meth:`stop` when it ends."""

    def __init__(
        self,
        engine_name: str,
        handler_name: str,
        fix: str,
        call_soon_threadsafe: Callable[[Callable[[], None]], None],
    ) -> None:
        self._engine_name = engine_name
        self._handler_name = handler_name
        self._fix = fix
        self._post = call_soon_threadsafe
        self._stopped = threading.Event()
        self._loop_thread: int | None = None
        self._posted_at: float | None = None  # a heartbeat waits for the loop since then
        self.warned = False

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        threading.Thread(target=self._watch, name="socketkit-stall-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self) -> None:  # on the loop
        self._posted_at = None

    def _watch(self) -> None:
        after = STALL_AFTER
        while not self._stopped.wait(after / 2):
            posted = self._posted_at
            if posted is None:
                self._posted_at = time.monotonic()
                self._post(self._beat)
            elif time.monotonic() - posted >= after:
                self._warn(time.monotonic() - posted)
                return  # once per server

    def _warn(self, held: float) -> None:
        self.warned = True
        at = where(self._loop_thread)
        log.warning(
            "handler %s has held the %s loop for %.1fs%s: every other connection waits meanwhile. %s",
            self._handler_name,
            self._engine_name,
            held,
            f" (now at {at})" if at else "",
            self._fix,
        )
