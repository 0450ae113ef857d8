"""pool: the reactor's I/O, with handlers run on a bounded pool of threads.

Blocking handlers (``@blocking``, or request/reply functions that call a
database) at the reactor's cost per idle connection: one thread reads and
writes every socket, and complete messages go to ``limits.pool_threads``
threads. What a thread per connection costs (its stack, its kernel task)
is paid per *busy* connection only.

- **Order**: a connection has at most one message on the pool at a time; the
  next starts when the last one's handler returned, so replies leave in request
  order, and a handler never runs twice at once for one connection.
- **Bounds**: messages waiting for the pool are counted; a connection with a
  message waiting is not read until it is taken (so it holds one read's worth
  at most), and at ``limits.pool_queue`` waiting in all no connection is read
  (backpressure to the peers, not memory); nor is a message started while its
  connection's unsent output is above ``write_buffer_high``.
- **@blocking** handlers run on a pool thread for the connection's life;
  ``conn.recv()`` waits for the messages the loop decodes, and a send waits
  while the peer is not reading (above ``write_buffer_high``).
- A handler's sends from its thread go to the loop in order, before the
  note that the handler returned; a handler that raises gets the codec's
  failure reply (HTTP's 500) unless it had answered, then the connection
  closes, as on every engine. ``on_connect``, ``on_drain`` and ``on_close``
  of a Protocol run on the loop; ``on_close`` waits for a running handler.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from typing import Any, ClassVar

from ..closing import report_close
from ..errors import ClosedError, ProtocolError
from ..handlers import Dispatch
from ..session import CLOSED, INPUT_ENDED, OPEN
from ..stats import LatencyHistogram
from ._poller import READ, WRITE
from .base import current, log
from .reactor import ReactorConnection, ReactorEngine

__all__ = ["PoolEngine"]

#: messages waiting for the pool at which a connection is not read: it holds one read's worth
_PER_CONNECTION = 1
_WAKE_CHECK = 1.0  # seconds a waiting handler thread sleeps before it looks again (a safety net)


class _Pool:
    """``size`` daemon threads running submitted calls, started as they are needed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0  # threads waiting for a call
        self._queued = 0  # calls submitted and not taken yet
        self._lock = threading.Lock()

    def submit(self, fn: Any) -> None:
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and self._threads < self.size:
                self._threads += 1
                threading.Thread(target=self._run, name="socketkit-pool", daemon=True).start()
        self._calls.put(fn)

    @property
    def busy(self) -> int:
        """Threads running a call now."""
        with self._lock:
            return self._threads - self._idle

    def close(self) -> None:
        with self._lock:
            threads = self._threads
            self._queued += threads
        for _ in range(threads):
            self._calls.put(None)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            fn = self._calls.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if fn is None:
                return
            try:
                fn()
            except BaseException as exc:
                log.error("pool thread: %s: %s", type(exc).__name__, exc, exc_info=exc)


class _PooledDispatch(Dispatch):
    """A connection's dispatch with its messages sent to the pool."""

    __slots__ = ("conn", "inner", "latency", "wants_drain")

    def __init__(self, inner: Dispatch, conn: PoolConnection, latency: LatencyHistogram | None) -> None:
        self.inner = inner
        self.conn = conn
        self.wants_drain = inner.wants_drain
        self.latency = latency  # handler time is taken on the pool thread, not on the loop

    def connected(self) -> None:
        self.inner.connected()

    def message(self, message: Any) -> None:
        self.conn._submit(message)

    def closed(self, error: BaseException | None) -> None:
        self.conn._closed_after_handler(self.inner, error)

    def drained(self) -> None:
        self.inner.drained()


