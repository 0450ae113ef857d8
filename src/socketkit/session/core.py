"""The connection core: one sans-IO state machine per connection, under every engine.

Why one: a connection's life (layers, decoder, dispatch, the half-received
message, deadlines, backpressure marks, the good-before-bad replay, the error
reply, the close sequence) decides what a peer gets, so it must be the same
whichever engine waits on the socket. It is written once, in this package.
Engines do not subclass it: each gives it a :class:`~.transport.Transport`
(its socket and loop) and feeds it events: what they read goes to
:meth:`Session.received`, what :attr:`Session.out` holds is written and
reported with :meth:`Session.sent`, and :meth:`Session.deadline` says when to
wake. No socket is touched here, so every event order is unit-tested without
one.

This module is the events' hot path (a connection starts, bytes arrive, the
kernel took output); the rules it applies are read in their own parts, one
idea each, all of them rules of this one object (see :mod:`.state`):

- :mod:`.transitions`: every change of phase, the close sequence, bad input;
- :mod:`.timeouts`: deadlines, and when a stopping server may end a connection;
- :mod:`.backpressure`: when to read, a producer's turn;
- :mod:`.elsewhere`: messages for a handler run elsewhere (pool, asyncio), one at a time;
- :mod:`.layering`: what the byte layers' progress means for the connection;
- :mod:`.handler_calls`: what the handler calls (send, close, recv);
- :mod:`.files`: files sent (sendfile), fed into the output as it drains.

What has state of its own is an object the session composes: the byte layers
(:class:`~socketkit.layers.stack.LayerStack`), a blocking handler's inbox
(:class:`~.inbox.Inbox`), and the engine's transport.
"""

from __future__ import annotations

import time
from typing import Any

from ..closing import report_close, report_defect
from ..errors import ProtocolError, SocketkitError
from .backpressure import Backpressure
from .elsewhere import OneAtATime
from .files import FileOutput
from .handler_calls import HandlerCalls
from .layering import Layered
from .phases import CLOSED, OPEN
from .timeouts import Timeouts
from .transitions import Transitions

__all__ = ["Session"]

_perf_counter = time.perf_counter


