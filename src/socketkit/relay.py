"""Relays between a socket and a pair of file descriptors: the core of netcat.

Stream relay: bytes from ``stdin`` go to the socket and bytes from the socket
go to ``stdout``. At the end of stdin the socket's write side is shut
(half-close; over TLS, a close_notify) and the relay goes on until the peer
closes, so ``echo hi | socketkit connect ...`` prints the reply before it exits. ``poll`` watches
both sides, so stdin may be a terminal, a pipe or a regular file.

WebSocket relay: each line of stdin is a text message, each message received a
line of stdout (:func:`relay_websocket`, on a connected client).

Datagram relay: each read from stdin is one datagram; each datagram received
is written to stdout. Since datagrams have no end, it stops once stdin has
ended and nothing arrived for ``linger`` seconds.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import typing
from typing import Any

from .codecs.websocket_frames import Close
from .errors import SocketkitError, Timeout, translate_oserror
from .sessionlog import SessionLog
from .tls import TlsStream

if typing.TYPE_CHECKING:
    from .client import Client

__all__ = ["relay_datagrams", "relay_stream", "relay_websocket"]

_CHUNK = 65536


class _OutputClosed(Exception):
    """stdout went away (``... | head``): the relay ends quietly, it is not a network error."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        raise _OutputClosed from None


def _to_crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def relay_stream(
    sock: socket.socket | TlsStream,
    name: str,
    *,
    stdin: int = 0,
    stdout: int = 1,
    crlf: bool = False,
    send_only: bool = False,
    recv_only: bool = False,
    idle_timeout: float | None = None,
    log: SessionLog | None = None,
) -> None:
    """Relay until the peer closes (or, with ``send_only``, until stdin ends); ``log`` is
    told what went each way.

    Raises:
        Timeout: nothing moved for ``idle_timeout`` seconds.
        BrokenError: the connection broke.
    """
    raw = sock.sock if isinstance(sock, TlsStream) else sock
    raw.settimeout(idle_timeout)  # bounds a send to a peer that does not read
    poller = _watch(sock, stdin, send_only, recv_only)
    reading_stdin = not recv_only
    try:
        while True:
            if not reading_stdin and send_only:
                return
            if isinstance(sock, TlsStream) and _drain(sock, stdout, log):
                return  # what TLS already held ended with the peer's close_notify
            events = poller.poll(None if idle_timeout is None else idle_timeout * 1000)
            if not events:
                raise Timeout(f"nothing from {name} or stdin for {idle_timeout:g}s")
            for fd, _ in events:
                if fd == stdin:
                    data = os.read(stdin, _CHUNK)
                    if data:
                        data = _to_crlf(data) if crlf else data
                        sock.sendall(data)
                        if log is not None:
                            log.sent(data)
                        continue
                    poller.unregister(stdin)
                    reading_stdin = False
                    _end_sending(sock)
                elif isinstance(sock, TlsStream):
                    received = sock.read_available(_CHUNK)  # (the poll said one read will not block)
                    if received == b"":
                        return
                    if received is not None:  # (None: only TLS's own records, session tickets)
                        _deliver(stdout, received, log)
                else:
                    data = sock.recv(_CHUNK)
                    if not data:
                        return
                    _deliver(stdout, data, log)
    except _OutputClosed:
        return
    except OSError as exc:
        raise translate_oserror(exc, name) from exc


def _drain(sock: TlsStream, stdout: int, log: SessionLog | None) -> bool:
    """Deliver the plaintext TLS holds already (it would never make the socket poll readable:
    records that came with the handshake's last message, or with the one before); True if
    the peer's close_notify was among it."""
    while (data := sock.take_buffered(_CHUNK)) is not None:
        if not data:
            return True
        _deliver(stdout, data, log)
    return False


def _deliver(stdout: int, data: bytes, log: SessionLog | None) -> None:
    """What arrived from the peer, to stdout (and the log)."""
    if log is not None:
        log.received(data)
    _write_all(stdout, data)


def _end_sending(sock: socket.socket | TlsStream) -> None:
    """Half-close: no more from us, and the peer may still answer."""
    if isinstance(sock, TlsStream):
        sock.end_sending()
    else:
        sock.shutdown(socket.SHUT_WR)