class PoolConnection(ReactorConnection):
    """A reactor connection whose handler runs on the engine's pool."""

    __slots__ = (
        "_answered",
        "_bad_later",
        "_busy",
        "_handler_thread",
        "_held",
        "_in_transit",
        "_inbox",
        "_jobs",
        "_on_close",
    )

    _engine: PoolEngine

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._jobs: list[Any] | None = None  # messages waiting for the pool (made when needed)
        self._busy = False  # a pool thread runs this connection's handler now
        self._held = False  # not read: too much is waiting for the pool
        self._answered = 0  # sends made by the handler call running now
        self._inbox: threading.Condition | None = None  # a @blocking handler waits on it
        self._on_close: tuple[Dispatch, BaseException | None] | None = None  # waits for the handler
        self._in_transit = 0  # bytes sent from the pool thread, not yet on the loop
        self._handler_thread = 0  # the pool thread running this connection's handler now
        self._bad_later: ProtocolError | None = None  # bad input behind messages still on the pool

    # -- on the loop -----------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        if self._pending is not None:  # @blocking: the handler takes a pool thread for its life
            self._inbox = threading.Condition()
            self._busy = True
            self._engine.pool.submit(self._run_blocking)
        else:
            self._dispatch = _PooledDispatch(self._dispatch, self, self._latency)
            self._latency = None  # the session's own timing would time the hand-over

    @property
    def idle(self) -> bool:
        if self._pending is not None:  # @blocking: idle while its handler waits for input
            return super().idle and not self._pending
        return super().idle and not self._busy and not self._jobs

    def quiet(self, now: float) -> None:
        if self._pending is not None:
            if not self._pending:  # stopping: its handler's next recv() ends
                super().quiet(now)
        elif not self._busy and not self._jobs:
            super().quiet(now)

    def on_event(self, mask: int) -> None:
        if self._engine.full and self.reading and mask & READ:
            self._hold()  # the pool is behind: this peer's bytes wait in the kernel's buffers
            mask &= ~READ
            if not mask & WRITE:
                return
        super().on_event(mask)

    def _submit(self, message: Any) -> None:
        if self._jobs is None:
            self._jobs = [message]
        else:
            self._jobs.append(message)
        engine = self._engine
        engine.queued += 1
        if not self._busy and self._output_has_room():
            self._next_job()
        if engine.queued >= self._limits.pool_queue:
            engine.full = True
        if len(self._jobs or ()) >= _PER_CONNECTION or engine.full:
            self._hold()

    def _next_job(self) -> None:
        assert self._jobs
        message = self._jobs.pop(0)
        if not self._jobs:
            self._jobs = None  # an idle connection holds no list
        engine = self._engine
        engine.queued -= 1
        self._busy = True
        self._answered = 0
        dispatch = self._dispatch
        assert isinstance(dispatch, _PooledDispatch)
        engine.pool.submit(functools.partial(self._run_job, dispatch.inner, dispatch.latency, message))
        engine.release_held()

    def _job_done(self, error: Exception | None, answered: bool) -> None:
        self._busy = False
        if error is not None:
            if self.phase is CLOSED:
                report_close(self._host.stats, self, error)
            else:
                self._handler_failed(error, answered)
        if self._on_close is not None:  # the connection ended while the handler ran
            inner, closing_error = self._on_close
            self._on_close = None
            self._drop_jobs()
            _call_closed(self, inner, closing_error)
            return
        if self._jobs and (self.phase is OPEN or self.phase is INPUT_ENDED):
            if self._output_has_room():
                self._next_job()  # else sent() starts it once the peer has read
        elif self._jobs:
            self._drop_jobs()
        elif self._bad_later is not None:
            error, self._bad_later = self._bad_later, None
            super()._bad_input(error)  # every message before it has its reply: now the error
        elif self.phase is INPUT_ENDED and self._pending is None:
            self._close(None)  # the peer ended its input and every message has its reply
        self._release_hold()
        self._queue_flush()

    def _drop_jobs(self) -> None:
        self._engine.queued -= len(self._jobs or ())
        self._jobs = None
        self._engine.release_held()

    def _bad_input(self, error: ProtocolError) -> None:
        if self._pending is None and (self._busy or self._jobs) and self.phase is OPEN:
            # Messages before the bad input are still on the pool: their replies go first.
            self._bad_later = error
            self.reading = False
            return
        super()._bad_input(error)

    def _closed_after_handler(self, inner: Dispatch, error: BaseException | None) -> None:
        if self._busy:
            self._on_close = (inner, error)
        else:
            self._drop_jobs()
            _call_closed(self, inner, error)

    def _hold(self) -> None:
        if not self._held:
            self._held = True
            self.reading = False
            self._engine.held.add(self)
            self._queue_flush()  # the poller stops watching for input

    def _release_hold(self) -> None:
        """Read again if what waits for the pool went down (and output allows it)."""
        if not self._held:
            return
        waiting = len(self._jobs or ()) if self._pending is None else len(self._pending)
        if waiting >= _PER_CONNECTION or self._engine.queued >= self._limits.pool_queue:
            return
        self._held = False
        self._engine.held.discard(self)
        if self.phase is OPEN and len(self.out) <= self._limits.write_buffer_low:
            self.reading = True
            self._queue_flush()

    def _settle(self) -> None:
        super()._settle()
        if self._held:
            self.reading = False  # output drained, but the pool has not caught up

    def received(self, data: bytes, now: float) -> None:
        super().received(data, now)
        inbox = self._inbox
        if inbox is not None:
            pending = self._pending
            if pending is not None and len(pending) >= _PER_CONNECTION:
                self._hold()
            with inbox:
                inbox.notify()

    def _end_input(self) -> None:
        if self._pending is None and (self._busy or self._jobs) and self.phase is OPEN:
            # The peer is done sending; what it sent before is still being handled: the
            # connection closes once the last reply is made (see _job_done).
            self.phase = INPUT_ENDED
            self.reading = False
            return
        super()._end_input()
        self._notify_inbox()

    def _close_transport(self) -> None:
        super()._close_transport()
        self._notify_inbox()

    def _output_has_room(self) -> bool:
        """Whether the next message may go to the pool: its reply must not pile up on a
        peer that is not reading (the same mark that pauses reading)."""
        return len(self.out) <= self._limits.write_buffer_high

    def sent(self, count: int, now: float) -> None:
        super().sent(count, now)
        if len(self.out) <= self._limits.write_buffer_low:
            if self._inbox is not None:
                self._notify_inbox()  # a handler thread may wait for the peer to read
            elif self._jobs and not self._busy and (self.phase is OPEN or self.phase is INPUT_ENDED):
                self._next_job()

    def _notify_inbox(self) -> None:
        inbox = self._inbox
        if inbox is not None:
            with inbox:
                inbox.notify_all()

    def _delivered(self, data: bytes) -> None:
        """A send of this connection's handler reaches the loop: a reply like any other
        (backpressure pauses reading above write_buffer_high), not a fan-out from others."""
        self._in_transit -= len(data)
        if self._closed:
            return
        self._in_event = True
        self._append(data)
        self._in_event = False
        if len(self.out) > self._limits.write_buffer_high:
            self._settle()
        self._queue_flush()

    # -- on a pool thread ------------------------------------------------------------------

    def _run_job(self, handler: Dispatch, latency: LatencyHistogram | None, message: Any) -> None:
        current.engine = self._engine  # Server.stop() from the handler must not wait for itself
        self._handler_thread = threading.get_ident()
        error: Exception | None = None
        started = time.perf_counter() if latency is not None else 0.0
        try:
            handler.message(message)
        except Exception as exc:
            error = exc
        if latency is not None:
            latency.observe(time.perf_counter() - started)
        self._engine.call_soon_threadsafe(functools.partial(self._job_done, error, self._answered > 0))

    def _run_blocking(self) -> None:
        current.engine = self._engine
        self._handler_thread = threading.get_ident()
        error: Exception | None = None
        try:
            self._engine.handler.run_blocking(self)
        except ClosedError:
            pass  # the connection ended under it: nothing more to say
        except Exception as exc:
            error = exc
        self._engine.call_soon_threadsafe(functools.partial(self._blocking_done, error))

    def _blocking_done(self, error: Exception | None) -> None:
        self._busy = False
        if error is not None:
            self._close(error)
        else:
            self.close()  # the handler returned: its replies flush, then the connection ends
        self._queue_flush()

    def _send_from_elsewhere(self, data: bytes) -> None:
        if threading.get_ident() != self._handler_thread:
            super()._send_from_elsewhere(data)  # another connection's fan-out: foreign output
            return
        self._answered += 1  # its own handler's reply
        inbox = self._inbox
        if inbox is not None:
            self._wait_for_room(inbox, len(data))
        self._in_transit += len(data)
        self._engine.call_soon_threadsafe(functools.partial(self._delivered, data))

    def _wait_for_room(self, inbox: threading.Condition, size: int) -> None:
        """A @blocking handler's send: wait while the peer has more than write_buffer_high
        unread (the loop closes a peer that reads nothing for idle_timeout)."""
        high = self._limits.write_buffer_high
        with inbox:
            while self.phase is OPEN and len(self.out) + self._in_transit + size > high and self.out:
                inbox.wait(_WAKE_CHECK)
        if self._closed:
            raise ClosedError(f"{self.peer_url}: send on a closed connection")

    def recv(self) -> Any:
        pending = self._pending
        inbox = self._inbox
        if pending is None or inbox is None:
            return super().recv()
        with inbox:
            while not pending and self.phase is OPEN and self._pending_error is None:
                inbox.wait(_WAKE_CHECK)
            if pending:
                message = pending.popleft()
                if self._held:
                    self._engine.call_soon_threadsafe(self._release_hold)
                return message
        error = self._pending_error
        if error is not None:
            self._pending_error = None
            self._engine.call_soon_threadsafe(functools.partial(self._bad_input_later, error))
            raise ClosedError(f"{self.peer_url}: {error}")
        raise ClosedError(f"{self.peer_url}: connection closed")

    def _bad_input_later(self, error: ProtocolError) -> None:
        self._bad_input(error)
        self._queue_flush()


