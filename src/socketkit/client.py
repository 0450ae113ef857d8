"""Clients: connect, send, receive, request, with deadlines and clear errors.

Why a client in a server toolkit: the tutorials' client is the other half of
every example, and the same codec must frame both sides. ``connect()``
retries refused or timed-out connects with exponential backoff (a server that is
still starting is normal). Every wait has a deadline (``timeout``, finite by
default), and every failure names the address: "connection refused:
127.0.0.1:9 (is a server listening?)".

``DatagramClient`` speaks request/reply over UDP or unix datagrams; since
datagrams get lost, ``request()`` resends on timeout, ``retries`` times.
"""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from .codecs import Codec, Raw
from .codecs.websocket import WebSocketClient
from .endpoints import Address, Endpoint, check_timeout, connect_socket, parse, sends_to_many
from .errors import (
    BrokenError,
    ClosedError,
    ConnectError,
    ProtocolError,
    RemoteProtocolError,
    Timeout,
    translate_oserror,
)
from .eyeballs import DEFAULT_DELAY
from .tls import TlsStream, client_context
from .websocket_client import WebSocketTarget, upgrade, websocket_for

__all__ = ["DEFAULT_TIMEOUT", "Client", "DatagramClient", "connect", "start_tls"]

DEFAULT_TIMEOUT = 30.0
_RECV_SIZE = 65536
_GOODBYE_WAIT = 2.0  # seconds a closing client waits for the server's answer to its goodbye


def last_refusal(codec: Codec, messages: Iterable[Any]) -> str | None:
    """The reason in the last of ``messages`` that is the codec's error reply, if any."""
    reasons = [reason for message in messages if (reason := codec.refusal(message)) is not None]
    return reasons[-1] if reasons else None


class _ClientBase:
    def __init__(
        self, sock: socket.socket | TlsStream, endpoint: Endpoint, codec: Codec, timeout: float | None
    ) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.codec = codec
        self.url = endpoint.url
        self._timeout = timeout
        sock.settimeout(timeout)

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        check_timeout(value)
        self._timeout = value
        self.sock.settimeout(value)

    @property
    def closed(self) -> bool:
        return self.sock.fileno() == -1

    def close(self) -> None:
        self.sock.close()

    def _io_error(self, exc: OSError) -> Exception:
        if isinstance(exc, TimeoutError):
            return Timeout(f"no reply from {self.url} within {self._timeout:g}s")
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(f"connection refused: {self.url} (is a server listening?)")
        return translate_oserror(exc, self.url)

    def _check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"the client for {self.url} is closed")

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {'closed' if self.closed else 'open'}>"


