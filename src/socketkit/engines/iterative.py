"""iterative: one connection at a time, the tutorials' basic loop done right.

accept → serve that connection until it closes → accept the next. Datagrams
are answered between connections. Other clients wait in the listen backlog
while one is served, so this engine suits tests, debugging and strictly
sequential protocols; ``idle_timeout`` bounds how long one client can hold it.
Unlike the tutorial loop it never blocks where ``stop()`` cannot reach it:
every wait also watches the engine's stop socket.
"""

from __future__ import annotations

import selectors
from typing import ClassVar

from ..endpoints import Listener
from ..stats import Counters
from ._threaded import serve_connection, serve_datagrams
from .base import Engine

__all__ = ["IterativeEngine"]


class IterativeEngine(Engine):
    """Serve one connection at a time in the calling thread."""

    name: ClassVar[str] = "iterative"
    supports_blocking: ClassVar[bool] = True

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        datagram_handle = self.handler.datagram_handler() if not self.handler.is_blocking else None
        counters = Counters()
        self.stats.track(counters, connection=False)
        try:
            for listener in self.listeners:
                listener.sock.setblocking(False)
                selector.register(listener.sock, selectors.EVENT_READ, listener)
            selector.register(self._stop_r, selectors.EVENT_READ, None)
            selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
            while not self.stopping:
                timeout = self.accept_resume_in if self.accept_paused else None
                for key, _ in selector.select(timeout):
                    listener = key.data
                    if listener is self._wake_r:  # a signal or a nudge: the loop re-checks stopping
                        self._drain_wake()
                        continue
                    if listener is None or self.stopping:
                        break
                    scheme = listener.endpoint.scheme
                    if not listener.endpoint.is_stream:
                        assert datagram_handle is not None
                        serve_datagrams(
                            self, listener.sock, scheme, datagram_handle, counters, until_idle=True
                        )
                    elif not self.accept_paused:
                        self._serve_one(listener)
            # Stopping: connections already in the backlog and datagrams
            # already queued arrived before stop; serve them in drain mode.
            for listener in self.listeners:
                if listener.endpoint.is_stream:
                    while self._serve_one(listener):
                        pass
                elif datagram_handle is not None:
                    serve_datagrams(
                        self,
                        listener.sock,
                        listener.endpoint.scheme,
                        datagram_handle,
                        counters,
                        until_idle=True,
                    )
        finally:
            selector.close()
            self.stats.untrack(counters, connection=False)
            self.close_listeners()
            self.close_wakers()

    def _serve_one(self, listener: Listener) -> bool:
        accepted = self.accept(listener)
        if accepted is None:
            return False
        sock, addr = accepted
        try:
            serve_connection(self, sock, addr, listener.endpoint.scheme)
        finally:
            self.release(addr)
        return True
