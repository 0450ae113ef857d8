"""The asyncio client: :func:`socketkit.connect`'s calls, awaited, on asyncio or uvloop.

Why its own module, and why this shape: an ``async def`` handler (engines asyncio and
uvloop) that calls another service must not block its loop, so it needs a client
that awaits. It is the blocking client's twin over the same parts, not a second copy
of them: the codecs' sans-IO decoders are fed what the wire brings; TLS is
socketkit's own :class:`~socketkit.layers.tls.TlsLayer` over the plain stream (as
the server's is), so ``start_tls`` on a live connection and a half-close over TLS
behave as in the blocking client, on either loop; happy eyeballs is
:func:`~socketkit.eyeballs.connect_first_async`; errors are translated once, here,
into the same socketkit errors. Underneath is one small :class:`asyncio.Protocol`
(:class:`_Wire`) rather than asyncio's streams, because a stream raises a reset
before handing over what arrived ahead of it, and that is where a server says why it
refused a message.

Use::

    async with await socketkit.aio.connect("tcp://127.0.0.1:8888", codec=Lines()) as c:
        reply = await c.request(b"hello")
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import typing
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from .client import DEFAULT_TIMEOUT, last_refusal
from .codecs import Codec, Raw
from .codecs.websocket import WebSocketClient
from .endpoints import (
    Address,
    Endpoint,
    check_client_options,
    check_timeout,
    connect_socket,
    parse,
    sends_to_many,
)
from .errors import (
    BrokenError,
    ClosedError,
    ConnectError,
    ConnectTimeout,
    ProtocolError,
    RemoteProtocolError,
    SocketkitError,
    Timeout,
    translate_oserror,
)
from .eyeballs import DEFAULT_DELAY, connect_first_async
from .layers.tls import TlsLayer
from .sockopts import apply_to_client
from .tls import client_context
from .websocket_client import Upgrade, WebSocketTarget, websocket_for

__all__ = ["AsyncClient", "AsyncDatagramClient", "connect", "open_datagram"]


_GOODBYE_WAIT = 2.0  # seconds a closing client waits for the server's answer to its goodbye
_READ_SIZE = 65536  # bytes one read hands up at most (a Raw message's largest)
_READ_AHEAD = 4 * _READ_SIZE  # bytes received and not read above which the transport pauses


class _Wire(asyncio.Protocol):
    """What the transport delivered (bytes, the end, an error), kept apart so that bytes
    that came before a reset are still read; and whether writing must wait (drain). A
    peer that sends faster than the client reads is paused (``pause_reading``) past
    ``_READ_AHEAD`` bytes, so what the client holds is bounded."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self._paused = False
        self.ended = False
        self.error: BaseException | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > _READ_AHEAD and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def take(self, size: int = _READ_SIZE) -> bytes:
        """Up to ``size`` of the bytes received, resuming a paused transport once few are left."""
        data = bytes(self.received[:size])
        del self.received[:size]
        if self._paused and len(self.received) < _READ_SIZE and not self.ended and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def eof_received(self) -> bool:
        self.ended = True
        self._wake_reader()
        return True  # keep our side open: a half-closed peer may still read our requests

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ended = True
        self.error = exc
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def readable(self) -> None:
        """Until there are bytes, the end, or an error to take."""
        if self.received or self.ended:
            return
        self._readable = asyncio.get_running_loop().create_future()
        try:
            await self._readable
        finally:
            self._readable = None

    async def drained(self) -> None:
        """Until the transport's buffer is below its high-water mark again."""
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)


