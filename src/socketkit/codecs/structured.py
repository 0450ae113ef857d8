"""Structured codecs: a serializer layered over a byte framing.

Why layered: "you cannot send a dict, serialize it first" is one concern, and
"where does a message end" is another. ``Json`` and ``Msgpack`` each supply
only ``_load``/``_dump``; the framing (``Lines``, ``LengthPrefixed``) is any
byte codec, chosen by the user. Parser errors of any kind are turned into
:class:`RemoteProtocolError` here, so the contract "only ProtocolError escapes a
decoder" holds for structured data too.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from ..errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .base import Codec, Decoder

__all__ = ["StructuredCodec"]


class _StructuredDecoder(Decoder):
    __slots__ = ("_codec", "_frames")

    def __init__(self, codec: StructuredCodec, frames: Decoder) -> None:
        self._codec = codec
        self._frames = frames

    @property
    def buffered(self) -> int:
        return self._frames.buffered

    def feed(self, data: bytes) -> list[Any]:
        load = self._codec.load
        out: list[Any] = []
        try:
            for frame in self._frames.feed(data):
                out.append(load(frame))
        except ProtocolError as exc:
            exc.messages = out + exc.messages
            raise
        return out


class StructuredCodec(Codec):
    """Objects (dicts, lists, numbers, strings) serialized into frames of ``framing``."""

    def __init__(self, framing: Codec) -> None:
        if not isinstance(framing, Codec) or isinstance(framing, StructuredCodec):
            raise TypeError(f"framing must be a byte codec such as Lines(), not {framing!r}")
        self.framing = framing
        self.max_length = framing.max_length

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _StructuredDecoder(self, self.framing.decoder(max_length))

    def encode(self, message: Any) -> bytes:
        try:
            data = self._dump(message)
        except RecursionError:
            raise LocalProtocolError(
                f"cannot encode {type(message).__name__} as {self.name}: nested too deeply"
            ) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode {type(message).__name__} as {self.name}: {exc}") from exc
        return self.framing.encode(data)

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        return self.load(self.framing.decode_datagram(data, max_length))

    def error_reply(self, error: Exception) -> bytes | None:
        """``{"error": "<what was wrong>"}`` in this codec's format."""
        try:
            return self.encode({"error": str(error)})
        except Exception:
            return None

    def load(self, frame: bytes) -> Any:
        """Parse one frame; any parser failure becomes RemoteProtocolError."""
        try:
            return self._load(frame)
        except RecursionError:
            raise RemoteProtocolError(f"{self.name} message nested too deeply") from None
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise RemoteProtocolError(f"invalid {self.name}: {exc}") from exc

    @abstractmethod
    def _load(self, frame: bytes) -> Any: ...

    @abstractmethod
    def _dump(self, message: Any) -> bytes: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(framing={self.framing!r})"
