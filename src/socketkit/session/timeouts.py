"""When a connection times out, and when a stopping server may end it.

Why together: read_timeout, idle_timeout and the stop's wait for a first
request are all answers to "how long may this connection wait, and for what";
engines only keep the timer (``engines/common/deadlines``) and ask here.
"""

from __future__ import annotations

import dataclasses

from ..errors import IdleTimeout, ReadTimeout, Timeout, WriteTimeout
from ..limits import Limits
from .phases import FIRST_REQUEST_WAIT, OPEN
from .state import SessionState

__all__ = ["Timeouts"]


class Timeouts(SessionState):
    """Deadlines and idleness, derived from what the connection is doing."""

    __slots__ = ()

    @property
    def limits(self) -> Limits:
        """The limits this connection is held to: the server's, or its own (:meth:`set_limits`)."""
        return self._limits

    def set_limits(self, *, idle_timeout: float | None = None, read_timeout: float | None = None) -> None:
        limits = self._limits
        self._limits = dataclasses.replace(  # checked as Limits() checks them
            limits,
            idle_timeout=limits.idle_timeout if idle_timeout is None else idle_timeout,
            read_timeout=limits.read_timeout if read_timeout is None else read_timeout,
        )
        self.transport.deadline_moved()

    def quiet(self, now: float) -> None:
        """The engine found no more bytes waiting. While stopping, an idle connection ends here,
        unless it is new and its first request may still be on its way (:meth:`fresh_until`)."""
        if self._messages_in_hand:
            return  # its messages are being handled: it ends once they have their replies
        if self._host.stopping and not self.in_message and self.phase is OPEN:
            fresh = self.fresh_until()
            if fresh is not None and now < fresh:
                return
            self._input_over()

    def fresh_until(self) -> float | None:
        """Until when stop() waits for this connection's first request: a client that
        connected just before the stop has it on the way (behind a TLS handshake, perhaps).
        None once a message went either way."""
        if self.messages_in or self.messages_out:
            return None
        return self._opened + FIRST_REQUEST_WAIT

    @property
    def idle(self) -> bool:
        """Between messages, nothing unsent, no handler call in hand: what stop() closes at once
        (a blocking handler waiting in recv() with none to take is idle)."""
        return not self.in_message and not self.out and not self._in_event and not self._messages_in_hand

    @property
    def _messages_in_hand(self) -> bool:
        """Decoded messages not answered yet: one a handler runs elsewhere, ones waiting for it,
        or ones a blocking handler has not taken."""
        return (
            self._handling or bool(self._deferred) or (self._inbox is not None and bool(self._inbox.messages))
        )

    def deadline(self) -> float:
        """When this connection times out unless something happens first."""
        limits = self._limits
        deadline = self._last_active + limits.idle_timeout
        if self.in_message:
            started = self.message_started + limits.read_timeout
            if started < deadline:  # noqa: PLR1730 - min() would be a call per connection
                deadline = started
        elif not self._heard:  # a peer that never sends a byte gets read_timeout, not idle_timeout
            first = self._last_active + limits.read_timeout  # nothing heard: still the opening time
            if first < deadline:  # noqa: PLR1730
                deadline = first
        stack = self.layers
        if stack is not None and stack.timed:  # a layer that keeps time (WebSocket keepalive)
            due = stack.due()
            if due < deadline:  # noqa: PLR1730
                deadline = due
        return deadline

    def expired(self, now: float) -> Timeout | None:
        """The timeout that ends this connection at ``now``, or None if none is due."""
        if self.deadline() > now:
            return None
        stack = self.layers
        if stack is not None and stack.timed and stack.due() <= now:
            error = stack.tick(now)  # (a keepalive ping, or no answer to the last one)
            if error is not None:
                return error
            self._last_active = now  # (a ping, or input seen since the last tick: not idle)
            self.transport.output_added()  # (the engine writes it: where the layers write is its)
            if self.deadline() > now:
                return None
        limits = self._limits
        if self.out:
            return self.write_timeout()
        if self.in_message and self.message_started + limits.read_timeout <= now:
            return ReadTimeout(f"message not finished within {limits.read_timeout:g}s")
        if not self._heard and self._last_active + limits.read_timeout <= now:
            return ReadTimeout(f"no request within {limits.read_timeout:g}s")
        return IdleTimeout(f"idle for {limits.idle_timeout:g}s")

    def write_timeout(self) -> WriteTimeout:
        """The error for a peer that did not take its output within idle_timeout."""
        return WriteTimeout(f"peer did not read for {self._limits.idle_timeout:g}s")