class AsyncClient:
    """A stream connection framed by a codec, on the running loop. Create it with :func:`connect`."""

    def __init__(self, wire: _Wire, endpoint: Endpoint, codec: Codec, timeout: float | None) -> None:
        self._wire = wire
        self.endpoint = endpoint
        self.url = endpoint.url
        self.codec = codec = codec.client_side()
        self._timeout = timeout
        self._decoder = codec.decoder()
        self._pending: deque[Any] = deque()
        self._eof = False
        self._closed = False
        self._tls: TlsLayer | None = None

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        check_timeout(value)
        self._timeout = value

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def transport(self) -> asyncio.Transport:
        """The loop's transport (``get_extra_info("peername")``, ``"socket"``...)."""
        assert self._wire.transport is not None
        return self._wire.transport

    @property
    def tls(self) -> TlsLayer | None:
        """The TLS layer once TLS is on (its ``version``, ``alpn_protocol``), else None."""
        return self._tls

    async def send(self, message: Any) -> None:
        """Encode and send one message, waiting while the transport's buffer is full.

        Raises:
            ClosedError: the connection is closed.
            BrokenError: the connection broke (with the server's reason when it refused the
                message and closed).
            Timeout: the peer did not take the bytes within the timeout.
            LocalProtocolError: the codec cannot encode ``message`` (or TypeError).
        """
        data = self.codec.encode(message)
        self._check_open()
        await self._write(data)

    async def recv(self) -> Any:
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
            data = await self._read()
            await self._feed(data)
            if not data:
                self._eof = True
            elif getattr(self._decoder, "farewell", None) is not None:
                self._eof = True  # (the server's close: answered, and nothing comes after it)
        return pending.popleft()

    async def _feed(self, data: bytes) -> None:
        """Bytes from the server through the decoder; what the protocol answers on its own
        (WebSocket's pongs, its answer to the server's close) goes back at once."""
        self._pending.extend(self._decoder.feed(data))
        answer = self._decoder.take_interim()
        if answer:
            await self._write(answer)

    async def request(self, message: Any) -> Any:
        """Send ``message`` and return the next message received."""
        await self.send(message)
        return await self.recv()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        """Messages until the server closes the connection."""
        while True:
            try:
                yield await self.recv()
            except ClosedError:
                return

    async def shutdown_write(self) -> None:
        """Half-close: tell the server we are done sending (it still may reply). Over TLS,
        close_notify is sent and the server's answer can still be read."""
        self._check_open()
        if self._tls is not None:
            self._tls.close()
            await self._write_wire(self._tls.take_output())
            return
        transport = self.transport
        if not transport.can_write_eof():
            raise BrokenError(f"{self.url}: this transport cannot half-close")
        transport.write_eof()

    async def start_tls(
        self, context: ssl.SSLContext | None = None, *, server_hostname: str | None = None
    ) -> None:
        """Upgrade this plain connection to TLS (STARTTLS), once the server agreed to it.

        ``context`` defaults to one that verifies against the system's CAs; the name
        checked is ``server_hostname``, or the URL's host.

        Raises:
            RemoteProtocolError: the server sent more after its go-ahead, before TLS began
                (bytes that could be injected: refused, and the connection closed).
            ConnectError: the handshake failed (a certificate that does not verify...).
        """
        self._check_open()
        if self._tls is not None:
            raise ValueError(f"{self.url}: TLS is on already")
        if self._pending or self._decoder.buffered or self._wire.received:
            self.close()
            raise RemoteProtocolError(
                f"{self.url} sent data after its go-ahead and before TLS began: refused (it could "
                "have been injected by someone on the path)"
            )
        await _handshake(self, context, server_hostname or self.endpoint.host or "localhost")

    async def _read(self) -> bytes:
        """Plaintext from the wire, at least one byte; b"" at the end of the server's stream."""
        wire = self._wire
        while True:
            if wire.received:
                data = wire.take()
                tls = self._tls
                if tls is None:
                    return data
                data = self._through_tls(tls, data)
                await self._write_wire(tls.take_output())  # (key updates, alerts)
                if data:
                    return data
                if tls.ended:
                    return b""
                continue
            if wire.ended:
                if wire.error is not None:
                    raise self._translate(wire.error)
                if self._tls is not None:
                    self._through_tls(self._tls, None)
                return b""
            try:
                await asyncio.wait_for(wire.readable(), self._timeout)
            except asyncio.TimeoutError:
                raise Timeout(f"no reply from {self.url} within {self._timeout:g}s") from None

    def _through_tls(self, tls: TlsLayer, data: bytes | None) -> bytes:
        try:
            if data is None:
                tls.end()
                return b""
            return tls.feed(data)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{self.url}: {exc}") from None

    async def _write(self, data: bytes) -> None:
        tls = self._tls
        if tls is not None:
            try:
                data = tls.wrap(data)
            except RemoteProtocolError as exc:
                raise BrokenError(f"{self.url}: {exc}") from None
        await self._write_wire(data)

    async def _write_wire(self, data: bytes) -> None:
        if not data:
            return
        wire = self._wire
        if wire.error is not None or self.transport.is_closing():
            raise self._refused_or(wire.error or BrokenPipeError("the connection is closed"))
        self.transport.write(data)
        try:
            await asyncio.wait_for(wire.drained(), self._timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"{self.url} did not take what was sent within {self._timeout:g}s") from None
        if wire.error is not None:
            raise self._refused_or(wire.error)

    def _refused_or(self, error: BaseException) -> Exception:
        """The server closed while we were still sending: what it said last, if that was the
        codec's error reply (a server that refuses a message answers, then closes)."""
        reset = isinstance(error, (BrokenPipeError, ConnectionResetError))
        if reset and self._wire.received and self._tls is None:  # (over TLS the alert says it)
            received = self._wire.take(len(self._wire.received))
            try:
                self._pending.extend(self._decoder.feed(received))
            except ProtocolError:
                pass
            reason = last_refusal(self.codec, self._pending)
            if reason is not None:
                return BrokenError(f"{self.url} refused the message and closed: {reason}")
        return self._translate(error)

    def _translate(self, error: BaseException) -> Exception:
        if isinstance(error, OSError):
            return translate_oserror(error, self.url)
        return BrokenError(f"connection to {self.url} broke: {error}")

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the client for {self.url} is closed")

    def close(self) -> None:
        """Close now (what was written is still sent by the transport). Safe to call twice."""
        if not self._closed:
            self._closed = True
            if self._wire.transport is not None:
                self._wire.transport.close()

    async def aclose(self) -> None:
        """Close, sending TLS's close_notify first when TLS is on; where the protocol says
        goodbye first (WebSocket's close frame), say it and wait, briefly, for the answer."""
        goodbye = self.codec.goodbye()
        if goodbye and not self._closed and not self._eof and self._wire.error is None:
            try:
                await asyncio.wait_for(self._say_goodbye(goodbye), _GOODBYE_WAIT)
            except (asyncio.TimeoutError, SocketkitError):
                pass  # (gone, or slow to answer: closed all the same)
        if self._tls is not None and not self._closed and self._wire.error is None:
            self._tls.close()
            output = self._tls.take_output()
            if output and not self.transport.is_closing():
                self.transport.write(output)
        self.close()

    async def _say_goodbye(self, goodbye: bytes) -> None:
        await self._write(goodbye)
        while await self._read():
            pass  # (the server's answer, and anything before it, until its end)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncClient {self.url} {'closed' if self._closed else 'open'}>"


