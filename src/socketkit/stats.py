"""Server statistics: counted where the work happens, summed when read.

Why this shape: each connection counts its own bytes and messages in plain
attributes, touched only by the thread that serves it, so the hot path takes no
lock and shares no cache line. The recorder keeps the live counters and folds a
connection's numbers into the totals when it closes; a snapshot is the totals
plus the live ones. Rare events (opens, closes, errors) take a lock.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "Counters", "LatencyHistogram", "Stats", "StatsRecorder"]

#: Upper bounds (seconds) of the handler-latency buckets: Prometheus's defaults, finer below 5 ms.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Counters:
    """Traffic counters of one connection or one datagram socket."""

    __slots__ = ("bytes_in", "bytes_out", "messages_in", "messages_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0


@dataclass(frozen=True)
class Stats:
    """A point-in-time snapshot of a server's counters."""

    connections_open: int = 0
    connections_total: int = 0
    connections_rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class LatencyHistogram:
    """How long handlers took per message, in cumulative-ready buckets; thread-safe.

    Kept only when asked for (``Server(metrics=...)``): timing every message costs
    two clock reads and a lock.
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[list[int], float]:
        """(count per bucket, the last above every bound; the sum of all observations)."""
        with self._lock:
            return list(self._counts), self._sum


class StatsRecorder:
    """Collects counters from every engine thread; ``snapshot()`` reads them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Counters] = set()
        self._done = Counters()
        self._open = 0
        self._total = 0
        self._rejected = 0
        self._errors: Counter[str] = Counter()
        #: handler latency per message, when a metrics endpoint wants it (else None: not timed)
        self.latency: LatencyHistogram | None = None

    def track(self, counters: Counters, connection: bool = True) -> None:
        with self._lock:
            self._live.add(counters)
            if connection:
                self._open += 1
                self._total += 1

    def untrack(self, counters: Counters, connection: bool = True) -> None:
        with self._lock:
            try:
                self._live.remove(counters)
            except KeyError:
                return  # not tracked, or already folded in
            done = self._done
            done.bytes_in += counters.bytes_in
            done.bytes_out += counters.bytes_out
            done.messages_in += counters.messages_in
            done.messages_out += counters.messages_out
            if connection:
                self._open -= 1

    def rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self._errors[kind] += 1

    @property
    def connections_open(self) -> int:
        return self._open

    def snapshot(self) -> Stats:
        with self._lock:
            live = list(self._live)
            done = self._done
            return Stats(
                connections_open=self._open,
                connections_total=self._total,
                connections_rejected=self._rejected,
                bytes_in=done.bytes_in + sum(c.bytes_in for c in live),
                bytes_out=done.bytes_out + sum(c.bytes_out for c in live),
                messages_in=done.messages_in + sum(c.messages_in for c in live),
                messages_out=done.messages_out + sum(c.messages_out for c in live),
                errors=dict(self._errors),
            )