class Client(_ClientBase):
    """A stream connection framed by a codec. Create it with :func:`connect`."""

    def __init__(
        self, sock: socket.socket | TlsStream, endpoint: Endpoint, codec: Codec, timeout: float | None
    ) -> None:
        codec = codec.client_side()  # the same framing, or its other half (HTTP)
        super().__init__(sock, endpoint, codec, timeout)
        self._decoder = codec.decoder()
        self._pending: deque[Any] = deque()
        self._eof = False
        self._sending = threading.Lock()  # one sendall at a time: a message's bytes stay whole

    def __enter__(self) -> Client:
        return self

    def close(self) -> None:
        """Close; where the protocol says goodbye first (WebSocket's close frame), say it and
        wait, briefly, for the server's answer and end."""
        goodbye = self.codec.goodbye()
        if goodbye and not self.closed and not self._eof:
            try:
                self.sock.settimeout(min(self._timeout or _GOODBYE_WAIT, _GOODBYE_WAIT))
                self.sock.sendall(goodbye)
                while self.sock.recv(_RECV_SIZE):
                    pass  # (the server's answer, and anything before it, until its end)
            except OSError:
                pass  # (gone, or slow to answer: closed all the same)
        self.sock.close()

    def _upgrade(self, target: WebSocketTarget) -> bytes:
        """The WebSocket upgrade on this connection: what the server sent after its answer.
        The decoder is made anew, knowing the extensions agreed."""
        codec = self.codec
        assert isinstance(codec, WebSocketClient)  # (websocket_for saw to it)
        rest, _ = upgrade(self.sock, target, codec)
        self._decoder = codec.decoder()
        return rest

    def _feed(self, data: bytes) -> None:
        """Bytes from the server through the decoder; what the protocol answers on its own
        (WebSocket's pongs) goes back at once."""
        self._pending.extend(self._decoder.feed(data))
        answer = self._decoder.take_interim()
        if answer:
            try:
                with self._sending:  # (a reader thread's pong must not split a message being sent)
                    self.sock.sendall(answer)
            except OSError as exc:
                raise self._io_error(exc) from exc

    def send(self, message: Any) -> None:
        """Encode and send one message.

        Raises:
            ClosedError: the connection is closed.
            BrokenError: the connection broke while sending.
            Timeout: the peer did not take the bytes within the timeout.
            LocalProtocolError: the codec cannot encode ``message`` (or TypeError).
        """
        self._check_open()
        try:
            with self._sending:  # (encoded under the lock too: a compressor's context follows the
                self.sock.sendall(self.codec.encode(message))  # order messages are sent in)
        except OSError as exc:
            reason = self._refusal() if isinstance(exc, (BrokenPipeError, ConnectionResetError)) else None
            if reason is not None:
                raise BrokenError(f"{self.url} refused the message and closed: {reason}") from exc
            raise self._io_error(exc) from exc

    def _refusal(self) -> str | None:
        """The server closed while we were still sending: what it said last, if that was the
        codec's error reply (a server that refuses a message answers, then closes). What was
        read stays for recv()."""
        if not isinstance(self.sock, socket.socket):  # (over TLS the alert says it)
            return None
        received = b""
        try:
            while len(received) < _RECV_SIZE and (data := self.sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)):
                received += data
        except OSError:
            pass  # the reset ends what can be read
        if not received:
            return None  # (and b"" is not fed: to a decoder it means the end of the stream)
        try:
            self._pending.extend(self._decoder.feed(received))
        except ProtocolError:
            return None
        return last_refusal(self.codec, self._pending)

    def recv(self) -> Any:
        """The next message from the server.

        Raises:
            ClosedError: the server closed the connection cleanly.
            RemoteProtocolError: it closed mid-message or sent bad data.
            Timeout: nothing arrived within ``timeout``.
        """
        pending = self._pending
        while not pending:
            self._check_open()
            if self._eof:
                farewell = getattr(self._decoder, "farewell", None)
                raise ClosedError(f"{self.url} closed the connection" + (f": {farewell}" if farewell else ""))
            try:
                data = self.sock.recv(_RECV_SIZE)
            except OSError as exc:
                raise self._io_error(exc) from exc
            self._feed(data)
            if not data:
                self._eof = True
            elif getattr(self._decoder, "farewell", None) is not None:
                self._eof = True  # (the server's close: answered, and nothing comes after it)
        return pending.popleft()

    def request(self, message: Any) -> Any:
        """Send ``message`` and return the next message received."""
        self.send(message)
        return self.recv()

    def __iter__(self) -> Iterator[Any]:
        """Messages until the server closes the connection."""
        while True:
            try:
                yield self.recv()
            except ClosedError:
                return

    def start_tls(self, context: ssl.SSLContext | None = None, *, server_hostname: str | None = None) -> None:
        """Upgrade this plain connection to TLS (STARTTLS), once the server agreed to it.

        ``context`` defaults to one that verifies against the system's CAs; the name
        checked is ``server_hostname``, or the URL's host.

        Raises:
            RemoteProtocolError: the server sent more after its go-ahead, before TLS began
                (bytes that could be injected: refused, and the connection closed).
            ConnectError: the handshake failed (a certificate that does not verify...).
        """
        self._check_open()
        sock = self.sock
        if isinstance(sock, TlsStream):
            raise ValueError(f"{self.url}: TLS is on already")  # noqa: TRY004 - a state, not a type
        if self._pending or self._decoder.buffered or _has_input(sock):
            self.close()
            raise RemoteProtocolError(
                f"{self.url} sent data after its go-ahead and before TLS began: refused (it could "
                "have been injected by someone on the path)"
            )
        self.sock = start_tls(sock, self.endpoint, context or True, server_hostname)
        self.sock.settimeout(self._timeout)

    def shutdown_write(self) -> None:
        """Half-close: tell the server we are done sending (it still may reply)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise self._io_error(exc) from exc


def _has_input(sock: socket.socket) -> bool:
    """Whether bytes wait unread, without waiting (a socket with a timeout would poll first)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # (a reset: the handshake would fail; refused here, saying why)
    finally:
        sock.settimeout(timeout)


