"""Why a connection ended: the stats kind, the log level and the line, decided once.

Every engine and the datagram path end connections through :func:`report_close`,
so the same cause gives the same counter and the same log line on every engine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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

__all__ = ["classify", "log", "peer_list", "report_close"]

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


def report_close(stats: StatsRecorder, conn: Connection, error: BaseException | None) -> None:
    """Log and count why ``conn`` ended. Clean closes are silent (and never format the peer)."""
    if error is None or isinstance(error, ClosedError):
        return
    kind, level, text = classify(error)
    stats.error(kind)
    log.log(level, "%s: %s", conn.peer_url, text, exc_info=error if kind == "handler" else None)


def peer_list(conns: Sequence[Connection], most: int = 20) -> str:
    """``"2 connection(s): tcp://...:1, tcp://...:2"`` for a shutdown's log line."""
    if not conns:
        return "0 connection(s)"
    names = ", ".join(conn.peer_url for conn in conns[:most])
    more = f" and {len(conns) - most} more" if len(conns) > most else ""
    return f"{len(conns)} connection(s): {names}{more}"
