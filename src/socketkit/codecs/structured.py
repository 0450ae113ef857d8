"""Structured codecs: a serializer layered over a byte framing.

Why layered: "you cannot send a dict, serialize it first" is one concern, and
"where does a message end" is another. ``Json`` and ``Msgpack`` each supply
only ``_load``/``_dump``; the framing (``Lines``, ``LengthPrefixed``) is any
byte codec, chosen by the user. Parser errors of any kind are turned into
:class:`RemoteProtocolError` here, so the contract "only ProtocolError escapes a
decoder" holds for structured data too.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from threading import Lock  # the shared budget's guard: the one thread-aware line here
from typing import Any

from ..errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from .base import Codec, Decoder, check_positive

__all__ = ["MAX_DEPTH", "StructuredCodec"]

#: The deepest nesting of arrays and objects (maps) a structured message may have.
MAX_DEPTH = 200


class _StructuredDecoder(Decoder):
    __slots__ = ("_codec", "_frames", "_held")

    def __init__(self, codec: StructuredCodec, frames: Decoder) -> None:
        self._codec = codec
        self._frames = frames
        self._held = 0  # values of the messages not yet handled, counted in the codec's budget

    @property
    def buffered(self) -> int:
        return self._frames.buffered

    def feed(self, data: bytes) -> list[Any]:
        if self._held:  # reading again: the messages of the last feed were dispatched
            self.release()
        out: list[Any] = []
        try:
            try:
                frames = self._frames.feed(data)
            except ProtocolError as exc:  # the frames complete before the bad one come first
                for frame in exc.messages:
                    out.append(self._load(frame))
                exc.messages = out
                raise
            for frame in frames:
                out.append(self._load(frame))
        except ProtocolError as exc:
            if exc.messages is not out:
                exc.messages = out
            raise
        return out

    def _load(self, frame: bytes) -> Any:
        codec = self._codec
        self._held += codec.reserve_items(frame)
        return codec.load(frame)

    def release(self) -> None:
        if self._held:
            self._codec.release_items(self._held)
            self._held = 0


class StructuredCodec(Codec):
    """Objects (dicts, lists, numbers, strings) serialized into frames of ``framing``.

    What a message costs once decoded is bounded, not only its frame: a 1 MiB
    msgpack frame of empty arrays is a million lists, about 64 MiB. ``max_items``
    bounds the values (containers, numbers, strings...) one message may decode
    to, and ``max_items_total`` the values held at once by all the connections
    that share this codec, from decoding a message until its handler is done
    with it (the engine says so, or the connection reads again or closes). A
    value takes at least one byte of frame, so a frame of up to ``max_items``
    bytes is charged its length without being counted; a longer one is counted
    exactly, stopping at the limit. A decoded value costs at most about 72 bytes
    beyond the bytes it carries (an empty dict), so with the defaults one message
    decodes to at most about 7 MiB more than its frame, and all of them together
    to about 600 MiB more. A message over either bound is refused with
    :class:`LimitExceeded`, which its peer sees as ``{"error": ...}``.
    """

    def __init__(self, framing: Codec, max_items: int = 100_000, max_items_total: int = 8_000_000) -> None:
        if not isinstance(framing, Codec) or isinstance(framing, StructuredCodec):
            raise TypeError(f"framing must be a byte codec such as Lines(), not {framing!r}")
        self.framing = framing
        self.max_length = framing.max_length
        self.max_items = check_positive("max_items", max_items)
        self.max_items_total = check_positive("max_items_total", max_items_total)
        self._items_held = 0
        self._items_lock = Lock()

    def reserve_items(self, frame: bytes) -> int:
        """Count the values in ``frame`` into the shared budget; the count, to release later.

        Raises:
            LimitExceeded: the frame holds more than max_items values, or the budget is spent.
        """
        items = len(frame)  # at least a byte a value: a bound that costs nothing to find
        if items > self.max_items and (items := self._count_items(frame, self.max_items)) > self.max_items:
            raise LimitExceeded(f"{self.name} message of more than {self.max_items} values (max_items)")
        with self._items_lock:
            if self._items_held + items > self.max_items_total:
                raise LimitExceeded(
                    f"{self.name} messages of {self._items_held} values are held already "
                    f"(max_items_total {self.max_items_total}); send smaller messages or retry"
                )
            self._items_held += items
        return items

    def release_items(self, items: int) -> None:
        with self._items_lock:
            self._items_held -= items

    @property
    def items_held(self) -> int:
        """Values of decoded messages held now, by every connection sharing this codec, until
        their handlers are done with them (counted against ``max_items_total``)."""
        return self._items_held

    @abstractmethod
    def _count_items(self, frame: bytes, limit: int) -> int:
        """The number of values in ``frame``, or any number over ``limit`` once it is passed."""

    def resized(self, max_length: int) -> Codec:
        codec = copy.copy(self)
        codec.framing = self.framing.resized(max_length)
        codec.max_length = codec.framing.max_length
        return codec

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

    def refusal(self, message: Any) -> str | None:
        if isinstance(message, dict) and len(message) == 1 and "error" in message:
            return str(message["error"])
        return None

    def failure_reply(self) -> bytes | None:
        """``{"error": "internal error"}`` in this codec's format: the handler failed (what it
        raised stays in the server's log)."""
        try:
            return self.encode({"error": "internal error"})
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
