"""Byte layers: sans-IO transforms between a connection's socket and its codec.

Why a seam here: TLS (``ssl.SSLObject`` over ``MemoryBIO``) and the PROXY
protocol header sit between the bytes on the wire and the bytes the codec
frames. Written as sans-IO layers that a :class:`~socketkit.session.Session`
stacks, each is written once and every engine gets it, the same way every
engine gets the codec.

A layer is fed the bytes from below and returns the bytes for the layer above;
it wraps the bytes going down; and it may have bytes of its own to send (a
handshake, an alert), which the session collects after every event. A layer
that keeps time (WebSocket's keepalive pings) says when it next wants the clock
(``due``); the session folds that into the connection's deadline, so every
engine's timer serves it, and calls :meth:`Layer.tick` then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Timeout

__all__ = ["Layer", "LayerFactory"]


class Layer:
    """One transform in a connection's stack; the identity by default.

    A subclass overrides what it changes. Every method may raise
    :class:`~socketkit.errors.RemoteProtocolError` for bad input from the peer;
    the session answers that as it answers a codec's error.
    """

    __slots__ = ()

    @property
    def in_progress(self) -> bool:
        """Whether the layer is in the middle of something of its own (a handshake): the
        connection then counts as a message in progress, under ``read_timeout``."""
        return False

    #: Whether this layer may name another peer (the PROXY protocol): the connection is then
    #: counted against max_connections_per_ip only once that peer is known.
    readdresses = False

    @property
    def answer_due(self) -> bool:
        """Whether the layer's goodbye asked the peer for an answer not come yet (WebSocket's
        close frame): the connection's lingering close then waits for it (bounded)."""
        return False

    #: Whether this layer keeps time (its stack then asks its ``due``); fixed when it is made.
    keeps_time = False

    #: When the layer next wants :meth:`tick` (a monotonic time; ``inf``: not until it says so).
    due = float("inf")

    def tick(self, now: float) -> Timeout | None:
        """``due`` came: queue what the layer sends of its own then (a keepalive ping) and move
        ``due`` on; or return the error that ends the connection (no answer to the last ping)."""
        return None

    @property
    def peer_address(self) -> Any:
        """The peer's real address once the layer learned it (a PROXY header), else None."""
        return None

    def opened(self, peer: Any) -> None:
        """The connection was accepted from ``peer`` (the socket's own peer address)."""

    @property
    def ended(self) -> bool:
        """Whether the peer ended its stream inside this layer (TLS close_notify): the
        session then treats it as the end of input."""
        return False

    def feed(self, data: bytes) -> bytes:
        """Bytes from the peer (never empty) -> bytes for the layer above (may be empty)."""
        return data

    def close(self) -> None:
        """The connection is closing: queue the layer's goodbye, if it has one, for
        :meth:`take_output` (TLS close_notify). Nothing is wrapped after this."""

    def going_away(self) -> None:
        """Called before :meth:`close` when the server is stopping: a goodbye that can say so
        does (WebSocket's 1001)."""

    def end(self) -> None:
        """The peer closed its side. Raises RemoteProtocolError if that was mid-record."""

    def wrap(self, data: bytes) -> bytes:
        """Bytes from above, on their way to the peer -> the bytes to send."""
        return data

    def take_output(self) -> bytes:
        """Bytes the layer itself wants sent (handshake records), b"" when none."""
        return b""


#: Makes a fresh layer for each connection (a class, or any callable).
LayerFactory = Callable[[], Layer]
