"""Deadlines: one heap of (when, connection) for every connection of a loop, checked lazily.

Why one heap, not a timer per connection: a connection's deadline moves with
every byte, and re-arming a loop timer for each would cost a timer object per
connection (on uvloop, a libuv timer of about 600 bytes) and a cancel per
read. Here an entry is pushed only when a deadline moves *earlier* (a message
started: read_timeout); an entry that comes due is checked against the
connection's real deadline and pushed back if that is later. Entries of
closed connections are dropped when they outnumber the live ones, so the heap
stays within twice the open connections, whatever the churn.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Protocol

from ...errors import Timeout
from ...session import CLOSED, Phase, Session

__all__ = ["Deadlines", "Timed", "TimerLoop", "rearm_soon"]


class Timed(Protocol):
    """What a connection needs to be on the heap (a Session with a ``timer_at`` slot)."""

    phase: Phase
    timer_at: float  # when its live entry comes due

    def deadline(self) -> float: ...
    def expired(self, now: float) -> Timeout | None: ...
    def finish(self, error: BaseException | None = None) -> None: ...


class Deadlines:
    """The heap; ``live`` lists the connections still open (to rebuild it from)."""

    __slots__ = ("heap", "live")

    def __init__(self, live: Callable[[], Sequence[Timed]]) -> None:
        self.heap: list[tuple[float, Timed]] = []
        self.live = live

    def schedule(self, conn: Timed, when: float, open_count: int) -> None:
        """(Re)arm ``conn`` for ``when``; its earlier entries become stale."""
        conn.timer_at = when
        heap = self.heap
        heapq.heappush(heap, (when, conn))
        if len(heap) > 2 * open_count + 64:  # (compact()'s test, not a call per schedule)
            self.compact(open_count)

    def next_due(self) -> float | None:
        """When the first entry comes due (perhaps a stale one), None if there is none."""
        return self.heap[0][0] if self.heap else None

    def run(self, now: float, open_count: int) -> None:
        """End the connections whose deadline passed; push the others back to theirs."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, conn = heapq.heappop(heap)
            if conn.phase is CLOSED or due != conn.timer_at:
                continue  # closed, or superseded by an earlier entry
            error = conn.expired(now)
            if error is None:
                self.schedule(conn, conn.deadline(), open_count)
            else:
                conn.finish(error)

    def compact(self, open_count: int) -> None:
        """Keep the heap within 2 x open + 64 entries (drop those of closed connections)."""
        heap = self.heap
        if len(heap) > 2 * open_count + 64:
            heap[:] = [(conn.timer_at, conn) for conn in self.live()]
            heapq.heapify(heap)


class TimerLoop(Protocol):
    """An engine that keeps its connections' timers on one loop thread."""

    def call_soon_threadsafe(self, fn: Callable[[], None], /) -> None: ...
    def schedule(self, conn: Session, when: float, /) -> None: ...


def rearm_soon(loop: TimerLoop, session: Session) -> None:
    """``session``'s own limits changed (``conn.set_limits``, from any thread): its timer is
    re-armed on the loop's thread, for its deadline now (``Transport.deadline_moved``)."""

    def rearm() -> None:
        if session.phase is not CLOSED:
            loop.schedule(session, session.deadline())

    loop.call_soon_threadsafe(rearm)
