"""What a session needs of its engine (:class:`SessionHost`).

Why a module of its own: engines implement it, the session and the datagram
path use it, and none of them should need the session's code to name it. It
is generic in the session it is told about, so this module does not import
the session (engines say ``SessionHost[Session]``; the session's own parts,
which cannot name the whole, ``SessionHost[Any]``).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

from ..connection import Connection
from ..handlers import Dispatch

if TYPE_CHECKING:
    from ..codecs import Codec
    from ..errors import LimitExceeded
    from ..handlers import Handler
    from ..limits import Limits
    from ..stats import StatsRecorder

__all__ = ["SessionHost"]

SessionT_contra = typing.TypeVar("SessionT_contra", bound=Connection, contravariant=True)


class SessionHost(typing.Protocol[SessionT_contra]):
    """What a session needs of its engine: the server's settings and its bookkeeping."""

    codec: Codec
    limits: Limits
    handler: Handler
    stats: StatsRecorder
    stopping: bool

    def connection_finished(self, session: SessionT_contra) -> None:
        """``session`` ended: forget it (open count, per-IP count, stats)."""

    def admit(self, peer: Any, listener: str) -> LimitExceeded | None:
        """Count a peer learned after accept (a PROXY header) against max_connections_per_ip;
        the refusal, if it is over."""

    def dispatch_for(self, session: SessionT_contra) -> Dispatch:
        """What calls the handler for ``session`` (an engine that runs event handlers on
        several threads makes their calls one at a time here)."""
        return self.handler.dispatch(session)
