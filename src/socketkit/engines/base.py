"""The engine interface, and what every engine shares.

Why a shared base: the rules of DESIGN §4 (the server owns every connection; a
handler exception is logged with the peer and closes only that connection;
accept errors from fd exhaustion back off instead of spinning; shutdown in
stages against a deadline) must hold identically on every engine, so they are
written once here and the engines only decide *who* runs a connection.

Stopping is signal-safe: :meth:`Engine.stop` takes no lock. It lowers the
deadline, sets a flag, and writes a byte to two socketpairs: the *stop* socket
is never drained, so it stays readable and wakes every thread that polls it;
the *wake* socket is drained by the engine's own loop, which other threads also
use to nudge it (a connection closed, a call was queued).
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ..codecs import Codec
from ..connection import Connection
from ..endpoints import Listener
from ..errors import (
    BrokenError,
    ClosedError,
    IdleTimeout,
    LimitExceeded,
    ReadTimeout,
    RemoteProtocolError,
    Timeout,
    WriteTimeout,
)
from ..handlers import Handler
from ..limits import Limits
from ..stats import Counters, StatsRecorder

if TYPE_CHECKING:
    from ._flusher import OutboxFlusher
    from ._threaded import ThreadedConnection

__all__ = ["Engine", "current", "log"]

log = logging.getLogger("socketkit")

#: ``current.engine`` is the engine whose thread this is (serving loop,
#: connection or datagram thread), so Server.stop() called from a handler
#: knows not to wait for itself.
current = threading.local()

#: accept() errors that mean "out of a resource": log, pause accepting, retry.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: accept() errors that only concern the one connection being accepted.
_TRANSIENT_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR})
ACCEPT_BACKOFF = 0.5  # seconds accepting pauses after fd exhaustion

RECV_SIZE = 65536


class Engine(ABC):
    """Runs a server's listeners until stopped. One engine serves once."""

    name: ClassVar[str] = "engine"
    #: whether @blocking handlers can run on this engine.
    supports_blocking: ClassVar[bool] = False

    def __init__(
        self,
        listeners: list[Listener],
        handler: Handler,
        codec: Codec,
        limits: Limits,
        stats: StatsRecorder,
    ) -> None:
        self.listeners = listeners
        self.handler = handler
        self.codec = codec
        self.limits = limits
        self.stats = stats
        self.deadline = math.inf  # when stopping: the moment remaining connections are closed
        self.stopping = False
        self._stop_r, self._stop_w = socket.socketpair()
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._stop_r, self._stop_w, self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._flusher: OutboxFlusher | None = None
        #: connections served by threads (thread engines), for stop() to wake
        self._threaded: dict[ThreadedConnection, None] = {}
        self._per_ip: dict[str, int] = {}
        # One address cannot exceed the per-IP limit when the total limit is lower: skip the count.
        self._count_per_ip = limits.max_connections_per_ip < limits.max_connections
        self._per_ip_lock = threading.Lock()
        self._accept_resume = 0.0

    # -- lifecycle ---------------------------------------------------------

    @abstractmethod
    def serve(self) -> None:
        """Serve until stopped and drained; closes the listeners before it returns."""

    def stop(self, grace: float) -> None:
        """Begin (or hurry) shutdown: remaining connections are closed after ``grace`` seconds.

        Safe from any thread and from a signal handler; never blocks.
        """
        deadline = time.monotonic() + max(0.0, grace)
        self.deadline = min(self.deadline, deadline)
        self.stopping = True
        self._nudge(self._stop_w)
        self._nudge(self._wake_w)
        for conn in list(self._threaded):  # one C call: safe against other threads' changes
            conn.wake()

    def adopt(self, conn: ThreadedConnection) -> None:
        """A thread starts serving ``conn``: stop() will wake it when it waits between messages."""
        self._threaded[conn] = None
        if self.stopping:  # stop() came first: the connection sees the flag itself
            conn.wake()

    def disown(self, conn: ThreadedConnection) -> None:
        self._threaded.pop(conn, None)

    def wake(self) -> None:
        """Make the engine's loop run an iteration now (thread-safe)."""
        self._nudge(self._wake_w)

    @staticmethod
    def _nudge(sock: socket.socket) -> None:
        try:
            sock.send(b"\0")
        except OSError:  # full (already pending), or closed after serve() ended
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    @property
    def wakeup_fileno(self) -> int:
        """A descriptor whose write wakes the engine's loop (for signal.set_wakeup_fd)."""
        return self._wake_w.fileno()

    @property
    def stop_fd(self) -> int:
        """A descriptor that becomes readable, and stays so, once stop() was called."""
        return self._stop_r.fileno()

    def flusher(self) -> OutboxFlusher:
        """The thread that flushes queued cross-thread output (thread engines), made on first use."""
        with self._per_ip_lock:
            if self._flusher is None:
                from ._flusher import OutboxFlusher  # noqa: PLC0415 - only thread engines need it

                self._flusher = OutboxFlusher()
            return self._flusher

    @property
    def existing_flusher(self) -> OutboxFlusher | None:
        """The flusher if one was made, without making one."""
        return self._flusher

    def close_wakers(self) -> None:
        """Release the engine's own descriptors and threads (the end of serve())."""
        if self._flusher is not None:
            self._flusher.close()
        for sock in (self._stop_r, self._stop_w, self._wake_r, self._wake_w):
            sock.close()

    def close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()

    # -- accepting ---------------------------------------------------------

    def accept(self, listener: Listener) -> tuple[socket.socket, Any] | None:
        """Accept one connection from a non-blocking listener, or None.

        None means "nothing to accept now": the backlog is empty, the one
        connection was aborted, it was over the per-IP limit, or file
        descriptors ran out (then :attr:`accept_paused` is true for a moment).
        Other errors propagate.
        """
        try:
            sock, addr = listener.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                self.stats.error("accept")
                log.error(
                    "accept on %s failed: %s; pausing accepts for %.1fs", listener.url, exc, ACCEPT_BACKOFF
                )
                self._accept_resume = time.monotonic() + ACCEPT_BACKOFF
                return None
            if exc.errno in _TRANSIENT_ERRNOS:
                return None
            raise
        if isinstance(addr, tuple):  # TCP
            if listener.set_nodelay:  # request/reply traffic must not wait for Nagle's algorithm
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            if not self._count_per_ip:
                return sock, addr
            ip = addr[0]
            with self._per_ip_lock:
                count = self._per_ip.get(ip, 0)
                if count < self.limits.max_connections_per_ip:
                    self._per_ip[ip] = count + 1
                    return sock, addr
            self.stats.rejected()
            log.warning("rejected %s: %d connections from this address (max_connections_per_ip)", ip, count)
            sock.close()
            return None
        return sock, addr

    def release(self, addr: Any) -> None:
        """Forget a closed connection for the per-IP count."""
        if self._count_per_ip and isinstance(addr, tuple):
            ip = addr[0]
            with self._per_ip_lock:
                count = self._per_ip.get(ip, 1) - 1
                if count > 0:
                    self._per_ip[ip] = count
                else:
                    self._per_ip.pop(ip, None)

    @property
    def accept_paused(self) -> bool:
        return time.monotonic() < self._accept_resume

    @property
    def accept_resume_in(self) -> float:
        return max(0.0, self._accept_resume - time.monotonic())

    # -- reporting ---------------------------------------------------------

    def report_close(self, conn: Connection, error: BaseException | None) -> None:
        """Log and count why a connection ended. Clean closes are silent."""
        if error is None or isinstance(error, ClosedError):
            return
        kind, level, text = classify(error)
        self.stats.error(kind)
        log.log(
            level,
            "%s: %s",
            conn.peer_url,
            text,
            exc_info=error if kind == "handler" else None,
        )

    def reply_error(self, error: BaseException) -> bytes | None:
        """The codec's error reply for a bad-input error, if it has one."""
        if isinstance(error, RemoteProtocolError):
            return self.codec.error_reply(error)
        return None

    def datagram(
        self,
        sock: socket.socket,
        scheme: str,
        data: bytes,
        addr: Any,
        handle: Any,
        counters: Counters,
    ) -> None:
        """Decode one datagram, run the handler, count and report."""
        conn = DatagramConnection(self.codec, sock, addr, scheme, counters)
        counters.bytes_in += len(data)
        try:
            message = self.codec.decode_datagram(data, self.limits.max_message_size)
        except RemoteProtocolError as exc:
            self.report_close(conn, exc)
            reply = self.codec.error_reply(exc)
            if reply is not None:
                conn.send_bytes(reply)
            return
        counters.messages_in += 1
        try:
            handle(message, conn)
        except Exception as exc:
            self.report_close(conn, exc)


