"""Server statistics: counted where the work happens, summed when read.

Why this shape: each connection counts its own bytes and messages in plain
attributes, touched only by the thread that serves it, so the hot path takes no
lock and shares no cache line. The recorder keeps the live counters and folds a
connection's numbers into the totals when it closes; a snapshot is the totals
plus the live ones. Rare events (opens, closes, errors) take a lock. Each
counter also knows the listener it came through (its URL), and the recorder
keeps the same totals per listener: ``Stats.listeners``, the metrics'
``listener`` label.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LATENCY_BUCKETS",
    "Counters",
    "LatencyHistogram",
    "Stats",
    "StatsRecorder",
    "stats_from_dict",
    "sum_stats",
]

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
    """Traffic counters of one connection or one datagram socket, and the URL of the
    listener it came through (``""`` when it has none)."""

    __slots__ = ("bytes_in", "bytes_out", "listener", "messages_in", "messages_out")

    def __init__(self, listener: str = "") -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.listener = listener

    def add(self, other: Counters) -> None:
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.messages_in += other.messages_in
        self.messages_out += other.messages_out


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
    #: the same counters for each listener, by its URL (empty in those per-listener Stats)
    listeners: dict[str, Stats] = field(default_factory=dict)


def stats_from_dict(data: dict[str, Any]) -> Stats:
    """The Stats that ``dataclasses.asdict`` made ``data`` of (as a worker process sends it)."""
    fields = dict(data)
    fields["listeners"] = {url: stats_from_dict(each) for url, each in fields.get("listeners", {}).items()}
    return Stats(**fields)


def sum_stats(items: Iterable[Stats]) -> Stats:
    """The counters of several Stats added up, per listener too (the workers of a prefork server)."""
    items = list(items)
    errors: Counter[str] = Counter()
    by_listener: dict[str, list[Stats]] = {}
    for each in items:
        errors.update(each.errors)
        for url, counted in each.listeners.items():
            by_listener.setdefault(url, []).append(counted)
    return Stats(
        connections_open=sum(each.connections_open for each in items),
        connections_total=sum(each.connections_total for each in items),
        connections_rejected=sum(each.connections_rejected for each in items),
        bytes_in=sum(each.bytes_in for each in items),
        bytes_out=sum(each.bytes_out for each in items),
        messages_in=sum(each.messages_in for each in items),
        messages_out=sum(each.messages_out for each in items),
        errors=dict(errors),
        listeners={url: sum_stats(parts) for url, parts in sorted(by_listener.items())},
    )


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

    def add(self, counts: list[int], seconds: float) -> None:
        """Count the observations of a snapshot (another histogram's, another process's)."""
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += seconds

    @classmethod
    def merged(cls, histograms: list[LatencyHistogram], buckets: tuple[float, ...]) -> LatencyHistogram:
        """One histogram holding every observation of ``histograms`` (which share ``buckets``)."""
        total = cls(buckets)
        for histogram in histograms:
            total.add(*histogram.snapshot())
        return total


class _Tally:
    """What the recorder counts for one listener, or for the whole server."""

    __slots__ = ("done", "errors", "open", "rejected", "total")

    def __init__(self) -> None:
        self.done = Counters()  # the traffic of connections closed
        self.open = 0
        self.total = 0
        self.rejected = 0
        self.errors: Counter[str] = Counter()

    def stats(self, live: list[Counters], listeners: dict[str, Stats] | None = None) -> Stats:
        traffic = Counters()
        traffic.add(self.done)
        for counters in live:
            traffic.add(counters)
        return Stats(
            connections_open=self.open,
            connections_total=self.total,
            connections_rejected=self.rejected,
            bytes_in=traffic.bytes_in,
            bytes_out=traffic.bytes_out,
            messages_in=traffic.messages_in,
            messages_out=traffic.messages_out,
            errors=dict(self.errors),
            listeners=listeners or {},
        )


class StatsSource:
    """Numbers counted elsewhere (another process), for a StatsRecorder to report."""

    def stats(self) -> Stats:
        raise NotImplementedError

    def latency(self) -> dict[str, LatencyHistogram]:
        raise NotImplementedError


class StatsRecorder:
    """Collects counters from every engine thread; ``snapshot()`` reads them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Counters] = set()
        self._all = _Tally()
        self._by_listener: dict[str, _Tally] = {}
        self._pairs: dict[str, tuple[_Tally, _Tally]] = {}  # listener -> (_all, its tally)
        #: handler latency per message, when a metrics endpoint wants it (else None: not
        #: timed); one histogram per listener, made by :meth:`latency_for`
        self.latency: dict[str, LatencyHistogram] | None = None
        #: where the numbers come from instead, when other processes count them (prefork:
        #: the workers' reports, summed); snapshot() and latency_by_listener() ask it
        self.source: StatsSource | None = None

    def _tallies(self, listener: str) -> tuple[_Tally, _Tally]:
        """The server's tally and the listener's (made on first use); under the lock. (Every
        connection looks its pair up twice: ``_pairs.get(listener) or _tallies(listener)``
        makes that a call only the first time.)"""
        pair = self._pairs.get(listener)
        if pair is None:
            tally = self._by_listener[listener] = _Tally()
            pair = self._pairs[listener] = (self._all, tally)
        return pair

    def count_latency(self) -> None:
        """Time handlers from now on (a metrics endpoint wants the histogram)."""
        self.latency = {}

    def latency_for(self, listener: str) -> LatencyHistogram | None:
        """The handler-latency histogram of ``listener``'s connections, if latency is timed."""
        if self.latency is None:
            return None
        with self._lock:
            histogram = self.latency.get(listener)
            if histogram is None:
                histogram = self.latency[listener] = LatencyHistogram()
            return histogram

    def track(self, counters: Counters, connection: bool = True) -> None:
        with self._lock:
            self._live.add(counters)
            if connection:
                listener = counters.listener
                for tally in self._pairs.get(listener) or self._tallies(listener):
                    tally.open += 1
                    tally.total += 1

    def untrack(self, counters: Counters, connection: bool = True) -> None:
        with self._lock:
            try:
                self._live.remove(counters)
            except KeyError:
                return  # not tracked, or already folded in
            listener = counters.listener
            for tally in self._pairs.get(listener) or self._tallies(listener):
                tally.done.add(counters)
                if connection:
                    tally.open -= 1

    def rejected(self, listener: str = "") -> None:
        with self._lock:
            for tally in self._tallies(listener):
                tally.rejected += 1

    def error(self, kind: str, listener: str = "") -> None:
        with self._lock:
            for tally in self._tallies(listener):
                tally.errors[kind] += 1

    @property
    def connections_open(self) -> int:
        if self.source is not None:
            return self.source.stats().connections_open
        return self._all.open

    def latency_by_listener(self) -> dict[str, LatencyHistogram]:
        """Handler latency per listener (empty unless timed)."""
        if self.source is not None:
            return self.source.latency()
        return dict(self.latency or {})

    def snapshot(self) -> Stats:
        if self.source is not None:
            return self.source.stats()
        with self._lock:
            live = list(self._live)
            by_listener: dict[str, list[Counters]] = {name: [] for name in self._by_listener}
            for counters in live:
                by_listener.setdefault(counters.listener, []).append(counters)
            listeners = {
                name: self._tallies(name)[1].stats(counters)
                for name, counters in sorted(by_listener.items())
                if name
            }
            return self._all.stats(live, listeners)
