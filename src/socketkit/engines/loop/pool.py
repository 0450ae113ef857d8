"""pool: the reactor's I/O, with @blocking handlers run on a bounded pool of threads.

Handlers that block (``@blocking`` on ``fn(conn)``, or on a request/reply
function ``fn(message, conn)`` that calls a database) at the reactor's cost per
idle connection: one thread reads and writes every socket, and complete
messages go to ``limits.pool_threads`` threads. What a thread per connection
costs (its stack, its kernel task) is paid per *busy* connection only.
Event-style handlers (unmarked functions, Protocol callbacks) run on the loop,
as on the reactor: they are never called two at once (DESIGN §4's one rule).

- **Order**: a connection has at most one message on the pool at a time; the
  next starts when the last one's handler returned, so replies leave in request
  order, and a handler never runs twice at once for one connection.
- **Bounds**: messages waiting for the pool are counted; a connection with a
  message waiting is not read until it is taken (so it holds one read's worth
  at most), and at ``limits.pool_queue`` waiting in all no connection is read
  (backpressure to the peers, not memory); nor is a message started while its
  connection's unsent output is above ``write_buffer_high``.
- **@blocking** ``fn(conn)`` handlers run on a pool thread for the connection's life;
  ``conn.recv()`` waits for the messages the loop decodes, and a send waits
  while the peer is not reading (above ``write_buffer_high``).
- **Datagrams** for a @blocking request/reply function are read, counted and
  decoded on the loop and handled on the pool too; their replies are sent from the
  loop. A datagram counts against ``pool_queue`` until it is answered; at the
  bound a datagram socket is not read: the kernel's buffer holds the rest, then
  drops, as UDP does. Stopping waits for the
  datagrams in hand (within the grace period) as for connections.
- A handler's sends from its thread go to the loop in order, before the
  note that the handler returned; a handler that raises gets the codec's
  failure reply (HTTP's 500) unless it had answered, then the connection
  closes, as on every engine.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from ...endpoints import Listener
from ...errors import ClosedError, ProtocolError
from ...session import OPEN, Inbox, Session
from ...session.inbox import Receiver
from ..base import BURST, current, log
from ..common.datagrams import DatagramConnection, WaitingDatagrams, decode, run_handler
from .poller import READ, WRITE
from .reactor import ReactorEngine, ReactorTransport

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


#: the connection whose handler this pool thread runs now (its sends are its replies)
_running = threading.local()


class PoolTransport(ReactorTransport):
    """A reactor connection whose handler runs on the engine's pool, a message at a time
    (:attr:`Transport.defers`)."""

    __slots__ = ("held",)

    _engine: PoolEngine
    defers: ClassVar[bool] = True

    def __init__(self, *args: Any) -> None:
        self.held = False  # in the engine's held set: not read until the pool catches up
        super().__init__(*args)

    # -- on the loop -----------------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        if self._engine.full and self.session.reading and mask & READ:
            self._hold()  # the pool is behind: this peer's bytes wait in the kernel's buffers
            mask &= ~READ
            if not mask & WRITE:
                return
        super().on_event(mask)

    def waiting_changed(self, count: int) -> None:
        engine = self._engine
        engine.queued += count
        if count < 0:
            engine.release_held()
        elif engine.queued >= engine.limits.pool_queue:
            engine.full = True
            self._hold()
        else:
            self._queue_flush()  # a message waits behind the one in hand: the poller stops reading

    def run_elsewhere(self, message: Any) -> None:
        self._engine.pool.submit(functools.partial(self._run_job, message, self.session.messages_out))

    def _job_done(self, error: Exception | None, answered_before: int) -> None:
        # every send the handler made reached the loop before this (call_soon_threadsafe is FIFO)
        self.session.handled(error, self.session.messages_out != answered_before)
        self.release_hold()
        self._queue_flush()

    def _hold(self) -> None:
        if not self.held:
            self.held = True
            self._engine.held.add(self)
            self.session.reading = False
            self._queue_flush()  # the poller stops watching for input

    def _still_held(self) -> bool:
        return self._engine.queued >= self._engine.limits.pool_queue

    def release_hold(self) -> None:
        """Read again if what waits for the pool went down (and output allows it)."""
        if not self.held or self._still_held():
            return
        self.held = False
        self._engine.held.discard(self)
        if not self.session.reading:
            self.session.settle()
            self._queue_flush()

    def _delivered(self, data: bytes) -> None:
        """A send of this connection's handler reaches the loop."""
        self.session.deliver(data)
        self._queue_flush()

    # -- on a pool thread ------------------------------------------------------------------

    def _run_job(self, message: Any, answered_before: int) -> None:
        current.engine = self._engine  # Server.stop() from the handler must not wait for itself
        _running.conn = self
        error = self.session.run_handler(message)
        _running.conn = None
        self._engine.call_soon_threadsafe(functools.partial(self._job_done, error, answered_before))

    def send_from_elsewhere(self, data: bytes) -> None:
        if getattr(_running, "conn", None) is not self:
            super().send_from_elsewhere(data)  # another connection's fan-out: foreign output
            return
        self._engine.call_soon_threadsafe(functools.partial(self._delivered, data))


