"""threads: a thread per connection, bounded by ``max_connections``.

The threaded server of the tutorials, with the parts they leave out: the
number of threads is bounded (at ``max_connections`` the engine stops
accepting, so newcomers wait in the kernel's listen backlog rather than being
refused, and accepting resumes the moment a connection closes); stop() wakes
threads waiting between messages, so shutdown drains instead of abandoning
threads mid-request; and at the grace deadline the remaining sockets are shut
down so their threads' I/O fails at once.

Why bare ``_thread`` threads rather than ``threading.Thread``: a Thread object
costs about 2.5 KB per connection, and ``Thread.start()`` waits for the new
thread to signal that it runs, a context switch per accepted connection. The
engine needs neither names nor ``join()``: it tracks its connections itself
and waits for them on its wake socket.

Datagram listeners get one (``threading``) thread each, answering datagrams in order.

Event-style handlers are called one at a time (``threaded/serial``: DESIGN §4's one rule),
so many threads cost nothing in correctness to a handler that shares state; a
handler that waits (a database call) is marked ``@blocking`` and runs
concurrently.
"""

from __future__ import annotations

import _thread
import selectors
import socket
import threading
import time
from typing import Any, ClassVar

from ...endpoints import Listener
from ...handlers import Dispatch
from ...session import Session
from ...stats import Counters
from ..base import current, log
from ..common.datagrams import serve_datagrams
from ..common.stall import LockWatch
from .connection import ThreadedTransport
from .engine import ThreadEngine
from .serial import SerialDispatch, serialized

__all__ = ["ThreadsEngine"]

_JOIN_AFTER_DEADLINE = 0.2
#: what the stall watch says to do about an event handler that holds the others' turn
_STALL_FIX = (
    "Event handlers take turns on every engine; one that waits (sleep, a database, a blocking "
    "client) belongs on its own thread: mark it @socketkit.blocking."
)  # seconds to wait for threads once their sockets are shut down


