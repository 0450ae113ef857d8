"""New connections per second from one address: a token bucket per IP (``max_connection_rate``).

Why at accept, per address: a client that reconnects in a tight loop (a broken
retry, a scan, a flood from one host) costs the server an accept, a session and
a close each time, and ``max_connections_per_ip`` does not see it (each
connection is gone before the next). As HAProxy's ``rate-limit sessions`` and
nginx's ``limit_conn``/``limit_req`` zones do, each address gets a bucket of
``rate`` tokens that refills at ``rate`` a second: a burst of one second's worth
is let through, more are closed at once, counted as rejected and logged
(sampled). The buckets are bounded: full ones (addresses not seen for a second)
are dropped when there are many. No lock: two threads accepting from one
address at the same instant may each take the same token, and a limit this
coarse does not need more (a dict's get and set are each atomic).
"""

from __future__ import annotations

__all__ = ["RatePerAddress"]

#: addresses tracked before full buckets are dropped
_KEPT = 16384


class RatePerAddress:
    """Token buckets by address."""

    __slots__ = ("_buckets", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, when last counted)

    def allow(self, ip: str, now: float) -> bool:
        """Whether a new connection from ``ip`` at ``now`` is within the rate (it is counted).
        (Three calls on the accept path: this, the dict's get, and the caller's clock.)"""
        buckets = self._buckets
        bucket = buckets.get(ip)
        rate = self.rate
        if bucket is None:
            if len(buckets) >= _KEPT:
                self._forget_full(now)
            buckets[ip] = (rate - 1.0, now)
            return True
        tokens, then = bucket
        tokens += (now - then) * rate
        if tokens > rate:  # noqa: PLR1730 - min() would be a call per connection
            tokens = rate
        if tokens < 1.0:
            buckets[ip] = (tokens, now)
            return False
        buckets[ip] = (tokens - 1.0, now)
        return True

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (nothing from them for a second)."""
        self._buckets = {
            ip: (tokens, then) for ip, (tokens, then) in self._buckets.items() if now - then < 1.0
        }