def connect(
    url: Address,
    codec: Codec | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retries: int = 0,
    backoff: float = 0.1,
    *,
    tls: bool | ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
    happy_eyeballs_delay: float = DEFAULT_DELAY,
) -> Client:
    """Connect to a stream endpoint (``tcp://``, ``tls://``, ``unix://``), or a WebSocket
    server (``ws://host:port/path``, ``wss://`` over TLS: the codec defaults to
    :class:`~socketkit.WebSocket`, whose ``subprotocols`` are offered).

    ``timeout`` bounds the connect and every later send/recv (None waits
    forever). A refused or timed-out connect is retried ``retries`` times,
    waiting ``backoff``, then twice that, and so on (with jitter).

    TLS is on for ``tls://`` URLs, or with ``tls=True`` or an ``ssl.SSLContext``;
    ``tls=True`` verifies the server against the system's CAs
    (:func:`socketkit.tls.client_context` makes one for another CA). The name
    checked is ``server_hostname``, or the URL's host.

    ``source_address``: the local (host, port) to connect from (port 0: any).

    A host name with several addresses is connected to by happy eyeballs (RFC 8305):
    IPv6 and IPv4 interleaved, the next address tried ``happy_eyeballs_delay`` seconds
    after the one before unless that one failed sooner, the first to connect kept. The
    URL's socket options (``?keepalive=1&rcvbuf=65536``...) are set before the connect.

    Raises:
        ValueError: a bad URL, a datagram URL (use :class:`DatagramClient`), an option
            only a listener has, or a timeout of 0.
        ConnectError / ConnectTimeout: every attempt failed, or the TLS handshake did
            (a certificate that does not verify, a server that does not speak TLS).
    """
    websocket, codec = websocket_for(url, codec)
    if websocket is not None:
        original, url = str(url), websocket.stream_url
    endpoint = parse(url)
    if not endpoint.is_stream:
        raise ValueError(f"{url} is datagram-based: use socketkit.DatagramClient({url!r})")
    if retries < 0 or backoff < 0:
        raise ValueError("retries and backoff must not be negative")
    attempt = 0
    while True:
        try:
            sock = connect_socket(endpoint, timeout, source_address, happy_eyeballs_delay)
            break
        except ConnectError:
            if attempt >= retries:
                raise
            time.sleep(backoff * (2**attempt) * random.uniform(0.8, 1.2))
            attempt += 1
    stream: socket.socket | TlsStream = sock
    if endpoint.is_tls if tls is None else tls is not False:
        stream = start_tls(sock, endpoint, tls, server_hostname)
    client = Client(stream, endpoint, codec if codec is not None else Raw(), timeout)
    if websocket is not None:
        try:
            rest = client._upgrade(websocket)
        except RemoteProtocolError as exc:
            stream.close()
            raise ConnectError(f"{endpoint.url}{websocket.path}: {exc}") from exc
        except OSError as exc:
            stream.close()
            raise client._io_error(exc) from exc
        if rest:
            client._feed(rest)
        client.url = original  # (errors name the WebSocket URL, not the stream under it)
    return client


def start_tls(
    sock: socket.socket, endpoint: Endpoint, tls: bool | ssl.SSLContext | None, server_hostname: str | None
) -> TlsStream:
    """The TLS client handshake on a connected socket (closed if it fails).

    Raises:
        ConnectError: the certificate does not verify, or the handshake failed; the
            message names the server and the reason.
    """
    context = tls if isinstance(tls, ssl.SSLContext) else client_context()
    hostname = server_hostname or endpoint.host or "localhost"
    try:
        return TlsStream(sock, context, hostname)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise ConnectError(
            f"TLS: {endpoint.url} has a certificate that does not verify: {exc.verify_message}"
        ) from exc
    except ssl.SSLError as exc:
        sock.close()
        raise ConnectError(f"TLS handshake with {endpoint.url} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        sock.close()
        raise translate_oserror(exc, endpoint.url, "connect") from exc


class DatagramClient(_ClientBase):
    """Request/reply over ``udp://`` or ``unixgram://``: one datagram out, one back.

    Raises:
        ValueError: a bad URL, or a stream URL (use :func:`connect`).
        ConnectError: the address cannot be resolved or reached.
    """

    def __init__(
        self,
        url: Address,
        codec: Codec | None = None,
        timeout: float | None = 5.0,
        retries: int = 2,
    ) -> None:
        endpoint = parse(url, "udp")
        if endpoint.is_stream:
            raise ValueError(f"{url} is stream-based: use socketkit.connect({url!r})")
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.retries = retries
        #: where each datagram goes when the socket is not connected (to a multicast group, or
        #: a broadcast address): None when it is connected to one peer
        self._to: tuple[str, int] | None = (endpoint.host, endpoint.port) if sends_to_many(endpoint) else None
        super().__init__(
            connect_socket(endpoint, timeout), endpoint, codec if codec is not None else Raw(), timeout
        )

    def __enter__(self) -> DatagramClient:
        return self

    def send(self, message: Any) -> None:
        """Send one message as one datagram."""
        data = self.codec.encode(message)
        self._check_open()
        try:
            self._send_datagram(data)
        except OSError as exc:
            raise self._io_error(exc) from exc

    def _send_datagram(self, data: bytes) -> None:
        if self._to is None:
            self.sock.send(data)
        else:
            self.sock.sendto(data, self._to)

    def recv(self) -> Any:
        """The message in the next datagram received.

        Raises:
            Timeout: none arrived within ``timeout``.
            ConnectError: the server's port is closed (ICMP port unreachable).
            RemoteProtocolError: the datagram is not a valid message.
        """
        self._check_open()
        try:
            data = self.sock.recv(_RECV_SIZE)
        except OSError as exc:
            raise self._io_error(exc) from exc
        return self.codec.decode_datagram(data)

    def request(self, message: Any) -> Any:
        """Send ``message`` and return the reply, resending up to ``retries`` times on timeout."""
        data = self.codec.encode(message)
        self._check_open()
        self._discard_stale()
        for attempt in range(self.retries + 1):
            try:
                self._send_datagram(data)
            except OSError as exc:
                raise self._io_error(exc) from exc
            try:
                return self.recv()
            except Timeout:
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")

    def _discard_stale(self) -> None:
        """Drop late replies to earlier, timed-out requests."""
        sock = self.sock
        sock.setblocking(False)
        try:
            while True:
                sock.recv(_RECV_SIZE)
        except OSError:
            pass
        finally:
            sock.settimeout(self._timeout)
