"""The reactor: one thread multiplexing every socket with select, poll or epoll.

The select/poll/epoll chapter of the tutorials, built to the rules of DESIGN §4:

- **try send first**: a reply goes straight to ``send``; write interest is
  registered only when the kernel buffer is full, and dropped once drained;
- **batching**: all complete messages from one ``recv`` are dispatched, and
  their replies leave in one ``send``;
- **the connection's life is its session** (``socketkit.session``): this
  module only reads, writes, waits and keeps timers;
- **backpressure**: above ``write_buffer_high`` of unsent output the
  connection is not read until it drains below ``write_buffer_low``; output
  that others send it (a broker's fan-out) is tried at once, and a reader is
  judged by whether it drains before its deadline, not by one burst: only
  past ``FOREIGN_OUTPUT_FACTOR`` times the mark is it closed at once, so memory
  per connection stays bounded;
- **deadlines** (:mod:`..common.deadlines`): one heap entry per connection, checked lazily: an entry that
  comes due is pushed back to the connection's real deadline unless it passed;
  entries of closed connections are dropped when they outnumber the live ones;
- **lean per connection**: descriptors map straight to their handlers (no
  ``selectors`` keys, see ``loop/poller``), and a connection holds no more than
  its socket, decoder, dispatcher and output buffer until it is used;
- **few system calls per connection**: accepted sockets stay in blocking mode
  and every ``recv``/``send`` passes ``MSG_DONTWAIT`` (no ``fcntl`` per
  accept), TCP_NODELAY is inherited from the listener on Linux, and a closed
  descriptor leaves the epoll set by itself;
- **shutdown**: connections waiting in the backlog and bytes already received
  are served (a connection is read until nothing more is waiting before it is
  closed); idle connections close at once, busy ones after their replies
  flush, the rest at the grace deadline.

Handlers run on the loop thread, so they must not block (``@blocking``
handlers are refused; use the threads or pool engine for those). ``send`` and
``close`` may be called from other threads: they are queued to the loop.
"""

from __future__ import annotations

import functools
import heapq
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from ...endpoints import Listener
from ...errors import ClosedError, Timeout, translate_oserror
from ...session import CLOSED, CLOSING, OPEN, Phase, Session, Transport
from ..base import BURST, Engine, log
from ..common import linger
from ..common.datagrams import RECV_SIZE, WaitingDatagrams
from ..common.deadlines import Deadlines, rearm_soon
from ..common.stall import StallWatch
from .poller import ERROR, READ, WRITE, Poller, poller_class

__all__ = ["EpollEngine", "PollEngine", "ReactorEngine", "SelectEngine"]

_READABLE = READ | ERROR  # an error or hang-up is found by the next recv or send
_WRITABLE = WRITE | ERROR
_DONTWAIT = socket.MSG_DONTWAIT  # connection sockets stay in blocking mode: no fcntl per accept
#: what the stall watch says to do about an event handler that holds the loop
_STALL_FIX = (
    "A handler that waits (sleep, a database, a blocking client) belongs on threads: mark it "
    "@socketkit.blocking and serve it with engine='pool' (or 'threads')."
)
_PRODUCE_ROUNDS = 16  # on_drain calls per flush before other connections get their turn


