"""What a session holds: its slots, and how a new one starts out.

Why a module of its own: the session is one object per connection, but its
rules are read in parts, one idea to a module (:mod:`.transitions`,
:mod:`.timeouts`, :mod:`.backpressure`, :mod:`.elsewhere`, :mod:`.layering`,
:mod:`.handler_calls`, and the hot path in :mod:`.core`). Each part is a class
with no state of its own (``__slots__ = ()``) over this one, so the parts
share the one object's attributes and cost the hot path nothing: no part is
a second object to reach through. What one part calls of another is
declared here for the type checker, once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..codecs.base import Decoder
from ..connection import Connection
from ..handlers import Dispatch
from ..layers.stack import LayerStack
from .inbox import Inbox
from .phases import OPEN
from .transport import Transport

if TYPE_CHECKING:
    import ssl
    from collections import deque

    from ..errors import ProtocolError
    from ..layers import LayerFactory
    from ..stats import LatencyHistogram
    from .file_source import FileSource
    from .host import SessionHost

__all__ = ["SessionState"]

_get_ident = threading.get_ident


class SessionState(Connection):
    """One connection's state; the parts of :class:`~.core.Session` give it its rules."""

    __slots__ = (
        "_decoder",
        "_deferred",
        "_files",
        "_handling",
        "_heard",
        "_holds_open",
        "_host",
        "_in_event",
        "_inbox",
        "_last_active",
        "_limits",
        "_opened",
        "_peer_ended",
        "_pending_error",
        "_release",
        "_reported",
        "_upgrade",
        "dispatch",
        "error",
        "in_message",
        "latency",
        "layers",
        "message_started",
        "out",
        "owner",
        "per_ip_counted",
        "phase",
        "reading",
        "timer_at",
        "transport",
    )

    def __init__(
        self,
        host: SessionHost[Any],
        transport: Transport,
        peer: Any,
        local: Any,
        scheme: str,
        now: float,
        layer_factories: tuple[LayerFactory, ...] = (),
        listener: str = "",
    ) -> None:
        super().__init__(host.codec, peer, local, scheme, listener)
        self._host = host
        self.transport = transport
        self._limits = limits = host.limits
        self._decoder = decoder = host.codec.decoder(limits.max_message_size)
        #: the handler's latency histogram (None unless metrics are served)
        self.latency: LatencyHistogram | None = host.stats.latency_for(listener)
        self._reported = False  # why it ended was counted and logged already
        # A decoder that counts what its messages hold (a structured codec's item budget)
        # is told when they were handled; the others cost nothing for it.
        self._release = decoder.release if type(decoder).release is not Decoder.release else None
        #: what calls the handler (set by start(), for handlers that are pushed their messages)
        self.dispatch: Dispatch = _NO_DISPATCH
        self.out = bytearray()  # bytes for the peer, not yet handed to the kernel
        #: the byte layers (TLS, PROXY), if any
        self.layers: LayerStack | None = None
        #: Whether the engine counted this connection against max_connections_per_ip (not
        #: yet, behind a PROXY header: its real peer is not known before the header).
        self.per_ip_counted = True
        if layer_factories:
            self.layers = stack = self._new_stack(layer_factories, peer)
            self.per_ip_counted = not stack.readdresses
        #: TLS the handler asked for (start_tls), to begin once its event's output is written
        self._upgrade: ssl.SSLContext | None = None
        self._inbox: Inbox | None = None  # a blocking handler's messages not taken yet
        # bad input behind messages handled elsewhere: answered once they have their replies
        self._pending_error: ProtocolError | None = None
        self._deferred: list[Any] | None = None  # messages waiting for a handler run elsewhere
        #: sendfile's files not yet read into the output, and what was sent behind them
        self._files: deque[FileSource | bytes] | None = None
        self._handling = False  # a handler run elsewhere has a message of this connection now
        #: the thread that runs this connection's events (made on it)
        self.owner = _get_ident()
        self._in_event = False  # inside an event: sends are collected and written after it
        self.in_message = False  # a message is half received (or a layer's handshake runs)
        self.message_started = 0.0  # when it began: read_timeout runs from then
        self._peer_ended = False  # the peer's end of stream was read
        self._holds_open = False  # the handler keeps it open after the peer's end (on_input_end)
        self._heard = False  # a byte went either way (before that, read_timeout applies)
        self._last_active = now  # until a byte goes either way: when the connection opened
        self._opened = now
        self.timer_at = 0.0  # when its live entry on an engine's deadline heap comes due
        self.phase = OPEN
        self.error: BaseException | None = None  # why it is closing (None: a clean close)
        self.reading = True  # whether the engine should read (False: closing, or backpressure)

    def _new_stack(self, factories: tuple[LayerFactory, ...], peer: Any) -> LayerStack:
        """The connection's layer stack, writing where its transport says
        (:meth:`~.transport.Transport.layer_output`)."""
        write, lock = self.transport.layer_output()
        return LayerStack(factories, peer, self.out.extend if write is None else write, lock)

    def __lt__(self, other: object) -> bool:
        return False  # deadline heap entries with equal times: any order will do

    def _find_local(self) -> Any:
        return self.transport.local_address()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer_url} {self.phase.value}>"

    if TYPE_CHECKING:  # what one part calls of another (each is defined once, in its part)

        def _write(self, data: bytes) -> None: ...
        def _settle(self) -> None: ...
        def _close(self, error: BaseException | None) -> None: ...
        def _end_input(self) -> None: ...
        def _input_over(self) -> None: ...
        def _kept_open(self) -> bool: ...
        def _end_of_stream(self) -> None: ...
        def bad_input(self, error: ProtocolError) -> None: ...
        def _handler_failed(self, error: Exception, answered: bool) -> None: ...
        def _tell_closed(self) -> None: ...
        def _drop_deferred(self) -> None: ...
        def _begin_tls(self, more_came: bool) -> None: ...
        def _feed_files(self) -> None: ...
        def _drop_files(self) -> None: ...
        def _start_deferred(self) -> None: ...


_NO_DISPATCH = Dispatch()
