"""Json: JSON values, one per frame (newline-delimited JSON by default).

Encoding is compact and strict: ``NaN``/``Infinity`` are refused
(they are not JSON), non-ASCII text goes out as UTF-8. With ``Lines`` framing a
JSON document can never contain a raw newline, so the framing is always safe.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Codec
from .lines import Lines
from .structured import StructuredCodec

__all__ = ["Json"]


class Json(StructuredCodec):
    """``Json(framing=Lines())``: dicts, lists, numbers, strings, booleans and None."""

    name = "json"

    def __init__(self, framing: Codec | None = None) -> None:
        super().__init__(framing if framing is not None else Lines())

    def _load(self, frame: bytes) -> Any:
        return json.loads(frame)

    def _dump(self, message: Any) -> bytes:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
