"""HTTP/1.x message heads: where one ends, what a field line may hold, how fields are written.

Why one module for both sides: the request codec (server side) and the
response codec (client side) must agree on the grammar, and the rule that makes
decoding independent of how bytes are split lives here once. A head ends at the
first ``LF [CR] LF``, searched only within the head limit, so whether a head is
complete, too long or malformed depends on its bytes and never on the reads
that delivered them. Lines end in CRLF or a bare LF (RFC 9112 §2.2 lets a
recipient accept both); a CR anywhere else is an error.

Field lines (RFC 9110 §5): a token, a colon, then visible characters, spaces,
tabs and obs-text; NUL, other control characters and obsolete line folding are
refused, as h11 refuses them.
"""

from __future__ import annotations

import re

from ..errors import LocalProtocolError

__all__ = [
    "FIELD_LINES",
    "HEAD_END",
    "TOKEN",
    "check_field",
    "crlf_head",
    "fields_valid",
    "split_fields",
]

#: RFC 9110 token characters; ``name.translate(None, TOKEN)`` leaves only the others (C speed).
TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN_CLASS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
#: The end of a head: the first empty line.
HEAD_END = re.compile(rb"\n\r?\n")
#: Field lines of a CRLF head: a token, a colon, a value of HTAB, SP-~ and obs-text, CRLF
#: (the pattern, for a codec that matches its first line and its fields in one go).
FIELD_LINES = rb"(?:" + _TOKEN_CLASS + rb"+:[\t\x20-\x7e\x80-\xff]*\r\n)*"
_FIELD_BLOCK = re.compile(FIELD_LINES)
_BAD_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def crlf_head(head: bytes) -> bytes | None:
    """``head`` with every line ending as CRLF, or None if it holds a CR that ends no line."""
    if b"\n" in head.replace(b"\r\n", b""):
        head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if b"\r" in head.replace(b"\r\n", b""):
        return None
    return head


def fields_valid(head: bytes, start: int) -> bool:
    """Whether everything from ``start`` in a CRLF head is well-formed field lines."""
    return _FIELD_BLOCK.fullmatch(head, start) is not None


def split_fields(head: bytes, keep_case: bool = False) -> list[tuple[bytes, bytes]]:
    """The field lines of a validated CRLF head as (name, value without blanks); the name
    lower-cased (as h11 gives them) unless ``keep_case`` (to show them as the peer sent them)."""
    fields = []
    for line in head.split(b"\r\n")[1:-1]:
        name, _, value = line.partition(b":")
        fields.append((name if keep_case else name.lower(), value.strip(b" \t")))
    return fields


def check_field(name: str, value: str) -> None:
    """Refuse a field a handler wants to send that would break or split the message."""
    if not name or name.encode("latin-1", "replace").translate(None, TOKEN):
        raise LocalProtocolError(f"HTTP header name {name!r} is not a token")
    if _BAD_IN_VALUE.search(value):
        raise LocalProtocolError(f"HTTP header {name} has a control character (CR, LF, NUL) in {value!r}")
