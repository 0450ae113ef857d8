"""chargen (RFC 864): the rotating pattern of printable ASCII.

TCP: lines of 72 characters, each starting one character further along the 95
printable characters, streamed until the client closes. It is written with
``on_drain``, so it sends only as fast as the client reads, on every engine,
and never holds more than a chunk in memory. UDP: each datagram is answered
with the next line (the RFC allows 0 to 512 characters).
"""

from __future__ import annotations

from typing import Any

from ..connection import Connection
from ..handlers import Protocol
from . import Service

PRINTABLE = bytes(range(32, 127))  # the 95 printable ASCII characters
LINE_LENGTH = 72


def line(n: int) -> bytes:
    """The ``n``-th line of the pattern (0-based), with CRLF."""
    start = n % len(PRINTABLE)
    return (PRINTABLE * 2)[start : start + LINE_LENGTH] + b"\r\n"


#: one full cycle of the pattern: 95 lines, after which it repeats.
CYCLE = b"".join(line(n) for n in range(len(PRINTABLE)))
#: what each on_drain sends: two cycles (about 14 KB), built once.
CHUNK = CYCLE * 2


class Chargen(Protocol):
    def __init__(self) -> None:
        self._datagram_line = 0

    def on_drain(self, conn: Connection) -> None:
        conn.send(CHUNK)

    def on_message(self, conn: Connection, message: Any) -> None:
        if conn.peer_url.startswith(("udp", "unixgram")):
            conn.send(line(self._datagram_line))
            self._datagram_line += 1
        # TCP input is read and ignored, as the RFC says.


def service() -> Service:
    return Service("chargen", "RFC 864 character generator", Chargen, codec_selectable=False)
