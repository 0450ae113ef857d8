"""The codec contract: a stateless spec that makes per-connection decoders.

Why sans-IO (as h11 does it): a decoder is a state machine fed bytes that
returns complete messages and keeps the partial rest. It never touches a
socket, so every engine shares it, and it can be tested whole, a byte at a time,
in random chunks and under a fuzzer without a network.

Contract (DESIGN §5):

- ``decoder.feed(data)`` returns the list of messages completed by ``data``.
- ``decoder.take_interim()`` returns bytes to send while a message is still
  partial (HTTP's ``100 Continue``), else ``b""``.
- ``decoder.feed(b"")`` means end of stream: it raises
  :class:`RemoteProtocolError` if a frame is half done.
- Oversize input raises :class:`LimitExceeded` as soon as the limit is crossed,
  not after buffering the whole frame.
- Only :class:`ProtocolError` subclasses ever escape ``feed`` or
  ``decode_datagram``, whatever the bytes.
- ``codec.encode(message)`` returns the bytes of one framed message; it raises
  :class:`LocalProtocolError` (or ``TypeError`` for a wrong type) when the
  message cannot be framed.
"""

from __future__ import annotations

import copy
import typing
from abc import ABC, abstractmethod
from typing import Any

if typing.TYPE_CHECKING:
    from ..layers import LayerFactory

__all__ = ["Codec", "Decoder"]


class Decoder(ABC):
    """Per-connection decoding state. Not thread-safe; one per connection."""

    __slots__ = ()

    @abstractmethod
    def feed(self, data: bytes) -> list[Any]:
        """Messages completed by ``data``; ``b""`` marks the end of the stream.

        Raises:
            RemoteProtocolError: malformed input, or end of stream mid-frame.
            LimitExceeded: a frame is larger than the limit.
        """

    @property
    @abstractmethod
    def buffered(self) -> int:
        """Bytes held of a message not yet complete (0 between messages). Read after every
        ``feed``: a decoder may keep it as a plain attribute instead (the built-in ones that
        serve the hot path do), so reading it costs no call."""

    def release(self) -> None:
        """The messages decoded so far were handled: let go of what they hold in a budget
        shared with other connections (a structured codec's item count). Nothing by default;
        also called when the connection closes."""
        return None

    def take_interim(self) -> bytes:
        """Bytes the protocol says to send the peer now, once: before the message is complete
        (HTTP's ``100 Continue``: engines ask while a message is partial), or a client's
        answers of its own (WebSocket's pongs: the client asks after every read). Nothing
        by default."""
        return b""


class Codec(ABC):
    """A reusable, stateless description of a wire format."""

    #: A short name used in logs and the CLI ("lines", "json", ...).
    name: str = "codec"
    #: The largest message this codec accepts, in bytes.
    max_length: int

    @abstractmethod
    def decoder(self, max_length: int | None = None) -> Decoder:
        """A fresh decoder. ``max_length`` can only lower the codec's own limit."""

    @abstractmethod
    def encode(self, message: Any) -> bytes:
        """The framed bytes of ``message``.

        Raises:
            LocalProtocolError: the message cannot be framed by this codec.
            TypeError: the message has the wrong type for this codec.
        """

    @abstractmethod
    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        """The one message carried by a whole datagram.

        Raises:
            RemoteProtocolError: the datagram is not one valid message.
            LimitExceeded: it is larger than the limit.
        """

    def resized(self, max_length: int) -> Codec:
        """A copy of this codec whose own message limit is ``max_length`` (higher or lower);
        what ``serve --max-message-size`` uses, since ``Limits`` can only lower it."""
        check_positive("max_length", max_length)
        codec = copy.copy(self)
        codec.max_length = max_length
        return codec

    def layers(self) -> tuple[LayerFactory, ...]:
        """Byte layers the format needs under it on every connection, nearest the codec last
        (WebSocket's: the upgrade, pings, the close handshake). None by default."""
        return ()

    def goodbye(self) -> bytes:
        """Bytes a client sends before it closes (WebSocket's close frame); none by default."""
        return b""

    def client_side(self) -> Codec:
        """The codec a client uses to talk to a server framed by this one: the same
        codec, except where the two directions differ (HTTP: requests one way, responses
        the other)."""
        return self

    def error_reply(self, error: Exception) -> bytes | None:
        """The bytes telling a peer its input was refused, or None if the format has no way to say it."""
        return None

    def failure_reply(self) -> bytes | None:
        """The bytes telling a peer the server failed on its request (the handler raised), or
        None if the format has no standard way to say it. It never carries the exception."""
        return None

    def refusal(self, message: Any) -> str | None:
        """The reason ``message`` gives, if it is this format's error reply (what a client
        reports when the server refused it and closed); None for any other message."""
        return None

    def _limit(self, max_length: int | None) -> int:
        if max_length is None:
            return self.max_length
        return min(self.max_length, max_length)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_length={self.max_length})"


def as_bytes(message: Any, codec: str) -> bytes:
    """``message`` as bytes, for the byte-oriented framings; str is refused. (Their encoders
    call it only for what is not bytes already: a call fewer per message.)"""
    if isinstance(message, bytes):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    raise TypeError(
        f"{codec} sends bytes, not {type(message).__name__}"
        + (" (encode the str first, e.g. message.encode())" if isinstance(message, str) else "")
    )


def check_positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value
