"""WebSocket: a server's messages over RFC 6455, ``str`` for text and ``bytes`` for binary.

Why a codec with a layer under it: the handler sees messages, as with every codec,
and sends them with ``conn.send``; what WebSocket says on its own (the upgrade's
``101``, pongs, the close handshake, ``1001`` at a server's stop) is its
:class:`~socketkit.layers.websocket.WebSocketLayer`'s, which every server puts under
this codec (:meth:`WebSocket.layers`). The two speak a private framing
(:mod:`.websocket_carry`); this codec's decoder reads it, so its messages are whole and
its errors come after the messages before them, on every engine.

What a handler may send: ``str`` (a text message), ``bytes`` (binary), or a
:class:`~socketkit.codecs.websocket_frames.Close` to close with a code and reason
(``conn.close()`` closes with 1000). A handler that raises closes with 1011; bad
frames close with 1002, 1007 or 1009 and the reason.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import struct
import typing
from collections.abc import Sequence
from typing import Any

from ..errors import LimitExceeded, RemoteProtocolError
from ..layers import websocket as layer  # (the module: the layer's imports come back here)
from .base import Codec, Decoder, check_positive
from .http import HttpRequest, HttpResponse, render_response
from .websocket_carry import CARRY_HEAD, carry
from .websocket_deflate import Deflate, DeflateAgreed, Deflater, Inflater, check_answer, client_offer
from .websocket_frames import (
    BINARY,
    CLOSE,
    INTERNAL_ERROR,
    INVALID_DATA,
    NO_STATUS,
    NORMAL,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    TOO_BIG,
    Close,
    FrameReader,
    Ping,
    WebSocketError,
    WebSocketTooBig,
    close_payload,
    frame,
)

if typing.TYPE_CHECKING:
    from ..layers import LayerFactory

__all__ = ["Close", "Deflate", "WebSocket", "WebSocketClient", "WebSocketError"]

_HEAD = CARRY_HEAD.size
_PACK = CARRY_HEAD.pack
_KINDS = frozenset((b"T", b"B", b"E", b"H", b"U"))
_MAX_ERROR = 2 + 1024  # an error's code and reason


class _CarryDecoder(Decoder):
    """Reads the layer's private framing: whole messages, or the error the layer found."""

    __slots__ = ("_buf", "_http", "_limit", "buffered")

    buffered: int  # (an attribute, as the hot path's decoders keep it)

    def __init__(self, limit: int, http: HttpRequest) -> None:
        self._buf = bytearray()
        self._limit = limit
        self._http = http
        self.buffered = 0

    def feed(self, data: bytes) -> list[Any]:
        if not data:
            return []  # (the layer said whether the stream ended inside a frame)
        buf = self._buf
        buf += data
        out: list[Any] = []
        at = 0
        size = len(buf)
        while size - at >= _HEAD:
            kind, length = CARRY_HEAD.unpack_from(buf, at)
            if kind not in _KINDS:  # (only the layer writes this framing)
                self._fail(RemoteProtocolError("a WebSocket codec reads what its layer passes up"), out)
            if length > (
                _MAX_ERROR if kind == b"E" else self._http.max_head if kind in b"HU" else self._limit
            ):
                self._fail(WebSocketTooBig(f"a message over {self._limit} bytes"), out)
            if size - at - _HEAD < length:
                break
            payload = bytes(buf[at + _HEAD : at + _HEAD + length])
            at += _HEAD + length
            if kind == b"B":
                out.append(payload)
            elif kind in b"HU":  # an HTTP request (serve_http): the plain one, or the upgrade
                try:
                    out.extend(self._http.decoder().feed(payload))
                except RemoteProtocolError as exc:
                    self._fail(exc, out)
            elif kind == b"T":
                try:
                    out.append(payload.decode())
                except UnicodeDecodeError:
                    self._fail(WebSocketError("text that is not UTF-8", INVALID_DATA), out)
            else:  # E: the layer found a bad frame; raised after the messages before it
                code = int.from_bytes(payload[:2], "big")
                reason = payload[2:].decode(errors="replace")
                self._fail(WebSocketTooBig(reason) if code == TOO_BIG else WebSocketError(reason, code), out)
        del buf[:at]
        self.buffered = len(buf)
        return out

    def _fail(self, error: RemoteProtocolError, before: list[Any]) -> typing.NoReturn:
        del self._buf[:]
        self.buffered = 0
        error.messages = before
        raise error


