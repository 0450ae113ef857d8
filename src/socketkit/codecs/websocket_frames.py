"""WebSocket frames (RFC 6455 §5), sans-IO: a reader that turns bytes into messages and
control frames, and the writer of frames.

Why apart from the codec: a WebSocket connection starts as HTTP (the handshake, in
:mod:`.websocket_handshake`) and then answers pings and closes of its own; this
module knows only frames, so it is tested on its own: whole, split at every byte,
and against wsproto as an oracle (whatever wsproto refuses is refused here, with
the same close code).

What the reader keeps to (each refusal a :class:`WebSocketError` with the close
code the peer is sent):

- **1002, protocol error**: reserved bits without an extension, an unknown opcode,
  a control frame fragmented or over 125 bytes, a length not in its shortest form
  (or with its top bit set), a frame masked the wrong way for its direction (a
  client's must be, a server's must not), a continuation with no message begun or
  a new message before the last one's final fragment, a close frame of one byte
  or with a code no endpoint may send.
- **1007, invalid data**: text (or a close reason) that is not UTF-8, found as
  soon as the bytes that break it arrive, not when the message ends.
- **1009, too big**: a message whose fragments would pass ``max_message``, refused
  when the frame's header announces it, before its payload is read; a compressed one
  (permessage-deflate, :mod:`.websocket_deflate`) also as soon as its inflated bytes
  would pass it, never inflating more than one byte past the limit.

Control frames may come between a message's fragments (RFC 6455 §5.4); nothing
after a close frame is read. A payload is unmasked and moved out of the buffer as
it arrives, so a large message is held once, not twice.
"""

from __future__ import annotations

import codecs
import os
import struct
from dataclasses import dataclass
from typing import Any

from ..errors import LimitExceeded, RemoteProtocolError
from .websocket_deflate import Inflater

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "Close",
    "FrameReader",
    "Ping",
    "Pong",
    "WebSocketError",
    "WebSocketTooBig",
    "close_payload",
    "frame",
    "mask",
    "sendable_close_code",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES = frozenset((CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG))

#: Close codes (RFC 6455 §7.4.1, and the IANA registry's 1012-1014)
NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_DATA, TOO_BIG, INTERNAL_ERROR = 1000, 1001, 1002, 1007, 1009, 1011
NO_STATUS, ABNORMAL = 1005, 1006  # (said locally only: never sent in a close frame)
#: the codes below 3000 a peer may send: 1004-1006 and 1015 are reserved or local-only
_PEER_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


class WebSocketError(RemoteProtocolError):
    """The peer broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, reason: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocketTooBig(LimitExceeded, WebSocketError):
    """A message larger than the limit (close code 1009)."""

    def __init__(self, reason: str) -> None:
        WebSocketError.__init__(self, reason, TOO_BIG)


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping from the peer (its pong carries the same payload)."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong from the peer."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame: its code (1005 when it gave none) and reason."""

    code: int = NO_STATUS
    reason: str = ""


def sendable_close_code(code: int) -> bool:
    """Whether an endpoint may put ``code`` in a close frame (RFC 6455 §7.4)."""
    return code in _PEER_CODES or 3000 <= code <= 4999


