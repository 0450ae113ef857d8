"""discard (RFC 863): everything received is thrown away; nothing is sent."""

from __future__ import annotations

from typing import Any

from ..connection import Connection
from . import Service


def discard(message: Any, conn: Connection) -> None:
    return None


def service() -> Service:
    return Service("discard", "RFC 863 discard", discard)
