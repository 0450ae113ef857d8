"""Accepting connections: the per-IP count and the pause when descriptors run out.

Why apart from the engines: every engine accepts the same way (DESIGN §4):
``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM`` log, pause accepting briefly and
retry, never spin; an aborted handshake concerns only that connection; other
errors propagate; over ``max_connections_per_ip`` a newcomer is closed, logged
and counted as rejected. Engines only decide when to call :meth:`AcceptGate.accept`.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

from ...access import OPEN, AccessList
from ...closing import log, log_sampled
from ...endpoints import Listener
from ...errors import LimitExceeded
from ...limits import Limits
from ...ratelimit import RatePerAddress
from ...stats import StatsRecorder

_monotonic = time.monotonic  # (a global read, not an attribute, per accept)

__all__ = ["ACCEPT_BACKOFF", "AcceptGate"]

#: accept() errors that mean "out of a resource": log, pause accepting, retry.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: accept() errors that only concern the one connection being accepted.
_TRANSIENT_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR})
ACCEPT_BACKOFF = 0.5  # seconds accepting pauses after fd exhaustion


class AcceptGate:
    """Accepts from non-blocking listeners under the server's limits; thread-safe."""

    def __init__(self, limits: Limits, stats: StatsRecorder) -> None:
        self.limits = limits
        self.stats = stats
        self._per_ip: dict[str, int] = {}
        # One address cannot exceed the per-IP limit when the total limit is lower: skip the count.
        self._count_per_ip = limits.max_connections_per_ip < limits.max_connections
        self._rate = RatePerAddress(limits.max_connection_rate)
        self._lock = threading.Lock()
        self._resume = 0.0
        #: who may connect (``Server(allow=..., deny=...)``); the plan sets it
        self.access: AccessList = OPEN

    def accept(self, listener: Listener) -> tuple[socket.socket, Any] | None:
        """Accept one connection, or None.

        None means "nothing to accept now": the backlog is empty, the one
        connection was aborted, it was over the per-IP limit, or file
        descriptors ran out (then :attr:`paused` is true for a moment).
        Other errors propagate.
        """
        try:
            sock, addr = listener.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                self.stats.error("accept", listener.url)
                log.error(
                    "accept on %s failed: %s; pausing accepts for %.1fs", listener.url, exc, ACCEPT_BACKOFF
                )
                self._resume = time.monotonic() + ACCEPT_BACKOFF
                return None
            if exc.errno in _TRANSIENT_ERRNOS:
                return None
            raise
        if isinstance(addr, tuple):  # TCP
            if listener.set_nodelay:  # request/reply traffic must not wait for Nagle's algorithm
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            if not listener.counts_per_ip:
                return sock, addr  # behind a PROXY header the peer is checked once it is known
            if not (self._count_per_ip or self.access.limited) and self._rate.allow(addr[0], _monotonic()):
                return sock, addr  # (only the rate to check, and it is within it: no more calls)
            refusal = self.admit(addr, listener.url, rated=self._count_per_ip or self.access.limited)
            if refusal is None:
                return sock, addr
            sock.close()
            return None
        return sock, addr

    def admit(self, addr: Any, listener: str, rated: bool = True) -> LimitExceeded | None:
        """Check ``addr`` against the access list and max_connection_rate (unless ``rated`` is
        False: refused for it already) and count it against max_connections_per_ip; the
        refusal (logged and counted as rejected, at ``listener``) if it may not connect."""
        if not isinstance(addr, tuple):
            return None
        ip = addr[0]
        if self.access.limited:
            why = self.access.refusal(ip)
            if why is not None:
                self.stats.rejected(listener)
                log_sampled(self.stats, "rejected", logging.WARNING, "rejected %s: %s", ip, why)
                return LimitExceeded(f"refused: {why}")
        if not rated or not self._rate.allow(ip, _monotonic()):
            self.stats.rejected(listener)
            log_sampled(
                self.stats,
                "rejected",
                logging.WARNING,
                "rejected %s: more than %g new connections a second from this address (max_connection_rate)",
                ip,
                self._rate.rate,
            )
            return LimitExceeded(f"more than {self._rate.rate:g} new connections a second from {ip}")
        if not self._count_per_ip:
            return None
        with self._lock:
            count = self._per_ip.get(ip, 0)
            if count < self.limits.max_connections_per_ip:
                self._per_ip[ip] = count + 1
                return None
        self.stats.rejected(listener)
        log_sampled(
            self.stats,
            "rejected",
            logging.WARNING,
            "rejected %s: %d connections from this address (max_connections_per_ip)",
            ip,
            count,
        )
        return LimitExceeded(f"{count} connections from {ip} already (max_connections_per_ip)")

    def release(self, addr: Any) -> None:
        """Forget a closed connection for the per-IP count."""
        if self._count_per_ip and isinstance(addr, tuple):
            ip = addr[0]
            with self._lock:
                count = self._per_ip.get(ip, 1) - 1
                if count > 0:
                    self._per_ip[ip] = count
                else:
                    self._per_ip.pop(ip, None)

    @property
    def paused(self) -> bool:
        return time.monotonic() < self._resume

    @property
    def resume_in(self) -> float:
        return max(0.0, self._resume - time.monotonic())
