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
- **shutdown**: connections waiting in the backlog and bytes already received
  are served; idle connections close at once, busy ones after their replies
  flush, the rest at the grace deadline.

Handlers run on the loop thread, so they must not block (``@blocking``
handlers are refused; use the threads or pool engine for those). ``send`` and
``close`` may be called from other threads: they are queued to the loop.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
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
from .base import RECV_SIZE, Engine, log

__all__ = ["EpollEngine", "PollEngine", "ReactorEngine", "SelectEngine", "selector_class"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_BURST = 64  # accepts or datagrams handled per readiness event, so one listener cannot starve the rest
_PRODUCE_ROUNDS = 16  # on_drain calls per flush before other connections get their turn

_SELECTORS: dict[str, str] = {
    "select": "SelectSelector",
    "poll": "PollSelector",
    "epoll": "EpollSelector",
    "auto": "DefaultSelector",
}


def selector_class(name: str) -> type[selectors.BaseSelector]:
    """The selector class for ``name``; ValueError when this OS lacks it."""
    attr = _SELECTORS[name]
    cls: type[selectors.BaseSelector] | None = getattr(selectors, attr, None)
    if cls is None:
        raise ValueError(
            f"engine {name!r} is not available on this system: use 'reactor' (the best available)"
        )
    return cls


class ReactorConnection(Connection):
    """A connection served by the reactor's loop."""

    __slots__ = (
        "_addr",
        "_decoder",
        "_dispatch",
        "_engine",
        "_finished",
        "_in_dispatch",
        "_last_active",
        "_message_started",
        "_out",
        "_reading",
        "_sock",
        "_timer_at",
        "_writing",
    )

    def __init__(self, sock: socket.socket, addr: Any, engine: ReactorEngine, scheme: str) -> None:
        super().__init__(engine.codec, addr, sock.getsockname(), scheme)
        self._sock = sock
        self._addr = addr
        self._engine = engine
        self._decoder = engine.codec.decoder(engine.limits.max_message_size)
        self._dispatch: Dispatch = Dispatch()
        self._out = bytearray()
        self._reading = True
        self._writing = False
        self._in_dispatch = False
        self._finished = False
        self._last_active = engine.now
        self._message_started = 0.0
        self._timer_at = 0.0  # when this connection's live timer entry comes due

    @property
    def write_buffer_size(self) -> int:
        return len(self._out)

    # -- what handlers call (any thread) -----------------------------------------

    def send(self, message: Any) -> None:
        data = self.codec.encode(message)
        if self._closed:
            raise ClosedError(f"{self.peer_url}: send on a closed connection")
        engine = self._engine
        if threading.get_ident() != engine.loop_thread:
            engine.call_soon_threadsafe(lambda: self._send_bytes(data))
            return
        self._send_bytes(data)

    def close(self) -> None:
        engine = self._engine
        if threading.get_ident() != engine.loop_thread:
            engine.call_soon_threadsafe(self.close)
            return
        if self._closed:
            return
        self._closed = True
        if self._out:  # flush what was sent, then close
            self._set_interest(False, True)
        else:
            self._finish(None)

    # -- loop side -----------------------------------------------------------------

    def _send_bytes(self, data: bytes) -> None:
        if self._finished:
            return
        out = self._out
        if len(out) >= self._engine.limits.write_buffer_high and not self._in_dispatch:
            self._finish(LimitExceeded(f"peer is not reading: {len(out)} bytes unsent (write_buffer_high)"))
            return
        self.messages_out += 1
        if not out and not self._in_dispatch:
            # Sent from elsewhere (another connection, on_connect, a queued call):
            # flush at the end of this loop iteration. A connection's own replies
            # are flushed once, right after its dispatch.
            self._engine.dirty.append(self)
        out += data

    def on_event(self, mask: int) -> None:
        if mask & _WRITE:
            self._flush(True)
        if mask & _READ and self._reading and not self._finished:
            self._on_readable()

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(RECV_SIZE)
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
        self._last_active = now = engine.now
        decoder = self._decoder
        starting = not decoder.buffered
        bad_input: ProtocolError | None = None
        try:
            messages = decoder.feed(data)
        except ProtocolError as exc:
            bad_input = exc
            messages = exc.messages  # complete before the bad part: they are answered first
        if decoder.buffered and (starting or messages):
            # A new message started: its read deadline may come before the idle one.
            self._message_started = now
            deadline = now + engine.limits.read_timeout
            if deadline < self._timer_at:
                engine.schedule(self, deadline)
        if messages:
            self.messages_in += len(messages)
            dispatch = self._dispatch
            self._in_dispatch = True
            try:
                for message in messages:
                    dispatch.message(message)
            except Exception as exc:
                self._in_dispatch = False
                self._finish(exc)
                return
            self._in_dispatch = False
            if bad_input is None and self._out:
                self._flush(False)
        if bad_input is not None:
            self._fail_input(bad_input)
            return
        if engine.stopping and not decoder.buffered and len(data) < RECV_SIZE:
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
                self._sock.send(self._out)
            except OSError:
                pass
        self._finish(error)

    def _flush(self, writable: bool) -> None:
        """Send buffered output, then update read/write interest.

        Without ``writable`` the send is tried only when the connection is not
        already waiting for the kernel buffer to drain.
        """
        if self._finished:
            return
        out = self._out
        limits = self._engine.limits
        for _ in range(_PRODUCE_ROUNDS if self._dispatch.wants_drain else 1):
            if out and (writable or not self._writing):
                try:
                    sent = self._sock.send(out)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._finish(translate_oserror(exc, self.peer_url))
                    return
                if sent:
                    self.bytes_out += sent
                    del out[:sent]
                    self._last_active = self._engine.now
            if not self._dispatch.wants_drain or self._closed or len(out) > limits.write_buffer_low:
                break
            if not self._produce():
                break
            if self._finished:
                return
        else:  # still producing after every round: go on next loop iteration
            self._engine.dirty.append(self)
        if out:
            reading = self._reading
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
            self._finish(exc)
            return False
        finally:
            self._in_dispatch = False
        return self.messages_out != before

    def _set_interest(self, reading: bool, writing: bool) -> None:
        if reading == self._reading and writing == self._writing:
            return
        self._reading = reading
        self._writing = writing
        events = (_READ if reading else 0) | (_WRITE if writing else 0)
        if events:
            self._engine.selector.modify(self._sock, events, self.on_event)

    def deadline(self) -> float:
        limits = self._engine.limits
        deadline = self._last_active + limits.idle_timeout
        if self._decoder.buffered:
            deadline = min(deadline, self._message_started + limits.read_timeout)
        return deadline

    def expire(self) -> None:
        limits = self._engine.limits
        error: Exception
        if self._out and not self._reading:
            error = WriteTimeout(f"peer did not read for {limits.idle_timeout:g}s")
        elif self._decoder.buffered and self._message_started + limits.read_timeout <= self._engine.now:
            error = ReadTimeout(f"message not finished within {limits.read_timeout:g}s")
        else:
            error = IdleTimeout(f"idle for {limits.idle_timeout:g}s")
        self._finish(error)

    def stop_check(self) -> None:
        """On stop: serve bytes already received; close if then idle."""
        if self._finished or self._decoder.buffered or self._out:
            return
        self._on_readable()
        if not self._closed and not self._decoder.buffered and not self._out:
            self.close()

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._closed = True
        engine = self._engine
        try:
            engine.selector.unregister(self._sock)
        except (KeyError, ValueError):
            pass
        # Count and log before the peer can see the close, so stats never lag it.
        engine.connection_finished(self, self._addr)
        engine.report_close(self, error)
        self._sock.close()
        self._out = bytearray()
        try:
            self._dispatch.closed(error)
        except Exception as exc:
            engine.stats.error("handler")
            log.error("%s: on_close raised %s: %s", self.peer_url, type(exc).__name__, exc, exc_info=exc)


class ReactorEngine(Engine):
    """The single-threaded event loop; the selector is chosen by ``selector_name``."""

    name: ClassVar[str] = "reactor"
    selector_name: ClassVar[str] = "auto"

    def serve(self) -> None:
        self.selector = selector_class(self.selector_name)()
        self.loop_thread = threading.get_ident()
        self.now = time.monotonic()
        self.dirty: list[ReactorConnection] = []
        self._connections: set[ReactorConnection] = set()
        self._timers: list[tuple[float, int, ReactorConnection]] = []
        self._sequence = itertools.count()
        self._calls: deque[Callable[[], None]] = deque()
        self._accepting = False
        self._datagram_counters: list[Counters] = []
        self._drained = False
        try:
            self.selector.register(self._wake_r, _READ, self._on_wake)
            self._register_listeners()
            self._set_accepting(True)
            self._run()
        finally:
            for conn in list(self._connections):
                conn._finish(ClosedError("server stopped"))
            for counters in self._datagram_counters:
                self.stats.untrack(counters, connection=False)
            self.selector.close()
            self.close_listeners()
            self.close_wakers()

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread soon. Safe from any thread."""
        self._calls.append(fn)
        self.wake()

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        selector = self.selector
        timers = self._timers
        while True:
            if self.stopping:
                if not self._drained:
                    self._begin_drain()
                if not self._connections:
                    return
                if self.now >= self.deadline:
                    log.warning(
                        "grace period over: closing %d connection(s) still open", len(self._connections)
                    )
                    return
            timeout: float | None = None
            if timers:
                timeout = max(0.0, timers[0][0] - self.now)
            if self.stopping:
                remaining = max(0.0, self.deadline - self.now)
                timeout = remaining if timeout is None else min(timeout, remaining)
            if not self._accepting and not self.stopping and self.accept_paused:
                resume = self.accept_resume_in
                timeout = resume if timeout is None else min(timeout, resume)
            if self.dirty:
                timeout = 0  # producers have more to send: poll, do not wait
            events = selector.select(timeout)
            self.now = time.monotonic()
            for key, mask in events:
                key.data(mask)
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

    def _on_wake(self, mask: int) -> None:
        self._drain_wake()

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
            due, _, conn = heapq.heappop(timers)
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
        heapq.heappush(self._timers, (deadline, next(self._sequence), conn))

    # -- listeners ---------------------------------------------------------------------

    def _register_listeners(self) -> None:
        for listener in self.listeners:
            listener.sock.setblocking(False)
            if not listener.endpoint.is_stream:
                counters = Counters()
                self.stats.track(counters, connection=False)
                self._datagram_counters.append(counters)
                handle = self.handler.datagram_handler()
                self.selector.register(
                    listener.sock, _READ, _DatagramReader(self, listener, handle, counters)
                )

    def _set_accepting(self, accepting: bool) -> None:
        if accepting and (self.accept_paused or len(self._connections) >= self.limits.max_connections):
            return
        if accepting == self._accepting:
            return
        self._accepting = accepting
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                if accepting:
                    self.selector.register(listener.sock, _READ, _Acceptor(self, listener))
                else:
                    self.selector.unregister(listener.sock)

    def accept_burst(self, listener: Listener) -> None:
        for _ in range(_BURST):
            if len(self._connections) >= self.limits.max_connections:
                self._set_accepting(False)
                return
            accepted = self.accept(listener)
            if accepted is None:
                if self.accept_paused:
                    self._set_accepting(False)
                return
            self._add_connection(*accepted, listener.endpoint.scheme)

    def _add_connection(self, sock: socket.socket, addr: Any, scheme: str) -> None:
        sock.setblocking(False)
        try:
            conn = ReactorConnection(sock, addr, self, scheme)
        except OSError as exc:
            log.debug("connection from %r lost at once: %s", addr, exc)
            sock.close()
            self.release(addr)
            return
        try:
            self.selector.register(sock, _READ, conn.on_event)
        except ValueError as exc:  # select() cannot watch descriptors >= FD_SETSIZE
            log.error("%s: cannot watch this socket (%s); use the poll or epoll engine", conn.peer_url, exc)
            self.stats.rejected()
            sock.close()
            self.release(addr)
            return
        self._connections.add(conn)
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

    def connection_finished(self, conn: ReactorConnection, addr: Any) -> None:
        self._connections.discard(conn)
        self.stats.untrack(conn)
        self.release(addr)

    # -- stopping ------------------------------------------------------------------------

    def _begin_drain(self) -> None:
        """Stop accepting; serve what already arrived; close idle connections."""
        self._drained = True
        for listener in self.listeners:
            if listener.endpoint.is_stream:
                while len(self._connections) < self.limits.max_connections:
                    accepted = self.accept(listener)
                    if accepted is None:
                        break
                    self._add_connection(*accepted, listener.endpoint.scheme)
            else:
                key = self.selector.get_key(listener.sock)
                key.data(_READ)
        self._set_accepting(False)
        for listener in self.listeners:
            if not listener.endpoint.is_stream:
                self.selector.unregister(listener.sock)
        self.close_listeners()
        for conn in list(self._connections):
            conn.stop_check()


class _Acceptor:
    """Selector callback: accept a burst of connections from one listener."""

    __slots__ = ("engine", "listener")

    def __init__(self, engine: ReactorEngine, listener: Listener) -> None:
        self.engine = engine
        self.listener = listener

    def __call__(self, mask: int) -> None:
        self.engine.accept_burst(self.listener)


class _DatagramReader:
    """Selector callback: answer the datagrams waiting on one socket."""

    __slots__ = ("counters", "engine", "handle", "listener")

    def __init__(self, engine: ReactorEngine, listener: Listener, handle: Any, counters: Counters) -> None:
        self.engine = engine
        self.listener = listener
        self.handle = handle
        self.counters = counters

    def __call__(self, mask: int) -> None:
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
