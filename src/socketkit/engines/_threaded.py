"""Thread-owned connections: what the iterative and threads engines run.

Why blocking sockets with kernel timeouts: the tutorials' ``recv`` in a loop
is the cheapest wait there is, one system call per message. A socket with a
Python timeout costs CPython a ``poll`` before every ``recv``; instead the
socket stays in blocking mode and the kernel enforces the deadlines
(``SO_RCVTIMEO`` for idle and read timeouts, ``SO_SNDTIMEO`` for a peer that
does not read). ``stop()`` reaches a thread parked between messages by
shutting down the reading side of its socket (:meth:`ThreadedConnection.wake`):
data that already arrived is still read and answered, then ``recv`` returns
end of stream. A thread in the middle of a message is left to finish it until
the grace deadline, when its socket is shut down altogether.

Writes from the owning thread during a batch of messages are corked and go out
as one ``send`` when the batch is done (pipelined requests get one write);
writes from other threads never block (``MSG_DONTWAIT``; what the kernel does
not take waits in an outbox for the flusher thread); blocking handlers' writes
wait for the peer to read for at most ``idle_timeout``.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..connection import Connection
from ..endpoints import Listener
from ..errors import (
    ClosedError,
    IdleTimeout,
    LimitExceeded,
    ProtocolError,
    ReadTimeout,
    SocketkitError,
    WriteTimeout,
    translate_oserror,
)
from ..handlers import Dispatch
from ..stats import Counters
from .base import RECV_SIZE, log

if TYPE_CHECKING:
    from .base import Engine

__all__ = ["ThreadedConnection", "serve_connection", "serve_datagrams"]

_DONTWAIT = socket.MSG_DONTWAIT
_PARKED_RECV_SIZE = 1024  # bytes read at once between messages, until the peer sends more
_TIMEOUT_SLACK = 0.05  # seconds a kernel read timeout may be longer than the deadline it serves


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (at least 1 µs: zero means "never")."""
    micros = max(1, round(seconds * 1_000_000))
    return struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)