#: Why a connection ended -> (stats kind, log level, message prefix); first match wins.
_CLOSE_REASONS: tuple[tuple[type[BaseException], str, int, str], ...] = (
    (LimitExceeded, "limit", logging.WARNING, "closed: "),
    (RemoteProtocolError, "protocol", logging.WARNING, "closed: bad input: "),
    (IdleTimeout, "idle_timeout", logging.INFO, "closed: "),
    (ReadTimeout, "read_timeout", logging.INFO, "closed: "),
    (WriteTimeout, "write_timeout", logging.INFO, "closed: "),
    (Timeout, "timeout", logging.INFO, "closed: "),
    (BrokenError, "reset", logging.DEBUG, "closed: "),
)


def classify(error: BaseException) -> tuple[str, int, str]:
    """(stats kind, log level, text) for an error that ended a connection.

    Anything not raised by socketkit itself is the handler's fault.
    """
    for cls, kind, level, prefix in _CLOSE_REASONS:
        if isinstance(error, cls):
            return kind, level, f"{prefix}{error}"
    return "handler", logging.ERROR, f"handler raised {type(error).__name__}: {error}"


class DatagramConnection(Connection):
    """The sender of one datagram; ``send`` answers it with one datagram."""

    __slots__ = ("_counters", "_sock")

    def __init__(self, codec: Codec, sock: socket.socket, addr: Any, scheme: str, counters: Counters) -> None:
        super().__init__(codec, addr, None, scheme)
        self._sock = sock
        self._counters = counters

    def send(self, message: Any) -> None:
        data = self.codec.encode(message)
        counters = self._counters
        counters.messages_out += 1  # counted first, so stats never lag what the peer saw
        if not self.send_bytes(data):
            counters.messages_out -= 1

    def send_bytes(self, data: bytes) -> bool:
        """Send one datagram to the peer; False when it was dropped."""
        if not self.peer:
            log.debug("%s: datagram sender has no address; reply dropped", self.peer_url)
            return False
        counters = self._counters
        counters.bytes_out += len(data)  # counted first, so stats never lag what the peer saw
        try:
            self._sock.sendto(data, self.peer)
        except OSError as exc:  # a full buffer or a vanished peer: datagrams may be lost
            counters.bytes_out -= len(data)
            log.debug("%s: reply dropped: %s", self.peer_url, exc)
            return False
        return True

    def close(self) -> None:
        self._closed = True
