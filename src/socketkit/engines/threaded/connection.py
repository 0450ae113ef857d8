"""Thread-owned connections: the session's I/O on the iterative and threads engines.

Why blocking sockets with kernel timeouts: the tutorials' ``recv`` in a loop
is the cheapest wait there is: a read that finds its bytes there is one system
call, and a wait between messages two (a blocking ``MSG_PEEK``, then the read).
A socket with a Python timeout costs CPython a ``poll`` before every ``recv``;
instead the socket stays in blocking mode and the kernel enforces the
deadlines (``SO_RCVTIMEO`` for idle and read timeouts, ``SO_SNDTIMEO`` for a
peer that does not read). ``stop()`` reaches a thread parked between messages
by shutting down the reading side of its socket (:meth:`ThreadedTransport.wake`),
unless bytes wait unread: the wait only looks until a byte arrives and takes
it under the lock the wake-up holds, so a message that has begun is never cut
by the stop. A thread in the middle of a message is left to finish it until
the grace deadline, when its socket is shut down altogether.

The connection's life is its session (``socketkit.session``): replies made
while a batch of messages is dispatched collect in the session's output and go
out as one ``send`` when the batch is done (pipelined requests get one write);
writes from other threads never block (``MSG_DONTWAIT``; what the kernel does
not take waits in an outbox for the flusher thread); blocking handlers' writes
wait for the peer to read for at most ``idle_timeout``.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ...endpoints import Listener
from ...errors import ClosedError, SocketkitError, translate_oserror
from ...session import INPUT_ENDED, OPEN, Session, SessionHost, Transport
from ..common import linger
from ..common.datagrams import RECV_SIZE

if TYPE_CHECKING:
    from ...session.file_source import FileSource
    from .flusher import OutboxFlusher

__all__ = ["ThreadHost", "ThreadedTransport"]

_DONTWAIT = socket.MSG_DONTWAIT
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_PEEK_WAIT = socket.MSG_PEEK  # wait for a byte, and leave it there
_PARKED_RECV_SIZE = 1024  # bytes read at once between messages, until the peer sends more
_SENDFILE_CHUNK = 1 << 20  # bytes one os.sendfile call is asked for
_TIMEOUT_SLACK = 0.05  # seconds a kernel read timeout may be longer than the deadline it serves


class ThreadHost(SessionHost[Session], Protocol):
    """What a thread-owned connection needs of its engine beyond a session's needs."""

    def flusher(self) -> OutboxFlusher:
        """The thread that flushes output other threads queued, made on first use."""
        ...

    @property
    def existing_flusher(self) -> OutboxFlusher | None:
        """The flusher if one was made."""
        ...


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (at least 1 µs: zero means "never")."""
    micros = max(1, round(seconds * 1_000_000))
    return struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)


class ThreadedTransport(Transport):
    """A connection's socket, served by one thread (blocking, with kernel timeouts), feeding
    its session."""

    __slots__ = (
        "_big_reads",
        "_close_asked",
        "_cut_off",
        "_engine",
        "_lock",
        "_outbox",
        "_park_lock",
        "_parked",
        "_rcvtimeo",
        "_sndtimeo",
        "_sock",
        "session",
    )

    def __init__(self, sock: socket.socket, peer: Any, engine: ThreadHost, listener: Listener) -> None:
        # The socket's writes, the outbox and (with TLS) the layers, against other threads;
        # re-entrant: a layer's own output is written while its input is being read.
        self._lock = threading.RLock()
        self._outbox = bytearray()  # what other threads sent that the kernel did not take yet
        self._sock = sock
        self._engine = engine
        # The kernel timeouts are set on first need: a connection whose request
        # is already there and whose reply fits the send buffer needs neither.
        self._rcvtimeo = 0.0  # SO_RCVTIMEO now (0: not set)
        self._sndtimeo = False  # whether SO_SNDTIMEO is set
        self._parked = False  # waiting between messages: stop() may end the wait
        # wake() and a thread leaving its wait between messages, one at a time; re-entrant:
        # on iterative a signal's stop() runs on the connection's own thread
        self._park_lock = threading.RLock()
        self._big_reads = False  # the peer sent _PARKED_RECV_SIZE or more at once
        self._cut_off: BaseException | None = None  # why another thread cut this connection off
        self._close_asked = False  # another thread's close(): the end of input its wake-up makes
        self.session = Session(
            engine,
            self,
            peer,
            listener.accepted_local,
            listener.endpoint.scheme,
            time.monotonic(),
            listener.layer_factories,
            listener.url,
        )

    @property
    def peer_url(self) -> str:
        return self.session.peer_url

    def layer_output(self) -> tuple[Callable[[bytes], object], threading.RLock]:
        # With layers (TLS) every record goes through the outbox, in the order made, so a
        # record made on another thread can never overtake one made here, or the reverse.
        return self._outbox.extend, self._lock

    def local_address(self) -> Any:
        try:
            return self._sock.getsockname()
        except OSError:
            return None

    def unsent(self) -> int:
        return len(self._outbox)

    # -- the thread's loop -----------------------------------------------------------------

    def serve(self) -> None:
        """Serve this connection in the calling thread until it ends; the close sequence runs here."""
        engine = self._engine
        session = self.session
        engine.stats.track(session)
        error: BaseException | None = None
        try:
            session.start()
            if engine.handler.is_blocking:
                try:
                    engine.handler.run_blocking(session)
                except Exception as exc:
                    error = exc  # the handler raised (or its connection broke under it)
                    return
                session.blocking_returned(None)  # its replies flush, then the connection ends
            else:
                wants_drain = session.dispatch.wants_drain
                monotonic = time.monotonic
                out = session.out
                self._write_out()
                while session.phase is OPEN:
                    if wants_drain and session.producing and not engine.stopping:
                        # A producer: write (blocking is the backpressure), then
                        # look at input without waiting, to notice the peer leave.
                        produced = session.produce()
                        self._write_out()
                        if session.phase is not OPEN:
                            break
                        self._read_once(wait=not produced)
                    else:  # the request/reply loop: read, dispatch, write the replies
                        data = self._read()
                        if data is not None:
                            session.received(data, monotonic())
                    if out or self._outbox:
                        self._write_out()
            self._write_out()
        except Exception as exc:
            if self._cut_off is None:  # (else it ends for why it was cut off, below)
                session.fail(exc)
        finally:
            session.finish(self._cut_off or error)

    def _read_once(self, wait: bool) -> None:
        """Read once and feed the session; without ``wait``, only what has already arrived."""
        data = self._read() if wait else self._recv_nowait()
        if data is not None:
            self.session.received(data, time.monotonic())

    def wait_for_input(self) -> None:
        self._write_out()
        self._read_once(wait=True)

    def output_added(self) -> None:
        self._write_out()

    # -- sends and closes from other threads -------------------------------------------------

    def hand_over_output(self) -> None:
        """After an event whose handler calls are serialized (``threaded/serial``), with the lock still
        held: its output joins the outbox, so a send another thread's handler makes next
        goes out behind it."""
        out = self.session.out
        if out:
            with self._lock:
                self._outbox += out
                out.clear()

    def send_from_elsewhere(self, data: bytes) -> None:
        """A send from another thread: never blocks; a peer that cannot keep up is cut off."""
        session = self.session
        with self._lock:
            if self._cut_off is not None:
                return
            if session.layers is not None:
                if session.phase is not OPEN and session.phase is not INPUT_ENDED:
                    return  # closing: nothing is wrapped after the layers' goodbye
                data = session.layers.wrap(data)
            session.messages_out += 1
            outbox = self._outbox
            if outbox:
                overflow = session.foreign_overflow(len(outbox))
                if overflow is not None:
                    self._cut(overflow)
                    return
                outbox += data
                return
            try:
                sent = self._send_nowait(data)
            except SocketkitError as exc:
                self._cut(exc)
                return
            if sent < len(data):
                outbox += memoryview(data)[sent:]
                self._engine.flusher().watch(self, self._sock.fileno())

    def flush_outbox(self) -> bool:
        """Send what the outbox holds without blocking (flusher thread); True once empty."""
        with self._lock:
            outbox = self._outbox
            if outbox and self._cut_off is None:
                sent = self._send_nowait(outbox)
                del outbox[:sent]
            return not outbox or self._cut_off is not None

    def _cut(self, error: BaseException) -> None:
        """Close this connection from another thread; its owner reports ``error``."""
        self._cut_off = error
        self._outbox.clear()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # the owner's wait ends and it finishes the connection
        except OSError:
            pass

    def close_from_elsewhere(self) -> None:
        if not self.session.close_asked_elsewhere():
            return  # (no more sends from here on; the owner's thread makes the transition)
        self._close_asked = True
        try:  # wake the owner's read; it finishes its batch and closes
            self._sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def release(self) -> None:
        flusher = self._engine.existing_flusher
        if flusher is not None:  # before the close: the descriptor's number may be reused
            flusher.unwatch(self._sock.fileno())
        if self.session.may_linger and linger.begin(self._sock, self.session.answer_due):
            self._linger()
        self._sock.close()

    def _linger(self) -> None:
        """Read and discard until the peer ends its input too, within LINGER_TIME and
        LINGER_BYTES (``common/linger``), in this connection's own thread."""
        until = time.monotonic() + linger.LINGER_TIME
        left = linger.LINGER_BYTES
        while left > 0:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(remaining))
                data = self._sock.recv(RECV_SIZE)
            except OSError:  # the time is up, or the connection broke or was cut at the grace deadline
                return
            if not data:
                return
            left -= len(data)

    def wake(self) -> None:
        """From stop(): end the wait of a thread parked between messages, unless it waits for
        a new connection's first request (the engine wakes it again when that wait is over).
        Signal-safe.

        Not while bytes wait unread: its thread is about to read them, and they may begin a
        message whose rest is still on its way (a socket shut down for reading would end
        that message at once); it sees the stop itself once it has served them."""
        fresh = self.session.fresh_until()
        if fresh is not None and fresh > time.monotonic():
            return
        with self._park_lock:
            if not self._parked:
                return
            try:
                if self._sock.recv(1, _PEEK):
                    return
            except OSError:  # nothing waiting (BlockingIOError), or no longer connected
                pass
            try:
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def abort(self) -> None:
        """The grace deadline passed: end this connection's I/O at once (any thread)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- I/O -----------------------------------------------------------------------------------

    def _read(self) -> bytes | None:
        """The next bytes from the peer (b"" at end of stream), within the deadlines.

        None when stopping found nothing more waiting (the session then ends the input).
        """
        engine = self._engine
        session = self.session
        while True:
            limits = session.limits  # (the server's, or the connection's own: set_limits)
            now = time.monotonic()
            fresh = session.fresh_until() if engine.stopping else None
            if fresh is not None and fresh <= now:
                fresh = None
            if not session.in_message:
                self._parked = True  # from here stop() shuts our reading down...
                if engine.stopping and fresh is None:  # ...or we see that it was called
                    self._parked = False
                    # Between messages while stopping: bytes that already arrived are
                    # served; otherwise this connection is done (unless it is new: see
                    # fresh_until, and then it waits for its first bytes until then).
                    data = self._recv_nowait()
                    if data is None:
                        session.quiet(now)
                    return data
            deadline = session.deadline()
            if deadline <= now:
                self._parked = False
                error = session.expired(now)
                if error is not None:
                    raise error
                continue  # (a layer's time came, a keepalive ping went: the wait goes on)
            # The kernel's timeout: the time left, but no more than the shorter
            # limit, so a message that starts later still meets its read deadline.
            wanted = min(min(deadline, fresh or deadline) - now, limits.idle_timeout, limits.read_timeout)
            flags = 0
            if not self._rcvtimeo:
                flags = _DONTWAIT  # the first read often finds its data there: no timeout needed yet
            elif abs(wanted - self._rcvtimeo) > _TIMEOUT_SLACK:
                self._set_rcvtimeo(wanted)
            # Small reads until the peer sends more at once: an idle thread then
            # holds a small buffer (measured: 3 KB less memory per idle connection).
            size = RECV_SIZE if session.in_message or self._big_reads else _PARKED_RECV_SIZE
            try:
                if self._parked:
                    received: bytes | None = self._parked_recv(size, flags)
                else:
                    received = self._sock.recv(size, flags)
            except BlockingIOError:
                received = None
            except OSError as exc:
                self._parked = False
                raise translate_oserror(exc, session.peer_url) from exc
            self._parked = False
            if received is None:  # none yet, or SO_RCVTIMEO ran out: the loop looks at the deadlines
                if not self._rcvtimeo:
                    self._set_rcvtimeo(wanted)
                continue
            data = received
            if len(data) >= _PARKED_RECV_SIZE:  # this peer sends more than that: read big from now on
                self._big_reads = True
            elif not data and self._close_asked:
                # Our own shutdown woke the read, not the peer's end of input: the server's
                # close, made here on the connection's thread (it lingers as any other).
                session.close()
                return None
            elif not data and session.in_message and engine.stopping:
                raise ClosedError("server stopped before the message was finished")
            return data

    def _parked_recv(self, size: int, flags: int) -> bytes:
        """A read between messages. A blocking one only looks until a byte arrives, and the
        bytes are taken, and the parked state left, under the lock wake() holds: so wake()
        either finds the bytes still in the socket (and does not shut reading down under the
        start of a message, which on a unix socket would refuse the rest), or shuts an idle
        connection down before they are taken."""
        if not flags:
            self._sock.recv(1, _PEEK_WAIT)  # raises BlockingIOError when SO_RCVTIMEO runs out
        with self._park_lock:
            self._parked = False
            return self._sock.recv(size, _DONTWAIT)

    def _set_rcvtimeo(self, seconds: float) -> None:
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
        except OSError as exc:
            raise translate_oserror(exc, self.peer_url) from exc
        self._rcvtimeo = seconds

    def _recv_nowait(self) -> bytes | None:
        """One non-blocking recv: the bytes (b"" at end of stream), or None if none are ready."""
        try:
            return self._sock.recv(RECV_SIZE, _DONTWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise translate_oserror(exc, self.peer_url) from exc

    def _send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """One non-blocking send: how many bytes the kernel took."""
        try:
            sent = self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise translate_oserror(exc, self.peer_url) from exc
        self.session.sent_aside(sent, time.monotonic())
        return sent

    def _write_out(self) -> None:
        """Send all of the session's output, waiting up to idle_timeout for the peer to read."""
        session = self.session
        if not session.out and not self._outbox:
            return
        with self._lock:
            out = session.out
            if self._outbox:  # what other threads queued goes first
                out[:0] = self._outbox
                self._outbox.clear()
            try:  # most replies fit the send buffer at once: one send, no timeout needed
                done = self._sock.send(out, 0 if self._sndtimeo else _DONTWAIT)
            except BlockingIOError:
                if self._sndtimeo:
                    raise session.write_timeout() from None
                done = 0
            except OSError as exc:
                raise translate_oserror(exc, session.peer_url) from exc
            session.sent(done, time.monotonic())
            while True:  # (sent() refills the output while a file is being sent: sendfile)
                if self._outbox:  # (with layers, a file's chunks come through the outbox)
                    out += self._outbox
                    self._outbox.clear()
                if not out:
                    break
                self._write_rest(out)

    def send_file(self, source: FileSource) -> None:
        """The kernel sends the file (``os.sendfile``), after the session's output; a peer
        that takes nothing for idle_timeout is a write timeout, as for any send."""
        self._write_out()
        fd = source.fd
        assert fd is not None
        session = self.session
        with self._lock:
            self._keep_send_timeout()
            sock = self._sock.fileno()
            while source.left:
                try:
                    sent = os.sendfile(sock, fd, source.offset, min(source.left, _SENDFILE_CHUNK))
                except BlockingIOError:
                    raise session.write_timeout() from None
                except OSError as exc:
                    raise translate_oserror(exc, session.peer_url) from exc
                if not sent:
                    break  # the file is shorter than said
                source.advance(sent)
                session.sent_aside(sent, time.monotonic())

    def _keep_send_timeout(self) -> None:
        """SO_SNDTIMEO at idle_timeout, set on first need: a send that waits longer fails."""
        if not self._sndtimeo:
            try:
                self._sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self.session.limits.idle_timeout)
                )
            except OSError as exc:
                raise translate_oserror(exc, self.peer_url) from exc
            self._sndtimeo = True

    def _write_rest(self, out: bytearray) -> None:
        """The peer is behind: send the rest of ``out``, waiting up to idle_timeout per send."""
        self._keep_send_timeout()
        view = memoryview(out)  # partial sends move a view, not the bytes
        done = 0
        try:
            while done < len(view):
                try:
                    done += self._sock.send(view[done:])  # blocking: bounded by SO_SNDTIMEO
                except BlockingIOError:
                    raise self.session.write_timeout() from None
                except OSError as exc:
                    raise translate_oserror(exc, self.peer_url) from exc
        finally:
            view.release()
            self.session.sent(done, time.monotonic())