class ReactorTransport(Transport):
    """A connection's socket on the reactor: non-blocking sends and reads on the loop, fed to
    its session."""

    __slots__ = ("_engine", "_fd", "_queued", "_sock", "_wants_read", "_writing", "session")

    def __init__(self, sock: socket.socket, addr: Any, engine: ReactorEngine, listener: Listener) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._engine = engine
        self._wants_read = True  # read interest registered with the poller
        self._writing = False  # write interest registered with the poller
        self._queued = False  # in the engine's list of connections to flush this iteration
        self.session = Session(
            engine,
            self,
            addr,
            listener.accepted_local,
            listener.endpoint.scheme,
            engine.now,
            listener.layer_factories,
            listener.url,
        )

    def __lt__(self, other: object) -> bool:
        return False  # entries with equal times on a heap: any order will do

    def local_address(self) -> Any:
        try:
            return self._sock.getsockname()
        except OSError:
            return None

    def begin(self) -> None:
        """The connection was accepted and is watched: its session starts, and what on_connect
        sent goes out."""
        session = self.session
        session.start()
        if session.out or session.phase is not OPEN:
            self._flush(False)
        elif session.producing:
            self._queue_flush()  # its first on_drain comes with the next flush

    # -- readiness from the poller (the hot path: kept in one frame) ----------------------

    def on_event(self, mask: int) -> None:
        session = self.session
        if mask & _WRITABLE and session.out:
            self._flush(True)
        if not (mask & _READABLE and session.reading):
            return
        engine = self._engine
        reads = 1
        while True:
            try:
                data = self._sock.recv(RECV_SIZE, _DONTWAIT)
            except BlockingIOError:
                if engine.stopping:
                    session.quiet(engine.now)  # stopping, nothing more arrived: an idle connection ends
                    break
                return
            except OSError as exc:
                session.finish(translate_oserror(exc, session.peer_url))
                return
            session.received(data, engine.now)
            if session.in_message and session.message_started == engine.now:
                deadline = engine.now + engine.limits.read_timeout  # a message started
                if deadline < session.timer_at:
                    engine.schedule(session, deadline)
            # While stopping, what arrived before the stop is served: read until none is left
            # (a burst at a time: the poller reports it readable again next iteration).
            if (
                not (engine.stopping and data and session.reading and not session.in_message)
                or reads == BURST
            ):
                break
            reads += 1
        if session.out or session.phase is not OPEN:
            self._flush(False)

    def _flush(self, writable: bool) -> None:
        """Send buffered output, let a producer add more, then update read/write interest.

        Without ``writable`` the send is tried only when the connection is not
        already waiting for the kernel buffer to drain.
        """
        session = self.session
        if session.phase is CLOSED:
            return
        out = session.out
        if out and (writable or not self._writing):
            try:  # (the send of _send(), in this frame: every reply passes here)
                sent = self._sock.send(out, _DONTWAIT)
            except BlockingIOError:
                pass
            except OSError as exc:
                session.finish(translate_oserror(exc, session.peer_url))
                return
            else:
                if sent:
                    session.sent(sent, self._engine.now)
        if session.dispatch.wants_drain:
            for _ in range(_PRODUCE_ROUNDS):
                if not session.producing or not session.produce():
                    break
                if out and (writable or not self._writing) and not self._send():
                    return
            else:  # still producing after every round: go on next loop iteration
                self._queue_flush()
        if not out and session.phase is not OPEN:
            if session.phase is CLOSING:
                session.finish()
            return
        if self._engine.stopping and not out and session.phase is OPEN and session.idle:
            self._engine.look_again(self)  # stopping: it ends once nothing more arrived
        reading = session.reading
        writing = bool(out)
        if reading != self._wants_read or writing != self._writing:
            self._wants_read = reading
            self._writing = writing
            self._engine.poller.modify(self._fd, (READ if reading else 0) | (WRITE if writing else 0))

    def _send(self) -> bool:
        """One non-blocking send of the output; False if the connection ended."""
        session = self.session
        try:
            sent = self._sock.send(session.out, _DONTWAIT)
        except BlockingIOError:
            return True
        except OSError as exc:
            session.finish(translate_oserror(exc, session.peer_url))
            return False
        if sent:
            session.sent(sent, self._engine.now)
        return True

    def _queue_flush(self) -> None:
        if not self._queued:
            self._queued = True
            self._engine.dirty.append(self)

    def flush_queued(self) -> None:
        """The engine's end-of-iteration flush of a connection that asked for one."""
        self._queued = False
        self._flush(False)

    def stop_check(self) -> None:
        """Stopping: serve what already arrived from an idle connection, then end it."""
        if self.session.phase is OPEN and self.session.idle:
            self.on_event(READ)

    # -- what the session asks -------------------------------------------------------------

    def output_added(self) -> None:
        """A send from outside this connection's own events (another connection's handler, a
        queued call): flushed at the end of this loop iteration, unless it is past the bound."""
        session = self.session
        if session.phase is CLOSED:
            return
        if session.foreign_overflow(len(session.out)) is not None:
            self._flush(False)  # a peer that reads takes it now
            if (
                session.phase is not CLOSED
                and (error := session.foreign_overflow(len(session.out))) is not None
            ):
                session.finish(error)
            return
        self._queue_flush()

    def send_from_elsewhere(self, data: bytes) -> None:
        self._engine.call_soon_threadsafe(functools.partial(self.session.queue, data))

    def deadline_moved(self) -> None:
        rearm_soon(self._engine, self.session)

    def close_from_elsewhere(self) -> None:
        self._engine.call_soon_threadsafe(self.session.close)

    def release(self) -> None:
        if self.session.may_linger:
            self._engine.linger(self._sock, self._fd, self.session.answer_due)
        else:
            self._engine.forget(self._fd)
            self._sock.close()


