"""echo (RFC 862): every message comes back unchanged; each datagram is answered."""

from __future__ import annotations

from typing import Any

from ..connection import Connection
from . import Service


def echo(message: Any, conn: Connection) -> Any:
    return message


def service() -> Service:
    return Service("echo", "RFC 862 echo", echo)
