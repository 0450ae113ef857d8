"""permessage-deflate (RFC 7692), sans-IO: the offer and its answer, and a message's bytes
compressed and inflated, bounded.

Why apart from the frames: the extension is agreed in the handshake's
``Sec-WebSocket-Extensions`` and then changes only what a data message's payload is
(the RSV1 bit says "compressed"); the frame reader asks an :class:`Inflater` for the
message's bytes and the writers a :class:`Deflater` for its payload. ``zlib`` is the
standard library's.

Bounds (a decompression bomb is a few KB that inflate to gigabytes): a message is
inflated as its payload arrives, never more than the codec's ``max_length`` plus one
byte, and refused with 1009 the moment it would pass it; the compressed bytes on the
wire are held to the same limit. Memory per connection: a server keeps a compressor
with a 4 KB window (``window_bits=12``, zlib ``memLevel`` 5, as the websockets library
does) and an inflater with the window the client agreed to (4 KB when it lets us choose,
else 32 KB); ``context_takeover=False`` frees both between messages.

What is refused: an offer with an unknown or repeated parameter or a bad value is
declined (the next offer, or none, is taken, as RFC 7692 §5 says); an answer from a
server that does not match what a client offered fails that client's upgrade.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import RemoteProtocolError

__all__ = [
    "Deflate",
    "DeflateAgreed",
    "Deflater",
    "Inflater",
    "accept_offer",
    "check_answer",
    "client_offer",
]

_TAIL = b"\x00\x00\xff\xff"  # what each compressed message's end loses on the wire (§7.2.1)
_NAME = "permessage-deflate"


@dataclass(frozen=True, slots=True)
class Deflate:
    """``Deflate(window_bits=12, level=6, mem_level=5, context_takeover=True)``: how this end
    compresses, and asks the other end to.

    ``window_bits`` (9-15): the compressor's window, and the window the other end is asked
    to keep to (when it lets us choose). ``context_takeover=False``: every message is
    compressed on its own (less memory kept between messages, a worse ratio).
    """

    window_bits: int = 12
    level: int = 6
    mem_level: int = 5
    context_takeover: bool = True

    def __post_init__(self) -> None:
        if not 9 <= self.window_bits <= 15:
            raise ValueError(f"window_bits is 9 to 15 (zlib's raw deflate), not {self.window_bits}")
        if not 0 <= self.level <= 9:
            raise ValueError(f"level is 0 to 9, not {self.level}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level is 1 to 9, not {self.mem_level}")


@dataclass(frozen=True, slots=True)
class DeflateAgreed:
    """What one connection's two ends agreed, from one end's side: the window and context
    rule of what it sends (``send_*``) and of what it receives (``receive_*``)."""

    send_window: int
    send_takeover: bool
    receive_window: int
    receive_takeover: bool
    #: the header line's value that says so (a server's answer)
    answer: str = _NAME


class Deflater:
    """One direction's compressor: a message's bytes -> its compressed payload (RSV1 set)."""

    __slots__ = ("_level", "_mem", "_takeover", "_window", "_zip")

    def __init__(self, window_bits: int, takeover: bool, level: int = 6, mem_level: int = 5) -> None:
        self._window = window_bits
        self._takeover = takeover
        self._level = level
        self._mem = mem_level
        self._zip: zlib._Compress | None = None

    def compress(self, data: bytes) -> bytes:
        zipper = self._zip
        if zipper is None:
            zipper = zlib.compressobj(self._level, zlib.DEFLATED, -self._window, self._mem)
            if self._takeover:
                self._zip = zipper
        out = zipper.compress(data) + zipper.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out


class Inflater:
    """One direction's decompressor, fed a compressed message's payload piece by piece;
    :meth:`inflate` returns at most ``room + 1`` bytes, so a caller that finds more than
    ``room`` refuses the message there."""

    __slots__ = ("_takeover", "_unzip", "_window")

    def __init__(self, window_bits: int, takeover: bool) -> None:
        self._window = window_bits
        self._takeover = takeover
        self._unzip: zlib._Decompress | None = None

    def inflate(self, data: bytes, room: int, last: bool) -> bytes:
        """``data``, the next piece of a compressed message, inflated; ``last``: the
        message's end (its lost tail is put back). Never returns more than ``room + 1``
        bytes: more than ``room`` means the message is too big.

        Raises:
            ValueError: the bytes are not deflate (the frame reader's 1002).
        """
        unzip = self._unzip
        if unzip is None:
            unzip = self._unzip = zlib.decompressobj(-self._window)
        try:
            out = unzip.decompress(data + _TAIL if last else data, room + 1)
        except zlib.error as exc:
            raise ValueError(f"a compressed message that does not inflate ({exc})") from None
        if last and not self._takeover:
            self._unzip = None
        return out


def _offers(values: Sequence[bytes]) -> list[list[tuple[str, str | None]]]:
    """The permessage-deflate offers in ``Sec-WebSocket-Extensions`` values, in order, each
    its parameters (name, value or None); other extensions left out."""
    offers = []
    for value in values:
        for offer in value.decode("latin-1").split(","):
            name, *params = (part.strip() for part in offer.split(";"))
            if name.lower() != _NAME:
                continue
            parsed: list[tuple[str, str | None]] = []
            for param in params:
                key, equals, val = param.partition("=")
                parsed.append((key.strip().lower(), val.strip().strip('"') if equals else None))
            offers.append(parsed)
    return offers


def _bits(value: str | None, *, optional: bool) -> int | None:
    """A window-bits parameter's value (8-15); None where it may be left out and was.

    Raises:
        ValueError: a bad value.
    """
    if value is None:
        if optional:
            return None
        raise ValueError("a window size needs a value")
    if not value.isdigit() or not 8 <= int(value) <= 15 or value != str(int(value)):
        raise ValueError(f"a window size of {value!r} (8-15)")
    return int(value)


def _params(offer: list[tuple[str, str | None]], *, client_bits_optional: bool) -> dict[str, int | None]:
    """An offer's or answer's parameters, each once and valid.

    Raises:
        ValueError: an unknown or repeated parameter, or a bad value.
    """
    seen: dict[str, int | None] = {}
    for key, value in offer:
        if key in seen:
            raise ValueError(f"{key} twice")
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise ValueError(f"{key} takes no value")
            seen[key] = None
        elif key == "server_max_window_bits":
            seen[key] = _bits(value, optional=False)
        elif key == "client_max_window_bits":
            seen[key] = _bits(value, optional=client_bits_optional)
        else:
            raise ValueError(f"unknown parameter {key}")
    return seen


def accept_offer(values: Sequence[bytes], mine: Deflate) -> DeflateAgreed | None:
    """A server's choice among a client's offers: the first it can keep, or None (no
    compression: declining is always allowed)."""
    for offer in _offers(values):
        try:
            params = _params(offer, client_bits_optional=True)
        except ValueError:
            continue
        send_window = mine.window_bits
        asked = params.get("server_max_window_bits")
        if asked is not None:
            if asked < 9:
                continue  # (zlib's raw deflate has no 256-byte window)
            send_window = min(send_window, asked)
        send_takeover = mine.context_takeover and "server_no_context_takeover" not in params
        receive_takeover = mine.context_takeover  # (the client's own no-takeover is a hint: a kept
        answer = [_NAME]  # context still inflates what was compressed without one)
        if not send_takeover:
            answer.append("server_no_context_takeover")
        if not receive_takeover:
            answer.append("client_no_context_takeover")
        if asked is not None or send_window != 15:
            answer.append(f"server_max_window_bits={send_window}")
        receive_window = 15  # (a client that did not say it can keep to less may use all 15)
        if "client_max_window_bits" in params:
            limit = params["client_max_window_bits"] or 15
            receive_window = max(9, min(mine.window_bits, limit))
            answer.append(f"client_max_window_bits={receive_window}")
        return DeflateAgreed(send_window, send_takeover, receive_window, receive_takeover, "; ".join(answer))
    return None


def client_offer(mine: Deflate) -> str:
    """A client's offer: it can keep to a window the server chooses, and asks none of it."""
    offer = [_NAME, "client_max_window_bits"]
    if not mine.context_takeover:
        offer.append("client_no_context_takeover")
    return "; ".join(offer)


def check_answer(values: Sequence[bytes], mine: Deflate) -> DeflateAgreed | None:
    """What a client agreed, from the server's ``Sec-WebSocket-Extensions`` (None: the
    server declined).

    Raises:
        RemoteProtocolError: an extension we did not offer, two answers, or parameters
            the offer did not allow.
    """
    names = [
        offer.split(";")[0].strip().lower()
        for value in values
        for offer in value.decode("latin-1").split(",")
        if offer.strip()
    ]
    if not names:
        return None
    if names != [_NAME]:
        raise RemoteProtocolError(f"the server agreed to extensions we did not offer: {', '.join(names)}")
    try:
        params = _params(_offers(values)[0], client_bits_optional=False)
    except ValueError as exc:
        raise RemoteProtocolError(f"the server's permessage-deflate answer has {exc}") from None
    send_window = params.get("client_max_window_bits") or mine.window_bits
    if send_window < 9:
        raise RemoteProtocolError(
            "the server asks a 256-byte window, which zlib's raw deflate cannot keep to"
        )
    send_window = min(send_window, mine.window_bits)
    return DeflateAgreed(
        send_window=send_window,
        send_takeover=mine.context_takeover and "client_no_context_takeover" not in params,
        receive_window=max(9, params.get("server_max_window_bits") or 15),
        receive_takeover="server_no_context_takeover" not in params,
    )
