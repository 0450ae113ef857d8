"""A connection's stack of byte layers: one object the session composes, not code in it.

Why an object: the stack has rules of its own that the session need not know
(wire bytes go up through every layer, nearest the socket first; bytes from
above go down through the layers below where they were made; what a layer
sends of its own, a handshake or an alert, is wrapped by the layers below it
and written at once, so a TLS record's place in the stream is fixed when it is
made). An engine decides only two things, given when the stack is made:
where wrapped bytes go (``write``: the session's output, or an outbox that
other threads also write to) and what keeps the stack to one thread at a time
(``lock``: re-entrant, since a layer's own output is written while input is
being fed; nothing for an engine whose every send is made on the connection's
own thread).
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable
from typing import Any

from ..errors import Timeout
from . import Layer, LayerFactory

__all__ = ["LayerStack", "LayerT"]

LayerT = typing.TypeVar("LayerT", bound=Layer)

_NO_LOCK: typing.ContextManager[object] = contextlib.nullcontext()


class LayerStack:
    """The layers of one connection, nearest the socket first."""

    __slots__ = ("_layers", "_lock", "_write", "readdresses", "timed")

    def __init__(
        self,
        factories: tuple[LayerFactory, ...],
        peer: Any,
        write: Callable[[bytes], object],
        lock: typing.ContextManager[object] | None = None,
    ) -> None:
        self._layers = [make() for make in factories]
        self._write = write
        self._lock = _NO_LOCK if lock is None else lock
        #: whether a layer may name another peer (PROXY): the connection is counted against
        #: max_connections_per_ip once that peer is known
        self.readdresses = False
        #: the layers that keep time (:meth:`due`, :meth:`tick`); empty for most stacks
        self.timed: tuple[Layer, ...] = ()
        for layer in self._layers:
            layer.opened(peer)
            if layer.readdresses:
                self.readdresses = True
            if layer.keeps_time:
                self.timed += (layer,)

    def due(self) -> float:
        """When the first layer that keeps time next wants the clock."""
        return min(layer.due for layer in self.timed)

    def tick(self, now: float) -> Timeout | None:
        """The layers whose time came are ticked, and what they send of their own written;
        the error that ends the connection, if one says so."""
        with self._lock:
            for layer in self.timed:
                if layer.due <= now:
                    error = layer.tick(now)
                    if error is not None:
                        return error
            self.write_own()
        return None

    def feed(self, data: bytes) -> bytes:
        """Wire bytes up through the layers: what reaches the codec (b"" if nothing does). What
        the layers answer of their own (a handshake) is written on the way."""
        if self._lock is _NO_LOCK:  # (no lock to take: two calls a message fewer)
            return self._feed(data)
        with self._lock:
            return self._feed(data)

    def _feed(self, data: bytes) -> bytes:
        for layer in self._layers:
            data = layer.feed(data)
            if not data:
                break
        self._own()
        return data

    def send(self, data: bytes) -> None:
        """The handler's bytes, wrapped by every layer and written, in one step."""
        if self._lock is _NO_LOCK:
            self._write(self._wrap(data, len(self._layers)))
            return
        with self._lock:
            self._write(self._wrap(data, len(self._layers)))

    def wrap(self, data: bytes) -> bytes:
        """The handler's bytes wrapped by every layer (the caller writes them, holding the lock)."""
        return self._wrap(data, len(self._layers))

    def write_own(self) -> None:
        """Write what the layers want sent of their own, each wrapped by those below it."""
        with self._lock:
            self._own()

    def _own(self) -> None:
        for index, layer in enumerate(self._layers):
            own = layer.take_output()
            if own:
                self._write(self._wrap(own, index))

    def close(self, going_away: bool = False) -> None:
        """The connection is closing: the layers' goodbyes (TLS close_notify) are written;
        ``going_away``: because the server is stopping."""
        with self._lock:
            for layer in reversed(self._layers):  # from the top: a goodbye (WebSocket's close
                if going_away:  # frame) is wrapped by the layers below it before they close
                    layer.going_away()
                layer.close()
                self.write_own()

    def end(self) -> None:
        """The peer ended its stream. Raises RemoteProtocolError if that was mid-record."""
        for layer in self._layers:
            layer.end()

    @property
    def ended(self) -> bool:
        """Whether the peer's stream ended inside a layer (TLS close_notify)."""
        for layer in self._layers:  # noqa: SIM110 - a loop, not any(): asked after every read
            if layer.ended:
                return True
        return False

    @property
    def in_progress(self) -> bool:
        """Whether a layer is in the middle of something of its own (a handshake)."""
        for layer in self._layers:  # noqa: SIM110 - (as ended)
            if layer.in_progress:
                return True
        return False

    @property
    def answer_due(self) -> bool:
        """Whether a layer's goodbye awaits the peer's answer (WebSocket's close frame)."""
        return any(layer.answer_due for layer in self._layers)  # (once, at the close)

    def learned_peer(self, peer: Any) -> tuple[bool, Any]:
        """(whether the real peer is known yet, that peer): the first address a layer learned
        (a PROXY header), or ``peer`` (the socket's own) when none learned one (PROXY LOCAL)."""
        for layer in self._layers:
            if layer.peer_address is not None:
                return True, layer.peer_address
            if layer.in_progress:
                return False, None
        return True, peer

    def push(self, layer: Layer) -> None:
        """A layer on top, nearest the codec (STARTTLS); it is told the connection opened."""
        with self._lock:
            layer.opened(None)
            self._layers.append(layer)
            self.readdresses = self.readdresses or layer.readdresses
            if layer.keeps_time:
                self.timed += (layer,)

    def find(self, kind: type[LayerT]) -> LayerT | None:
        """The layer of class ``kind``, if the stack has one."""
        for layer in self._layers:
            if isinstance(layer, kind):
                return layer
        return None

    def _wrap(self, data: bytes, above: int) -> bytes:
        for layer in reversed(self._layers[:above]):
            data = layer.wrap(data)
        return data
