"""iterative: one connection at a time, the tutorials' basic loop done right.

accept → serve that connection until it closes → accept the next. Datagrams
are answered between connections. Other clients wait in the listen backlog
while one is served, so this engine suits tests, debugging and strictly
sequential protocols; ``idle_timeout`` bounds how long one client can hold it.
Unlike the tutorial loop it never blocks where ``stop()`` cannot reach it:
the accept wait watches the engine's stop socket, stop() wakes a connection
waiting between messages, and a small keeper thread cuts off a connection
still in the middle of a message at the grace deadline.
"""

from __future__ import annotations

import select
import selectors
import threading
import time
from typing import Any, ClassVar

from ...endpoints import Listener
from ...stats import Counters
from ..common.datagrams import serve_datagrams
from .engine import ThreadEngine

__all__ = ["IterativeEngine"]


class IterativeEngine(ThreadEngine):
    """Serve one connection at a time in the calling thread."""

    name: ClassVar[str] = "iterative"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._selector = selectors.DefaultSelector()  # made here: serving opens no descriptor of its own
        self._datagram_handle: Any = None  # what answers a datagram (not for @blocking handlers)
        self._counters: dict[Listener, Counters] = {}

    def run(self) -> None:
        served = threading.Event()
        keeper = threading.Thread(
            target=self._keep_grace, args=(served,), name="socketkit-grace", daemon=True
        )
        keeper.start()
        try:
            self._serve()
        finally:
            served.set()
            self.stop(0.0)  # the keeper waits for the stop socket: wake it if serve() failed
            keeper.join()

    def _keep_grace(self, served: threading.Event) -> None:
        """After stop(), cut off the connection still being served at the grace deadline."""
        stopped = select.poll()  # poll, not select: the descriptor may be above FD_SETSIZE
        stopped.register(self._stop_r, select.POLLIN)
        stopped.poll()  # readable for good once stop() was called
        while True:
            now = time.monotonic()
            wait = self.deadline - now
            fresh = self.wake_after_first_request_wait()
            if fresh is not None:
                wait = min(wait, fresh - now)
            if served.wait(max(0.0, wait)):
                return
            if time.monotonic() >= self.deadline:
                self.cut_at_grace()
                return

    def _serve(self) -> None:
        selector = self._selector
        self._datagram_handle = self.handler.datagram_handler() if not self.handler.is_blocking else None
        # datagram traffic, by listener
        self._counters = counters = {listener: Counters(listener.url) for listener in self.listeners}
        for each in counters.values():
            self.stats.track(each, connection=False)
        try:
            # Adopted connections first: they were there before anything could be accepted.
            for sock, peer, origin in self.take_adopted():
                self.serve_connection(sock, peer, origin)
            if self.ends_with_adopted:
                return
            for listener in self.listeners:
                listener.sock.setblocking(False)
                selector.register(listener.sock, selectors.EVENT_READ, listener)
            selector.register(self._stop_r, selectors.EVENT_READ, None)
            selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
            while not self.stopping:
                timeout = self.gate.resume_in if self.gate.paused else None
                for key, _ in selector.select(timeout):
                    listener = key.data
                    if listener is self._wake_r:  # a signal or a nudge: the loop re-checks stopping
                        self.drain_wake()
                        self.run_calls()
                        continue
                    if listener is None or self.stopping:
                        break
                    if not listener.endpoint.is_stream:
                        self.answer_queued(listener)
                    elif not self.gate.paused:
                        self._serve_one(listener)
            self.begin_stop()
        finally:
            selector.close()
            for each in counters.values():
                self.stats.untrack(each, connection=False)

    # -- the stop sequence's primitives (Engine.begin_stop): what came before the stop is
    # served in drain mode, one connection at a time, as ever

    def take_backlog(self, listener: Listener) -> None:
        while self._serve_one(listener):
            pass

    def answer_queued(self, listener: Listener) -> None:
        if self._datagram_handle is not None:
            serve_datagrams(
                self,
                self.stop_fd,
                listener.sock,
                listener.endpoint.scheme,
                self._datagram_handle,
                self._counters[listener],
                until_idle=True,
            )

    def _serve_one(self, listener: Listener) -> bool:
        accepted = self.gate.accept(listener)
        if accepted is None:
            return False
        self.serve_connection(accepted[0], accepted[1], listener)
        return True
