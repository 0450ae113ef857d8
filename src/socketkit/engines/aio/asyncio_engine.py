"""asyncio: socketkit's sessions on an asyncio event loop.

Why: an application that already lives on asyncio (asyncpg, aiohttp clients)
gets socketkit's codecs, limits, stats and graceful stop on its own loop
(``await server.serve()``); ``engine="uvloop"`` runs the same on uvloop's
loop (:mod:`.uvloop_engine`). Each connection's ``asyncio.BufferedProtocol`` is
its session's transport (:class:`AsyncioTransport`, a
:class:`socketkit.session.Transport`): the loop's callbacks feed the session,
and the session's output goes to the loop's transport. This module only waits,
accepts and stops, as every engine does.

- **Accepting** goes through the same gate as the other engines (per-IP
  limit, EMFILE backoff): the listening socket is watched with ``add_reader``,
  and each accepted socket becomes a transport with ``connect_accepted_socket``;
  at ``max_connections`` the listener is not watched, so newcomers wait in the
  backlog.
- **Backpressure**: the transport's write buffer is bounded by
  ``write_buffer_high``/``_low``; while it is full, output stays in the
  session, which stops reading from that peer above ``write_buffer_high`` and
  times it out (write_timeout) if it reads nothing for ``idle_timeout``.
- **Deadlines**: one heap for every connection and one ``call_at`` for its
  first entry, pushed back lazily (:mod:`..common.deadlines`, as the reactor does): no
  timer object per connection.
- **Stopping**: listeners are closed (what waits in the backlog is served first),
  idle connections end once nothing more is waiting on their socket (a peek),
  busy ones after their replies (each flush while stopping looks again), the
  rest at the grace deadline: one loop timer, no polling.

Handlers run on the loop, so they must not block (``@blocking`` handlers are
refused; use the pool engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import socket
import sys
import time
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, ClassVar, cast

from ...endpoints import Listener
from ...errors import BrokenError, ClosedError, Timeout, translate_oserror
from ...session import CLOSED, CLOSING, OPEN, Session, Transport
from ..base import BURST, Engine, log
from ..common import linger
from ..common.datagrams import RECV_SIZE, WaitingDatagrams
from ..common.deadlines import Deadlines, rearm_soon
from ..common.stall import StallWatch

__all__ = ["AsyncioEngine"]

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


class AsyncioTransport(Transport, asyncio.BufferedProtocol):
    """A connection's asyncio protocol: the loop's callbacks feed its session (reading into
    the engine's one read buffer, so a read is at most RECV_SIZE, as on every engine), and
    the session's output goes to the asyncio transport (``_stream``)."""

    __slots__ = (
        "_engine",
        "_flush_due",
        "_paused",
        "_sock",
        "_stream",
        "_writable",
        "session",
    )

    def __init__(self, engine: AsyncioEngine, peer: Any, listener: Listener, sock: socket.socket) -> None:
        self._engine = engine
        #: the accepted socket, which the loop's transport owns (asyncio's and uvloop's keep
        #: this very object, and close it): only looked at, for a peek
        self._sock = sock
        self._stream: asyncio.Transport | None = None
        self._writable = True  # the transport's write buffer is below its high mark
        self._paused = False  # reading is paused on the transport
        self._flush_due = False  # a flush is scheduled for this loop iteration
        self.session = Session(
            engine,
            self,
            peer,
            listener.accepted_local,
            listener.endpoint.scheme,
            engine.loop.time(),
            listener.layer_factories,
            listener.url,
        )

    def local_address(self) -> Any:
        return None if self._stream is None else self._stream.get_extra_info("sockname")

    # -- the transport's callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._stream = stream = cast(asyncio.Transport, transport)  # a stream transport
        limits = self._engine.limits
        stream.set_write_buffer_limits(high=limits.write_buffer_high, low=limits.write_buffer_low)
        session = self.session
        self._engine.opened(self)
        self._engine.schedule(session, session.deadline())
        session.start()
        self._flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._engine.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.data_received(bytes(self._engine.read_buffer[:nbytes]))
        except (KeyboardInterrupt, SystemExit) as exc:
            # A second Ctrl-C raised inside a handler. uvloop would take it for this transport's
            # fatal error and go on; raised from a plain callback, it ends the loop, as on asyncio.
            self._engine.loop.call_soon(_raise, exc)
        except Exception as exc:  # this connection's own: never the loop's "Fatal error" traceback
            self.session.fail(exc)

    def data_received(self, data: bytes) -> None:
        engine = self._engine
        session = self.session
        now = engine.loop.time()
        session.received(data, now)
        if session.in_message and session.message_started == now:  # a message started: read_timeout
            deadline = now + engine.limits.read_timeout
            if deadline < session.timer_at:
                engine.schedule(session, deadline)
        self._flush()

    def eof_received(self) -> bool:
        try:
            self.session.received(b"", self._engine.loop.time())
            self._flush()
        except Exception as exc:
            self.session.fail(exc)
        return True  # half-closed: our replies may still go out; we close when done

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.session
        if session.phase is CLOSED:
            return
        if exc is None:
            session.finish(ClosedError(f"{session.peer_url} closed the connection"))
        else:
            session.finish(translate_oserror(exc, session.peer_url) if isinstance(exc, OSError) else exc)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._flush()

    # -- output, reading, closing ----------------------------------------------------------

    def _flush(self) -> None:
        """Hand output to the transport, let a producer add more, match reading to the
        session's wish, and finish a closing connection once its output is out."""
        self._flush_due = False
        session = self.session
        if session.phase is CLOSED or self._stream is None:
            return
        self._hand_over()
        if session.dispatch.wants_drain:
            for _ in range(16):
                if not self._writable or not session.producing or not session.produce():
                    break
                self._hand_over()
            else:
                self.output_added()  # still producing: go on next iteration
        if session.phase is OPEN and self._engine.stopping:
            self._end_if_idle()
            self._hand_over()  # its goodbye, if it ended (a TLS close_notify)
        if session.phase is CLOSING and not session.out:
            session.finish()
            return
        reading = session.reading and session.phase is OPEN
        if reading == self._paused:
            self._paused = not reading
            if reading:
                self._stream.resume_reading()
            else:
                self._stream.pause_reading()

    def _end_if_idle(self) -> None:
        """Stopping: end this connection if it is idle and none of its bytes wait unread (they
        are read and answered first: its next flush looks again). A new one waits for its
        first request until :meth:`Session.fresh_until`, on a loop timer."""
        session = self.session
        if not session.idle or self.waiting_input():
            return
        loop = self._engine.loop
        session.quiet(loop.time())
        fresh = session.fresh_until() if session.phase is OPEN else None
        if fresh is not None:
            loop.call_at(fresh, self._flush)

    def stop_began(self) -> None:
        """The engine began to stop: an idle connection ends now; the others as they become
        idle (each flush looks), or at the grace deadline."""
        self._flush()

    def _hand_over(self) -> None:
        """The session's output to the transport, unless its buffer is full."""
        out = self.session.out
        while out and self._writable and self._stream is not None:  # (sent() may refill it: sendfile)
            data = bytes(out)
            self._stream.write(data)
            self.session.sent(len(data), self._engine.loop.time())

    def output_added(self) -> None:
        session = self.session
        if session.phase is CLOSED:
            return
        if (error := session.foreign_overflow(len(session.out))) is not None:
            session.finish(error)
            if self._stream is not None:
                self._stream.abort()  # it does not read: what its buffer holds would never leave
            return
        if not self._flush_due:
            self._flush_due = True
            self._engine.loop.call_soon(self._flush)

    def send_from_elsewhere(self, data: bytes) -> None:
        self._engine.call_soon_threadsafe(functools.partial(self.session.queue, data))

    def deadline_moved(self) -> None:
        rearm_soon(self._engine, self.session)

    def close_from_elsewhere(self) -> None:
        self._engine.call_soon_threadsafe(self.session.close)

    def release(self) -> None:
        stream = self._stream
        if stream is None:
            return
        session = self.session
        if self._engine.cutting or isinstance(session.error, (Timeout, BrokenError)):
            # the grace period is over, or the peer does not read or is gone: nothing more
            # goes out (close() would wait for the transport's buffer to drain)
            stream.abort()
            return
        # What the transport holds still goes out (an error reply): after a lingering close's
        # wait for the peer's end, or at once; either way for idle_timeout at most.
        if not (session.may_linger and self._lingers(stream)):
            stream.close()
        if stream.get_write_buffer_size():
            self._engine.loop.call_later(self._engine.limits.idle_timeout, stream.abort)

    def _lingers(self, stream: asyncio.Transport) -> bool:
        """Begin a lingering close (``common/linger``) where input waits (closing now would reset): the
        sending side ends after what the transport holds, and the transport goes to a
        :class:`_Lingering` protocol that discards input until the peer ends it too, for
        LINGER_TIME and LINGER_BYTES at most."""
        if not stream.can_write_eof() or not (self.waiting_input() or self.session.answer_due):
            return False
        stream.write_eof()
        stream.set_protocol(_Lingering(stream))
        if self._paused:
            stream.resume_reading()
        self._engine.loop.call_later(linger.LINGER_TIME, stream.close)
        return True

    def waiting_input(self) -> bool:
        """Whether bytes wait in the kernel for this connection (a peek: one system call on
        the accepted socket, which the transport still holds open)."""
        try:
            return bool(self._sock.recv(1, _PEEK))
        except OSError:  # nothing waiting, or closed
            return False


class AwaitingTransport(AsyncioTransport):
    """A connection whose handler has ``async def`` parts (:attr:`Handler.awaited`): each
    message is awaited in a task, one at a time (:attr:`Transport.defers`); an async
    ``on_connect`` is awaited before the first message, and an async ``on_close`` runs as a
    task of its own. Reading goes on while a message is awaited, so a peer that disconnects
    is noticed and its handler cancelled."""

    __slots__ = ("_task",)

    defers: ClassVar[bool] = True

    def __init__(self, *args: Any) -> None:
        self._task: asyncio.Task[None] | None = None  # the handler call awaited now
        super().__init__(*args)

    def connect_elsewhere(self) -> bool:
        if "on_connect" not in self._engine.handler.awaited:
            return False
        self._task = self._engine.loop.create_task(
            self._awaited(self.session.dispatch.awaited_connect(), False)
        )
        return True

    def run_elsewhere(self, message: Any) -> None:
        dispatch = self.session.dispatch
        if "on_message" not in self._engine.handler.awaited:  # (a Protocol with async on_connect)
            self._task = self._engine.loop.create_task(self._awaited(_returned(dispatch.message, message)))
            return
        self._task = self._engine.loop.create_task(self._awaited(dispatch.awaited(message)))

    async def _awaited(self, call: Awaitable[None], replies: bool = True) -> None:
        """Await one handler call; then the next message starts, or what waited for it
        happens. A call that raises gets the codec's failure reply if it ``replies`` (a
        message), not if it is on_connect."""
        session = self.session
        answered = session.messages_out
        latency = session.latency if replies else None
        started = self._engine.loop.time()
        error: Exception | None = None
        try:
            await call
        except asyncio.CancelledError:
            return  # the connection is gone (and on_close was told)
        except ClosedError:
            pass  # it closed while the handler worked: nowhere to reply
        except Exception as exc:
            error = exc
        if latency is not None:
            latency.observe(self._engine.loop.time() - started)
        self._task = None
        session.handled(error, session.messages_out != answered or not replies)
        self._flush()

    def tell_closed_elsewhere(self, error: BaseException | None) -> bool:
        if "on_close" not in self._engine.handler.awaited:
            return False
        self._engine.spawn(self._closing(error))
        return True

    async def _closing(self, error: BaseException | None) -> None:
        try:
            await self.session.dispatch.awaited_close(error)
        except Exception as exc:
            self.session.on_close_failed(exc)

    def cancel_running(self) -> bool:
        if self._task is None:
            return False
        self._task.cancel()  # the handler's await ends with CancelledError
        self._task = None
        return True


class _Lingering(asyncio.Protocol):
    """A closed connection's transport in a lingering close: what the peer still sends is
    discarded, LINGER_BYTES at most, and its end of input closes the transport."""

    __slots__ = ("left", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.left = linger.LINGER_BYTES

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left <= 0:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # the peer is done too: the transport closes


async def _returned(fn: Any, message: Any) -> None:
    fn(message)


#: what the stall watch says to do about a handler that holds the loop
_STALL_FIX = (
    "Await what it waits for (an async def handler), or mark it @socketkit.blocking and serve "
    "it with engine='pool' (or 'threads')."
)


def _raise(exc: BaseException) -> None:
    raise exc


class AsyncioEngine(Engine):
    """socketkit on an asyncio loop (see the module notes)."""

    name: ClassVar[str] = "asyncio"
    loop_runs_handlers: ClassVar[bool] = True
    #: ``async def`` handlers are awaited here, one message at a time per connection
    awaits_handlers: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment] # set when serving
        self._conns: dict[Session, AsyncioTransport] = {}  # each open connection's transport
        self._accepting = False
        self._done: asyncio.Future[None] | None = None
        # datagram listeners are read with add_reader and recvfrom, as the reactor reads
        # them, not through datagram transports (whose unix sender addresses uvloop mangles)
        self._datagram_readers: dict[int, WaitingDatagrams] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # connections being set up
        self._closings: set[asyncio.Task[None]] = set()  # async on_close calls running
        self._draining = False
        self._cut_timer: asyncio.TimerHandle | None = None  # the grace deadline, while stopping
        self.deadlines = Deadlines(lambda: list(self._conns))  # every connection's, on one loop timer
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_timer_at = math.inf
        self.cutting = False  # the grace deadline passed: connections are aborted, not flushed
        #: every connection reads into this, one at a time (the loop runs one callback at once)
        self.read_buffer = memoryview(bytearray(RECV_SIZE))
        #: an ``async def`` handler's messages are awaited, one at a time per connection
        self.connection_class = AwaitingTransport if self.handler.is_async else AsyncioTransport
        # The loop run() will use, made now, while the server is being set up: its descriptors
        # (epoll, a self-pipe) are taken before start() returns, not later on another thread.
        self._own_loop: asyncio.AbstractEventLoop | None = self.new_loop()

    # -- running -------------------------------------------------------------------------------

    def new_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    def run(self) -> None:
        loop, self._own_loop = self._own_loop, None
        if loop is None:
            loop = self.new_loop()
        serving = loop.create_task(self.serve_async())
        try:
            loop.run_until_complete(serving)
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException:
            # A second Ctrl-C raised in the loop itself (uvloop takes signals there), not in
            # the serving task: the task's own ending (every connection cut) runs now, so the
            # loop closes with nothing pending, as asyncio.run() does it.
            if not serving.done():
                serving.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(serving)
            raise
        finally:
            loop.close()

    async def serve_async(self) -> None:
        """Serve on the running loop until stopped (``await server.serve()``)."""
        self.loop = asyncio.get_running_loop()
        if self._own_loop is not None:  # serving on the caller's loop: the one made is not needed
            self._own_loop.close()
            self._own_loop = None
        self._done = self.loop.create_future()
        self.loop.add_reader(self._wake_r.fileno(), self._on_wake)
        stall = StallWatch(
            self.name, self.handler.name, _STALL_FIX, self.call_soon_threadsafe, self.limits.stall_warning
        )
        stall.start()
        try:
            for listener in self.listeners:
                listener.sock.setblocking(False)
                if not listener.endpoint.is_stream:
                    reader = WaitingDatagrams(self, listener, BURST)
                    self.loop.add_reader(listener.fileno(), reader)
                    self._datagram_readers[listener.fileno()] = reader
            for sock, peer, origin in self.take_adopted():
                self._connect(sock, peer, origin)
            self._end_if_nothing_left()
            self._set_accepting(True)
            if self.stopping:
                self._on_wake()
            await self._done
        finally:
            stall.stop()
            self.loop.remove_reader(self._wake_r.fileno())
            self._set_accepting(False)
            self.cutting = True
            for conn in list(self._conns):
                conn.finish(ClosedError("server stopped"))
            self.stop_datagrams()
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            if self._cut_timer is not None:
                self._cut_timer.cancel()
            if self._closings:  # async on_close calls get what is left of the grace period
                left = max(0.0, self.deadline - self.loop.time()) if self.stopping else 0.0
                await asyncio.wait(set(self._closings), timeout=left)
                for task in list(self._closings):
                    task.cancel()
            await asyncio.sleep(0)  # let the transports close

    def call_soon_threadsafe(self, fn: Any) -> None:
        loop = self.loop
        if loop is None:  # not serving yet: queued, and run once the loop watches the wake socket
            super().call_soon_threadsafe(fn)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    def _on_wake(self) -> None:
        self.drain_wake()
        self.run_calls()
        if self.stopping and not self._draining:
            self._draining = True
            self.begin_stop()
        elif self._draining:
            self._arm_cut()  # stop() again, with a shorter grace

    # -- accepting -------------------------------------------------------------------------------

    def _set_accepting(self, accepting: bool) -> None:
        if accepting and (
            self.stopping or self.gate.paused or len(self._conns) >= self.limits.max_connections
        ):
            return
        if accepting == self._accepting:
            return
        self._accepting = accepting
        for listener in self.listeners:
            if listener.endpoint.is_stream and listener.sock.fileno() != -1:
                if accepting:
                    self.loop.add_reader(listener.fileno(), self._accept_burst, listener)
                else:
                    self.loop.remove_reader(listener.fileno())

    def _accept_burst(self, listener: Listener) -> None:
        if not self.accept_waiting(listener, self._open_count, self._connect):
            self._set_accepting(False)
            if self.gate.paused:
                self.loop.call_later(self.gate.resume_in, self._resume_accepting)

    def _open_count(self) -> int:
        """Connections open or being set up (one whose transport is made counts twice until its
        set-up task ends, a moment later: then accepting resumes, see _transport_made)."""
        return len(self._conns) + len(self._tasks)

    def _resume_accepting(self) -> None:
        """The pause after running out of descriptors is over (a timer may fire a little early:
        then it waits the rest)."""
        if self.gate.paused:
            self.loop.call_later(max(self.gate.resume_in, 0.001), self._resume_accepting)
        else:
            self._set_accepting(True)

    def _connect(self, sock: socket.socket, peer: Any, listener: Listener) -> None:
        sock.setblocking(False)
        task = self.loop.create_task(
            self.loop.connect_accepted_socket(lambda: self.connection_class(self, peer, listener, sock), sock)
        )
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._transport_made, sock, peer, listener))

    def _transport_made(
        self, sock: socket.socket, peer: Any, listener: Listener, task: asyncio.Task[Any]
    ) -> None:
        """The transport is made (it owns the socket now), or the peer went away first."""
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            log.debug("a connection was lost as it was set up: %s", error)
            sock.close()
            if listener.counts_per_ip:  # counted at accept, and no session will release it
                self.gate.release(peer)
        if not self._accepting and not self.stopping:
            self._set_accepting(True)  # it paused while this one was set up (and counted twice)
        self._end_if_nothing_left()
        self._check_done()

    # -- what sessions call -----------------------------------------------------------------------

    def spawn(self, call: Coroutine[Any, Any, None]) -> None:
        """Run an async on_close; serving ends once it has, or at the grace deadline."""
        task = self.loop.create_task(call)
        self._closings.add(task)
        task.add_done_callback(self._closings.discard)

    def schedule(self, conn: Session, when: float) -> None:
        """(Re)arm ``conn``'s deadline (see :mod:`..common.deadlines`): one loop timer serves them all."""
        self.deadlines.schedule(conn, when, len(self._conns))
        if when < self._deadline_timer_at:
            self._arm_deadlines(when)

    def _arm_deadlines(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer_at = when
        self._deadline_timer = self.loop.call_at(when, self._on_deadlines)

    def _on_deadlines(self) -> None:
        # the timer may fire a little before its time (uvloop counts milliseconds): it is due
        now = max(self.loop.time(), self._deadline_timer_at)
        self._deadline_timer = None
        self._deadline_timer_at = math.inf
        self.deadlines.run(now, len(self._conns))
        when = self.deadlines.next_due()
        if when is not None:
            self._arm_deadlines(when)

    def opened(self, transport: AsyncioTransport) -> None:
        self._conns[transport.session] = transport
        self.stats.track(transport.session)

    def connection_finished(self, session: Session) -> None:
        self._conns.pop(session, None)
        self.deadlines.compact(len(self._conns))
        self.stats.untrack(session)
        if session.per_ip_counted:
            self.gate.release(session.peer)
        if not self.stopping:
            self._set_accepting(True)
        self._end_if_nothing_left()
        self._check_done()

    def _end_if_nothing_left(self) -> None:
        """Serving only adopted connections: once the last has closed, stop. (Its transport's
        set-up task may finish after the connection did: checked then too.)"""
        if self.ends_with_adopted and not self._conns and not self._tasks and not self.stopping:
            self.stop(0)

    def open_connections(self) -> Sequence[Session]:
        return list(self._conns)

    # -- stopping -------------------------------------------------------------------------------

    # -- the stop sequence's primitives (Engine.begin_stop) --------------------------------------

    def stop_accepting(self) -> None:
        self._set_accepting(False)

    def take_backlog(self, listener: Listener) -> None:
        self.accept_waiting(listener, self._open_count, self._connect, sys.maxsize)

    def answer_queued(self, listener: Listener) -> None:
        reader = self._datagram_readers.get(listener.fileno())
        if reader is not None:
            reader()

    def stop_datagrams(self) -> None:
        """No more datagrams are read (their descriptors may be closed and reused after)."""
        for fd, reader in self._datagram_readers.items():
            self.loop.remove_reader(fd)
            reader.close()
        self._datagram_readers.clear()

    def end_idle(self) -> None:
        self._arm_cut()
        # After this iteration's reads: what arrived before the stop is read, then answered.
        self.loop.call_soon(self._sweep)

    def _sweep(self) -> None:
        for transport in list(self._conns.values()):
            transport.stop_began()
        self._check_done()

    def _arm_cut(self) -> None:
        """The grace deadline as one loop timer (armed again when a later stop() lowers it)."""
        if self._cut_timer is not None:
            self._cut_timer.cancel()
        self._cut_timer = self.loop.call_later(max(0.0, self.deadline - time.monotonic()), self._cut)

    def _cut(self) -> None:
        self._cut_timer = None
        if self._conns or self._tasks:
            self.cut_at_grace()

    def cut_all(self) -> None:
        self.cutting = True
        for conn in list(self._conns):
            conn.finish(ClosedError("server stopped"))
        for task in list(self._tasks):
            task.cancel()
        self._finish_serving()

    def _check_done(self) -> bool:
        if self.stopping and self._draining and not self._conns and not self._tasks:
            self._finish_serving()
            return True
        return False

    def _finish_serving(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def stopped(self) -> None:
        pass  # the wake socket reaches the loop (base.stop writes to it)
