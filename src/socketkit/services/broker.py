"""broker: every line from one client goes to every other client (ncat --broker).

One Protocol instance is shared by all connections of a server. A client that
cannot keep up is cut off when its unsent output reaches
``write_buffer_high``; sending to it never blocks or slows the others, on any
engine (the reactor queues, thread engines queue in the peer's outbox).
"""

from __future__ import annotations

import threading
from typing import Any

from ..codecs import Lines
from ..connection import Connection
from ..errors import ClosedError
from ..handlers import Protocol
from . import Service


class Broker(Protocol):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: list[Connection] = []

    def on_connect(self, conn: Connection) -> None:
        with self._lock:
            self._members.append(conn)

    def on_message(self, conn: Connection, message: Any) -> None:
        with self._lock:
            others = [member for member in self._members if member is not conn]
        for member in others:
            try:
                member.send(message)
            except ClosedError:
                pass  # it left between the copy and the send

    def on_close(self, conn: Connection, error: BaseException | None) -> None:
        with self._lock:
            self._members.remove(conn)

    @property
    def members(self) -> int:
        return len(self._members)


def service() -> Service:
    return Service("broker", "line broker", Broker(), codec=Lines(), datagrams=False, one_process=True)
