"""WebSocketLayer: a server connection's WebSocket (RFC 6455) under its codec, as a sans-IO layer.

Why a layer, not only a codec: a WebSocket connection speaks on its own, apart from
the handler's messages: the ``101`` that answers the upgrade, a pong for every
ping, the close frame that answers the peer's, ``1001`` when the server stops.
The layer seam already has what that needs on every engine (output of its own,
the peer's end of stream, a goodbye at close, a handshake under ``read_timeout``),
as TLS has. What it lacks is message boundaries: bytes go up and down. So the
layer and the :class:`~socketkit.codecs.websocket.WebSocket` codec above it speak
a private framing (:mod:`socketkit.codecs.websocket_carry`); a bad frame goes up
in it as an error that the codec raises after the messages before it, so those
are answered first, as on every codec.

The handshake is read by the HTTP request codec (as strict as h11); a request
that is not a valid upgrade gets its status (400, 426) and the connection closes.
Bad frames get a close frame with the code :mod:`.websocket_frames` names (1002,
1007, 1009) through the codec's error reply, and the session closes as for any
bad input.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from ..codecs.http import HttpRequest
from ..codecs.websocket_carry import CARRY_HEAD, carry
from ..codecs.websocket_deflate import Deflate, Deflater, Inflater, accept_offer
from ..codecs.websocket_frames import (
    BINARY,
    CLOSE,
    GOING_AWAY,
    NO_STATUS,
    NORMAL,
    PING,
    PONG,
    TEXT,
    Close,
    FrameReader,
    Ping,
    Pong,
    WebSocketError,
    close_payload,
    frame,
)
from ..codecs.websocket_handshake import HandshakeRefused, server_response
from ..errors import ProtocolError, Timeout
from . import Layer

__all__ = ["WebSocketLayer"]

_PACK = CARRY_HEAD.pack


class WebSocketLayer(Layer):
    """``WebSocketLayer(max_message, subprotocols=(), max_head=8192, serve_http=False,
    deflate=None, ping_interval=None)``: the server side. With ``serve_http`` a request that asks no upgrade goes
    up to the handler (to answer with an ``HttpResponse``; then the connection closes), and
    so does the upgrade request, after its ``101`` (so the handler knows a WebSocket began).
    ``deflate``: permessage-deflate accepted when a client offers it. ``ping_interval``:
    keepalive pings (see :meth:`tick`)."""

    __slots__ = (
        "_close_sent",
        "_deflate",
        "_deflater",
        "_failed",
        "_going_away",
        "_head",
        "_http",
        "_http_answered",
        "_http_asked",
        "_input_came",
        "_interval",
        "_max",
        "_max_head",
        "_out",
        "_pending",
        "_ping_out",
        "_reader",
        "_serve_http",
        "_subprotocols",
        "due",
        "ended_by_peer",
        "keeps_time",
        "peer_close",
        "request",
        "subprotocol",
    )

    def __init__(
        self,
        max_message: int,
        subprotocols: Sequence[str] = (),
        max_head: int = 8192,
        serve_http: bool = False,
        deflate: Deflate | None = None,
        ping_interval: float | None = None,
    ) -> None:
        self._interval = ping_interval
        self.keeps_time = ping_interval is not None
        self.due = float("inf")  # (the clock starts at the upgrade)
        self._input_came = False  # something came from the peer since the last tick
        self._ping_out = False  # a keepalive ping went and nothing came since
        self._deflate = deflate
        self._deflater: Deflater | None = None  # (once a client's offer is accepted)
        self._max_head = max_head
        self._serve_http = serve_http
        self._http_asked = False  # a plain HTTP request went up: its answer is the last output
        self._http_answered = False
        self._http = HttpRequest(max_head=max_head, max_body=1)
        self._head = bytearray()  # the upgrade request so far
        self._reader: FrameReader | None = None  # made once the upgrade is accepted
        self._subprotocols = tuple(subprotocols)
        self._out = bytearray()  # what the layer sends of its own
        self._pending = bytearray()  # private framing from the codec not yet whole
        self._close_sent = False
        self._failed = False
        self._going_away = False
        self._max = max_message
        #: the upgrade request (path in ``request.target``, headers), once read
        self.request: Any = None
        #: the subprotocol agreed, if any
        self.subprotocol: str | None = None
        #: the peer's close frame, once it came
        self.peer_close: Close | None = None
        self.ended_by_peer = False

    @property
    def in_progress(self) -> bool:
        """The handshake, or a frame or message begun: ``read_timeout`` is its deadline."""
        if self._reader is None:
            return not self._http_asked
        return self._reader.buffered > 0

    @property
    def ended(self) -> bool:
        """The peer's close came, or a plain HTTP request was answered: no more input."""
        return self.ended_by_peer or self._http_answered

    @property
    def answer_due(self) -> bool:
        """Our close frame went and the peer's has not come: RFC 6455 §7.1.1 has the server
        wait for it before closing the TCP connection (the lingering close does, bounded)."""
        return self._close_sent and self.peer_close is None and self._reader is not None

    def feed(self, data: bytes) -> bytes:
        if self._failed or self._http_asked:
            return b""  # (after a plain HTTP request, nothing more is read: it is answered, then closed)
        self._input_came = True
        reader = self._reader
        up = bytearray()
        if reader is None:
            data = self._handshake(data, up)
            reader = self._reader
            if reader is None or not data:
                return bytes(up)
        try:
            events = reader.feed(data)
        except WebSocketError as exc:  # the messages before the bad frame go up, then the error,
            self._pass_on(exc.messages, up)  # which the codec raises after them (so they are
            up += carry(b"E", struct.pack("!H", exc.code) + str(exc).encode())  # answered first)
            self._failed = True
            return bytes(up)
        self._pass_on(events, up)
        return bytes(up)

    def _pass_on(self, events: list[Any], up: bytearray) -> None:
        for event in events:
            if isinstance(event, str):  # (carry() inlined: a call fewer a message)
                data = event.encode()
                up += _PACK(b"T", len(data))
                up += data
            elif isinstance(event, bytes):
                up += _PACK(b"B", len(event))
                up += event
            elif isinstance(event, Ping):
                if not self._close_sent:
                    self._out += frame(PONG, event.payload)
            elif isinstance(event, Pong):
                pass  # (an answer to nothing we asked, or a heartbeat: RFC 6455 §5.5.3)
            elif isinstance(event, Close):  # the end of input: answered in close(), after the
                self.peer_close = event  # replies to the messages before it
                self.ended_by_peer = True

    def _handshake(self, data: bytes, up: bytearray) -> bytes:
        """Read the upgrade request; answer it. The bytes after it, if any, are frames. With
        ``serve_http`` the request goes ``up`` too (a plain one instead of being refused)."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            end = self._head.find(b"\n\n")
            size = end + 2
        else:
            size = end + 4
        if end < 0:  # (what has come is judged now: a first line that can never be a request,
            self._judge(bytes(self._head))  # a TLS hello, or a head over max_head, is refused at once)
            return b""
        head, rest = bytes(self._head[:size]), bytes(self._head[size:])
        self._head = bytearray()
        requests = self._judge(head)
        if not requests:  # (a head that announces a body: neither an upgrade nor a page asks one)
            refused = HandshakeRefused(400, "a WebSocket listener takes requests without a body")
            self._out += refused.response
            raise refused
        request = requests[0]
        if self._serve_http and request.header(b"upgrade") is None:
            self._http_asked = True
            up += carry(b"H", head)
            return b""
        agreed = inflater = None
        if self._deflate is not None:
            offers = [value for name, value in request.headers if name == b"sec-websocket-extensions"]
            agreed = accept_offer(offers, self._deflate) if offers else None
        try:
            response, self.subprotocol = server_response(
                request, self._subprotocols, agreed.answer if agreed else None
            )
        except HandshakeRefused as exc:
            self._out += exc.response
            raise
        self.request = request
        self._out += response
        if agreed is not None and self._deflate is not None:
            deflate = self._deflate
            self._deflater = Deflater(
                agreed.send_window, agreed.send_takeover, deflate.level, deflate.mem_level
            )
            inflater = Inflater(agreed.receive_window, agreed.receive_takeover)
        self._reader = FrameReader(masked=True, max_message=self._max, inflater=inflater)
        if self._interval is not None:
            self.due = 0.0  # (the keepalive's clock starts at the next tick: at once)
        if self._serve_http:
            up += carry(b"U", head)
        return rest

    def _judge(self, head: bytes) -> list[Any]:
        """The HTTP request codec's reading of ``head`` (a whole head, or what came of one);
        what it refuses gets its status (400, 431...), then the error is raised."""
        try:
            return self._http.decoder().feed(head)
        except ProtocolError as exc:
            self._out += self._http.error_reply(exc) or b""
            raise

    def wrap(self, data: bytes) -> bytes:
        """The codec's private framing -> WebSocket frames (unmasked: a server's); an HTTP
        response (``H``) as it is, once, to a plain HTTP request."""
        if self._close_sent or (self._reader is None and not self._http_asked):
            return b""
        pending = self._pending
        pending += data
        out = bytearray()
        at = 0
        size = CARRY_HEAD.size
        total = len(pending)
        while total - at >= size:
            kind, length = CARRY_HEAD.unpack_from(pending, at)
            if total - at - size < length:
                break
            payload = bytes(pending[at + size : at + size + length])
            at += size + length
            if kind == b"H":
                if self._http_asked and not self._http_answered:
                    out += payload
                    self._http_answered = True
                continue  # (an HTTP response to a WebSocket is not sent: it has no place there)
            if self._reader is None:
                continue  # (messages to a plain HTTP request have nowhere to go)
            if kind == b"C":
                (code,) = struct.unpack_from("!H", payload)
                out += frame(CLOSE, close_payload(code, payload[2:].decode()))
                self._close_sent = True
                break
            if self._deflater is not None:
                out += frame(
                    TEXT if kind == b"T" else BINARY, self._deflater.compress(payload), compressed=True
                )
            else:
                out += frame(TEXT if kind == b"T" else BINARY, payload)
        del pending[:at]
        return bytes(out)

    def tick(self, now: float) -> Timeout | None:
        """Keepalive: a peer that sent nothing for ``ping_interval`` seconds is pinged; one that
        still sent nothing (not even the pong) another ``ping_interval`` later is gone: the
        connection ends as a timeout, counted so (cut, as at idle_timeout: no close frame
        waits in the buffers of a peer that is not there). A peer that answers stays, quiet
        or not; its pongs are activity, so ``idle_timeout`` does not close it either (set
        ``ping_interval`` below ``idle_timeout``)."""
        assert self._interval is not None  # (only a layer with a keepalive keeps time)
        self.due = now + self._interval
        if self._input_came:
            self._input_came = self._ping_out = False
        elif self._ping_out:
            return Timeout(f"no answer to a keepalive ping within {self._interval:g}s")
        elif not self._close_sent:
            self._out += frame(PING, b"keepalive")
            self._ping_out = True
        return None

    def going_away(self) -> None:
        """The server is stopping: the goodbye says 1001."""
        self._going_away = True

    def close(self) -> None:
        """Our close frame: the peer's code back if it closed first (none if it gave none),
        else 1000, or 1001 when the server is stopping."""
        if self._reader is None or self._close_sent:
            return
        self._close_sent = True
        peer = self.peer_close
        if peer is not None:
            code = None if peer.code == NO_STATUS else peer.code
        else:
            code = GOING_AWAY if self._going_away else NORMAL
        self._out += frame(CLOSE, close_payload(code))

    def take_output(self) -> bytes:
        out = self._out
        if not out:
            return b""
        self._out = bytearray()
        return bytes(out)