class _Lingerer:
    """A closed connection's socket, read and discarded until its peer ends too (``common/linger``);
    on the deadline heap like a connection, so it never outlives LINGER_TIME."""

    __slots__ = ("engine", "fd", "left", "phase", "sock", "timer_at", "until")

    def __init__(self, engine: ReactorEngine, sock: socket.socket, fd: int) -> None:
        self.engine = engine
        self.sock = sock
        self.fd = fd
        self.left = linger.LINGER_BYTES
        self.until = engine.now + linger.LINGER_TIME
        self.phase: Phase = OPEN
        self.timer_at = 0.0

    def __lt__(self, other: object) -> bool:
        return False

    def on_event(self, mask: int) -> None:
        try:
            while self.left > 0:
                data = self.sock.recv(RECV_SIZE, _DONTWAIT)
                if not data:
                    break  # the peer is done: every reply reached it
                self.left -= len(data)
        except BlockingIOError:
            return
        except OSError:
            pass
        self.finish()

    def deadline(self) -> float:
        return self.until

    def expired(self, now: float) -> Timeout | None:
        return Timeout("lingered long enough") if now >= self.until else None

    def finish(self, error: BaseException | None = None) -> None:
        if self.phase is not CLOSED:
            self.phase = CLOSED
            self.engine.lingered(self)


