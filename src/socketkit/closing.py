"""Why a connection ended: the stats kind, the log level and the line, decided once.

Every engine and the datagram path end connections through :func:`report_close`,
so the same cause gives the same counter and the same log line on every engine.

Lines a peer can cause are sampled, not all written: a flood of bad datagrams
would otherwise become a flood of log lines (one per datagram), costing more
than the datagrams. Every event is counted in the stats; per kind, a burst of
lines is written and then about ten a second, and the next line written says
how many like it were left out (:class:`LogSampler`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from .connection import Connection
from .errors import (
    BrokenError,
    ClosedError,
    IdleTimeout,
    LimitExceeded,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
    WriteTimeout,
)
from .stats import StatsRecorder

__all__ = ["LogSampler", "classify", "log", "log_sampled", "peer_list", "report_close", "report_defect"]

log = logging.getLogger("socketkit")

#: Why a connection ended -> (stats kind, log level, message prefix); first match wins.
_CLOSE_REASONS: tuple[tuple[type[BaseException], str, int, str], ...] = (
    (LimitExceeded, "limit", logging.WARNING, "closed: "),
    (RemoteProtocolError, "protocol", logging.WARNING, "closed: bad input: "),
    (IdleTimeout, "idle_timeout", logging.INFO, "closed: "),
    (ReadTimeout, "read_timeout", logging.INFO, "closed: "),
    (WriteTimeout, "write_timeout", logging.INFO, "closed: "),
    (Timeout, "timeout", logging.INFO, "closed: "),
    (BrokenError, "reset", logging.DEBUG, "closed: "),
)


def classify(error: BaseException) -> tuple[str, int, str]:
    """(stats kind, log level, text) for an error that ended a connection.

    Anything not raised by socketkit itself is the handler's fault.
    """
    for cls, kind, level, prefix in _CLOSE_REASONS:
        if isinstance(error, cls):
            return kind, level, f"{prefix}{error}"
    return "handler", logging.ERROR, f"handler raised {type(error).__name__}: {error}"


class LogSampler:
    """A token bucket per kind of line: ``burst`` lines at once, then ``rate`` a second."""

    def __init__(
        self, rate: float = 10.0, burst: int = 20, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, list[float]] = {}  # kind -> [tokens, last refill, left out]

    def take(self, kind: str) -> int | None:
        """None if this line is left out; else how many of its kind were left out before it."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(kind)
            if bucket is None:
                bucket = self._buckets[kind] = [float(self.burst), now, 0]
            tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens < 1.0:
                bucket[0] = tokens
                bucket[2] += 1
                return None
            bucket[0] = tokens - 1.0
            left_out = int(bucket[2])
            bucket[2] = 0
            return left_out


#: One sampler per server (its stats recorder), so one server's flood never mutes another.
_samplers: weakref.WeakKeyDictionary[StatsRecorder, LogSampler] = weakref.WeakKeyDictionary()
_samplers_lock = threading.Lock()


def log_sampled(
    stats: StatsRecorder,
    kind: str,
    level: int,
    message: str,
    *args: object,
    exc_info: BaseException | None = None,
) -> None:
    """Log a line a peer can cause, unless too many of its kind came lately (see module notes)."""
    if not log.isEnabledFor(level):
        return
    with _samplers_lock:
        sampler = _samplers.get(stats)
        if sampler is None:
            sampler = _samplers[stats] = LogSampler()
    left_out = sampler.take(kind)
    if left_out is None:
        return
    if left_out:
        message += f" ({left_out} more like it not logged)"
    log.log(level, message, *args, exc_info=exc_info)


def report_close(stats: StatsRecorder, conn: Connection, error: BaseException | None) -> None:
    """Log and count why ``conn`` ended. Clean closes are silent (and never format the peer)."""
    if error is None or isinstance(error, ClosedError):
        return
    kind, level, text = classify(error)
    stats.error(kind, conn.listener)
    log_sampled(
        stats, kind, level, "%s: %s", conn.peer_url, text, exc_info=error if kind == "handler" else None
    )


def report_defect(stats: StatsRecorder, conn: Connection, error: BaseException) -> None:
    """Log and count an exception that escaped ``conn``'s own processing (socketkit's defect,
    not the peer's or the handler's): kind ``internal``, with its traceback, sampled."""
    stats.error("internal", conn.listener)
    log_sampled(
        stats,
        "internal",
        logging.ERROR,
        "%s: closed: internal error %s: %s",
        conn.peer_url,
        type(error).__name__,
        error,
        exc_info=error,
    )


def peer_list(conns: Sequence[Connection], most: int = 20) -> str:
    """``"2 connection(s): tcp://...:1, tcp://...:2"`` for a shutdown's log line."""
    if not conns:
        return "0 connection(s)"
    names = ", ".join(conn.peer_url for conn in conns[:most])
    more = f" and {len(conns) - most} more" if len(conns) > most else ""
    return f"{len(conns)} connection(s): {names}{more}"
