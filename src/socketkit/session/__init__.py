"""The connection core (see :mod:`.core`), and the parts it composes.

- :mod:`.phases`: a connection's phases and the stop and fan-out numbers;
- :mod:`.transport`: what a session asks of the engine's side of its connection;
- :mod:`.host`: what a session needs of its engine (:class:`SessionHost`);
- :mod:`.inbox`: a ``@blocking`` handler's messages not taken yet;
- :mod:`.state`: what a session holds;
- :mod:`.core`: the state machine's events, with its rules in parts
  (:mod:`.transitions`, :mod:`.timeouts`, :mod:`.backpressure`,
  :mod:`.elsewhere`, :mod:`.layering`, :mod:`.handler_calls`).
"""

from __future__ import annotations

from .core import Session
from .host import SessionHost
from .inbox import Inbox
from .phases import CLOSED, CLOSING, FIRST_REQUEST_WAIT, FOREIGN_OUTPUT_FACTOR, INPUT_ENDED, OPEN, Phase
from .transport import Transport

__all__ = [
    "CLOSED",
    "CLOSING",
    "FIRST_REQUEST_WAIT",
    "FOREIGN_OUTPUT_FACTOR",
    "INPUT_ENDED",
    "OPEN",
    "Inbox",
    "Phase",
    "Session",
    "SessionHost",
    "Transport",
]
