"""Msgpack: MessagePack values, one per frame (length-prefixed by default).

msgspec does the (de)serialization; it is imported when a ``Msgpack`` codec is
created, not when socketkit is imported, so the core stays standard-library
only. Without it, creating the codec raises ImportError saying what to install.
"""

from __future__ import annotations

from typing import Any

from .base import Codec
from .length import LengthPrefixed
from .lines import Lines
from .structured import StructuredCodec

__all__ = ["Msgpack"]


def _header_sizes() -> list[int]:
    """For each first byte: the bytes the value takes before its members, or -N for a
    value whose payload length is in the next N bytes."""
    sizes = [1] * 256  # fixints, nil, booleans, and container headers (members follow)
    for byte in range(0xA0, 0xC0):
        sizes[byte] = 1 + (byte & 0x1F)  # fixstr
    fixed = {0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9}
    fixed |= {0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18, 0xDC: 3, 0xDD: 5, 0xDE: 3, 0xDF: 5}
    lengths = {0xC4: -1, 0xC5: -2, 0xC6: -4, 0xC7: -1, 0xC8: -2, 0xC9: -4, 0xD9: -1, 0xDA: -2, 0xDB: -4}
    for byte, size in (fixed | lengths).items():
        sizes[byte] = size
    return sizes


_FIXED_SIZE = _header_sizes()
_EXT = frozenset((0xC7, 0xC8, 0xC9))


class Msgpack(StructuredCodec):
    """``Msgpack(framing=LengthPrefixed())``; needs ``pip install 'socketkit[msgpack]'``."""

    name = "msgpack"

    def __init__(
        self, framing: Codec | None = None, max_items: int = 100_000, max_items_total: int = 8_000_000
    ) -> None:
        try:
            import msgspec  # noqa: PLC0415 - optional dependency, imported on use
        except ImportError as exc:
            raise ImportError("the Msgpack codec needs msgspec: pip install 'socketkit[msgpack]'") from exc
        framing = framing if framing is not None else LengthPrefixed()
        if isinstance(framing, Lines):
            raise TypeError("Msgpack is binary and can contain any delimiter: frame it with LengthPrefixed()")
        super().__init__(framing, max_items, max_items_total)
        self._decoder = msgspec.msgpack.Decoder()
        self._encoder = msgspec.msgpack.Encoder()
        self._decode_error = msgspec.DecodeError

    def _load(self, frame: bytes) -> Any:
        try:
            return self._decoder.decode(frame)
        except self._decode_error as exc:
            raise ValueError(str(exc)) from exc

    def _count_items(self, frame: bytes, limit: int) -> int:
        # Every value starts with a header byte; containers' members follow them, so the
        # values are counted by walking headers and skipping the payloads of the others.
        items = 0
        pos = 0
        end = len(frame)
        while pos < end and items <= limit:
            size = _FIXED_SIZE[frame[pos]]
            if size < 0:  # a length field of -size bytes, then that many bytes
                width = -size
                size = 1 + width + int.from_bytes(frame[pos + 1 : pos + 1 + width], "big")
                if frame[pos] in _EXT:
                    size += 1  # the ext type byte
            pos += size
            items += 1
        return items

    def _dump(self, message: Any) -> bytes:
        return self._encoder.encode(message)