class _PooledInbox(Inbox):
    """A blocking handler's inbox on the pool: the loop puts what it decodes, and the
    handler's pool thread waits on a condition the loop notifies."""

    __slots__ = ("_changed", "_transport")

    def __init__(self, transport: BlockingPoolTransport) -> None:
        super().__init__()
        self._transport = transport
        self._changed = threading.Condition()  # its handler thread waits on it

    def arrived(self) -> None:
        if len(self.messages) >= _PER_CONNECTION:
            self._transport.hold()
        self.changed()

    def changed(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def take(self, session: Receiver, read_more: Callable[[], None]) -> Any:
        messages = self.messages
        engine = self._transport.engine
        with self._changed:
            while not messages and session.phase is OPEN and self.error is None:
                self._changed.wait(_WAKE_CHECK)
            if messages:
                message = messages.popleft()
                if self._transport.held:
                    engine.call_soon_threadsafe(self._transport.release_hold)
                return message
        error = self.error
        if error is not None:
            self.error = None
            engine.call_soon_threadsafe(functools.partial(self._transport.bad_input_later, error))
            raise ClosedError(f"{session.peer_url}: {error}")
        raise ClosedError(f"{session.peer_url}: connection closed")

    def wait_for_room(self, session: Session, in_transit: int) -> None:
        """A send: wait while the peer has more than write_buffer_high unread (the loop
        closes a peer that reads nothing for idle_timeout)."""
        high = self._transport.engine.limits.write_buffer_high
        with self._changed:
            while session.phase is OPEN and len(session.out) + in_transit > high and session.out:
                self._changed.wait(_WAKE_CHECK)


class BlockingPoolTransport(PoolTransport):
    """A connection whose ``@blocking`` handler holds a pool thread for its life:
    ``conn.recv()`` waits for the messages the loop decodes."""

    __slots__ = ("_in_transit", "_inbox")

    defers: ClassVar[bool] = False

    def __init__(self, *args: Any) -> None:
        self._in_transit = 0  # bytes sent from the handler thread, not yet on the loop
        self._inbox = _PooledInbox(self)
        super().__init__(*args)

    @property
    def engine(self) -> PoolEngine:
        return self._engine

    # -- on the loop -----------------------------------------------------------------------

    def begin(self) -> None:
        super().begin()
        self._engine.pool.submit(self._run_blocking)

    def new_inbox(self) -> Inbox:
        return self._inbox

    def hold(self) -> None:
        self._hold()

    def _still_held(self) -> bool:
        return len(self._inbox.messages) >= _PER_CONNECTION or super()._still_held()

    def _delivered(self, data: bytes) -> None:
        self._in_transit -= len(data)
        super()._delivered(data)

    def _blocking_done(self, error: Exception | None) -> None:
        self.session.blocking_returned(error)
        self._queue_flush()

    def bad_input_later(self, error: ProtocolError) -> None:
        self.session.bad_input(error)
        self._queue_flush()

    # -- on the handler's pool thread ------------------------------------------------------

    def _run_blocking(self) -> None:
        current.engine = self._engine
        _running.conn = self
        error: Exception | None = None
        try:
            self._engine.handler.run_blocking(self.session)
        except ClosedError:
            pass  # the connection ended under it: nothing more to say
        except Exception as exc:
            error = exc
        _running.conn = None
        self._engine.call_soon_threadsafe(functools.partial(self._blocking_done, error))

    def send_from_elsewhere(self, data: bytes) -> None:
        if getattr(_running, "conn", None) is self:
            session = self.session
            self._inbox.wait_for_room(session, self._in_transit + len(data))
            if session.closed:
                raise ClosedError(f"{session.peer_url}: send on a closed connection")
            self._in_transit += len(data)
        super().send_from_elsewhere(data)


class _RepliesFromTheLoop(DatagramConnection):
    """The sender of a datagram answered on a pool thread: its replies are sent, and
    counted, on the loop (a listener's counters belong to the loop alone)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: PoolEngine, *args: Any) -> None:
        super().__init__(*args)
        self._engine = engine

    def send_encoded(self, data: bytes) -> None:  # (send() encodes on the pool thread)
        self.answered = True
        self._engine.call_soon_threadsafe(functools.partial(self.send_message, data))


class _PooledDatagrams(WaitingDatagrams):
    """A datagram listener whose handler runs on the pool: each datagram is read, counted
    and decoded on the loop, then handled on a pool thread. A datagram counts against
    ``pool_queue`` from its read to its answer; at the bound the socket is not read (the
    kernel's buffer holds, then drops)."""

    __slots__ = ("engine", "paused")

    def __init__(self, engine: PoolEngine, listener: Listener, most: int) -> None:
        super().__init__(engine, listener, most)
        self.engine = engine
        self.paused = False  # not watched until the pool catches up

    def has_room(self) -> bool:
        engine = self.engine
        if engine.queued < self.host.limits.pool_queue:
            return True
        engine.full = True
        if not self.paused and not engine.stopping:
            self.paused = True
            engine.pause_datagrams(self)
        return False

    def answer(self, data: bytes, addr: Any) -> None:
        engine = self.engine
        conn = _RepliesFromTheLoop(engine, self.host.codec, self.sock, addr, self.scheme, self.counters)
        taken, message = decode(self.host, conn, data, self.counters)
        if taken:
            engine.queued += 1
            engine.datagrams_running += 1
            engine.pool.submit(functools.partial(self._run, conn, message))

    def _run(self, conn: DatagramConnection, message: Any) -> None:  # on a pool thread
        engine = self.engine
        current.engine = engine
        run_handler(self.host, conn, message, self.handle)
        engine.call_soon_threadsafe(engine.datagram_answered)  # after every reply it sent


class PoolEngine(ReactorEngine):
    """The reactor, with handlers on ``limits.pool_threads`` threads (see the module notes)."""

    name: ClassVar[str] = "pool"
    supports_blocking: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        handler = self.handler
        if handler.is_blocking:
            self.connection_class = BlockingPoolTransport
        elif handler.may_block:
            self.connection_class = PoolTransport
        # (event-style handlers run on the loop, as on the reactor: never two at once)
        self.pool = _Pool(self.limits.pool_threads)
        self.queued = 0  # messages waiting for the pool, all connections together
        self.held: set[PoolTransport] = set()  # connections not read until the pool catches up
        self.full = False  # pool_queue messages wait: no connection is read
        self.datagrams_running = 0  # datagrams given to the pool whose answers are not all sent
        self._paused_datagrams: list[_PooledDatagrams] = []

    def datagram_reader(self, listener: Listener) -> WaitingDatagrams:
        if not self.handler.may_block:
            return super().datagram_reader(listener)
        return _PooledDatagrams(self, listener, BURST)

    def pause_datagrams(self, reader: _PooledDatagrams) -> None:
        """The pool is behind: ``reader``'s socket is not watched until it catches up."""
        self._unwatch(reader.sock.fileno())
        self._paused_datagrams.append(reader)

    def datagram_answered(self) -> None:
        """A datagram's handler returned (its replies were sent before this): it no longer
        counts against pool_queue (a datagram counts from its read to its answer)."""
        self.datagrams_running -= 1
        self.queued -= 1
        self.release_held()

    def _handlers_running(self) -> bool:
        return self.datagrams_running > 0

    def release_held(self) -> None:
        """The pool took a message: connections held for the total may be read again, and
        datagram sockets watched again."""
        if self.queued < self.limits.pool_queue:
            self.full = False
            for conn in list(self.held):
                conn.release_hold()
            paused, self._paused_datagrams = self._paused_datagrams, []
            for reader in paused:
                reader.paused = False
                if reader.sock.fileno() != -1:  # (closed by the stop meanwhile)
                    self._watch(reader.sock.fileno(), reader)

    def run(self) -> None:
        try:
            super().run()
        finally:
            busy = self.abandoned = self.pool.busy
            if busy:
                log.error(
                    "%d thread(s) of handler %s still running after their connections were cut",
                    busy,
                    self.handler.name,
                )
            self.pool.close()
