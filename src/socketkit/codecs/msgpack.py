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


class Msgpack(StructuredCodec):
    """``Msgpack(framing=LengthPrefixed())``; needs ``pip install 'socketkit[msgpack]'``."""

    name = "msgpack"

    def __init__(self, framing: Codec | None = None) -> None:
        try:
            import msgspec  # noqa: PLC0415 - optional dependency, imported on use
        except ImportError as exc:
            raise ImportError("the Msgpack codec needs msgspec: pip install 'socketkit[msgpack]'") from exc
        framing = framing if framing is not None else LengthPrefixed()
        if isinstance(framing, Lines):
            raise TypeError("Msgpack is binary and can contain any delimiter: frame it with LengthPrefixed()")
        super().__init__(framing)
        self._decoder = msgspec.msgpack.Decoder()
        self._encoder = msgspec.msgpack.Encoder()
        self._decode_error = msgspec.DecodeError

    def _load(self, frame: bytes) -> Any:
        try:
            return self._decoder.decode(frame)
        except self._decode_error as exc:
            raise ValueError(str(exc)) from exc

    def _dump(self, message: Any) -> bytes:
        return self._encoder.encode(message)