async def _handshake(client: AsyncClient, context: ssl.SSLContext | None, hostname: str) -> None:
    """TLS's client handshake over the client's plain wire: the layer is on when it returns
    (the connection is closed when it raises)."""
    tls = TlsLayer(context if context is not None else client_context(), False, hostname)
    tls.opened(None)
    try:
        await _shake(client, tls)
    except BaseException:
        client.close()
        raise
    client._tls = tls


async def _shake(client: AsyncClient, tls: TlsLayer) -> None:
    await client._write_wire(tls.take_output())
    wire = client._wire
    while not tls.handshake_done:
        if not wire.received:
            if wire.ended:
                raise ConnectError(f"{client.url} closed the connection during the TLS handshake")
            try:
                await asyncio.wait_for(wire.readable(), client.timeout)
            except asyncio.TimeoutError:
                raise ConnectTimeout(f"TLS handshake with {client.url} timed out") from None
            continue
        data = wire.take()
        try:
            plaintext = tls.feed(data)
        except RemoteProtocolError as exc:
            raise ConnectError(f"{exc} with {client.url}") from None
        await client._write_wire(tls.take_output())
        if plaintext:  # (application data in the same read as the last handshake record)
            client._pending.extend(client._decoder.feed(plaintext))


async def connect(
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
) -> AsyncClient:
    """Connect to a stream endpoint (``tcp://``, ``tls://``, ``unix://``) on the running loop.

    The arguments are :func:`socketkit.connect`'s, with the same meaning: ``timeout``
    bounds the connect (and the TLS handshake) and every later send and recv; a
    refused or timed-out connect is retried ``retries`` times with backoff; TLS is on
    for ``tls://`` or with ``tls=`` (True: verify against the system's CAs);
    several addresses are raced by happy eyeballs; the URL's socket options are set
    before the connect.

    Raises:
        ValueError: a bad URL, a datagram URL (use :func:`open_datagram`), an option only
            a listener has, or a timeout of 0.
        ConnectError / ConnectTimeout: every attempt failed, or the TLS handshake did.
    """
    websocket, codec = websocket_for(url, codec)
    if websocket is not None:
        original, url = str(url), websocket.stream_url
    endpoint = parse(url)
    if not endpoint.is_stream:
        raise ValueError(f"{url} is datagram-based: use await socketkit.aio.open_datagram({url!r})")
    if retries < 0 or backoff < 0:
        raise ValueError("retries and backoff must not be negative")
    check_client_options(endpoint)
    check_timeout(timeout)
    if happy_eyeballs_delay < 0:
        raise ValueError(f"happy_eyeballs_delay must be >= 0 seconds, not {happy_eyeballs_delay!r}")
    attempt = 0
    while True:
        try:
            sock = await _connected_socket(endpoint, timeout, source_address, happy_eyeballs_delay)
            break
        except ConnectError:
            if attempt >= retries:
                raise
            await asyncio.sleep(backoff * (2**attempt) * random.uniform(0.8, 1.2))
            attempt += 1
    loop = asyncio.get_running_loop()
    wire = _Wire()
    try:
        if endpoint.is_unix:
            await loop.create_unix_connection(lambda: wire, sock=sock)
        else:
            await loop.create_connection(lambda: wire, sock=sock)
    except BaseException:
        sock.close()
        raise
    client = AsyncClient(wire, endpoint, codec if codec is not None else Raw(), timeout)
    if endpoint.is_tls if tls is None else tls is not False:
        context = tls if isinstance(tls, ssl.SSLContext) else None
        await _handshake(client, context, server_hostname or endpoint.host or "localhost")
    if websocket is not None:
        try:
            await _upgrade(client, websocket)
        except RemoteProtocolError as exc:
            client.close()
            raise ConnectError(f"{endpoint.url}{websocket.path}: {exc}") from exc
        except BaseException:
            client.close()
            raise
        client.url = original  # (errors name the WebSocket URL, not the stream under it)
    return client


