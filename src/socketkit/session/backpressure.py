"""Backpressure: when a connection reads, and when a producer may produce.

Why together: reading stops above write_buffer_high of unsent output and
resumes below write_buffer_low (and once nothing waits for a handler and the
engine holds it no more); a producing Protocol's ``on_drain`` is offered below
the low mark; output that others send is bounded by FOREIGN_OUTPUT_FACTOR.
Whether reading resumes is decided here, in one place (a transition stops it
for good).
"""

from __future__ import annotations

from ..errors import LimitExceeded
from .phases import FOREIGN_OUTPUT_FACTOR, INPUT_ENDED, OPEN
from .state import SessionState

__all__ = ["Backpressure"]


class Backpressure(SessionState):
    """Whether to read, and a producer's turn."""

    __slots__ = ()

    def produce(self) -> bool:
        """Output drained: a producing Protocol's on_drain runs; True if it sent anything."""
        before = self.messages_out
        self._in_event = True
        try:
            self.dispatch.drained()
        except Exception as exc:
            self._close(exc)
        self._in_event = False
        return self.messages_out != before

    @property
    def producing(self) -> bool:
        """Whether the engine should offer on_drain (it is wanted, and output is low)."""
        return (
            self.dispatch.wants_drain
            and (self.phase is OPEN or (self._holds_open and self.phase is INPUT_ENDED))
            and len(self.out) <= self._limits.write_buffer_low
        )

    def _settle(self) -> None:
        """Backpressure: stop reading above write_buffer_high until output drains below low
        (and until a message waiting for its handler is taken, and the engine holds it no
        more)."""
        size = len(self.out)
        limits = self._limits
        if self.reading:
            if size > limits.write_buffer_high:
                self.reading = False
        elif (
            self.phase is OPEN
            and size <= limits.write_buffer_low
            and not self._deferred
            and not self.transport.held
        ):
            self.reading = True

    def settle(self) -> None:
        """The engine's hold on reading ended (:attr:`Transport.held`): read again if output
        allows it."""
        if not self.reading:
            self._settle()

    def foreign_overflow(self, pending: int) -> LimitExceeded | None:
        """The error for a peer whose unsent output from others (``pending`` bytes) is past
        what it may hold, or None while it is within the bound."""
        if pending <= FOREIGN_OUTPUT_FACTOR * self._limits.write_buffer_high:
            return None
        return LimitExceeded(
            f"peer is not reading: {pending} bytes unsent ({FOREIGN_OUTPUT_FACTOR} x write_buffer_high)"
        )
