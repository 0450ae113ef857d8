"""One event handler call at a time, on an engine that runs them on several threads.

Why: DESIGN §4's one rule for handler concurrency. Event-style handlers
(request/reply functions, Protocol callbacks) are never called concurrently
within a server, on any engine, so shared state (a chat room's members) needs
no lock. Loop engines keep the rule by running every handler on their loop;
the threads engine gives each connection a thread, so its event calls take one
lock per server. Reading, decoding, TLS and writing stay concurrent: only
handler code is serialized. ``@blocking`` and ``async def`` handlers are not:
they say that they run concurrently.

Order: a reply made in an event waits in the session's output until its own
thread writes it, while another thread's handler may send to the same
connection meanwhile. So before the lock is let go, the connection hands the
event's output over to the queue where other threads' sends wait
(``hand_over``), and each peer gets messages in the order the server handled
them.

The lock is re-entrant: a handler that ends another connection from its event
may run that connection's on_close on the same thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ...connection import Connection
from ...handlers import Dispatch

__all__ = ["SerialDispatch", "serialized"]


class SerialDispatch(Dispatch):
    """A connection's dispatch whose every call holds the server's handler lock."""

    __slots__ = ("_hand_over", "_inner", "_lock", "hears_close", "hears_connect", "wants_drain")

    def __init__(self, inner: Dispatch, lock: threading.RLock, hand_over: Callable[[], None]) -> None:
        self._inner = inner
        self._lock = lock
        self._hand_over = hand_over
        self.wants_drain = inner.wants_drain
        self.hears_connect = inner.hears_connect
        self.hears_close = inner.hears_close

    def _turn(self, call: Callable[..., None], *args: Any) -> None:
        """One handler call, holding the lock; its output handed over before the next turn."""
        with self._lock:
            try:
                call(*args)
            finally:
                self._hand_over()

    def connected(self) -> None:
        self._turn(self._inner.connected)

    def message(self, message: Any) -> None:
        self._turn(self._inner.message, message)

    def drained(self) -> None:
        self._turn(self._inner.drained)

    def closed(self, error: BaseException | None) -> None:
        with self._lock:
            self._inner.closed(error)


def serialized(
    handle: Callable[[Any, Connection], None], lock: threading.RLock
) -> Callable[[Any, Connection], None]:
    """A datagram handler whose calls hold the server's handler lock."""

    def call(message: Any, conn: Connection) -> None:
        with lock:
            handle(message, conn)

    return call