async def _upgrade(client: AsyncClient, target: WebSocketTarget) -> None:
    """The WebSocket upgrade on a connected client; what followed the answer is decoded, by
    a decoder that knows the extensions agreed."""
    codec = client.codec
    assert isinstance(codec, WebSocketClient)  # (websocket_for saw to it)
    handshake = Upgrade(target, codec)
    await client._write(handshake.request)
    while (rest := handshake.answer(await client._read())) is None:
        pass
    client._decoder = codec.decoder()
    if rest:
        await client._feed(rest)


async def _connected_socket(
    endpoint: Endpoint,
    timeout: float | None,
    source_address: tuple[str, int] | None,
    delay: float,
) -> socket.socket:
    """A non-blocking socket connected to ``endpoint`` within ``timeout``, errors translated."""
    loop = asyncio.get_running_loop()
    options = endpoint.options

    def prepare(sock: socket.socket) -> None:
        apply_to_client(sock, options)
        if source_address is not None:
            sock.bind(source_address)

    async def race() -> socket.socket:
        if endpoint.is_unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, endpoint.path)
            except BaseException:
                sock.close()
                raise
            return sock
        infos = await loop.getaddrinfo(endpoint.host or "localhost", endpoint.port, type=socket.SOCK_STREAM)
        return await connect_first_async(infos, delay, prepare)

    try:
        return await asyncio.wait_for(race(), timeout)
    except asyncio.TimeoutError:
        raise ConnectTimeout(f"timed out connecting to {endpoint.url}") from None
    except OSError as exc:
        raise translate_oserror(exc, endpoint.url, "connect") from exc


