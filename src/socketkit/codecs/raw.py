"""Raw: bytes as they arrive, no framing.

A message is whatever one ``recv`` returned; replies go out as given. This is
the tutorials' echo server, and the codec for protocols that frame themselves.
Message size is bounded by the engine's receive buffer, not by a frame header.
"""

from __future__ import annotations

from typing import Any

from ..errors import LimitExceeded
from .base import Codec, Decoder, as_bytes

__all__ = ["Raw"]


class _RawDecoder(Decoder):
    __slots__ = ()

    buffered = 0  # nothing is ever held

    def feed(self, data: bytes) -> list[Any]:
        return [bytes(data)] if data else []


_DECODER = _RawDecoder()  # stateless, so one instance serves every connection


class Raw(Codec):
    """Chunks as received; encode sends bytes unchanged."""

    name = "raw"

    def __init__(self, max_length: int = 65536) -> None:
        # Only datagrams can exceed the receive buffer; this bounds those.
        self.max_length = max_length

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _DECODER

    def encode(self, message: Any) -> bytes:
        return message if type(message) is bytes else as_bytes(message, "Raw")

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        if len(data) > self._limit(max_length):
            raise LimitExceeded(f"datagram of {len(data)} bytes exceeds {self._limit(max_length)}")
        return bytes(data)