class WebSocket(Codec):
    """``WebSocket(max_length=1 MiB, subprotocols=(), max_head=8192, serve_http=False,
    deflate=False, ping_interval=None)``: a server's side (and, as ``client_side()``, a client's).

    ``subprotocols``: those the server speaks, in its order of preference (the first that
    the client offers is agreed; the layer's ``subprotocol`` says which). ``max_head``
    bounds the upgrade request. ``serve_http``: a page and its WebSocket on one port; the
    handler also gets each HTTP request as a :class:`~socketkit.codecs.http.Request`: one
    that asks no upgrade, to answer with an ``HttpResponse`` (the connection then closes),
    and the upgrade itself once accepted (``request.header(b"upgrade")``), to greet or
    count the new peer.

    ``deflate``: permessage-deflate (RFC 7692), off by default: ``True`` for
    :class:`~socketkit.codecs.websocket_deflate.Deflate`'s defaults (a 4 KB window), or a
    ``Deflate(...)``. A server accepts a client's offer; a client offers it. A message
    never inflates past ``max_length`` (1009 the moment it would).

    ``ping_interval``: keepalive pings, off by default: a peer silent that long is pinged,
    and one that answers nothing by the next interval is cut off as timed out; a peer that
    answers is kept, however quiet (its pongs are activity under ``idle_timeout``). Below
    ``idle_timeout``, which otherwise closes a quiet peer first.
    """

    name = "ws"

    def __init__(
        self,
        max_length: int = 1024 * 1024,
        subprotocols: Sequence[str] = (),
        max_head: int = 8192,
        *,
        serve_http: bool = False,
        deflate: bool | Deflate = False,
        ping_interval: float | None = None,
    ) -> None:
        self.max_length = check_positive("max_length", max_length)
        self.max_head = check_positive("max_head", max_head)
        self.subprotocols = tuple(subprotocols)
        self.serve_http = serve_http
        self.deflate = _deflate(deflate)
        self.ping_interval = _interval(ping_interval)
        self._http = HttpRequest(max_head=max_head, max_body=1)

    def with_options(
        self, *, deflate: bool | Deflate | None = None, ping_interval: float | None = None
    ) -> WebSocket:
        """A copy of this codec with these options changed (those left None kept): what
        ``serve --deflate --ping-interval`` use on a service's own codec."""
        codec = copy.copy(self)
        if deflate is not None:
            codec.deflate = _deflate(deflate)
        if ping_interval is not None:
            codec.ping_interval = _interval(ping_interval)
        return codec

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _CarryDecoder(self._limit(max_length), self._http)

    def layers(self) -> tuple[LayerFactory, ...]:
        return (
            functools.partial(
                layer.WebSocketLayer,
                self.max_length,
                self.subprotocols,
                self.max_head,
                self.serve_http,
                self.deflate,
                self.ping_interval,
            ),
        )

    def encode(self, message: Any) -> bytes:
        if isinstance(message, str):  # (carry() inlined: a call fewer a message)
            data = message.encode()
            return _PACK(b"T", len(data)) + data
        if isinstance(message, bytes):
            return _PACK(b"B", len(message)) + message
        if isinstance(message, (bytearray, memoryview)):
            return carry(b"B", bytes(message))
        if isinstance(message, Close):
            return _close(message.code, message.reason)
        if isinstance(message, HttpResponse):  # (to a plain HTTP request: the last output)
            return carry(b"H", render_response(dataclasses.replace(message, close=True)))
        raise TypeError(
            f"WebSocket sends str (text), bytes (binary) or a Close, not {type(message).__name__}"
        )

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        raise RemoteProtocolError("WebSocket is not served over datagrams")

    def error_reply(self, error: Exception) -> bytes | None:
        if isinstance(error, WebSocketError):
            return _close(error.code, error.reason)
        if isinstance(error, LimitExceeded):
            return _close(TOO_BIG, str(error))
        if isinstance(error, RemoteProtocolError):
            return _close(PROTOCOL_ERROR, str(error))
        return None

    def failure_reply(self) -> bytes:
        return _close(INTERNAL_ERROR, "internal error")

    def client_side(self) -> Codec:
        """:class:`WebSocketClient`: masked frames out, the server's in."""
        return WebSocketClient(self.max_length, self.subprotocols, deflate=self.deflate or False)

    def __repr__(self) -> str:
        return (
            f"WebSocket(max_length={self.max_length}, subprotocols={self.subprotocols!r}"
            f"{', deflate=' + repr(self.deflate) if self.deflate else ''}"
            f"{f', ping_interval={self.ping_interval:g}' if self.ping_interval else ''})"
        )


class _ClientDecoder(Decoder):
    """A client's reading of the server's frames: messages out; a pong for each ping and
    the answer to the server's close are the protocol's own replies (:meth:`take_interim`)."""

    __slots__ = ("_frames", "_replies", "buffered", "farewell")

    buffered: int

    def __init__(self, limit: int, inflater: Inflater | None) -> None:
        self._frames = FrameReader(masked=False, max_message=limit, inflater=inflater)
        self._replies = bytearray()
        self.buffered = 0
        #: the server's close, as a client reports it ("1001 going away"), once it came
        self.farewell: str | None = None

    def feed(self, data: bytes) -> list[Any]:
        out: list[Any] = []
        for event in self._frames.feed(data):
            if isinstance(event, (str, bytes)):
                out.append(event)
            elif isinstance(event, Ping):
                self._replies += frame(PONG, event.payload, masked=True)
            elif isinstance(event, Close):
                code = None if event.code == NO_STATUS else event.code
                self._replies += frame(CLOSE, close_payload(code), masked=True)
                self.farewell = f"{event.code} {event.reason}".rstrip()
        self.buffered = self._frames.buffered
        return out

    def take_interim(self) -> bytes:
        replies, self._replies = bytes(self._replies), bytearray()
        return replies