def _call_closed(conn: PoolConnection, inner: Dispatch, error: BaseException | None) -> None:
    try:
        inner.closed(error)
    except Exception as exc:
        conn._host.stats.error("handler", conn.listener)
        log.error("%s: on_close raised %s: %s", conn.peer_url, type(exc).__name__, exc, exc_info=exc)


class PoolEngine(ReactorEngine):
    """The reactor, with handlers on ``limits.pool_threads`` threads (see the module notes)."""

    name: ClassVar[str] = "pool"
    supports_blocking: ClassVar[bool] = True
    connection_class: ClassVar[type[ReactorConnection]] = PoolConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = _Pool(self.limits.pool_threads)
        self.queued = 0  # messages waiting for the pool, all connections together
        self.held: set[PoolConnection] = set()  # connections not read until the pool catches up
        self.full = False  # pool_queue messages wait: no connection is read

    def release_held(self) -> None:
        """The pool took a message: connections held for the total may be read again."""
        if self.queued < self.limits.pool_queue:
            self.full = False
            for conn in list(self.held):
                conn._release_hold()

    def run(self) -> None:
        try:
            super().run()
        finally:
            busy = self.pool.busy
            if busy:
                log.error("%d handler thread(s) still running after their connections were cut", busy)
            self.pool.close()
