"""threads: a thread per connection, bounded by ``max_connections``.

The threaded server of the tutorials, with the parts they leave out: the
number of threads is bounded (at ``max_connections`` the engine stops
accepting, so newcomers wait in the kernel's listen backlog rather than being
refused, and accepting resumes the moment a connection closes); every thread's
waits watch the stop socket, so shutdown drains instead of abandoning threads
mid-request; and at the grace deadline the remaining sockets are shut down so
their threads' I/O fails at once.

Datagram listeners get one thread each, answering datagrams in order.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Any, ClassVar

from ..endpoints import Listener
from ..stats import Counters
from ._threaded import serve_connection, serve_datagrams
from .base import Engine, current, log

__all__ = ["ThreadsEngine"]

_JOIN_AFTER_DEADLINE = 2.0  # seconds to wait for threads once their sockets are shut down


class ThreadsEngine(Engine):
    """One thread per connection; the calling thread accepts."""

    name: ClassVar[str] = "threads"
    supports_blocking: ClassVar[bool] = True

    def serve(self) -> None:
        self._threads: dict[threading.Thread, socket.socket] = {}  # thread -> its socket
        self._lock = threading.Lock()
        datagram_threads = self._start_datagram_threads()
        streams = [listener for listener in self.listeners if listener.endpoint.is_stream]
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for listener in streams:
                listener.sock.setblocking(False)
            registered = False
            while not self.stopping:
                want = not self.accept_paused and len(self._threads) < self.limits.max_connections
                if want != registered:
                    for listener in streams:
                        if want:
                            selector.register(listener.sock, selectors.EVENT_READ, listener)
                        else:
                            selector.unregister(listener.sock)
                    registered = want
                timeout = self.accept_resume_in if self.accept_paused else None
                for key, _ in selector.select(timeout):
                    if key.data is None:
                        self._drain_wake()
                    elif not self.stopping:
                        self._accept_burst(key.data)
            for listener in streams:  # connections that arrived before stop are served
                self._accept_burst(listener)
                listener.close()
            self._drain_connections(selector)
        finally:
            selector.close()
            for listener in streams:
                listener.close()
            # Datagram threads answer what is queued and return; their sockets close after.
            for thread in datagram_threads:
                thread.join(max(0.0, self.deadline - time.monotonic()) + _JOIN_AFTER_DEADLINE)
            self.close_listeners()
            self.close_wakers()

    def _accept_burst(self, listener: Listener) -> None:
        while len(self._threads) < self.limits.max_connections:
            accepted = self.accept(listener)
            if accepted is None:
                return
            sock, addr = accepted
            thread = threading.Thread(
                target=self._run,
                args=(sock, addr, listener),
                daemon=True,
                name=f"socketkit-conn-{addr!r}",
            )
            with self._lock:
                self._threads[thread] = sock
            thread.start()

    def _run(self, sock: socket.socket, addr: Any, listener: Listener) -> None:
        current.engine = self
        try:
            serve_connection(self, sock, addr, listener)
        finally:
            self.release(addr)
            with self._lock:
                self._threads.pop(threading.current_thread(), None)
            self.wake()

    def _drain_connections(self, selector: selectors.BaseSelector) -> None:
        """Wait for connection threads until they finish or the deadline passes."""
        while self._threads:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in selector.select(remaining):
                if key.data is None:
                    self._drain_wake()
        with self._lock:
            left = dict(self._threads)
        if not left:
            return
        log.warning("grace period over: closing %d connection(s) still open", len(left))
        for sock in left.values():
            _shutdown(sock)
        give_up = time.monotonic() + _JOIN_AFTER_DEADLINE
        for thread in left:
            thread.join(max(0.0, give_up - time.monotonic()))
        stuck = [t for t in left if t.is_alive()]
        if stuck:
            log.error("%d handler thread(s) still running after their sockets were closed", len(stuck))

    def _start_datagram_threads(self) -> list[threading.Thread]:
        threads = []
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                continue
            handle = self.handler.datagram_handler()
            counters = Counters()
            thread = threading.Thread(
                target=self._run_datagrams,
                args=(listener, handle, counters),
                daemon=True,
                name=f"socketkit-dgram-{listener.url}",
            )
            thread.start()
            threads.append(thread)
        return threads

    def _run_datagrams(self, listener: Listener, handle: Any, counters: Counters) -> None:
        current.engine = self
        self.stats.track(counters, connection=False)
        try:
            serve_datagrams(self, listener.sock, listener.endpoint.scheme, handle, counters, until_idle=False)
        finally:
            self.stats.untrack(counters, connection=False)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
