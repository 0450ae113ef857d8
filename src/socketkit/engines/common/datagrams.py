"""Datagrams: one datagram in, the handler, zero or one datagram out.

Why apart: datagram sockets have no connection to own, so they need no
session; every engine answers them with :func:`answer` (decode, handle, count,
report), and the thread engines wait for them with :func:`serve_datagrams`.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import Any

from ...closing import log, report_close
from ...codecs import Codec
from ...connection import Connection
from ...endpoints import Listener
from ...errors import RemoteProtocolError
from ...session import Session, SessionHost
from ...stats import Counters

__all__ = [
    "RECV_SIZE",
    "DatagramConnection",
    "Handle",
    "WaitingDatagrams",
    "answer",
    "decode",
    "run_handler",
    "serve_datagrams",
]

RECV_SIZE = 65536


class DatagramConnection(Connection):
    """The sender of one datagram; ``send`` answers it with one datagram."""

    __slots__ = ("_counters", "_sock", "answered")

    def __init__(self, codec: Codec, sock: socket.socket, addr: Any, scheme: str, counters: Counters) -> None:
        super().__init__(codec, addr, None, scheme, counters.listener)
        self._sock = sock
        self._counters = counters
        self.answered = False  # the handler sent a reply (else a failure gets the codec's)

    def send(self, message: Any) -> None:
        self.send_encoded(self.codec.encode(message))

    def send_encoded(self, data: bytes) -> None:
        """Answer with one encoded message (a reply, or the codec's failure reply)."""
        self.answered = True
        self.send_message(data)

    def send_message(self, data: bytes) -> None:
        """Send one encoded message to the peer, counted as one."""
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


Handle = Callable[[Any, Connection], None]


def answer(
    host: SessionHost[Session],
    sock: socket.socket,
    scheme: str,
    data: bytes,
    addr: Any,
    handle: Handle,
    counters: Counters,
) -> None:
    """Decode one datagram, run the handler, count and report."""
    conn = DatagramConnection(host.codec, sock, addr, scheme, counters)
    taken, message = decode(host, conn, data, counters)
    if taken:
        run_handler(host, conn, message, handle)


def decode(
    host: SessionHost[Session], conn: DatagramConnection, data: bytes, counters: Counters
) -> tuple[bool, Any]:
    """Count one datagram and decode it: (True, the message), or (False, None) for bad input,
    which is reported and answered with the codec's error reply where it has one."""
    codec = host.codec
    counters.bytes_in += len(data)
    try:
        message = codec.decode_datagram(data, host.limits.max_message_size)
    except RemoteProtocolError as exc:
        report_close(host.stats, conn, exc)
        reply = codec.error_reply(exc)
        if reply is not None:
            conn.send_bytes(reply)
        return False, None
    counters.messages_in += 1
    return True, message


def run_handler(host: SessionHost[Session], conn: DatagramConnection, message: Any, handle: Handle) -> None:
    """The handler on one decoded datagram, timed when metrics want it. An error is reported,
    and the sender gets the codec's failure reply (as on a stream), unless it was answered."""
    latency = host.stats.latency_for(conn.listener)  # None unless metrics are served
    started = 0.0 if latency is None else time.perf_counter()
    try:
        handle(message, conn)
    except Exception as exc:
        report_close(host.stats, conn, exc)
        reply = None if conn.answered else conn.codec.failure_reply()
        if reply is not None:
            conn.send_encoded(reply)
    if latency is not None:
        latency.observe(time.perf_counter() - started)


class WaitingDatagrams:
    """A non-blocking datagram listener that an event loop watches: its handler, its counters
    (tracked until :meth:`close`), and, called when the socket is readable, the answers to
    the datagrams waiting on it, ``most`` at a time (so one socket cannot starve the loop)."""

    __slots__ = ("counters", "handle", "host", "most", "scheme", "sock")

    def __init__(self, host: SessionHost[Session], listener: Listener, most: int) -> None:
        self.host = host
        self.sock = listener.sock
        self.scheme = listener.endpoint.scheme
        self.most = most
        self.handle = host.handler.datagram_handler()
        self.counters = Counters(listener.url)
        host.stats.track(self.counters, connection=False)

    def __call__(self) -> None:
        sock = self.sock
        for _ in range(self.most):
            if not self.has_room():
                return
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if sock.fileno() == -1:
                    return
                log.debug("datagram socket error: %s", exc)  # e.g. an ICMP error left by an earlier reply
                continue
            self.answer(data, addr)

    def has_room(self) -> bool:
        """Whether another datagram may be read now (an engine that queues them says no
        when its queue is full: the kernel's buffer holds, then drops, the rest)."""
        return True

    def answer(self, data: bytes, addr: Any) -> None:
        """One datagram read: answered here, on the loop."""
        answer(self.host, self.sock, self.scheme, data, addr, self.handle, self.counters)

    def on_event(self, mask: int) -> None:
        """The reactor's name for a readable socket."""
        self()

    def close(self) -> None:
        """No more datagrams are read: the counters join the server's totals."""
        self.host.stats.untrack(self.counters, connection=False)


def serve_datagrams(
    host: SessionHost[Session],
    stop_fd: int,
    sock: socket.socket,
    scheme: str,
    handle: Handle,
    counters: Counters,
    until_idle: bool,
) -> None:
    """Answer datagrams in the calling thread until the engine stops.

    With ``until_idle`` it returns as soon as no datagram is waiting (the
    iterative engine interleaves this with accepting). ``stop_fd`` becomes
    readable when the engine stops; datagrams already queued are still answered.
    """
    sock.setblocking(False)
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    poll.register(stop_fd, select.POLLIN)
    while True:
        try:
            data, addr = sock.recvfrom(RECV_SIZE)
        except BlockingIOError:
            if until_idle or host.stopping:
                return
            poll.poll()
            continue
        except OSError as exc:
            if sock.fileno() == -1:
                return  # closed under us: the engine is done
            log.debug("datagram socket error: %s", exc)  # e.g. an ICMP error left by an earlier reply
            continue
        answer(host, sock, scheme, data, addr, handle, counters)
