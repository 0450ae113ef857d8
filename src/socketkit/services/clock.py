"""time (RFC 868): seconds since 1900-01-01 00:00 UTC as a 32-bit big-endian number.

TCP: sent on connect, then the connection closes. UDP: each datagram gets it.
The count wraps modulo 2**32, as the RFC's 32 bits do in 2036.
"""

from __future__ import annotations

import time
from typing import Any

from ..connection import Connection
from ..handlers import Protocol
from . import Service

#: seconds from 1900-01-01 (RFC 868's epoch) to 1970-01-01 (Unix's).
EPOCH_OFFSET = 2_208_988_800


def rfc868_now() -> bytes:
    return ((int(time.time()) + EPOCH_OFFSET) % 2**32).to_bytes(4, "big")


class Clock(Protocol):
    def on_connect(self, conn: Connection) -> None:
        conn.send(rfc868_now())
        conn.close()

    def on_message(self, conn: Connection, message: Any) -> None:
        conn.send(rfc868_now())


def service() -> Service:
    return Service("time", "RFC 868 time", Clock, codec_selectable=False)