def relay_datagrams(
    sock: socket.socket,
    name: str,
    *,
    peer: Any = None,
    stdin: int = 0,
    stdout: int = 1,
    crlf: bool = False,
    send_only: bool = False,
    recv_only: bool = False,
    linger: float = 2.0,
    log: SessionLog | None = None,
) -> None:
    """Relay datagrams. ``peer`` None: send to the socket's connected peer, or, for a
    listening socket, to whoever sent the last datagram.

    After stdin ends, a connected socket leaves as soon as as many datagrams came
    back as it sent (request and reply: no wait); otherwise it leaves once the
    peer has been quiet for ``linger`` seconds.

    Raises:
        ConnectError: the peer's port is closed (ICMP port unreachable).
    """
    poller = _watch(sock, stdin, send_only, recv_only)
    reading_stdin = not recv_only
    connected = peer is None and _is_connected(sock)
    sent = received = 0
    try:
        while True:
            if not reading_stdin and (send_only or (connected and received >= sent > 0)):
                return
            wait = None if reading_stdin else linger * 1000
            events = poller.poll(wait)
            if not events:
                return  # stdin ended and the peer went quiet
            for fd, _ in events:
                if fd == stdin:
                    data = os.read(stdin, _CHUNK)
                    if not data:
                        poller.unregister(stdin)
                        reading_stdin = False
                        continue
                    data = _to_crlf(data) if crlf else data
                    if connected:
                        sock.send(data)
                    elif peer is not None:
                        sock.sendto(data, peer)
                    else:
                        continue  # a listener that has heard no one yet: nowhere to send it
                    if log is not None:
                        log.sent(data)
                    sent += 1
                else:
                    data, sender = sock.recvfrom(_CHUNK)
                    received += 1
                    if not connected:
                        peer = sender
                    _deliver(stdout, data, log)
    except _OutputClosed:
        return
    except OSError as exc:
        raise translate_oserror(
            exc, name, "connect" if isinstance(exc, ConnectionRefusedError) else ""
        ) from exc


def _watch(sock: socket.socket | TlsStream, stdin: int, send_only: bool, recv_only: bool) -> select.poll:
    """A poll object watching stdin (unless recv_only) and the socket (unless send_only)."""
    poller = select.poll()
    if not recv_only:
        poller.register(stdin, select.POLLIN)
    if not send_only:
        poller.register(sock, select.POLLIN)
    return poller


def _is_connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def relay_websocket(
    client: Client, stdin: int, stdout: int, *, send_only: bool, recv_only: bool, linger: float = 1.0
) -> None:
    """A WebSocket client between stdin and stdout, as websocat: each line of stdin is a text
    message (without its newline); each text message received is a line of stdout, and a
    binary one its bytes. At the end of stdin it waits until nothing came for ``linger``
    seconds (the replies to the last lines: many servers close at once when told to, and
    drop what their handler had still to send), then closes, waiting for the server's
    answer; the server's close ends it too.
    """
    arrived = threading.Event()

    def receive() -> None:
        try:
            for message in client:
                data = message.encode() + b"\n" if isinstance(message, str) else message
                _write_all(stdout, data)
                arrived.set()
        except (_OutputClosed, SocketkitError):
            pass  # (stdout went away, or the connection broke: the sender finds out as well)
        arrived.set()

    reader = threading.Thread(target=receive, name="socketkit-ws-reader", daemon=True)
    if not send_only:
        reader.start()
    if not recv_only:
        with os.fdopen(os.dup(stdin), "rb") as lines:
            for line in lines:
                text = line.rstrip(b"\r\n")
                try:
                    client.send(text.decode())
                except UnicodeDecodeError:
                    client.send(text)  # (not UTF-8: sent as it is, a binary message)
        if send_only:
            return  # (closing the client says goodbye)
        while reader.is_alive() and arrived.wait(linger):  # until quiet for linger seconds
            arrived.clear()
        if reader.is_alive():
            try:
                client.send(Close(1000, ""))  # its answer ends the reader
            except SocketkitError:
                pass  # (closed meanwhile)
    reader.join()
