"""The base of the engines that give a connection a thread (iterative, threads).

Why a base of their own: what only thread-owned connections need (waking the
threads parked between messages when stop() is called, cutting them off at the
grace deadline, and the flusher thread that lets other threads send to them
without blocking) stays out of :class:`~socketkit.engines.base.Engine`, which
the reactor shares.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from ...endpoints import Listener
from ...session import Session
from ..base import Engine, log
from .connection import ThreadedTransport
from .flusher import OutboxFlusher

__all__ = ["ThreadEngine"]


class ThreadEngine(Engine):
    """An engine whose connections are each served by one thread."""

    supports_blocking = True
    # (a connection's thread reads until the peer's end; after it there is nothing to wait on)
    keeps_half_open = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flusher: OutboxFlusher | None = None
        self._flusher_lock = threading.Lock()
        #: connections served by threads, for stop() to wake and the grace deadline to cut
        self._threaded: dict[ThreadedTransport, None] = {}

    def serve(self) -> None:
        try:
            super().serve()
        finally:
            if self._flusher is not None:
                self._flusher.close()

    def stopped(self) -> None:
        for conn in list(self._threaded):  # one C call: safe against other threads' changes
            conn.wake()

    def serve_connection(self, sock: socket.socket, addr: Any, listener: Listener) -> None:
        """Serve one accepted connection in the calling thread until it ends.

        The server owns the socket: it is closed here whatever the handler did.
        """
        try:
            conn = ThreadedTransport(sock, addr, self, listener)
        except OSError as exc:  # the peer vanished before we could look at it
            log.debug("connection from %r lost at once: %s", addr, exc)
            sock.close()
            self.gate.release(addr)
            return
        self._threaded[conn] = None
        if self.stopping:  # stop() came first: the connection sees the flag itself
            conn.wake()
        try:
            conn.serve()
        finally:
            self._threaded.pop(conn, None)

    def wake_after_first_request_wait(self) -> float | None:
        """Stopping: wake the threads of new connections whose wait for a first request is
        over (see Session.fresh_until); when the next such wait ends, or None."""
        now = time.monotonic()
        soonest = None
        for conn in list(self._threaded):
            fresh = conn.session.fresh_until()
            if fresh is None:
                continue
            if fresh <= now:
                conn.wake()
            elif soonest is None or fresh < soonest:
                soonest = fresh
        return soonest

    def cut_all(self) -> None:
        """The grace deadline passed: end every connection's I/O at once (any thread)."""
        for conn in list(self._threaded):
            conn.abort()

    def open_connections(self) -> Sequence[Session]:
        return [transport.session for transport in list(self._threaded)]

    def flusher(self) -> OutboxFlusher:
        """The thread that flushes queued cross-thread output, made on first use."""
        with self._flusher_lock:
            if self._flusher is None:
                self._flusher = OutboxFlusher()
            return self._flusher

    @property
    def existing_flusher(self) -> OutboxFlusher | None:
        """The flusher if one was made, without making one."""
        return self._flusher
