"""daytime (RFC 867): the current date and time as one human-readable line.

TCP: sent on connect, then the connection closes. UDP: each datagram gets it.
The RFC fixes no format; this is RFC 822's, in UTC, as most daytime servers use.
"""

from __future__ import annotations

import email.utils
from typing import Any

from ..connection import Connection
from ..handlers import Protocol
from . import Service


def daytime_text() -> bytes:
    return email.utils.formatdate(usegmt=True).encode() + b"\r\n"


class Daytime(Protocol):
    def on_connect(self, conn: Connection) -> None:
        conn.send(daytime_text())
        conn.close()

    def on_message(self, conn: Connection, message: Any) -> None:
        conn.send(daytime_text())  # only datagrams get here: TCP closed on connect


def service() -> Service:
    return Service("daytime", "RFC 867 daytime", Daytime, codec_selectable=False)
