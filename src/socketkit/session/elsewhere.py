"""Messages handled elsewhere, one at a time (``Transport.defers``: the pool, asyncio).

Why a part of its own: where the handler runs on another thread or as a
task, a connection's messages wait in order, one is in hand at a time, and
what happened meanwhile (bad input, the peer's end, a close) waits for its
reply. Engines that call handlers in the connection's own frame never reach
this code.
"""

from __future__ import annotations

import time
from typing import Any

from ..closing import report_close
from .phases import CLOSED, CLOSING, INPUT_ENDED, OPEN
from .state import SessionState

__all__ = ["OneAtATime"]

_perf_counter = time.perf_counter


class OneAtATime(SessionState):
    """A connection's messages for a handler run elsewhere: in order, one in hand."""

    __slots__ = ()

    def _defer(self, messages: list[Any]) -> None:
        if self._deferred is None:
            self._deferred = list(messages)
        else:
            self._deferred.extend(messages)
        self.transport.waiting_changed(len(messages))
        self._start_deferred()
        if self._deferred:
            self.reading = False  # a message waits behind the one in hand

    def _start_deferred(self) -> None:
        """Hand the next waiting message to its handler, unless one is in hand already, the
        connection is closing, or the peer has not read enough of its replies."""
        waiting = self._deferred
        if (
            not waiting
            or self._handling
            or not (self.phase is OPEN or self.phase is INPUT_ENDED)
            or len(self.out) > self._limits.write_buffer_high
        ):
            return
        message = waiting.pop(0)
        if not waiting:
            self._deferred = None  # an idle connection holds no list
        self._handling = True
        self.transport.waiting_changed(-1)
        self.transport.run_elsewhere(message)

    def run_handler(self, message: Any) -> Exception | None:
        """Call the handler on ``message`` where the engine runs it (a pool thread), timed for
        the latency histogram; what it raised, if anything (given to :meth:`handled`)."""
        latency = self.latency
        started = _perf_counter() if latency is not None else 0.0
        error: Exception | None = None
        try:
            self.dispatch.message(message)
        except Exception as exc:
            error = exc
        if latency is not None:
            latency.observe(_perf_counter() - started)
        return error

    def handled(self, error: Exception | None, answered: bool) -> None:
        """A handler call run elsewhere returned (on the connection's own thread, after every
        send it made): the next message starts, or what waited for it happens. ``answered``:
        it sent a reply (or needs none: on_connect)."""
        self._handling = False
        if error is not None:
            if self.phase is CLOSED:
                report_close(self._host.stats, self, error)
            else:
                self._handler_failed(error, answered)
        if self.phase is CLOSED:  # it ended while the handler ran: now the handler hears it
            self._tell_closed()
            return
        if self._upgrade is not None:  # STARTTLS: its go-ahead is written; TLS from now on
            self._begin_tls(False)
        if self._deferred and self.phase is not CLOSING:
            self._start_deferred()  # (or sent() starts it once the peer has read)
        elif self._deferred:
            self._drop_deferred()
        elif self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            self.bad_input(error)  # every message before it has its reply: now the error
        elif self.phase is INPUT_ENDED and not self._holds_open:
            self._input_ended_answered()
        if not self._handling and self._release is not None:
            self._release()  # every message decoded was handled: their values leave the budget
        if not self.reading:
            self._settle()

    def _input_ended_answered(self) -> None:
        """The input ended and every message has its reply: closed, unless on_input_end keeps it."""
        if not (self.dispatch.hears_input_end and self._kept_open()):
            self._close(None)

    def _drop_deferred(self) -> None:
        """The connection is closing: messages still waiting are not handled."""
        if self._deferred:
            self.transport.waiting_changed(-len(self._deferred))
        self._deferred = None