class _Datagrams(asyncio.DatagramProtocol):
    """Datagrams (and ICMP errors) as they arrive, for :class:`AsyncDatagramClient`."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived: asyncio.Queue[bytes | OSError] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrived.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.arrived.put_nowait(exc)


class AsyncDatagramClient:
    """Request/reply over ``udp://`` or ``unixgram://`` on the running loop; create it with
    :func:`open_datagram`. As :class:`socketkit.DatagramClient`: ``request()`` resends on
    timeout, ``retries`` times, and drops late replies to earlier requests."""

    def __init__(
        self, protocol: _Datagrams, endpoint: Endpoint, codec: Codec, timeout: float | None, retries: int
    ) -> None:
        self._protocol = protocol
        self.endpoint = endpoint
        self.url = endpoint.url
        self.codec = codec
        self.retries = retries
        self._timeout = timeout
        self._to = (endpoint.host, endpoint.port) if sends_to_many(endpoint) else None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, message: Any) -> None:
        """Send one message as one datagram."""
        data = self.codec.encode(message)
        self._check_open()
        transport = self._protocol.transport
        assert transport is not None
        transport.sendto(data, self._to)

    async def recv(self) -> Any:
        """The message in the next datagram received.

        Raises:
            Timeout: none arrived within ``timeout``.
            ConnectError: the server's port is closed (ICMP port unreachable).
            RemoteProtocolError: the datagram is not a valid message.
        """
        self._check_open()
        try:
            arrived = await asyncio.wait_for(self._protocol.arrived.get(), self._timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no reply from {self.url} within {self._timeout:g}s") from None
        if isinstance(arrived, OSError):
            if isinstance(arrived, ConnectionRefusedError):
                raise ConnectError(f"connection refused: {self.url} (is a server listening?)")
            raise translate_oserror(arrived, self.url)
        return self.codec.decode_datagram(arrived)

    async def request(self, message: Any) -> Any:
        """Send ``message`` and return the reply, resending up to ``retries`` times on timeout."""
        data = self.codec.encode(message)
        self._check_open()
        arrived = self._protocol.arrived
        while not arrived.empty():  # late replies to earlier, timed-out requests
            arrived.get_nowait()
        transport = self._protocol.transport
        assert transport is not None
        for attempt in range(self.retries + 1):
            transport.sendto(data, self._to)
            try:
                return await self.recv()
            except Timeout:
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the client for {self.url} is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._protocol.transport is not None:
                self._protocol.transport.close()

    async def __aenter__(self) -> AsyncDatagramClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AsyncDatagramClient {self.url} {'closed' if self._closed else 'open'}>"


async def open_datagram(
    url: Address, codec: Codec | None = None, timeout: float | None = 5.0, retries: int = 2
) -> AsyncDatagramClient:
    """A datagram client on the running loop (``udp://``, ``unixgram://``), with the
    options of :class:`socketkit.DatagramClient` (broadcast and multicast URLs too).

    Raises:
        ValueError: a bad URL, or a stream URL (use :func:`connect`).
        ConnectError: the address cannot be resolved or reached.
    """
    endpoint = parse(url, "udp")
    if endpoint.is_stream:
        raise ValueError(f"{url} is stream-based: use await socketkit.aio.connect({url!r})")
    if retries < 0:
        raise ValueError("retries must not be negative")
    loop = asyncio.get_running_loop()
    # (a datagram socket's connect only records the peer; resolving may wait: off the loop)
    sock = await loop.run_in_executor(None, connect_socket, endpoint, timeout)
    protocol = _Datagrams()
    try:
        await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return AsyncDatagramClient(protocol, endpoint, codec if codec is not None else Raw(), timeout, retries)
