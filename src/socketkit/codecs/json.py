"""Json: JSON values, one per frame (newline-delimited JSON by default).

Encoding is compact and strict: ``NaN``/``Infinity`` are refused
(they are not JSON), non-ASCII text goes out as UTF-8. With ``Lines`` framing a
JSON document can never contain a raw newline, so the framing is always safe.

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
from .structured import StructuredCodec

__all__ = ["MAX_DEPTH", "Json"]

#: The deepest nesting of arrays and objects a JSON message may have.
MAX_DEPTH = 200

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped) and brackets


def _depth(frame: bytes) -> int:
    depth = deepest = 0
    for token in _TOKENS.finditer(frame):
        char = token.group()[0]
        if char in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in b"]}":
            depth -= 1
    return deepest


class Json(StructuredCodec):
    """``Json(framing=Lines())``: dicts, lists, numbers, strings, booleans and None."""

    name = "json"

    def __init__(self, framing: Codec | None = None) -> None:
        super().__init__(framing if framing is not None else Lines())

    def _load(self, frame: bytes) -> Any:
        # Counting brackets is a C-speed bound; only a frame with many is measured exactly.
        if frame.count(b"[") + frame.count(b"{") > MAX_DEPTH and _depth(frame) > MAX_DEPTH:
            raise RemoteProtocolError(f"json message nested deeper than {MAX_DEPTH} levels")
        return json.loads(frame)

    def _dump(self, message: Any) -> bytes:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