class ThreadedConnection(Connection):
    """A connection owned by one thread, over a blocking socket with kernel timeouts."""

    __slots__ = (
        "_big_reads",
        "_cork",
        "_cut_off",
        "_decoder",
        "_engine",
        "_eof",
        "_last_active",
        "_lock",
        "_message_started",
        "_outbox",
        "_owner",
        "_parked",
        "_partial",
        "_pending",
        "_pending_error",
        "_rcvtimeo",
        "_sndtimeo",
        "_sock",
    )

    def __init__(self, sock: socket.socket, peer: Any, engine: Engine, listener: Listener) -> None:
        super().__init__(engine.codec, peer, listener.accepted_local, listener.endpoint.scheme)
        self._sock = sock
        self._engine = engine
        # The kernel timeouts are set on first need: a connection whose request
        # is already there and whose reply fits the send buffer needs neither.
        self._rcvtimeo = 0.0  # SO_RCVTIMEO now (0: not set)
        self._sndtimeo = False  # whether SO_SNDTIMEO is set
        self._decoder = engine.codec.decoder(engine.limits.max_message_size)
        self._lock = threading.Lock()
        self._cork: list[bytes] | None = None
        self._owner = threading.get_ident()
        self._pending: deque[Any] | None = None  # messages decoded, not yet taken by recv()
        self._eof = False
        self._parked = False  # waiting between messages: stop() may end the wait
        self._big_reads = False  # the peer sent _PARKED_RECV_SIZE or more at once
        self._partial = False  # a message is half received
        self._last_active = time.monotonic()
        self._message_started = 0.0
        self._outbox = bytearray()  # what other threads sent that the kernel did not take yet
        self._cut_off: BaseException | None = None
        self._pending_error: ProtocolError | None = None  # raised after the messages before it

    def _find_local(self) -> Any:
        try:
            return self._sock.getsockname()
        except OSError:
            return None

    # -- what handlers call ------------------------------------------------

    def send(self, message: Any) -> None:
        data = self.codec.encode(message)
        if self._closed:
            raise ClosedError(f"{self.peer_url}: send on a closed connection")
        if threading.get_ident() != self._owner:
            self._send_from_elsewhere(data)
            return
        cork = self._cork
        if cork is not None:
            cork.append(data)
            self.messages_out += 1
            return
        with self._lock:
            self.messages_out += 1
            self._write(data)

    @property
    def write_buffer_size(self) -> int:
        return len(self._outbox)

    def _send_from_elsewhere(self, data: bytes) -> None:
        """A send from another thread: never blocks; a peer that cannot keep up is cut off."""
        with self._lock:
            if self._cut_off is not None:
                return
            self.messages_out += 1
            outbox = self._outbox
            if outbox:
                if len(outbox) >= self._engine.limits.write_buffer_high:
                    self._cut(
                        LimitExceeded(f"peer is not reading: {len(outbox)} bytes unsent (write_buffer_high)")
                    )
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
            self._sock.shutdown(socket.SHUT_RDWR)  # the owner's poll wakes and ends the connection
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if threading.get_ident() != self._owner:
            try:  # wake the owner's poll; it finishes its batch and closes
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def recv(self) -> Any:
        if threading.get_ident() != self._owner:
            raise RuntimeError("recv() must be called from the thread that serves the connection")
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        while not pending:
            if self._eof or self._closed:
                raise ClosedError(f"{self.peer_url}: connection closed")
            pending.extend(self.receive())
        return pending.popleft()

    # -- what the engine calls -----------------------------------------------

    def receive(self, wait: bool = True) -> list[Any]:
        """Read once and decode; without ``wait``, only what has already arrived.

        Sets ``_eof`` at end of stream (peer closed, or stopping and idle).
        Raises the decoder's ProtocolError, a Timeout, or BrokenError.
        """
        if self._pending_error is not None:
            raise self._pending_error
        decoder = self._decoder
        starting = not self._partial
        if wait:
            data = self._read()
        else:
            ready = self._recv_nowait()
            if ready is None:
                return []
            data = ready
        try:
            messages = decoder.feed(data)
        except ProtocolError as exc:
            if not exc.messages:
                raise
            self._pending_error = exc  # answer what came before the bad input, then fail
            messages = exc.messages
        if not data:
            self._eof = True
            return messages
        self.bytes_in += len(data)
        if decoder.buffered:
            if starting or messages:
                self._message_started = self._last_active  # a new message started with this read
            self._partial = True
        else:
            self._partial = False
        self.messages_in += len(messages)
        return messages

    def flush_cork(self) -> None:
        cork = self._cork
        self._cork = None
        if cork:
            data = cork[0] if len(cork) == 1 else b"".join(cork)
            with self._lock:
                self._write(data)

    def send_error_reply(self, data: bytes) -> None:
        """Best effort: tell the peer why it is being closed, without waiting."""
        try:
            self._sock.send(data, _DONTWAIT)
        except OSError:
            pass

    def produce(self, dispatch: Dispatch) -> bool:
        """One on_drain call, its output written before returning; True if it sent anything."""
        before = self.messages_out
        self._cork = []
        dispatch.drained()
        self.flush_cork()
        return self.messages_out != before

    def close_socket(self) -> None:
        self._closed = True
        flusher = self._engine.existing_flusher
        if flusher is not None:  # before the close: the descriptor's number may be reused
            flusher.unwatch(self._sock.fileno())
        self._sock.close()

    # -- I/O -----------------------------------------------------------------

    def wake(self) -> None:
        """From stop(): end the wait of a thread parked between messages. Signal-safe."""
        if self._parked:
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

    def _read(self) -> bytes:
        """The next bytes from the peer (b"" at end of stream), within the deadlines."""
        engine = self._engine
        while True:
            if not self._partial:
                self._parked = True  # from here stop() shuts our reading down...
                if engine.stopping:  # ...or we see that it was called
                    self._parked = False
                    # Between messages while stopping: bytes that already
                    # arrived are served; otherwise this connection is done.
                    data = self._recv_nowait()
                    return b"" if data is None else data
            limits = engine.limits
            deadline = self._last_active + limits.idle_timeout
            if self._partial:
                deadline = min(deadline, self._message_started + limits.read_timeout)
            wait = deadline - time.monotonic()
            if wait <= 0:
                self._parked = False
                raise self._expired()
            # The kernel's timeout: the time left, but no more than the shorter
            # limit, so a message that starts later still meets its read deadline.
            wanted = min(wait, limits.idle_timeout, limits.read_timeout)
            flags = 0
            if not self._rcvtimeo:
                flags = _DONTWAIT  # the first read often finds its data there: no timeout needed yet
            elif abs(wanted - self._rcvtimeo) > _TIMEOUT_SLACK:
                self._set_rcvtimeo(wanted)
            # Small reads until the peer sends more at once: an idle thread then
            # holds a small buffer (measured: 3 KB less memory per idle connection).
            size = RECV_SIZE if self._partial or self._big_reads else _PARKED_RECV_SIZE
            try:
                received: bytes | None = self._sock.recv(size, flags)
            except BlockingIOError:
                received = None
            except OSError as exc:
                self._parked = False
                raise translate_oserror(exc, self.peer_url) from exc
            self._parked = False
            if received is None:  # none yet, or SO_RCVTIMEO ran out: the loop looks at the deadlines
                if not self._rcvtimeo:
                    self._set_rcvtimeo(wanted)
                continue
            data = received
            if len(data) >= _PARKED_RECV_SIZE:  # this peer sends more than that: read big from now on
                self._big_reads = True
            if data:
                self._last_active = time.monotonic()
            elif self._partial and engine.stopping:
                raise ClosedError("server stopped before the message was finished")
            return data

    def _expired(self) -> Exception:
        limits = self._engine.limits
        if (
            self._partial
            and self._message_started + limits.read_timeout <= self._last_active + limits.idle_timeout
        ):
            return ReadTimeout(f"message not finished within {limits.read_timeout:g}s")
        return IdleTimeout(f"idle for {limits.idle_timeout:g}s")

    def _set_rcvtimeo(self, seconds: float) -> None:
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
        except OSError as exc:
            raise translate_oserror(exc, self.peer_url) from exc
        self._rcvtimeo = seconds

    def _recv_nowait(self) -> bytes | None:
        """One non-blocking recv: the bytes (b"" at end of stream), or None if none are ready."""
        try:
            data = self._sock.recv(RECV_SIZE, _DONTWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise translate_oserror(exc, self.peer_url) from exc
        if data:
            self._last_active = time.monotonic()
        return data

    def _send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """One non-blocking send: how many bytes the kernel took."""
        try:
            sent = self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise translate_oserror(exc, self.peer_url) from exc
        self.bytes_out += sent
        return sent

    def _write(self, data: bytes) -> None:
        """Send all of ``data``, waiting up to idle_timeout for the peer to read; caller holds the lock."""
        if self._outbox:  # what other threads queued goes first
            data = bytes(self._outbox) + data
            self._outbox.clear()
        view: bytes | memoryview = data
        flags = 0 if self._sndtimeo else _DONTWAIT  # most replies fit the send buffer at once
        while view:
            try:
                sent = self._sock.send(view, flags)  # blocking: bounded by SO_SNDTIMEO
            except BlockingIOError:
                if not flags:
                    raise WriteTimeout(
                        f"peer did not read for {self._engine.limits.idle_timeout:g}s"
                    ) from None
                sent = 0
            except OSError as exc:
                raise translate_oserror(exc, self.peer_url) from exc
            self.bytes_out += sent
            if sent == len(view):
                return
            if sent:
                self._last_active = time.monotonic()
                view = memoryview(view)[sent:]
            if flags:  # the peer is behind: wait for it, up to idle_timeout
                timeout = _timeval(self._engine.limits.idle_timeout)
                try:
                    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
                except OSError as exc:
                    raise translate_oserror(exc, self.peer_url) from exc
                self._sndtimeo = True
                flags = 0


def serve_connection(engine: Engine, sock: socket.socket, addr: Any, listener: Listener) -> None:
    """Serve one accepted connection in the calling thread until it ends.

    The server owns the socket: it is closed here whatever the handler did.
    """
    try:
        conn = ThreadedConnection(sock, addr, engine, listener)
    except OSError as exc:  # the peer vanished before we could look at it
        log.debug("connection from %r lost at once: %s", addr, exc)
        sock.close()
        return
    engine.adopt(conn)
    try:
        _serve(engine, conn)
    finally:
        engine.disown(conn)


def _serve(engine: Engine, conn: ThreadedConnection) -> None:
    handler = engine.handler
    stats = engine.stats
    stats.track(conn)
    error: BaseException | None = None
    dispatch = None
    try:
        if handler.is_blocking:
            handler.run_blocking(conn)
        else:
            dispatch = handler.dispatch(conn)
            conn._cork = []
            dispatch.connected()
            conn.flush_cork()
            producing = dispatch.wants_drain
            while not conn._closed:
                if producing and not engine.stopping:
                    # A producer: write (blocking is the backpressure), then
                    # look at input without waiting, to notice the peer leave.
                    producing = conn.produce(dispatch)
                    messages = conn.receive(wait=not producing)
                else:
                    messages = conn.receive()
                if conn._eof:
                    break
                if messages:
                    conn._cork = []
                    for message in messages:
                        dispatch.message(message)
                    conn.flush_cork()
                    producing = dispatch.wants_drain
        if conn._cut_off is not None:
            error = conn._cut_off
    except Exception as exc:
        error = conn._cut_off or exc
        reply = engine.reply_error(exc)
        if reply is not None:
            conn.send_error_reply(reply)
    finally:
        # Count and log before the peer can see the close, so stats never lag it.
        stats.untrack(conn)
        engine.report_close(conn, error)
        conn.close_socket()
        if dispatch is not None:
            try:
                dispatch.closed(error)
            except Exception as exc:
                stats.error("handler")
                log.error("%s: on_close raised %s: %s", conn.peer_url, type(exc).__name__, exc, exc_info=exc)


def serve_datagrams(
    engine: Engine,
    sock: socket.socket,
    scheme: str,
    handle: Callable[[Any, Connection], None],
    counters: Counters,
    until_idle: bool,
) -> None:
    """Answer datagrams in the calling thread until the engine stops.

    With ``until_idle`` it returns as soon as no datagram is waiting (the
    iterative engine interleaves this with accepting). On stop, datagrams
    already queued are still answered.
    """
    sock.setblocking(False)
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    poll.register(engine.stop_fd, select.POLLIN)
    while True:
        try:
            data, addr = sock.recvfrom(RECV_SIZE)
        except BlockingIOError:
            if until_idle or engine.stopping:
                return
            poll.poll()
            continue
        except OSError as exc:
            if sock.fileno() == -1:
                return  # closed under us: the engine is done
            log.debug("datagram socket error: %s", exc)  # e.g. an ICMP error left by an earlier reply
            continue
        engine.datagram(sock, scheme, data, addr, handle, counters)