class ReactorEngine(Engine):
    """The single-threaded event loop; the poller is chosen by ``selector_name``."""

    name: ClassVar[str] = "reactor"
    selector_name: ClassVar[str] = "auto"

    @classmethod
    def check_available(cls) -> None:
        poller_class(cls.selector_name)  # raises ValueError when the OS lacks it

    loop_runs_handlers: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poller: Poller = poller_class(self.selector_name)()
        self.now = time.monotonic()  # the loop's clock, read once per iteration
        self.polling = False  # the loop waits in the poller now (read by the stall watch)
        self.dirty: list[ReactorTransport] = []  # connections to flush at the end of this iteration
        self._handlers: dict[int, Any] = {}  # fd -> what handles its events (on_event(mask))
        self._open = 0  # connections open
        self.deadlines = Deadlines(self._timed)
        self._timers = self.deadlines.heap  # read in the loop: when the next one comes due
        self._accepting = False
        self._datagram_readers: dict[int, WaitingDatagrams] = {}  # by the listener's descriptor
        self._drained = False
        self._lingering: dict[int, _Lingerer] = {}  # closed connections' sockets, by descriptor
        self._ending = False  # the loop is over: what closes now closes at once
        #: stopping: connections that became idle, to end next iteration if nothing arrived
        self._idle_now: list[ReactorTransport] = []
        #: stopping: new connections waiting for their first request, until when (fresh_until)
        self._fresh: list[tuple[float, ReactorTransport]] = []

    def run(self) -> None:
        self.now = time.monotonic()
        stall = StallWatch(
            self.name,
            self.handler.name,
            _STALL_FIX,
            self.call_soon_threadsafe,
            self.limits.stall_warning,
            lambda: self.polling,
        )
        stall.start()
        try:
            self._watch(self._wake_r.fileno(), _Waker(self))
            self._register_listeners()
            for sock, peer, origin in self.take_adopted():
                self._add_connection(sock, peer, origin)
            self._end_if_nothing_left()
            self._set_accepting(True)
            self._run()
        finally:
            stall.stop()
            self._ending = True
            for conn in self._live_connections():
                conn.finish(ClosedError("server stopped"))
            for lingerer in list(self._lingering.values()):
                lingerer.finish()
            for reader in self._datagram_readers.values():
                reader.close()
            self.poller.close()

    def _watch(self, fd: int, handler: Any, events: int = READ) -> None:
        self.poller.register(fd, events)
        self._handlers[fd] = handler

    def _unwatch(self, fd: int) -> None:
        """Stop watching ``fd``, which stays open."""
        del self._handlers[fd]
        self.poller.unregister(fd)

    def forget(self, fd: int) -> None:
        """Stop watching ``fd``, which is about to be closed."""
        if self._handlers.pop(fd, None) is not None:
            self.poller.forget(fd)

    def linger(self, sock: socket.socket, fd: int, answer_due: bool = False) -> None:
        """A connection closed: its socket lingers (``common/linger``) or is closed now."""
        if self._ending or not linger.begin(sock, answer_due):
            self.forget(fd)
            sock.close()
            return
        lingerer = self._lingering[fd] = _Lingerer(self, sock, fd)
        self._handlers[fd] = lingerer
        self.poller.modify(fd, READ)
        self.schedule(lingerer, lingerer.until)  # type: ignore[arg-type]

    def lingered(self, lingerer: _Lingerer) -> None:
        del self._lingering[lingerer.fd]
        self.forget(lingerer.fd)
        lingerer.sock.close()

    def _timed(self) -> list[Any]:
        """What the deadline heap holds: live connections and lingering sockets."""
        return [*self._live_connections(), *self._lingering.values()]

    def _live_transports(self) -> list[ReactorTransport]:
        return [
            h
            for h in list(self._handlers.values())
            if isinstance(h, ReactorTransport) and h.session.phase is not CLOSED
        ]

    def _live_connections(self) -> list[Session]:
        return [transport.session for transport in self._live_transports()]

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        poll = self.poller.wait
        handlers = self._handlers
        timers = self._timers
        monotonic = time.monotonic
        while True:
            if self.stopping or self.dirty or not self._accepting:
                done, timeout = self._next_wait()
                if done:
                    return
            elif timers:  # the steady state: wait for events or the next deadline
                timeout = timers[0][0] - self.now
                if timeout < 0.0:  # noqa: PLR1730 - max() would be a call per loop iteration
                    timeout = 0.0  # never negative: epoll reads that as forever
            else:
                timeout = None
            self.polling = True  # (for the stall watch: waiting, nothing holds the loop)
            events = poll(timeout)
            self.polling = False
            self.now = monotonic()
            for fd, mask in events:
                try:
                    handler = handlers[fd]
                except KeyError:
                    continue  # an earlier handler in this batch closed it
                try:
                    handler.on_event(mask)
                except Exception as exc:
                    self._event_failed(handler, exc)
            if self._calls:
                self.run_calls()
            if self.dirty:
                dirty = self.dirty
                self.dirty = []
                for transport in dirty:
                    try:
                        transport.flush_queued()
                    except Exception as exc:
                        transport.session.fail(exc)
            if timers and timers[0][0] <= self.now:
                self.deadlines.run(self.now, self._open)
            if not self._accepting and not self.stopping:
                self._set_accepting(True)

    @staticmethod
    def _event_failed(handler: Any, error: Exception) -> None:
        """An event's handler raised: a connection's error ends that connection only; a
        listener's or the waker's is the engine's own and ends serving."""
        if not isinstance(handler, ReactorTransport):
            raise error
        handler.session.fail(error)

    def _next_wait(self) -> tuple[bool, float | None]:
        """Outside the steady state: (whether the loop is done, how long to wait)."""
        if self.stopping:
            if not self._drained:
                self._drained = True
                self.begin_stop()
            else:
                self._end_idle()
            if not self._open and not self._handlers_running() and not self._lingering:
                return True, None
            if self.now >= self.deadline:
                self.cut_at_grace()
                return True, None
        timeout: float | None = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - self.now)
        if self.stopping:
            remaining = max(0.0, self.deadline - self.now)
            timeout = remaining if timeout is None else min(timeout, remaining)
        if not self._accepting and not self.stopping and self.gate.paused:
            resume = self.gate.resume_in
            timeout = resume if timeout is None else min(timeout, resume)
        if self._fresh:
            first = max(0.0, self._fresh[0][0] - self.now)
            timeout = first if timeout is None else min(timeout, first)
        if self.dirty or self._idle_now:
            timeout = 0  # producers have more to send, or idle connections to end: poll, do not wait
        return False, timeout

    def look_again(self, conn: ReactorTransport) -> None:
        """Stopping: ``conn`` became idle; next iteration it ends, unless more arrived."""
        self._idle_now.append(conn)

    def _end_idle(self) -> None:
        """Stopping: the connections that became idle, and new ones whose wait for a first
        request is over, serve what arrived (a read) and end. Driven by their own events and
        one timer, not a sweep of every connection."""
        idle, self._idle_now = self._idle_now, []
        fresh = self._fresh
        while fresh and fresh[0][0] <= self.now:
            idle.append(heapq.heappop(fresh)[1])
        for conn in idle:
            conn.stop_check()

    def schedule(self, conn: Session, deadline: float) -> None:
        """(Re)arm ``conn``'s timer (see :mod:`..common.deadlines`)."""
        self.deadlines.schedule(conn, deadline, self._open)

    # -- listeners ---------------------------------------------------------------------

    def _register_listeners(self) -> None:
        for listener in self.listeners:
            listener.sock.setblocking(False)
            if not listener.endpoint.is_stream:
                reader = self.datagram_reader(listener)
                self._datagram_readers[listener.fileno()] = reader
                self._watch(listener.fileno(), reader)

    def datagram_reader(self, listener: Listener) -> WaitingDatagrams:
        """What answers a datagram listener's datagrams when it is readable."""
        return WaitingDatagrams(self, listener, BURST)

    def _handlers_running(self) -> bool:
        """Whether handler calls run off the loop whose replies the loop still sends (the
        pool's datagram answers): stopping waits for them as for connections."""
        return False

    def _set_accepting(self, accepting: bool) -> None:
        if accepting and (self.gate.paused or self._open >= self.limits.max_connections):
            return
        if accepting == self._accepting:
            return
        self._accepting = accepting
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                if accepting:
                    self.poller.register_listener(listener.fileno())
                    self._handlers[listener.fileno()] = _Acceptor(self, listener)
                else:
                    self._unwatch(listener.fileno())

    def accept_burst(self, listener: Listener) -> None:
        if not self.accept_waiting(listener, self._open_count, self._add_connection):
            self._set_accepting(False)

    def _open_count(self) -> int:
        return self._open

    #: the transport class of this engine's connections (each makes its session)
    connection_class: type[ReactorTransport] = ReactorTransport

    def _add_connection(self, sock: socket.socket, addr: Any, listener: Listener) -> None:
        transport = self.connection_class(sock, addr, self, listener)
        conn = transport.session
        try:
            self._watch(transport._fd, transport)
        except ValueError as exc:  # select() cannot watch descriptors >= FD_SETSIZE
            log.error("%s: cannot watch this socket (%s); use the poll or epoll engine", conn.peer_url, exc)
            self.stats.rejected(listener.url)
            sock.close()
            self.gate.release(addr)
            return
        self._open += 1
        self.stats.track(conn)
        self.schedule(conn, conn.deadline())
        try:
            transport.begin()
        except Exception as exc:
            conn.fail(exc)

    def connection_finished(self, session: Session) -> None:
        self._open -= 1
        self.stats.untrack(session)
        if session.per_ip_counted:
            self.gate.release(session.peer)
        self.deadlines.compact(self._open)
        self._end_if_nothing_left()

    def _end_if_nothing_left(self) -> None:
        """Serving only adopted connections: once the last has closed, stop."""
        if self.ends_with_adopted and not self._open and not self.stopping:
            self.stop(0)

    def open_connections(self) -> Sequence[Session]:
        return self._live_connections()

    # -- stopping ------------------------------------------------------------------------

    # -- the stop sequence's primitives (Engine.begin_stop) --------------------------------

    def stop_accepting(self) -> None:
        self._set_accepting(False)

    def take_backlog(self, listener: Listener) -> None:
        self.accept_waiting(listener, self._open_count, self._add_connection, sys.maxsize)

    def answer_queued(self, listener: Listener) -> None:
        self._datagram_readers[listener.fileno()]()

    def stop_datagrams(self) -> None:
        for fd in self._datagram_readers:
            if fd in self._handlers:
                self._unwatch(fd)

    def end_idle(self) -> None:
        for transport in self._live_transports():
            transport.stop_check()
            fresh = transport.session.fresh_until()
            if fresh is not None and transport.session.phase is OPEN:  # the loop looks at it again then
                heapq.heappush(self._fresh, (fresh, transport))

    def cut_all(self) -> None:
        for conn in self._live_connections():
            conn.finish(ClosedError("server stopped"))


class _Waker:
    """Handler of the wake socket: drain it; the loop then runs its queued calls."""

    __slots__ = ("engine",)

    def __init__(self, engine: ReactorEngine) -> None:
        self.engine = engine

    def on_event(self, mask: int) -> None:
        self.engine.drain_wake()


class _Acceptor:
    """Handler of a listener: accept a burst of connections."""

    __slots__ = ("engine", "listener")

    def __init__(self, engine: ReactorEngine, listener: Listener) -> None:
        self.engine = engine
        self.listener = listener

    def on_event(self, mask: int) -> None:
        self.engine.accept_burst(self.listener)


class SelectEngine(ReactorEngine):
    name: ClassVar[str] = "select"
    selector_name: ClassVar[str] = "select"


class PollEngine(ReactorEngine):
    name: ClassVar[str] = "poll"
    selector_name: ClassVar[str] = "poll"


class EpollEngine(ReactorEngine):
    name: ClassVar[str] = "epoll"
    selector_name: ClassVar[str] = "epoll"
