"""What a handler calls on ``conn``: send, close, recv, from any thread.

Why a part of its own: these are the :class:`~socketkit.connection.Connection`
façade's promises (a send in an event is batched into one write, a send or
close from another thread is handed to the connection's own thread by the
transport, a blocking handler's recv takes from its inbox), kept apart from
the events the engine feeds.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

from ..connection import Connection
from ..errors import ClosedError
from ..layers.tls import TlsLayer, require_modern
from .phases import INPUT_ENDED, OPEN
from .state import SessionState

__all__ = ["HandlerCalls"]

_get_ident = threading.get_ident


class HandlerCalls(SessionState):
    """The handler's side of the connection."""

    __slots__ = ()

    @property
    def write_buffer_size(self) -> int:
        return len(self.out) + self.transport.unsent()

    def send(self, message: Any) -> None:
        data = self.codec.encode(message)
        if self._closed:
            raise ClosedError(f"{self.peer_url}: send on a closed connection")
        if _get_ident() != self.owner:
            self.transport.send_from_elsewhere(data)
        elif (
            self._in_event and self.layers is None and self._files is None
        ):  # a reply: written after the event
            self.messages_out += 1
            self.out += data
        else:
            self._append(data)

    def queue(self, data: bytes) -> None:
        """Send encoded ``data`` on the connection's own thread (the engine's relay of a
        send made on another thread); dropped if the connection closed meanwhile."""
        if not self._closed:
            self._append(data)

    def deliver(self, data: bytes) -> None:
        """Send encoded ``data`` that this connection's own handler sent from the thread it runs
        on elsewhere (a pool thread), here on the connection's thread: a reply like any other
        (backpressure pauses reading above write_buffer_high), not output from others."""
        if self._closed:
            return
        self._in_event = True
        self._append(data)
        self._in_event = False
        if len(self.out) > self._limits.write_buffer_high:
            self._settle()

    def _append(self, data: bytes) -> None:
        self.messages_out += 1
        self._write(data)
        if not self._in_event:
            self.transport.output_added()

    def close(self) -> None:
        if _get_ident() != self.owner:
            self.transport.close_from_elsewhere()
            return
        if self.phase is OPEN or self.phase is INPUT_ENDED:
            self._close(None)
            if not self._in_event:
                self.transport.output_added()  # flushed, then ended, by the engine

    def close_asked_elsewhere(self) -> bool:
        """A close from another thread, on an engine that lets the connection's own thread make
        the transition: from now on sends are refused. False if it was closed already."""
        if self._closed:
            return False
        self._closed = True
        return True

    def start_tls(self, context: ssl.SSLContext) -> None:
        if self._closed:
            raise ClosedError(f"{self.peer_url}: start_tls on a closed connection")
        if self._upgrade is not None or (self.layers is not None and self.layers.find(TlsLayer) is not None):
            raise ValueError(f"{self.peer_url}: TLS is on already")
        own_thread = _get_ident() == self.owner
        self._upgrade = require_modern(context)
        if self._inbox is not None:  # a blocking fn(conn): its sends so far were written
            if not own_thread:
                self._upgrade = None
                raise RuntimeError(
                    "start_tls() from a @blocking fn(conn) handler needs engine threads or "
                    "iterative (where it runs on the connection's own thread); on the pool, use "
                    "a Protocol or a request/reply function"
                )
            self._begin_tls(bool(self._inbox.messages))
        elif not (own_thread and self._in_event) and not self._handling:
            self._upgrade = None
            raise RuntimeError("start_tls() is for the handler, in answer to the peer's request to start TLS")

    def recv(self) -> Any:
        inbox = self._inbox
        if inbox is None:
            return Connection.recv(self)
        return inbox.take(self, self.transport.wait_for_input)

    def blocking_returned(self, error: Exception | None) -> None:
        """A blocking handler returned (or raised ``error``), on the connection's own thread:
        its replies flush, then the connection ends."""
        if error is not None:
            self._close(error)
        else:
            self.close()
