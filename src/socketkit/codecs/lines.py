"""Lines: messages separated by a delimiter (default ``\\n``).

Messages exclude the delimiter; ``encode`` appends it. With the default ``\\n``
delimiter a trailing ``\\r`` is stripped, so telnet/ncat ``-C`` CRLF peers work.

Why the shape of ``feed``: the common case (nothing buffered, whole lines in
one chunk) is one C-level ``bytes.split``. A partial line is appended to a
bytearray and only the new bytes are searched, so a long line arriving a byte
at a time costs linear, not quadratic, time. A partial line longer than
``max_length`` raises at once, so memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from .base import Codec, Decoder, as_bytes, check_positive

__all__ = ["Lines"]


class _LinesDecoder(Decoder):
    __slots__ = ("_buf", "_delim", "_max", "_partial_max", "_strip_cr", "buffered")

    buffered: int  # kept as feed() goes: read on every read, so no call to compute it

    def __init__(self, delimiter: bytes, max_length: int, strip_cr: bool) -> None:
        self._delim = delimiter
        self._max = max_length
        self._strip_cr = strip_cr
        # A partial line may hold max_length bytes plus the "\r" of a CRLF and
        # all but the last byte of a multi-byte delimiter.
        self._partial_max = max_length + (1 if strip_cr else 0) + len(delimiter) - 1
        self._buf = bytearray()
        self.buffered = 0

    def feed(self, data: bytes) -> list[Any]:
        if not data:
            if self._buf:
                raise RemoteProtocolError(
                    f"stream ended inside a line ({len(self._buf)} bytes without a delimiter)"
                )
            return []
        buf = self._buf
        delim = self._delim
        if buf:
            start = max(0, len(buf) - len(delim) + 1)
            buf += data
            if buf.find(delim, start) < 0:
                size = len(buf)
                if size > self._partial_max:
                    raise self._too_long()
                self.buffered = size
                return []
            data = bytes(buf)
            buf.clear()
        elif delim not in data:
            size = len(data)
            if size > self._partial_max:
                raise self._too_long()
            buf += data
            self.buffered = size
            return []
        lines = data.split(delim)
        rest = lines[-1]
        del lines[-1]
        if self._strip_cr and b"\r" in data:
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
        if max(map(len, lines)) > self._max:
            error = self._too_long()
            error.messages = list(itertools.takewhile(lambda line: len(line) <= self._max, lines))
            raise error
        if rest:
            size = len(rest)
            if size > self._partial_max:
                error = self._too_long()
                error.messages = lines  # the complete lines before it are kept
                raise error
            buf += rest
            self.buffered = size
        else:
            self.buffered = 0
        return lines

    def _too_long(self) -> LimitExceeded:
        # No byte count: the same stream must give the same error however it was split.
        return LimitExceeded(f"line longer than {self._max} bytes")


class Lines(Codec):
    """Delimiter-separated messages, e.g. ``Lines()`` or ``Lines(b"\\r\\n", max_length=1024)``."""

    name = "lines"

    def __init__(self, delimiter: bytes = b"\n", max_length: int = 65536) -> None:
        if not isinstance(delimiter, bytes) or not delimiter:
            raise ValueError(f"delimiter must be non-empty bytes, not {delimiter!r}")
        self.delimiter = delimiter
        self.max_length = check_positive("max_length", max_length)
        self._strip_cr = delimiter == b"\n"

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _LinesDecoder(self.delimiter, self._limit(max_length), self._strip_cr)

    def encode(self, message: Any) -> bytes:
        data = message if type(message) is bytes else as_bytes(message, "Lines")
        if self.delimiter in data:
            raise LocalProtocolError(f"message contains the delimiter {self.delimiter!r}")
        return data + self.delimiter

    def error_reply(self, error: Exception) -> bytes | None:
        """``error: <what was wrong>`` as one line, so a line peer reads why it is cut off."""
        return f"error: {error}".encode().replace(self.delimiter, b" ") + self.delimiter

    def refusal(self, message: Any) -> str | None:
        if isinstance(message, bytes) and message.startswith(b"error: "):
            return message[7:].decode(errors="replace")
        return None

    def failure_reply(self) -> bytes:
        """``error: internal error`` as one line: the handler failed (what it raised stays in
        the server's log)."""
        return b"error: internal error" + self.delimiter

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        message = bytes(data)
        if message.endswith(self.delimiter):
            message = message[: -len(self.delimiter)]
        if self._strip_cr and message.endswith(b"\r"):
            message = message[:-1]
        limit = self._limit(max_length)
        if len(message) > limit:
            raise LimitExceeded(f"line longer than {limit} bytes (got {len(message)})")
        return message

    def __repr__(self) -> str:
        return f"Lines(delimiter={self.delimiter!r}, max_length={self.max_length})"
