"""Msgpack: MessagePack values, one per frame (length-prefixed by default).

msgspec does the (de)serialization; it is imported when a ``Msgpack`` codec is
created, not when socketkit is imported, so the core stays standard-library
only. Without it, creating the codec raises ImportError saying what to install.

Nesting is limited to :data:`MAX_DEPTH` levels, as for JSON: msgspec's own
limit is Python's recursion limit less the depth of the stack decoding, so
without ours the same message would decode on one engine and fail on another.
A frame with few container headers is never walked; one with more than
``MAX_DEPTH`` is walked once (headers only) to find its depth and value count.
"""

from __future__ import annotations

from typing import Any

from ..errors import RemoteProtocolError
from .base import Codec
from .length import LengthPrefixed
from .lines import Lines
from .structured import MAX_DEPTH, StructuredCodec

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
_CONTAINERS = bytes([*range(0x80, 0xA0), *range(0xDC, 0xE0)])
_NOT_CONTAINERS = bytes(byte for byte in range(256) if byte not in _CONTAINERS)
_UNBOUNDED = 1 << 62


def _members(byte: int, frame: bytes, pos: int) -> int:
    """How many values follow the container header at ``pos`` (a map's keys count)."""
    if byte < 0xA0:
        return (2 if byte < 0x90 else 1) * (byte & 0x0F)
    width = 2 if byte in (0xDC, 0xDE) else 4
    return (2 if byte >= 0xDE else 1) * int.from_bytes(frame[pos + 1 : pos + 1 + width], "big")


def _shape(frame: bytes, item_limit: int, depth_limit: int) -> tuple[int, int]:
    """(values, deepest nesting of containers) in a msgpack frame, without decoding it.

    Every value starts with a header byte and a container's members follow it, so
    walking the headers and skipping the payloads of the others finds both. The walk
    stops once either limit is passed (the counts are then just over it).
    """
    items = deepest = pos = 0
    open_members: list[int] = []  # for each open container, the members still to come
    end = len(frame)
    while pos < end and items <= item_limit and deepest <= depth_limit:
        byte = frame[pos]
        size = _FIXED_SIZE[byte]
        members = -1  # not a container
        if size < 0:  # a length field of -size bytes, then that many bytes
            width = -size
            size = 1 + width + int.from_bytes(frame[pos + 1 : pos + 1 + width], "big") + (byte in _EXT)
        elif 0x80 <= byte < 0xA0 or (byte >= 0xDC and byte < 0xE0):
            members = _members(byte, frame, pos)
            deepest = max(deepest, len(open_members) + 1)
        pos += size
        items += 1
        if members > 0:
            open_members.append(members)
            continue
        while open_members:  # this value is complete, and so may be the containers it ends
            open_members[-1] -= 1
            if open_members[-1]:
                break
            open_members.pop()
    return items, deepest


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
        # Counting container headers is a C-speed bound; only a frame with many is walked.
        if (
            len(frame.translate(None, _NOT_CONTAINERS)) > MAX_DEPTH
            and _shape(frame, _UNBOUNDED, MAX_DEPTH)[1] > MAX_DEPTH
        ):
            raise RemoteProtocolError(f"msgpack message nested deeper than {MAX_DEPTH} levels")
        try:
            return self._decoder.decode(frame)
        except self._decode_error as exc:
            raise ValueError(str(exc)) from exc

    def _count_items(self, frame: bytes, limit: int) -> int:
        return _shape(frame, limit, _UNBOUNDED)[0]

    def _dump(self, message: Any) -> bytes:
        return self._encoder.encode(message)