def mask(payload: bytes, key: bytes, offset: int = 0) -> bytes:
    """``payload`` XOR the 4-byte ``key`` (masking and unmasking are one operation), the
    key's bytes taken from ``offset`` on (a payload read in pieces)."""
    size = len(payload)
    if not size:
        return b""
    if offset % 4:
        key = key[offset % 4 :] + key[: offset % 4]
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(size, "little")


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = False, compressed: bool = False
) -> bytes:
    """One frame's bytes: a client's are ``masked`` (with a fresh random key), a server's not;
    ``compressed`` sets RSV1 (a permessage-deflate message's first frame)."""
    size = len(payload)
    first = (0x80 if fin else 0) | (0x40 if compressed else 0) | opcode
    flag = 0x80 if masked else 0
    if size < 126:
        head = bytes((first, flag | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, flag | 126, size)
    else:
        head = struct.pack("!BBQ", first, flag | 127, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    """A close frame's payload; ``None``: no code (and then no reason).

    Raises:
        ValueError: a code no endpoint may send, a reason without a code, or a reason
            over 123 bytes of UTF-8 (a control frame holds 125).
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not sendable_close_code(code):
        raise ValueError(
            f"close code {code} is not one an endpoint may send (1000-1003, 1007-1014, 3000-4999)"
        )
    data = reason.encode()
    if len(data) > 123:
        raise ValueError(f"a close reason holds 123 bytes of UTF-8, not {len(data)}")
    return struct.pack("!H", code) + data


class FrameReader:
    """One direction of one connection: bytes in, messages (``str`` for text, ``bytes`` for
    binary) and :class:`Ping`, :class:`Pong`, :class:`Close` out, in order.

    ``masked``: whether the peer must mask (True on a server: a client's frames are
    masked). ``max_message``: the largest message, in bytes, over all its fragments.
    ``inflater``: permessage-deflate was agreed (a message with RSV1 is compressed).
    """

    __slots__ = (
        "_buf",
        "_closed",
        "_control",
        "_fin",
        "_inflated",
        "_inflater",
        "_key",
        "_left",
        "_masked",
        "_max",
        "_opcode",
        "_parts",
        "_size",
        "_text",
        "_unmasked",
        "_zipped",
        "buffered",
    )

    def __init__(self, *, masked: bool, max_message: int, inflater: Inflater | None = None) -> None:
        self._masked = masked
        self._max = max_message
        self._inflater = inflater
        self._zipped = False  # the message being read is compressed
        self._inflated = 0  # its inflated bytes so far
        self._buf = bytearray()
        self._closed = False
        # the frame being read: its opcode, FIN bit, mask key, payload bytes still to come,
        # and how many of them were unmasked so far (the key's offset)
        self._control = -1  # a control frame's opcode while its payload is read, else -1
        self._fin = False
        self._key: bytes | None = None
        self._left = -1  # -1: between frames (a header is next)
        self._unmasked = 0
        # the message being read: its opcode (0: none), its parts, their size, its decoder
        self._opcode = 0
        self._parts: list[Any] = []
        self._size = 0
        self._text: codecs.IncrementalDecoder | None = None
        #: bytes held of what is not yet complete (a header, a payload, a message's parts)
        self.buffered = 0

    @property
    def closed(self) -> bool:
        """The peer's close frame was read: nothing after it is."""
        return self._closed

    def feed(self, data: bytes) -> list[Any]:
        """What ``data`` completes; ``b""`` is the end of the stream.

        Raises:
            WebSocketError: the peer broke the protocol (``code`` says how to answer);
                ``messages`` holds what was complete before it.
            RemoteProtocolError: the stream ended inside a frame or a message.
        """
        if self._closed:
            return []
        if not data:
            if self._buf or self._left >= 0 or self._opcode:
                raise RemoteProtocolError("the connection ended inside a WebSocket frame")
            return []
        self._buf += data
        out: list[Any] = []
        try:
            while not self._closed:
                if self._left < 0 and (len(self._buf) < 2 or not self._header()):
                    break  # (the length test first: a call fewer after each last frame)
                if not self._payload(out):
                    break
        except WebSocketError as exc:
            exc.messages = out
            raise
        self.buffered = len(self._buf) + (self._inflated if self._zipped else self._size)
        return out

    def _header(self) -> bool:
        """Read the next frame's header, if it is all here; refuse a bad one at once."""
        buf = self._buf  # (two bytes at least: feed() saw to it)
        first, second = buf[0], buf[1]
        opcode = first & 0x0F
        fin = bool(first & 0x80)
        if opcode not in _OPCODES:
            raise WebSocketError(f"unknown opcode {opcode:#x}")
        control = opcode >= CLOSE
        if control and not fin:
            raise WebSocketError("a control frame may not be fragmented")
        size = second & 0x7F
        if control and size > 125:
            raise WebSocketError("a control frame's payload is 125 bytes at most")
        at = 2
        if size == 126:
            if len(buf) < 4:
                return False
            (size,) = struct.unpack_from("!H", buf, 2)
            if size < 126:
                raise WebSocketError("a payload length in 2 bytes where 1 would do")
            at = 4
        elif size == 127:
            if len(buf) < 10:
                return False
            (size,) = struct.unpack_from("!Q", buf, 2)
            if size < 65536:
                raise WebSocketError("a payload length in 8 bytes where 2 would do")
            if size >> 63:
                raise WebSocketError("a payload length with its top bit set")
            at = 10
        if first & 0x70 and (first & 0x30 or self._inflater is None or control or opcode == CONTINUATION):
            if not first & 0x30 and self._inflater is not None:
                raise WebSocketError("RSV1 (compressed) on a frame that is not a message's first")
            raise WebSocketError("reserved bits set, and no extension was agreed that uses them")
        masked = bool(second & 0x80)
        if masked != self._masked:
            raise WebSocketError(
                "a client's frames must be masked" if self._masked else "a server's frames must not be masked"
            )
        key = None
        if masked:
            if len(buf) < at + 4:
                return False
            key = bytes(buf[at : at + 4])
            at += 4
        if not control:
            if opcode == CONTINUATION:
                if not self._opcode:
                    raise WebSocketError("a continuation frame with no message begun")
            elif self._opcode:
                raise WebSocketError("a new message began before the last one's final fragment")
            if opcode != CONTINUATION:
                self._zipped = bool(first & 0x40)
            # (a compressed message's wire bytes: held to the limit, with deflate's worst-case
            # growth of incompressible bytes allowed for)
            if self._size + size > (self._max + (self._max >> 8) + 64 if self._zipped else self._max):
                raise WebSocketTooBig(f"a message over {self._max} bytes")
            if opcode != CONTINUATION:
                self._opcode = opcode  # (text's incremental decoder is made if it comes in pieces)
        del buf[:at]
        self._control = opcode if control else -1
        self._fin = fin
        self._key = key
        self._left = size
        self._unmasked = 0
        return True

    def _payload(self, out: list[Any]) -> bool:
        """Take what is here of the frame's payload; False when more is needed."""
        buf = self._buf
        if self._control >= 0:  # a control frame is handled whole (125 bytes at most)
            if len(buf) < self._left:
                return False
            payload = self._unmask(bytes(buf[: self._left]))
            del buf[: self._left]
            self._left = -1
            out.append(self._control_frame(self._control, payload))
            return True
        left = self._left
        if self._fin and not self._size and not self._parts and not self._zipped and len(buf) >= left:
            # the common case: a message in one frame, all here (one decode, no parts to join)
            piece = bytes(buf[:left])
            del buf[:left]
            if self._key is not None:
                piece = mask(piece, self._key)
            self._left = -1
            if self._opcode == TEXT:
                try:
                    out.append(piece.decode())
                except UnicodeDecodeError as exc:
                    raise WebSocketError(f"text that is not UTF-8 ({exc.reason})", INVALID_DATA) from None
            else:
                out.append(piece)
            self._opcode = 0
            self._text = None  # (made if empty fragments came first)
            return True
        if self._opcode == TEXT and self._text is None:
            self._text = codecs.getincrementaldecoder("utf-8")()
        take = min(left, len(buf))
        if take:
            piece = self._unmask(bytes(buf[:take]))
            del buf[:take]
            self._left -= take
            self._size += take
            if self._zipped:
                piece = self._inflate(piece)
            if self._text is not None:
                try:
                    self._parts.append(self._text.decode(piece, self._fin and not self._left))
                except UnicodeDecodeError as exc:
                    raise WebSocketError(f"text that is not UTF-8 ({exc.reason})", INVALID_DATA) from None
            else:
                self._parts.append(piece)
        elif self._fin and not self._left:  # an empty last fragment
            tail = self._inflate(b"") if self._zipped else b""
            if self._text is not None:
                try:
                    self._parts.append(self._text.decode(tail, True))
                except UnicodeDecodeError as exc:
                    raise WebSocketError(f"text that is not UTF-8 ({exc.reason})", INVALID_DATA) from None
            elif tail:
                self._parts.append(tail)
        if self._left:
            return False
        self._left = -1
        if self._fin:
            parts = self._parts
            out.append("".join(parts) if self._text is not None else b"".join(parts))
            self._opcode = 0
            self._parts = []
            self._size = 0
            self._text = None
            self._zipped = False
            self._inflated = 0
        return True

    def _inflate(self, piece: bytes) -> bytes:
        """A compressed message's next piece inflated (its last with the lost tail put
        back), refused with 1009 as soon as the message would pass the limit."""
        assert self._inflater is not None  # (RSV1 is refused without it)
        room = self._max - self._inflated
        try:
            out = self._inflater.inflate(piece, room, self._fin and not self._left)
        except ValueError as exc:
            raise WebSocketError(str(exc)) from None
        if len(out) > room:
            raise WebSocketTooBig(f"a message that inflates past {self._max} bytes")
        self._inflated += len(out)
        return out

    def _unmask(self, data: bytes) -> bytes:
        if self._key is None:
            return data
        offset = self._unmasked
        self._unmasked += len(data)
        return mask(data, self._key, offset)

    def _control_frame(self, opcode: int, payload: bytes) -> Any:
        if opcode == PING:
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        self._closed = True
        if not payload:
            return Close()
        if len(payload) == 1:
            raise WebSocketError("a close frame's code is 2 bytes, not 1")
        (code,) = struct.unpack_from("!H", payload)
        if not sendable_close_code(code):
            raise WebSocketError(f"close code {code} is not one an endpoint may send")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError as exc:
            raise WebSocketError(f"a close reason that is not UTF-8 ({exc.reason})", INVALID_DATA) from None
        return Close(code, reason)