class WebSocketClient(Codec):
    """``WebSocketClient(max_length=1 MiB, subprotocols=(), deflate=False)``: a client's side
    (what ``connect("ws://...")`` frames with). Messages as the server's side; a client's
    frames are masked.

    One per connection (``client_side()`` makes a fresh one): once the upgrade agreed
    permessage-deflate (:meth:`agree`), its compressor keeps that connection's context, so
    a client encodes its messages in the order it sends them.
    """

    name = "ws-client"

    def __init__(
        self,
        max_length: int = 1024 * 1024,
        subprotocols: Sequence[str] = (),
        *,
        deflate: bool | Deflate = False,
    ) -> None:
        self.max_length = check_positive("max_length", max_length)
        self.subprotocols = tuple(subprotocols)
        self.deflate = _deflate(deflate)
        self._agreed: DeflateAgreed | None = None
        self._deflater: Deflater | None = None

    def client_side(self) -> Codec:
        """A fresh one, for one connection (what it agrees is that connection's)."""
        return WebSocketClient(self.max_length, self.subprotocols, deflate=self.deflate or False)

    @property
    def agreed(self) -> DeflateAgreed | None:
        """What permessage-deflate the upgrade agreed (None: none; messages go uncompressed)."""
        return self._agreed

    @property
    def extensions(self) -> str | None:
        """The ``Sec-WebSocket-Extensions`` to offer in the upgrade (None: none)."""
        return client_offer(self.deflate) if self.deflate else None

    def agree(self, extensions: Sequence[bytes]) -> None:
        """Take the server's ``Sec-WebSocket-Extensions`` answer: from now on, messages are
        compressed if it agreed (and decoders made after this inflate).

        Raises:
            RemoteProtocolError: an answer that does not match the offer.
        """
        if self.deflate is None:
            if extensions:
                raise RemoteProtocolError("the server agreed to extensions we did not offer")
            return
        agreed = self._agreed = check_answer(extensions, self.deflate)
        if agreed is not None:
            self._deflater = Deflater(
                agreed.send_window, agreed.send_takeover, self.deflate.level, self.deflate.mem_level
            )

    def decoder(self, max_length: int | None = None) -> Decoder:
        agreed = self._agreed
        inflater = Inflater(agreed.receive_window, agreed.receive_takeover) if agreed else None
        return _ClientDecoder(self._limit(max_length), inflater)

    def encode(self, message: Any) -> bytes:
        if isinstance(message, str):
            data, opcode = message.encode(), TEXT
        elif isinstance(message, (bytes, bytearray, memoryview)):
            data, opcode = bytes(message), BINARY
        elif isinstance(message, Close):
            return frame(CLOSE, close_payload(message.code, message.reason), masked=True)
        else:
            raise TypeError(
                f"WebSocket sends str (text), bytes (binary) or a Close, not {type(message).__name__}"
            )
        if self._deflater is not None:
            return frame(opcode, self._deflater.compress(data), masked=True, compressed=True)
        return frame(opcode, data, masked=True)

    def goodbye(self) -> bytes:
        return frame(CLOSE, close_payload(NORMAL), masked=True)

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        raise RemoteProtocolError("WebSocket is not served over datagrams")

    def __repr__(self) -> str:
        return (
            f"WebSocketClient(max_length={self.max_length}, subprotocols={self.subprotocols!r}"
            f"{', deflate=' + repr(self.deflate) if self.deflate else ''})"
        )


def _interval(seconds: float | None) -> float | None:
    """``ping_interval=`` as given to a codec, checked."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"ping_interval is seconds > 0 (or None: no keepalive pings), not {seconds!r}")
    return seconds


def _deflate(deflate: bool | Deflate) -> Deflate | None:
    """``deflate=`` as given to a codec: the settings, or None for off."""
    if isinstance(deflate, Deflate):
        return deflate
    if deflate is True:
        return Deflate()
    if deflate is False:
        return None
    raise TypeError(f"deflate is True, False or a socketkit.Deflate(...), not {deflate!r}")


def _close(code: int, reason: str) -> bytes:
    """A close for the layer to send; the reason cut to what a close frame holds."""
    data = reason.encode()[:123].decode(errors="ignore")
    return carry(b"C", struct.pack("!H", code) + data.encode())