class ThreadsEngine(ThreadEngine):
    """One thread per connection; the calling thread accepts."""

    name: ClassVar[str] = "threads"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._live: dict[socket.socket, None] = {}  # the sockets of connections being served
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()  # made here: serving opens no descriptor of its own
        self._datagram_threads: list[threading.Thread] = []
        #: held by every event handler call (``threaded/serial``); None for concurrent handlers
        self._handler_lock = None if self.handler.concurrent else threading.RLock()

    def dispatch_for(self, session: Session) -> Dispatch:
        dispatch = self.handler.dispatch(session)
        if self._handler_lock is None:
            return dispatch
        transport = session.transport
        assert isinstance(transport, ThreadedTransport)
        return SerialDispatch(dispatch, self._handler_lock, transport.hand_over_output)

    def run(self) -> None:
        watch = None
        if self._handler_lock is not None:  # event handlers take turns: one that waits holds all
            watch = LockWatch(
                self.name, self.handler.name, _STALL_FIX, self._handler_lock, self.limits.stall_warning
            )
            watch.start()
        try:
            self._serve()
        finally:
            if watch is not None:
                watch.stop()

    def _serve(self) -> None:
        self._datagram_threads = self._start_datagram_threads()
        streams = [listener for listener in self.listeners if listener.endpoint.is_stream]
        selector = self._selector
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for listener in streams:
                listener.sock.setblocking(False)
            for sock, peer, origin in self.take_adopted():
                self._start_thread(sock, peer, origin)
            self._end_if_nothing_left()
            registered = False
            while not self.stopping:
                want = not self.gate.paused and len(self._live) < self.limits.max_connections
                if want != registered:
                    for listener in streams:
                        if want:
                            selector.register(listener.sock, selectors.EVENT_READ, listener)
                        else:
                            selector.unregister(listener.sock)
                    registered = want
                timeout = self.gate.resume_in if self.gate.paused else None
                for key, _ in selector.select(timeout):
                    if key.data is None:
                        self.drain_wake()
                        self.run_calls()
                    elif not self.stopping:
                        self._accept_burst(key.data)
            self.begin_stop()
            self._drain_connections(selector)
        finally:
            selector.close()
            for listener in streams:
                listener.close()
            self._join_datagram_threads()

    # -- the stop sequence's primitives (Engine.begin_stop) --------------------------------

    def take_backlog(self, listener: Listener) -> None:
        self._accept_burst(listener)

    def stop_datagrams(self) -> None:
        self._join_datagram_threads()

    def _join_datagram_threads(self) -> None:
        """Datagram threads answer what is queued and return (their sockets close after)."""
        for thread in self._datagram_threads:
            thread.join(max(0.0, self.deadline - time.monotonic()) + _JOIN_AFTER_DEADLINE)

    def cut_all(self) -> None:
        with self._lock:
            left = list(self._live)
        for sock in left:  # every connection's socket, those not yet handed to their thread too
            _shutdown(sock)

    def _accept_burst(self, listener: Listener) -> None:
        while len(self._live) < self.limits.max_connections:
            accepted = self.gate.accept(listener)
            if accepted is None or not self._start_thread(accepted[0], accepted[1], listener):
                return

    def _start_thread(self, sock: socket.socket, addr: Any, listener: Listener) -> bool:
        """Serve a connection in a thread of its own; False if no thread could be had."""
        with self._lock:
            self._live[sock] = None
        try:
            _thread.start_new_thread(self._run, (sock, addr, listener))
        except RuntimeError as exc:  # out of threads: this connection cannot be served
            log.error("cannot start a thread for %r: %s", addr, exc)
            self.stats.error("accept", listener.url)
            with self._lock:
                del self._live[sock]
            sock.close()
            self.gate.release(addr)
            return False
        return True

    def _end_if_nothing_left(self) -> None:
        """Serving only adopted connections: once the last has closed, stop."""
        if self.ends_with_adopted and not self._live and not self.stopping:
            self.stop(0)

    def _run(self, sock: socket.socket, addr: Any, listener: Listener) -> None:
        current.engine = self
        try:
            self.serve_connection(sock, addr, listener)
        except BaseException as exc:  # never expected: serve_connection reports its own errors
            log.error("connection thread for %r failed: %s", addr, exc, exc_info=exc)
        finally:
            with self._lock:
                was_full = len(self._live) >= self.limits.max_connections
                self._live.pop(sock, None)
            if was_full or self.stopping:  # the accept loop waits for this one
                self.wake()
            self._end_if_nothing_left()

    def _drain_connections(self, selector: selectors.BaseSelector) -> None:
        """Wait for connection threads until they finish or the deadline passes."""
        self._wait_for_connections(selector, self.deadline)
        if not self._live:
            return
        self.cut_at_grace()
        self._wait_for_connections(selector, time.monotonic() + _JOIN_AFTER_DEADLINE)
        if self._live:
            self.abandoned = len(self._live)
            log.error(
                "%d thread(s) of handler %s still running after their sockets were closed",
                len(self._live),
                self.handler.name,
            )

    def _wait_for_connections(self, selector: selectors.BaseSelector, until: float) -> None:
        while self._live:
            now = time.monotonic()
            remaining = until - now
            if remaining <= 0:
                return
            fresh = self.wake_after_first_request_wait()
            if fresh is not None:
                remaining = min(remaining, max(0.0, fresh - now))
            for key, _ in selector.select(remaining):
                if key.data is None:
                    self.drain_wake()
                    self.run_calls()

    def _start_datagram_threads(self) -> list[threading.Thread]:
        threads = []
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                continue
            handle = self.handler.datagram_handler()
            if self._handler_lock is not None:
                handle = serialized(handle, self._handler_lock)
            counters = Counters(listener.url)
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
            serve_datagrams(
                self,
                self.stop_fd,
                listener.sock,
                listener.endpoint.scheme,
                handle,
                counters,
                until_idle=False,
            )
        finally:
            self.stats.untrack(counters, connection=False)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
