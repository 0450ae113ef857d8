"""LengthPrefixed: each message is a big-endian length header and that many bytes.

The header is 1, 2, 4 or 8 bytes. The length is checked against
``max_length`` as soon as the header is complete, before any of the body is
buffered, so a peer announcing a 4 GiB frame is refused after 4 bytes.
"""

from __future__ import annotations

from typing import Any

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from .base import Codec, Decoder, as_bytes, check_positive

__all__ = ["LengthPrefixed"]

_HEADER_SIZES = (1, 2, 4, 8)


class _LengthDecoder(Decoder):
    __slots__ = ("_buf", "_header", "_max")

    def __init__(self, header_size: int, max_length: int) -> None:
        self._header = header_size
        self._max = max_length
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        if not data:
            if buf:
                raise RemoteProtocolError(f"stream ended inside a frame ({len(buf)} bytes buffered)")
            return []
        buf += data
        header = self._header
        size = len(buf)
        out: list[Any] = []
        pos = 0
        while size - pos >= header:
            length = int.from_bytes(buf[pos : pos + header], "big")
            if length > self._max:
                error = LimitExceeded(f"frame of {length} bytes exceeds the limit of {self._max}")
                error.messages = out  # the complete frames before it are kept
                raise error
            end = pos + header + length
            if end > size:
                break
            out.append(bytes(buf[pos + header : end]))
            pos = end
        if pos:
            del buf[:pos]
        return out


class LengthPrefixed(Codec):
    """``LengthPrefixed(header_size=4, max_length=16 MiB)``."""

    name = "length"

    def __init__(self, header_size: int = 4, max_length: int = 16 * 1024 * 1024) -> None:
        if header_size not in _HEADER_SIZES:
            raise ValueError(f"header_size must be one of {_HEADER_SIZES}, not {header_size!r}")
        check_positive("max_length", max_length)
        self.header_size = header_size
        self.max_length = min(max_length, (1 << (8 * header_size)) - 1)

    def resized(self, max_length: int) -> Codec:
        return LengthPrefixed(self.header_size, max_length)  # capped by what the header can say

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _LengthDecoder(self.header_size, self._limit(max_length))

    def encode(self, message: Any) -> bytes:
        data = message if type(message) is bytes else as_bytes(message, "LengthPrefixed")
        if len(data) > self.max_length:
            raise LocalProtocolError(
                f"message of {len(data)} bytes exceeds the frame limit of {self.max_length}"
            )
        return len(data).to_bytes(self.header_size, "big") + data

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        if len(data) < self.header_size:
            raise RemoteProtocolError(f"datagram of {len(data)} bytes is shorter than the header")
        length = int.from_bytes(data[: self.header_size], "big")
        limit = self._limit(max_length)
        if length > limit:
            raise LimitExceeded(f"frame of {length} bytes exceeds the limit of {limit}")
        if length != len(data) - self.header_size:
            raise RemoteProtocolError(
                f"datagram header says {length} bytes but {len(data) - self.header_size} follow"
            )
        return bytes(data[self.header_size :])

    def __repr__(self) -> str:
        return f"LengthPrefixed(header_size={self.header_size}, max_length={self.max_length})"
