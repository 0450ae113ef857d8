"""The reactor: one thread multiplexing every socket with select, poll or epoll.

The select/poll/epoll chapter of the tutorials, built to the rules of DESIGN §4:

- **try send first**: a reply goes straight to ``send``; write interest is
  registered only when the kernel buffer is full, and dropped once drained;
- **batching**: all complete messages from one ``recv`` are dispatched, and
  their replies leave in one ``send``;
- **backpressure**: above ``write_buffer_high`` of unsent output the
  connection is not read until it drains below ``write_buffer_low``; a send to
  a connection already over the mark from outside its own message dispatch
  (another connection, another thread) closes it as a reader that cannot keep
  up, so memory per connection stays bounded;
- **deadlines**: one heap entry per connection, checked lazily: an entry that
  comes due is pushed back to the connection's real deadline unless it passed;
  entries of closed connections are dropped when they outnumber the live ones;
- **lean per connection**: descriptors map straight to their handlers (no
  ``selectors`` keys, see ``_poller``), and a connection holds no more than
  its socket, decoder, dispatcher and output buffer until it is used;
- **few system calls per connection**: accepted sockets stay in blocking mode
  and every ``recv``/``send`` passes ``MSG_DONTWAIT`` (no ``fcntl`` per
  accept), TCP_NODELAY is inherited from the listener on Linux, and a closed
  descriptor leaves the epoll set by itself;
- **shutdown**: connections waiting in the backlog and bytes already received
  are served; idle connections close at once, busy ones after their replies
  flush, the rest at the grace deadline.

Handlers run on the loop thread, so they must not block (``@blocking``
handlers are refused; use the threads or pool engine for those). ``send`` and
``close`` may be called from other threads: they are queued to the loop.
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from ..connection import Connection
from ..endpoints import Listener
from ..errors import (
    ClosedError,
    IdleTimeout,
    LimitExceeded,
    ProtocolError,
    ReadTimeout,
    WriteTimeout,
    translate_oserror,
)
from ..handlers import Dispatch
from ..stats import Counters
from ._poller import ERROR, READ, WRITE, Poller, poller_class
from .base import RECV_SIZE, Engine, log

__all__ = ["EpollEngine", "PollEngine", "ReactorEngine", "SelectEngine"]

_READABLE = READ | ERROR  # an error or hang-up is found by the next recv or send
_WRITABLE = WRITE | ERROR
_DONTWAIT = socket.MSG_DONTWAIT  # connection sockets stay in blocking mode: no fcntl per accept
_get_ident = threading.get_ident
_BURST = 64  # accepts or datagrams handled per readiness event, so one listener cannot starve the rest
_PRODUCE_ROUNDS = 16  # on_drain calls per flush before other connections get their turn


class ReactorConnection(Connection):
    """A connection served by the reactor's loop."""

    __slots__ = (
        "_decoder",
        "_dispatch",
        "_engine",
        "_fd",
        "_finished",
        "_in_dispatch",
        "_last_active",
        "_message_started",
        "_out",
        "_partial",
        "_reading",
        "_sock",
        "_timer_at",
        "_writing",
    )

    def __init__(self, sock: socket.socket, addr: Any, engine: ReactorEngine, listener: Listener) -> None:
        super().__init__(engine.codec, addr, listener.accepted_local, listener.endpoint.scheme)
        self._sock = sock
        self._fd = sock.fileno()
        self._engine = engine
        self._decoder = engine.codec.decoder(engine.limits.max_message_size)
        self._dispatch: Dispatch = _NO_DISPATCH
        self._out = bytearray()
        self._reading = True
        self._writing = False
        self._in_dispatch = False
        self._finished = False
        self._partial = False  # a message is half received
        self._last_active = engine.now
        self._message_started = 0.0
        self._timer_at = 0.0  # when this connection's live timer entry comes due

    def __lt__(self, other: object) -> bool:
        return False  # timer entries with equal deadlines: any order will do

    def _find_local(self) -> Any:
        try:
            return self._sock.getsockname()
        except OSError:
            return None

    @property
    def write_buffer_size(self) -> int:
        return len(self._out)

    # -- what handlers call (any thread) -----------------------------------------

    def send(self, message: Any) -> None:
        data = self.codec.encode(message)
        if self._closed:
            raise ClosedError(f"{self.peer_url}: send on a closed connection")
        if _get_ident() != self._engine.loop_thread:
            self._engine.call_soon_threadsafe(lambda: self._send_bytes(data))
            return
        if self._in_dispatch:  # a reply: flushed once the dispatch is done
            self.messages_out += 1
            self._out += data
            return
        self._send_bytes(data)

    def close(self) -> None:
        if _get_ident() != self._engine.loop_thread:
            self._engine.call_soon_threadsafe(self.close)
            return
        if self._closed:
            return
        self._closed = True
        if not self._in_dispatch:  # in a dispatch, the flush after it sends and finishes
            self._flush(False)

    # -- loop side -----------------------------------------------------------------

    def _send_bytes(self, data: bytes) -> None:
        """A send from outside this connection's own dispatch (another
        connection, on_connect, a queued call): flushed at the end of this loop
        iteration."""
        if self._finished:
            return
        out = self._out
        if len(out) >= self._engine.limits.write_buffer_high:
            self._finish(LimitExceeded(f"peer is not reading: {len(out)} bytes unsent (write_buffer_high)"))
            return
        self.messages_out += 1
        if not out:
            self._engine.dirty.append(self)
        out += data

    def on_event(self, mask: int) -> None:
        """Readiness from the poller. The read path is the hot path: kept in one frame."""
        if mask & _WRITABLE and self._out:
            self._flush(True)
        if not (mask & _READABLE and self._reading) or self._finished:
            return
        try:
            data = self._sock.recv(RECV_SIZE, _DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(translate_oserror(exc, self.peer_url))
            return
        if not data:
            self._on_eof()
            return
        engine = self._engine
        self.bytes_in += len(data)
        self._last_active = engine.now
        decoder = self._decoder
        bad_input: ProtocolError | None = None
        try:
            messages = decoder.feed(data)
        except ProtocolError as exc:
            bad_input = exc
            messages = exc.messages  # complete before the bad part: they are answered first
        else:
            if decoder.buffered:
                if not self._partial or messages:
                    # A new message started: its read deadline may come before the idle one.
                    self._partial = True
                    self._message_started = engine.now
                    deadline = engine.now + engine.limits.read_timeout
                    if deadline < self._timer_at:
                        engine.schedule(self, deadline)
            else:
                self._partial = False
        if messages:
            self.messages_in += len(messages)
            handle = self._dispatch.message
            self._in_dispatch = True
            try:
                for message in messages:
                    handle(message)
            except Exception as exc:
                self._in_dispatch = False
                self._finish(exc)
                return
            self._in_dispatch = False
        if bad_input is not None:
            self._fail_input(bad_input)
            return
        if self._out or self._closed:
            self._flush(False)
        if engine.stopping and not self._partial and len(data) < RECV_SIZE:
            self.close()  # stopping: the in-flight request is answered; done

    def _on_eof(self) -> None:
        try:
            self._decoder.feed(b"")
        except ProtocolError as exc:
            self._fail_input(exc)
            return
        self._reading = False
        self.close()  # the peer may have half-closed: its replies still go out

    def _fail_input(self, error: ProtocolError) -> None:
        reply = self._engine.reply_error(error)
        if reply is not None:
            self._out += reply
            try:
                self._sock.send(self._out, _DONTWAIT)
            except OSError:
                pass
        self._finish(error)

    def _flush(self, writable: bool) -> None:
        """Send buffered output, let a producer add more, then update read/write interest.

        Without ``writable`` the send is tried only when the connection is not
        already waiting for the kernel buffer to drain.
        """
        if self._finished:
            return
        out = self._out
        dispatch = self._dispatch
        limits = self._engine.limits
        for _ in range(_PRODUCE_ROUNDS if dispatch.wants_drain else 1):
            if out and (writable or not self._writing):
                try:
                    sent = self._sock.send(out, _DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._finish(translate_oserror(exc, self.peer_url))
                    return
                if sent:
                    self.bytes_out += sent
                    if sent == len(out):
                        out.clear()
                    else:
                        del out[:sent]
                    self._last_active = self._engine.now
            if not dispatch.wants_drain or self._closed or len(out) > limits.write_buffer_low:
                break
            if not self._produce():
                if self._finished:
                    return
                break
            if self._finished:
                return
        else:  # still producing after every round: go on next loop iteration
            self._engine.dirty.append(self)
        if out:
            reading = self._reading and not self._closed
            if reading and len(out) > limits.write_buffer_high:
                reading = False  # backpressure: stop reading until the peer catches up
            elif not reading and not self._closed and len(out) <= limits.write_buffer_low:
                reading = True
            self._set_interest(reading, True)
        elif self._closed:
            self._finish(None)
        elif self._writing or not self._reading:
            self._set_interest(True, False)

    def _produce(self) -> bool:
        """Ask the protocol for more output; True if it sent something."""
        before = self.messages_out
        self._in_dispatch = True
        try:
            self._dispatch.drained()
        except Exception as exc:
            self._in_dispatch = False
            self._finish(exc)
            return False
        self._in_dispatch = False
        return self.messages_out != before

    def _set_interest(self, reading: bool, writing: bool) -> None:
        if reading == self._reading and writing == self._writing:
            return
        self._reading = reading
        self._writing = writing
        self._engine.poller.modify(self._fd, (READ if reading else 0) | (WRITE if writing else 0))

    def deadline(self) -> float:
        limits = self._engine.limits
        deadline = self._last_active + limits.idle_timeout
        if self._partial:
            deadline = min(deadline, self._message_started + limits.read_timeout)
        return deadline

    def expire(self) -> None:
        limits = self._engine.limits
        error: Exception
        if self._out and not self._reading:
            error = WriteTimeout(f"peer did not read for {limits.idle_timeout:g}s")
        elif self._partial and self._message_started + limits.read_timeout <= self._engine.now:
            error = ReadTimeout(f"message not finished within {limits.read_timeout:g}s")
        else:
            error = IdleTimeout(f"idle for {limits.idle_timeout:g}s")
        self._finish(error)

    def stop_check(self) -> None:
        """On stop: serve bytes already received; close if then idle."""
        if self._finished or self._partial or self._out:
            return
        self.on_event(READ)
        if not self._closed and not self._partial and not self._out:
            self.close()

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._closed = True
        engine = self._engine
        engine.forget(self._fd)
        # Count and log before the peer can see the close, so stats never lag it.
        engine.connection_finished(self)
        engine.report_close(self, error)
        self._sock.close()
        self._out = bytearray()
        try:
            self._dispatch.closed(error)
        except Exception as exc:
            engine.stats.error("handler")
            log.error("%s: on_close raised %s: %s", self.peer_url, type(exc).__name__, exc, exc_info=exc)


_NO_DISPATCH = Dispatch()


class ReactorEngine(Engine):
    """The single-threaded event loop; the poller is chosen by ``selector_name``."""

    name: ClassVar[str] = "reactor"
    selector_name: ClassVar[str] = "auto"

    def serve(self) -> None:
        self.poller: Poller = poller_class(self.selector_name)()
        self.loop_thread = threading.get_ident()
        self.now = time.monotonic()
        self.dirty: list[ReactorConnection] = []
        self._handlers: dict[int, Any] = {}  # fd -> what handles its events (on_event(mask))
        self._open = 0  # connections open
        self._timers: list[tuple[float, ReactorConnection]] = []
        self._calls: deque[Callable[[], None]] = deque()
        self._accepting = False
        self._datagram_counters: list[Counters] = []
        self._drained = False
        try:
            self._watch(self._wake_r.fileno(), _Waker(self))
            self._register_listeners()
            self._set_accepting(True)
            self._run()
        finally:
            for conn in self._live_connections():
                conn._finish(ClosedError("server stopped"))
            for counters in self._datagram_counters:
                self.stats.untrack(counters, connection=False)
            self.poller.close()
            self.close_listeners()
            self.close_wakers()

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread soon. Safe from any thread."""
        self._calls.append(fn)
        self.wake()

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

    def _live_connections(self) -> list[ReactorConnection]:
        return [h for h in list(self._handlers.values()) if isinstance(h, ReactorConnection)]

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        poll = self.poller.poll
        handlers = self._handlers
        timers = self._timers
        monotonic = time.monotonic
        while True:
            if self.stopping or self.dirty or not self._accepting:
                done, timeout = self._next_wait()
                if done:
                    return
            elif timers:  # the steady state: wait for events or the next deadline
                timeout = max(timers[0][0] - self.now, 0.0)  # never negative: epoll reads that as forever
            else:
                timeout = None
            events = poll(timeout)
            self.now = monotonic()
            for fd, mask in events:
                handler = handlers.get(fd)
                if handler is not None:  # an earlier handler in this batch may have closed it
                    handler.on_event(mask)
            if self._calls:
                self._run_calls()
            if self.dirty:
                dirty = self.dirty
                self.dirty = []
                for conn in dirty:
                    conn._flush(False)
            if timers and timers[0][0] <= self.now:
                self._run_timers()
            if not self._accepting and not self.stopping:
                self._set_accepting(True)

    def _next_wait(self) -> tuple[bool, float | None]:
        """Outside the steady state: (whether the loop is done, how long to wait)."""
        if self.stopping:
            if not self._drained:
                self._begin_drain()
            if not self._open:
                return True, None
            if self.now >= self.deadline:
                log.warning("grace period over: closing %d connection(s) still open", self._open)
                return True, None
        timeout: float | None = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - self.now)
        if self.stopping:
            remaining = max(0.0, self.deadline - self.now)
            timeout = remaining if timeout is None else min(timeout, remaining)
        if not self._accepting and not self.stopping and self.accept_paused:
            resume = self.accept_resume_in
            timeout = resume if timeout is None else min(timeout, resume)
        if self.dirty:
            timeout = 0  # producers have more to send: poll, do not wait
        return False, timeout

    def _run_calls(self) -> None:
        calls = self._calls
        for _ in range(len(calls)):
            fn = calls.popleft()
            try:
                fn()
            except Exception as exc:
                log.error("call from another thread raised %s: %s", type(exc).__name__, exc, exc_info=exc)

    def _run_timers(self) -> None:
        timers = self._timers
        now = self.now
        while timers and timers[0][0] <= now:
            due, conn = heapq.heappop(timers)
            if conn._finished or due != conn._timer_at:
                continue  # closed, or superseded by an earlier entry
            deadline = conn.deadline()
            if deadline > now:
                self.schedule(conn, deadline)
            else:
                conn.expire()

    def schedule(self, conn: ReactorConnection, deadline: float) -> None:
        """(Re)arm ``conn``'s timer; entries that come due early are pushed back lazily."""
        conn._timer_at = deadline
        timers = self._timers
        heapq.heappush(timers, (deadline, conn))
        if len(timers) > 2 * self._open + 64:
            # Mostly entries of closed connections (churn): keep the live ones only.
            timers[:] = [(c._timer_at, c) for c in self._live_connections()]
            heapq.heapify(timers)

    # -- listeners ---------------------------------------------------------------------

    def _register_listeners(self) -> None:
        for listener in self.listeners:
            listener.sock.setblocking(False)
            if not listener.endpoint.is_stream:
                counters = Counters()
                self.stats.track(counters, connection=False)
                self._datagram_counters.append(counters)
                handle = self.handler.datagram_handler()
                self._watch(listener.fileno(), _DatagramReader(self, listener, handle, counters))

    def _set_accepting(self, accepting: bool) -> None:
        if accepting and (self.accept_paused or self._open >= self.limits.max_connections):
            return
        if accepting == self._accepting:
            return
        self._accepting = accepting
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                if accepting:
                    self._watch(listener.fileno(), _Acceptor(self, listener))
                else:
                    self._unwatch(listener.fileno())

    def accept_burst(self, listener: Listener) -> None:
        for _ in range(_BURST):
            if self._open >= self.limits.max_connections:
                self._set_accepting(False)
                return
            accepted = self.accept(listener)
            if accepted is None:
                if self.accept_paused:
                    self._set_accepting(False)
                return
            self._add_connection(accepted[0], accepted[1], listener)

    def _add_connection(self, sock: socket.socket, addr: Any, listener: Listener) -> None:
        conn = ReactorConnection(sock, addr, self, listener)
        try:
            self._watch(conn._fd, conn)
        except ValueError as exc:  # select() cannot watch descriptors >= FD_SETSIZE
            log.error("%s: cannot watch this socket (%s); use the poll or epoll engine", conn.peer_url, exc)
            self.stats.rejected()
            sock.close()
            self.release(addr)
            return
        self._open += 1
        self.stats.track(conn)
        self.schedule(conn, conn.deadline())
        conn._dispatch = dispatch = self.handler.dispatch(conn)
        try:
            dispatch.connected()
        except Exception as exc:
            conn._finish(exc)
            return
        if dispatch.wants_drain and not conn._finished:
            self.dirty.append(conn)  # its first on_drain comes with the next flush

    def connection_finished(self, conn: ReactorConnection) -> None:
        self._open -= 1
        self.stats.untrack(conn)
        self.release(conn.peer)

    # -- stopping ------------------------------------------------------------------------

    def _begin_drain(self) -> None:
        """Stop accepting; serve what already arrived; close idle connections."""
        self._drained = True
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                while self._open < self.limits.max_connections:
                    accepted = self.accept(listener)
                    if accepted is None:
                        break
                    self._add_connection(accepted[0], accepted[1], listener)
            else:
                self._handlers[listener.fileno()].on_event(READ)
        self._set_accepting(False)
        for listener in self.listeners:
            if not listener.endpoint.is_stream:
                self._unwatch(listener.fileno())
        self.close_listeners()
        for conn in self._live_connections():
            conn.stop_check()


class _Waker:
    """Handler of the wake socket: drain it; the loop then runs its queued calls."""

    __slots__ = ("engine",)

    def __init__(self, engine: ReactorEngine) -> None:
        self.engine = engine

    def on_event(self, mask: int) -> None:
        self.engine._drain_wake()


class _Acceptor:
    """Handler of a listener: accept a burst of connections."""

    __slots__ = ("engine", "listener")

    def __init__(self, engine: ReactorEngine, listener: Listener) -> None:
        self.engine = engine
        self.listener = listener

    def on_event(self, mask: int) -> None:
        self.engine.accept_burst(self.listener)


class _DatagramReader:
    """Handler of a datagram socket: answer the datagrams waiting on it."""

    __slots__ = ("counters", "engine", "handle", "listener")

    def __init__(self, engine: ReactorEngine, listener: Listener, handle: Any, counters: Counters) -> None:
        self.engine = engine
        self.listener = listener
        self.handle = handle
        self.counters = counters

    def on_event(self, mask: int) -> None:
        sock = self.listener.sock
        scheme = self.listener.endpoint.scheme
        engine = self.engine
        for _ in range(_BURST):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if sock.fileno() == -1:
                    return
                log.debug("datagram socket error: %s", exc)  # e.g. an ICMP error left by an earlier reply
                continue
            engine.datagram(sock, scheme, data, addr, self.handle, self.counters)


class SelectEngine(ReactorEngine):
    name: ClassVar[str] = "select"
    selector_name: ClassVar[str] = "select"


class PollEngine(ReactorEngine):
    name: ClassVar[str] = "poll"
    selector_name: ClassVar[str] = "poll"


class EpollEngine(ReactorEngine):
    name: ClassVar[str] = "epoll"
    selector_name: ClassVar[str] = "epoll"
