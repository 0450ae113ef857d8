"""A ``@blocking`` ``fn(conn)`` handler's inbox: the messages it has not taken with recv().

Why a part of its own: a blocking handler pulls its messages, where every other
handler is pushed them, and how it waits depends on who reads the socket. On a
thread engine the handler's thread is the connection's own, so recv() reads
once more when nothing waits (:class:`Inbox`, here); on the pool the loop reads
and the handler's pool thread waits on a condition the loop notifies (the
pool's own inbox). The session only puts messages in and says when something
changed.
"""

from __future__ import annotations

import threading
import typing
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import ClosedError, ProtocolError
from .phases import OPEN, Phase

__all__ = ["Inbox", "Receiver"]

_get_ident = threading.get_ident


class Receiver(typing.Protocol):
    """What an inbox needs of the connection whose handler takes from it (its session)."""

    owner: int  # the thread that serves the connection
    phase: Phase

    @property
    def peer_url(self) -> str: ...

    def bad_input(self, error: ProtocolError) -> None:
        """Answer bad input the handler reached, then close."""


class Inbox:
    """Decoded messages waiting for the handler, then the bad input behind them, if any."""

    __slots__ = ("error", "messages")

    def __init__(self) -> None:
        self.messages: deque[Any] = deque()
        #: bad input behind the messages: raised to the handler once it has taken them
        self.error: ProtocolError | None = None

    def put(self, messages: list[Any], error: ProtocolError | None) -> None:
        self.messages.extend(messages)
        if error is not None:
            self.error = error
        self.arrived()

    def arrived(self) -> None:
        """Messages (or an error) were put: a recv() waiting on another thread may look."""

    def changed(self) -> None:
        """The input ended, the connection closed, or its output drained: a recv() or a
        send() waiting on another thread may look."""

    def take(self, session: Receiver, read_more: Callable[[], None]) -> Any:
        """The next message, for recv() on the connection's own thread: while none waits, the
        transport reads once more (``read_more``: it feeds the session, which puts what it
        decodes here)."""
        if _get_ident() != session.owner:
            raise RuntimeError("recv() must be called from the thread that serves the connection")
        messages = self.messages
        while not messages:
            if self.error is not None:
                error, self.error = self.error, None
                session.bad_input(error)
            if session.phase is not OPEN:
                raise ClosedError(f"{session.peer_url}: connection closed")
            read_more()
        return messages.popleft()
