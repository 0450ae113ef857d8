"""broker: every line from one client goes to every other client (ncat --broker).

One Protocol instance is shared by all connections of a server. A client that
cannot keep up is cut off when its unsent output reaches
``write_buffer_high``; sending to it never blocks or slows the others, on any
engine (the reactor queues, thread engines queue in the peer's outbox).

With a backend (``serve broker --backend redis://host:6379/0?channel=name``)
the lines also go through Redis pub/sub, so clients of other worker processes
and other machines see them too (:mod:`socketkit.services.redis_relay`);
without one, the clients of one process meet only each other, so a server
with several worker processes refuses to run it.

Line and WebSocket members may share one broker (``serve broker --ws-listen URL``,
or two servers given the same ``Broker``): what one kind sends reaches the other
in its own form. A line reaches WebSocket members as a text message; a WebSocket
message reaches line members as UTF-8 lines, one per line it holds (a line member
never gets a broken frame); binary messages go to WebSocket members as binary.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..codecs import Lines
from ..connection import Connection
from ..errors import ClosedError
from ..handlers import Protocol
from . import Service


class Broker(Protocol):
    serves_datagrams = False  # members are connections

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: list[Connection] = []
        self.relay: Any = None  # a RedisRelay when lines cross processes
        self.one_process = True  # without a backend its members meet in this process only
        self.one_process_fix = "or give it a backend that joins them: --backend redis://host:6379"

    def use_backend(self, url: str) -> Callable[[], None]:
        """Relay lines through ``url`` (``redis://host:port/db?channel=name``) as well; what
        each serving process runs to connect to it (:meth:`start_relay`).

        Raises:
            ValueError: a bad URL. ImportError: the redis package is missing.
        """
        from .redis_relay import RedisRelay  # noqa: PLC0415 - its dependency is optional

        self.relay = RedisRelay(url, self.deliver)
        self.one_process = False
        return self.start_relay

    def start_relay(self) -> None:
        """Connect to the backend from this process (each worker does, once forked)."""
        if self.relay is not None:
            self.relay.start()

    def close(self) -> None:
        """Stop relaying (the backend's threads end)."""
        if self.relay is not None:
            self.relay.close()

    def on_connect(self, conn: Connection) -> None:
        self.start_relay()  # a no-op once this process has started it
        with self._lock:
            self._members.append(conn)

    def on_message(self, conn: Connection, message: Any) -> None:
        from_lines = conn.codec.name != "ws"
        self._send_to(message, but=conn, text=from_lines)
        if self.relay is not None:  # (the backend carries bytes: a WebSocket's text as UTF-8)
            self.relay.publish(message.encode() if isinstance(message, str) else message)

    def deliver(self, line: bytes) -> None:
        """A line from another process: to every client here (as text to a WebSocket client:
        the backend carries bytes, and what a WebSocket member sent was text)."""
        self._send_to(line, but=None, text=True)

    def _send_to(self, message: Any, but: Connection | None, text: bool) -> None:
        """``message`` to every member but ``but``, in each member's form; ``text``: bytes
        that are a line's (text to a WebSocket member), not a binary message."""
        with self._lock:
            others = [member for member in self._members if member is not but]
        as_ws: Any = None  # (each form made once, when a member of that kind is met)
        as_lines: list[bytes] | None = None
        for member in others:
            try:
                name = member.codec.name
                if name == "ws":
                    if as_ws is None:
                        as_ws = (
                            message.decode(errors="replace")
                            if text and isinstance(message, bytes)
                            else message
                        )
                    member.send(as_ws)
                elif name == "lines" and isinstance(message, (str, bytes)):
                    if as_lines is None:
                        as_lines = _lines(message)
                    for line in as_lines:
                        member.send(line)
                else:  # (another framing: the message as it came)
                    member.send(message)
            except ClosedError:
                pass  # it left between the copy and the send

    def on_close(self, conn: Connection, error: BaseException | None) -> None:
        with self._lock:
            self._members.remove(conn)

    @property
    def members(self) -> int:
        return len(self._members)


def _lines(message: str | bytes) -> list[bytes]:
    """A message as the lines a line member reads (a WebSocket message may hold several)."""
    data = message.encode() if isinstance(message, str) else message
    if b"\n" not in data:
        return [data]
    return [line.rstrip(b"\r") for line in data.split(b"\n")]


def service() -> Service:
    broker = Broker()
    return Service("broker", "line broker", broker, codec=Lines(), backend=broker.use_backend)
