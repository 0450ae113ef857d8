"""Limits: every resource a peer can make the server spend has a finite bound.

Why one frozen object: the same numbers are read by every engine, the codec
(message size) and the CLI, and a server's limits must not change under it
while it runs. Defaults are safe for a public-facing server; raise them on
purpose, never by omission.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds a server enforces.

    Attributes:
        max_connections: connections served at once. Over it the server stops
            accepting until one closes; newcomers wait in the kernel's listen
            backlog (they are not refused).
        max_connections_per_ip: connections from one IP address at once; more
            are accepted and closed at once, logged and counted as rejected.
        max_connection_rate: new connections a second from one IP address (a
            burst of one second's worth); more are closed at once, logged and
            counted as rejected, as over ``max_connections_per_ip``.
        max_message_size: largest decoded message, in bytes (lowers the
            codec's own limit, never raises it).
        idle_timeout: seconds a connection may stay silent between messages, or
            leave its replies unread, before it is closed.
        read_timeout: seconds a peer has to finish a message once its first
            byte arrived (stops slow-drip clients).
        write_buffer_high: bytes of unsent output above which the server stops
            reading from that connection.
        write_buffer_low: the level output must drain to before reading resumes.
        grace: seconds ``stop()`` lets in-flight requests finish by default.
        pool_threads: the ``pool`` engine's handler threads.
        pool_queue: messages the ``pool`` engine holds for its threads, all
            connections together; at it, reading pauses until they catch up.
        stall_warning: seconds one event handler call may hold a loop engine's
            thread (or the threads engine's turn) before the log names it, once
            per server, with the fix (``@blocking`` on pool or threads): every
            other connection waits meanwhile. Nothing is cut for it.
    """

    max_connections: int = 1024
    max_connections_per_ip: int = 256
    max_connection_rate: float = 10_000.0
    max_message_size: int = 1024 * 1024
    idle_timeout: float = 120.0
    read_timeout: float = 30.0
    write_buffer_high: int = 256 * 1024
    write_buffer_low: int = 64 * 1024
    grace: float = 10.0
    pool_threads: int = 32
    pool_queue: int = 1024
    stall_warning: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_connections_per_ip",
            "max_message_size",
            "write_buffer_high",
            "pool_threads",
            "pool_queue",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")
        for name in ("idle_timeout", "read_timeout", "stall_warning"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"Limits.{name} must be a positive finite number of seconds, not {value!r}")
        rate = self.max_connection_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 1 <= rate < float("inf"):
            raise ValueError(
                f"Limits.max_connection_rate must be a finite number >= 1 a second, not {rate!r}"
            )
        if not isinstance(self.grace, (int, float)) or not 0 <= self.grace < float("inf"):
            raise ValueError(f"Limits.grace must be a finite number of seconds >= 0, not {self.grace!r}")
        if (
            not isinstance(self.write_buffer_low, int)
            or not 0 <= self.write_buffer_low <= self.write_buffer_high
        ):
            raise ValueError(
                f"Limits.write_buffer_low must be between 0 and write_buffer_high "
                f"({self.write_buffer_high}), not {self.write_buffer_low!r}"
            )
