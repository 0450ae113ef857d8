"""The transitions out of OPEN: input ending, bad input, a handler's failure, closing.

Why together: a connection ends in many ways (the handler closes, the peer
ends its stream, bad input, a handler error), and which reply, count, log
line and ``on_close`` each gets is one policy. Every assignment to ``phase``
is here (see :mod:`.phases`) but the last, to CLOSED: that is the engine's
event ``finish`` (the output flushed, or an I/O error, a deadline, the grace
cut), in :mod:`.core`.
"""

from __future__ import annotations

from ..closing import log, report_close
from ..errors import BrokenError, ProtocolError, RemoteProtocolError, Timeout
from .phases import CLOSING, INPUT_ENDED, OPEN
from .state import SessionState

__all__ = ["Transitions"]


class Transitions(SessionState):
    """OPEN -> INPUT_ENDED -> CLOSING -> CLOSED, and what each step tells whom."""

    __slots__ = ()

    def _handler_failed(self, error: Exception, answered: bool) -> None:
        """The handler raised on a message: the codec's failure reply (HTTP's 500), unless the
        handler had answered that message already, then close."""
        if not answered and not self._closed:
            reply = self.codec.failure_reply()
            if reply is not None:
                self._write(reply)
        self._close(error)

    @property
    def may_linger(self) -> bool:
        """Whether closing this connection's socket should linger (``engines/common/linger``): the
        peer has not ended its input, and the connection did not break or time out."""
        return not self._peer_ended and not isinstance(self.error, (BrokenError, Timeout))

    @property
    def answer_due(self) -> bool:
        """Whether our goodbye asked the peer for an answer it has not sent (WebSocket's close
        frame): the lingering close then waits for the peer's end even with no input waiting
        yet, for ``LINGER_TIME`` at most, so its answer is read, not met with a reset."""
        return self.layers is not None and self.layers.answer_due

    def _tell_closed(self) -> None:
        """The handler's on_close, with why the connection ended."""
        dispatch = self.dispatch
        if not dispatch.hears_close:
            return
        transport = self.transport
        if transport.defers and transport.tell_closed_elsewhere(self.error):
            return
        try:
            dispatch.closed(self.error)
        except Exception as exc:
            self.on_close_failed(exc)

    def on_close_failed(self, error: Exception) -> None:
        """The handler's on_close raised: counted and logged; nothing else changes."""
        self._host.stats.error("handler", self.listener)
        log.error("%s: on_close raised %s: %s", self.peer_url, type(error).__name__, error, exc_info=error)

    def _close(self, error: BaseException | None) -> None:
        """OPEN or INPUT_ENDED -> CLOSING: no more input or sends; output flushes."""
        if self.phase is OPEN or self.phase is INPUT_ENDED:
            self.phase = CLOSING
            self._closed = True
            self.reading = False
            if self.error is None:
                self.error = error
            if self.error is not None:  # counted as it begins: a TLS close_notify may reach the peer
                report_close(self._host.stats, self, self.error)  # before finish() runs
                self._reported = True
            if self.layers is not None and self._files is None:  # their goodbyes (TLS close_notify,
                self.layers.close(self._host.stopping)  # WebSocket's close) follow the output
                # (and the files: .files)
            if self._inbox is not None:
                self._inbox.changed()  # a blocking handler waiting in recv() sees it close

    def _end_input(self) -> None:
        """No more input will be read. A blocking handler, or one with messages in hand, may
        still reply; otherwise close."""
        if self.phase is OPEN and (self._inbox is not None or self._handling or self._deferred):
            self.phase = INPUT_ENDED
            self.reading = False
            if self._inbox is not None:
                self._inbox.changed()
        else:
            self._close(None)

    def _end_of_stream(self) -> None:
        try:
            if self.layers is not None:
                self.layers.end()
            self._decoder.feed(b"")
        except ProtocolError as exc:
            self.bad_input(exc)
            return
        self._input_over()

    def _input_over(self) -> None:
        """No more input will be read (the peer's end, or the server is stopping): a handler
        with on_input_end is told, after the messages before the end were handled, and may
        keep the connection open; any other ends its input (:meth:`_end_input`)."""
        if self.dispatch.hears_input_end and self.phase is OPEN:
            if self._handling or self._deferred:  # told in handled(), once they have replies
                self.phase = INPUT_ENDED
                self.reading = False
                return
            if self._kept_open():
                return
        self._end_input()

    def _kept_open(self) -> bool:
        """Whether the handler's on_input_end keeps the connection open (it closes it itself
        later); no more input is read either way."""
        self._in_event = True
        try:
            keep = self.dispatch.input_ended()
        except Exception as exc:
            self._in_event = False
            self._close(exc)
            return True  # (closing, for what it raised)
        self._in_event = False
        if keep and not self._closed:  # (a handler that closed in it is closing already)
            self.phase = INPUT_ENDED
            self.reading = False
            self._holds_open = True
        return keep

    def bad_input(self, error: ProtocolError) -> None:
        """Answer bad input with the codec's error reply (where it has one), then close; after
        the replies to the messages before it, where those are still being handled."""
        if (self._handling or self._deferred) and self.phase is OPEN:
            self._pending_error = error  # answered in handled()
            self.reading = False
            return
        if self.phase is OPEN or self.phase is INPUT_ENDED:
            reply = self.codec.error_reply(error) if isinstance(error, RemoteProtocolError) else None
            if reply is not None:
                self._write(reply)
        self._close(error)