class Session(Transitions, Timeouts, Backpressure, OneAtATime, Layered, HandlerCalls, FileOutput):
    """One connection's state machine; also what its handler sees as ``conn``."""

    __slots__ = ()

    # -- events from the engine ---------------------------------------------------------

    def start(self) -> None:
        """The connection was accepted: on_connect runs (or a blocking handler is expected)."""
        handler = self._host.handler
        if handler.is_blocking:
            self._inbox = self.transport.new_inbox()
            return
        self.dispatch = dispatch = self._host.dispatch_for(self)
        transport = self.transport
        if transport.defers and transport.connect_elsewhere():
            self._handling = True  # messages wait for on_connect, as for a message in hand
        elif dispatch.hears_connect:
            self._in_event = True
            try:
                dispatch.connected()
            except Exception as exc:
                self._close(exc)
            self._in_event = False
            if self._upgrade is not None:  # TLS from the first byte the peer sends
                self._begin_tls(False)
        if self.layers is not None:
            self.layers.write_own()
        if self.out:
            self._settle()

    def received(self, data: bytes, now: float) -> None:
        """Bytes arrived from the peer; ``b""`` is the end of its stream."""
        if self.phase is not OPEN:
            return  # closing: what the peer sends now is not read
        if not data:
            self._peer_ended = True
            self._end_of_stream()
            return
        self.bytes_in += len(data)
        self._last_active = now
        self._heard = True
        if self.layers is not None:
            data = self._through_layers(data, now)
            if not data:
                return
        decoder = self._decoder
        bad: ProtocolError | None = None
        try:
            messages = decoder.feed(data)
        except ProtocolError as exc:
            bad = exc
            messages = exc.messages  # complete before the bad part: answered first
        else:
            if decoder.buffered:
                if not self.in_message or messages:  # a new message started
                    self.in_message = True
                    self.message_started = now
                interim = decoder.take_interim()
                if interim:  # e.g. 100 Continue: the peer waits for it before the rest
                    self._write(interim)
            else:
                self.in_message = False
        if messages:
            self.messages_in += len(messages)
            inbox = self._inbox
            if inbox is not None:  # a blocking handler takes the good ones before the bad input
                inbox.put(messages, bad)
                if bad is not None:
                    return
            elif self.transport.defers:  # handled elsewhere, one at a time (their values stay
                self._defer(messages)  # counted in a structured codec's budget until handled)
            else:  # dispatched here, in this frame: the hot path
                dispatch = self.dispatch
                reply = dispatch.reply
                self._in_event = True
                answered = 0  # messages_out before the message being handled
                try:
                    if self.latency is not None:
                        message = self._timed_dispatch(dispatch.message, messages)
                    elif reply is not None and self.layers is None:
                        # A request/reply function: called here and its reply appended, as
                        # send() would in an event (one call a message, not three).
                        encode = self.codec.encode
                        out = self.out
                        for message in messages:
                            answered = self.messages_out
                            answer = reply(message, self)
                            if answer is not None:
                                data = encode(answer)  # (a reply it cannot encode: as send())
                                if self._closed:  # (closed: nowhere to go, as send() says)
                                    pass
                                elif self._files is None:
                                    out += data
                                    self.messages_out += 1
                                else:  # (behind a file being sent)
                                    self._append(data)
                            # the handler closed (or started TLS): later pipelined messages are
                            # not answered
                            if self._closed or self._upgrade is not None:
                                break
                    else:
                        handle = dispatch.message
                        for message in messages:
                            answered = self.messages_out
                            handle(message)
                            if self._closed or self._upgrade is not None:
                                break
                except Exception as exc:
                    self._handler_failed(exc, self.messages_out != answered)
                self._in_event = False
                if self._upgrade is not None:  # STARTTLS: what came after its request is refused
                    self._begin_tls(message is not messages[-1])
                if self._release is not None:
                    self._release()
        if bad is not None:
            self.bad_input(bad)
        elif len(self.out) > self._limits.write_buffer_high:
            self._settle()
        if self.layers is not None and self.phase is OPEN and self.layers.ended:
            self._end_of_stream()  # TLS close_notify: the peer's stream ended inside the layers

    def finish(self, error: BaseException | None = None) -> None:
        """The close sequence, once: count and report, release the transport, tell the handler.

        ``error`` (an I/O error, a timeout, the grace cut) is the reason unless
        the connection was already closing for one.
        """
        if self.phase is CLOSED:
            return
        if self.error is None:
            self.error = error
        self.phase = CLOSED
        self._closed = True
        self.reading = False
        error = self.error
        host = self._host
        # Count and log before the peer can see the close, so stats never lag it (a
        # connection that closed for a reason reported it already, in _close).
        host.connection_finished(self)
        if error is not None and not self._reported:
            report_close(host.stats, self, error)
        transport = self.transport
        if self._handling and transport.cancel_running():
            self._handling = False  # cancelled: on_close is told now, not after it
        transport.release()
        if self._inbox is not None:
            self._inbox.changed()  # a blocking handler waiting in recv() or send() sees the end
        self.out.clear()
        if self._files is not None:
            self._drop_files()
        self._decoder.release()
        self._drop_deferred()
        if not self._handling:  # else on_close waits for the handler to return (handled)
            self._tell_closed()

    def fail(self, error: Exception) -> None:
        """``error`` escaped this connection's events: only this connection ends, now, its
        unsent output dropped. A socketkit error (a layer's protocol error where none was
        expected) is counted and logged as its kind; anything else is a defect, counted as
        ``internal`` and logged with its traceback. Each engine calls this from its one guard
        around a connection's events, so nothing raised inside a session reaches its loop."""
        if not isinstance(error, SocketkitError):
            report_defect(self._host.stats, self, error)
            self._reported = True
        self.finish(error)

    def _timed_dispatch(self, handle: Any, messages: list[Any]) -> Any:
        """The dispatch loop, timing each handler call for the latency histogram; the last
        message handled."""
        latency = self.latency
        assert latency is not None
        for message in messages:
            answered = self.messages_out
            started = _perf_counter()
            try:
                handle(message)
            except Exception as exc:
                self._handler_failed(exc, self.messages_out != answered)
                return message
            finally:
                latency.observe(_perf_counter() - started)
            if self._closed or self._upgrade is not None:
                break
        return message

    def sent(self, count: int, now: float) -> None:
        """The kernel took the first ``count`` bytes of :attr:`out`."""
        if count:
            self.bytes_out += count
            del self.out[:count]
            self._last_active = now
            self._heard = True
        if self._files is not None and len(self.out) <= self._limits.write_buffer_low:
            self._feed_files()  # a file's next chunk (sendfile)
        if self._deferred is not None and len(self.out) <= self._limits.write_buffer_low:
            self._start_deferred()  # the peer read its replies: the next message may start
        if self._inbox is not None and len(self.out) <= self._limits.write_buffer_low:
            self._inbox.changed()  # a blocking handler's send may wait for the peer to read
        if not self.reading:  # sending can only let reading resume
            self._settle()

    def sent_aside(self, count: int, now: float) -> None:
        """The engine sent ``count`` bytes that were not in :attr:`out` (another thread's send
        that went straight to the kernel, or out of the engine's outbox): counted, and the
        connection was active (a member that only listens is not idle while lines reach it)."""
        self.bytes_out += count
        if count:
            self._last_active = now
            self._heard = True

    def _write(self, data: bytes) -> None:
        """Bytes for the wire, through the layers if there are any; behind the files being
        sent, if any (:mod:`.files`)."""
        if self._files is not None:
            self._files.append(data)
        elif self.layers is not None:
            self.layers.send(data)
        else:
            self.out += data
