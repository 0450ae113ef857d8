"""Json: JSON values, one per frame (newline-delimited JSON by default).

Encoding is compact and strict: ``NaN``/``Infinity`` are refused
(they are not JSON), non-ASCII text goes out as UTF-8. With ``Lines`` framing a
JSON document can never contain a raw newline, so the framing is always safe.

Decoding is as strict as encoding (RFC 8259), so that whatever decodes can be
sent back: the text must be UTF-8; ``NaN``, ``Infinity``, numbers that
overflow a float (``1e999999``) and lone surrogate escapes (``"\ud800"``) are
refused with :class:`RemoteProtocolError`, which the peer sees as
``{"error": ...}``. Python's own parser accepts all of them.

Nesting is limited to :data:`MAX_DEPTH` arrays and objects. Python's parser
recurses, so without a limit how deep a message may be would depend on how
deep the stack of the thread decoding it already is: the same message would
decode on one engine and fail on another.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import RemoteProtocolError
from .base import Codec
from .lines import Lines
from .structured import MAX_DEPTH, StructuredCodec

__all__ = ["MAX_DEPTH", "Json"]

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_STRING = re.compile(rb'"[^"]*"')  # a string once its escapes are gone: one repeat, no memory per byte
_BRACKETS = re.compile(rb"[\[\]{}]")


def _outside_strings(frame: bytes) -> bytes:
    """``frame`` with every string emptied: what counting values and depth looks at.

    Escaped backslashes, then escaped quotes, are removed first (left to right, as a JSON
    parser reads them), so a string is a quote, anything but a quote, and a quote. Each
    step is one C pass and one copy: a regex that skips strings with escapes in them
    (``"(?:[^"\\]|\\.)*"``) keeps state for every byte of a string, and took 147 MiB for
    one legal 1 MiB string of ``\\u`` escapes.
    """
    if b"\\" in frame:
        frame = frame.replace(b"\\\\", b"").replace(b'\\"', b"")
    return _STRING.sub(b'""', frame)


def _depth(frame: bytes) -> int:
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_outside_strings(frame)):
        if bracket.group() in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise RemoteProtocolError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INFINITY, -_INFINITY):
        raise RemoteProtocolError(f"json number {text[:24]} is out of range")
    return value


_INFINITY = float("inf")


class Json(StructuredCodec):
    """``Json(framing=Lines())``: dicts, lists, numbers, strings, booleans and None."""

    name = "json"

    def __init__(
        self, framing: Codec | None = None, max_items: int = 100_000, max_items_total: int = 8_000_000
    ) -> None:
        super().__init__(framing if framing is not None else Lines(), max_items, max_items_total)

    def _load(self, frame: bytes) -> Any:
        # Counting brackets is a C-speed bound; only a frame with many is measured exactly.
        if frame.count(b"[") + frame.count(b"{") > MAX_DEPTH and _depth(frame) > MAX_DEPTH:
            raise RemoteProtocolError(f"json message nested deeper than {MAX_DEPTH} levels")
        try:
            text = frame.decode()
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"json must be UTF-8: {exc.reason} at byte {exc.start}") from None
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        if _SURROGATE_ESCAPE.search(frame) is not None:  # rare: only then is the value walked
            try:
                json.dumps(value, ensure_ascii=False).encode()
            except UnicodeEncodeError:
                raise RemoteProtocolError("json string holds a lone surrogate escape") from None
        return value

    def _count_items(self, frame: bytes, limit: int) -> int:
        # Each container, each comma and each colon (a key) adds a value; in strings they do not.
        plain = _outside_strings(frame)
        return 1 + plain.count(b"[") + plain.count(b"{") + plain.count(b",") + plain.count(b":")

    def _dump(self, message: Any) -> bytes:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
