"""qotd (RFC 865): a short quote, then the connection closes; UDP gets one per datagram.

The RFC asks for fewer than 512 characters of ASCII; every quote here fits.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..connection import Connection
from ..handlers import Protocol
from . import Service

QUOTES = (
    "Be conservative in what you do, be liberal in what you accept from others. -- Jon Postel, RFC 761",
    "Simple things should be simple, complex things should be possible. -- Alan Kay",
    "Errors should never pass silently. Unless explicitly silenced. -- The Zen of Python",
    "There are only two hard things in computer science: cache invalidation and naming things. "
    "-- Phil Karlton",
    "The network is reliable. -- the first fallacy of distributed computing",
)


class QuoteOfTheDay(Protocol):
    def __init__(self) -> None:
        self._quotes = itertools.cycle(QUOTES)

    def next_quote(self) -> bytes:
        return next(self._quotes).encode("ascii") + b"\r\n"

    def on_connect(self, conn: Connection) -> None:
        conn.send(self.next_quote())
        conn.close()

    def on_message(self, conn: Connection, message: Any) -> None:
        conn.send(self.next_quote())


def service() -> Service:
    return Service("qotd", "RFC 865 quote of the day", QuoteOfTheDay(), codec_selectable=False)
