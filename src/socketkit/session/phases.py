"""A connection's phases, and the two numbers of the stop and fan-out policy.

Why a module of its own: every part of the session (the core, the parts it
composes, the engines' transports) names a phase, and none of them should have
to import the core to do so::

    OPEN ──peer EOF (blocking handler)──▶ INPUT_ENDED ─┐
      │                                                 ├─▶ CLOSING ──output flushed──▶ CLOSED
      └──close() / EOF / bad input / handler error / ───┘   (or any state, on an I/O error,
         stopping and idle                                   a deadline, or the grace cut)

- ``OPEN``: input is read and dispatched.
- ``INPUT_ENDED``: the peer finished sending (``echo hi | nc``): a blocking
  handler, or one with messages in hand, still replies.
- ``CLOSING``: no more input is taken and nothing more may be sent; what was
  already produced is flushed (replies are never thrown away by a close), then
  the engine ends the connection.
- ``CLOSED``: the close sequence ran: counted, reported, transport released,
  handler told (``on_close``).

Every transition is a method of :class:`~socketkit.session.core.Session`
(``_close`` and ``_end_input`` in :mod:`.transitions`, ``finish`` in
:mod:`.core`); nothing else assigns ``phase``.
"""

from __future__ import annotations

import enum

__all__ = [
    "CLOSED",
    "CLOSING",
    "FIRST_REQUEST_WAIT",
    "FOREIGN_OUTPUT_FACTOR",
    "INPUT_ENDED",
    "OPEN",
    "Phase",
]


class Phase(enum.Enum):
    OPEN = "open"
    INPUT_ENDED = "input ended"
    CLOSING = "closing"
    CLOSED = "closed"


OPEN = Phase.OPEN
INPUT_ENDED = Phase.INPUT_ENDED
CLOSING = Phase.CLOSING
CLOSED = Phase.CLOSED

#: Output that others send to a connection (a broker's fan-out) cannot pause
#: its reading; a peer that drains it in time is kept, but one whose unsent
#: output passes this many times ``write_buffer_high`` is closed at once.
FOREIGN_OUTPUT_FACTOR = 4

#: When stop() comes, a connection that has not sent (or been sent) a message yet and is
#: younger than this (seconds) is given the rest of it for its first request: a client
#: that connected just before the stop has it on the way. Others that are idle end at once.
FIRST_REQUEST_WAIT = 1.0
