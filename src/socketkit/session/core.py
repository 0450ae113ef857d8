"""The connection core: one sans-IO state machine per connection, under every engine.

Why one: a connection's life (layers, decoder, dispatch, the half-received
message, deadlines, backpressure marks, the good-before-bad replay, the error
reply, the close sequence) decides what a peer gets, so it must be the same
whichever engine waits on the socket. It is written here once, with the
phases of :mod:`.phases` and every transition in this file (as h11's
``_state.py``). Engines do not subclass it: each gives it a
:class:`~.transport.Transport` (its socket and loop) and feeds it events: what
they read goes to :meth:`Session.received`, what :attr:`Session.out` holds is
written and reported with :meth:`Session.sent`, and :meth:`Session.deadline`
says when to wake. No socket is touched here, so every event order is
unit-tested without one.

What has rules of its own is an object the session composes: the byte layers
(:class:`~socketkit.layers.stack.LayerStack`), a blocking handler's inbox
(:class:`~.inbox.Inbox`), and the engine's transport; the hot path calls none
that it does not need.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..closing import log, report_close, report_defect
from ..codecs.base import Decoder
from ..connection import Connection
from ..errors import (
    BrokenError,
    ClosedError,
    IdleTimeout,
    LimitExceeded,
    ProtocolError,
    ReadTimeout,
    RemoteProtocolError,
    SocketkitError,
    Timeout,
    WriteTimeout,
)
from ..handlers import Dispatch
from ..layers.stack import LayerStack, LayerT
from .inbox import Inbox
from .phases import CLOSED, CLOSING, FIRST_REQUEST_WAIT, FOREIGN_OUTPUT_FACTOR, INPUT_ENDED, OPEN
from .transport import Transport

if TYPE_CHECKING:
    from ..codecs import Codec
    from ..handlers import Handler
    from ..layers import LayerFactory
    from ..limits import Limits
    from ..stats import LatencyHistogram, StatsRecorder

__all__ = ["Session", "SessionHost"]

_perf_counter = time.perf_counter
_get_ident = threading.get_ident


class SessionHost(typing.Protocol):
    """What a session needs of its engine: the server's settings and its bookkeeping."""

    codec: Codec
    limits: Limits
    handler: Handler
    stats: StatsRecorder
    stopping: bool

    def connection_finished(self, session: Session) -> None:
        """``session`` ended: forget it (open count, per-IP count, stats)."""

    def admit(self, peer: Any, listener: str) -> LimitExceeded | None:
        """Count a peer learned after accept (a PROXY header) against max_connections_per_ip;
        the refusal, if it is over."""

    def dispatch_for(self, session: Session) -> Dispatch:
        """What calls the handler for ``session`` (an engine that runs event handlers on
        several threads makes their calls one at a time here)."""
        return self.handler.dispatch(session)


class Session(Connection):
    """One connection's state machine; also what its handler sees as ``conn``."""

    __slots__ = (
        "_decoder",
        "_deferred",
        "_handling",
        "_heard",
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
        host: SessionHost,
        transport: Transport,
        peer: Any,
        local: Any,
        scheme: str,
        now: float,
        layer_factories: tuple[LayerFactory, ...] = (),
        listener: str = "",
        *,
        layer_write: Callable[[bytes], object] | None = None,
        layer_lock: typing.ContextManager[object] | None = None,
    ) -> None:
        """``layer_write`` and ``layer_lock``: where the layer stack writes and what keeps it to
        one thread (:class:`~socketkit.layers.stack.LayerStack`); by default the session's
        output, and nothing (every send made on the connection's own thread)."""
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
            self.layers = stack = LayerStack(
                layer_factories,
                peer,
                self.out.extend if layer_write is None else layer_write,
                layer_lock,
            )
            self.per_ip_counted = not stack.readdresses
        self._inbox: Inbox | None = None  # a blocking handler's messages not taken yet
        # bad input behind messages handled elsewhere: answered once they have their replies
        self._pending_error: ProtocolError | None = None
        self._deferred: list[Any] | None = None  # messages waiting for a handler run elsewhere
        self._handling = False  # a handler run elsewhere has a message of this connection now
        #: the thread that runs this connection's events (made on it)
        self.owner = _get_ident()
        self._in_event = False  # inside an event: sends are collected and written after it
        self.in_message = False  # a message is half received (or a layer's handshake runs)
        self.message_started = 0.0  # when it began: read_timeout runs from then
        self._peer_ended = False  # the peer's end of stream was read
        self._heard = False  # a byte went either way (before that, read_timeout applies)
        self._last_active = now  # until a byte goes either way: when the connection opened
        self._opened = now
        self.timer_at = 0.0  # when its live entry on an engine's deadline heap comes due
        self.phase = OPEN
        self.error: BaseException | None = None  # why it is closing (None: a clean close)
        self.reading = True  # whether the engine should read (False: closing, or backpressure)

    def __lt__(self, other: object) -> bool:
        return False  # deadline heap entries with equal times: any order will do

    def _find_local(self) -> Any:
        return self.transport.local_address()

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
                        self._timed_dispatch(dispatch.message, messages)
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
                                if not self._closed:  # (closed: nowhere to go, as send() says)
                                    out += data
                                    self.messages_out += 1
                            if self._closed:  # the handler closed: later pipelined messages are not answered
                                break
                    else:
                        handle = dispatch.message
                        for message in messages:
                            answered = self.messages_out
                            handle(message)
                            if self._closed:
                                break
                except Exception as exc:
                    self._handler_failed(exc, self.messages_out != answered)
                self._in_event = False
                if self._release is not None:
                    self._release()
        if bad is not None:
            self.bad_input(bad)
        elif len(self.out) > self._limits.write_buffer_high:
            self._settle()
        if self.layers is not None and self.phase is OPEN and self.layers.ended:
            self._end_of_stream()  # TLS close_notify: the peer's stream ended inside the layers

    def _timed_dispatch(self, handle: Any, messages: list[Any]) -> None:
        """The dispatch loop, timing each handler call for the latency histogram."""
        latency = self.latency
        assert latency is not None
        for message in messages:
            answered = self.messages_out
            started = _perf_counter()
            try:
                handle(message)
            except Exception as exc:
                self._handler_failed(exc, self.messages_out != answered)
                return
            finally:
                latency.observe(_perf_counter() - started)
            if self._closed:
                break

    def _handler_failed(self, error: Exception, answered: bool) -> None:
        """The handler raised on a message: the codec's failure reply (HTTP's 500), unless the
        handler had answered that message already, then close."""
        if not answered and not self._closed:
            reply = self.codec.failure_reply()
            if reply is not None:
                self._write(reply)
        self._close(error)

    def sent(self, count: int, now: float) -> None:
        """The kernel took the first ``count`` bytes of :attr:`out`."""
        if count:
            self.bytes_out += count
            del self.out[:count]
            self._last_active = now
            self._heard = True
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
            and self.phase is OPEN
            and len(self.out) <= self._limits.write_buffer_low
        )

    def quiet(self, now: float) -> None:
        """The engine found no more bytes waiting. While stopping, an idle connection ends here,
        unless it is new and its first request may still be on its way (:meth:`fresh_until`)."""
        if self._messages_in_hand:
            return  # its messages are being handled: it ends once they have their replies
        if self._host.stopping and not self.in_message and self.phase is OPEN:
            fresh = self.fresh_until()
            if fresh is not None and now < fresh:
                return
            self._end_input()

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
        return deadline

    def expired(self, now: float) -> Timeout | None:
        """The timeout that ends this connection at ``now``, or None if none is due."""
        if self.deadline() > now:
            return None
        limits = self._limits
        if self.out:
            return self.write_timeout()
        if self.in_message and self.message_started + limits.read_timeout <= now:
            return ReadTimeout(f"message not finished within {limits.read_timeout:g}s")
        if not self._heard:
            return ReadTimeout(f"no request within {limits.read_timeout:g}s")
        return IdleTimeout(f"idle for {limits.idle_timeout:g}s")

    def write_timeout(self) -> WriteTimeout:
        """The error for a peer that did not take its output within idle_timeout."""
        return WriteTimeout(f"peer did not read for {self._limits.idle_timeout:g}s")

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
        self._decoder.release()
        self._drop_deferred()
        if not self._handling:  # else on_close waits for the handler to return (handled)
            self._tell_closed()

    @property
    def may_linger(self) -> bool:
        """Whether closing this connection's socket should linger (``engines/common/linger``): the
        peer has not ended its input, and the connection did not break or time out."""
        return not self._peer_ended and not isinstance(self.error, (BrokenError, Timeout))

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

    # -- what handlers call -------------------------------------------------------------

    def layer(self, kind: type[LayerT]) -> LayerT | None:
        """This connection's layer of class ``kind`` (``TlsLayer``, ``ProxyProtocolLayer``), if any:
        what it learned (TLS version, the PROXY header's TLVs)."""
        return None if self.layers is None else self.layers.find(kind)

    @property
    def write_buffer_size(self) -> int:
        return len(self.out) + self.transport.unsent()

    def send(self, message: Any) -> None:
        data = self.codec.encode(message)
        if self._closed:
            raise ClosedError(f"{self.peer_url}: send on a closed connection")
        if _get_ident() != self.owner:
            self.transport.send_from_elsewhere(data)
        elif self._in_event and self.layers is None:  # a reply: written after the event
            self.messages_out += 1
            self.out += data
        else:
            self._append(data)

    def queue(self, data: bytes) -> None:
        """Send encoded ``data`` on the connection's own thread (the engine's relay of a
        send made on another thread); dropped if the connection closed meanwhile."""
        if not self._closed:
            self._append(data)

    def deliver(self, data: bytes) -> None:
        """Send encoded ``data`` that this connection's own handler sent from the thread it runs
        on elsewhere (a pool thread), here on the connection's thread: a reply like any other
        (backpressure pauses reading above write_buffer_high), not output from others."""
        if self._closed:
            return
        self._in_event = True
        self._append(data)
        self._in_event = False
        if len(self.out) > self._limits.write_buffer_high:
            self._settle()

    def _append(self, data: bytes) -> None:
        self.messages_out += 1
        self._write(data)
        if not self._in_event:
            self.transport.output_added()

    def close(self) -> None:
        if _get_ident() != self.owner:
            self.transport.close_from_elsewhere()
            return
        if self.phase is OPEN or self.phase is INPUT_ENDED:
            self._close(None)
            if not self._in_event:
                self.transport.output_added()  # flushed, then ended, by the engine

    def close_asked_elsewhere(self) -> bool:
        """A close from another thread, on an engine that lets the connection's own thread make
        the transition: from now on sends are refused. False if it was closed already."""
        if self._closed:
            return False
        self._closed = True
        return True

    def recv(self) -> Any:
        inbox = self._inbox
        if inbox is None:
            return super().recv()
        return inbox.take(self, self.transport.wait_for_input)

    def blocking_returned(self, error: Exception | None) -> None:
        """A blocking handler returned (or raised ``error``), on the connection's own thread:
        its replies flush, then the connection ends."""
        if error is not None:
            self._close(error)
        else:
            self.close()

    # -- transitions ----------------------------------------------------------------------

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
            if self.layers is not None:  # their goodbyes (TLS close_notify) follow the output
                self.layers.close()
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
        self._end_input()

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

    def _write(self, data: bytes) -> None:
        """Bytes for the wire, through the layers if there are any."""
        if self.layers is not None:
            self.layers.send(data)
        else:
            self.out += data

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

    # -- messages handled elsewhere (Transport.defers), one at a time -----------------------

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
        if self._deferred and self.phase is not CLOSING:
            self._start_deferred()  # (or sent() starts it once the peer has read)
        elif self._deferred:
            self._drop_deferred()
        elif self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            self.bad_input(error)  # every message before it has its reply: now the error
        elif self.phase is INPUT_ENDED:
            self._close(None)  # the peer ended its input and every message has its reply
        if not self._handling and self._release is not None:
            self._release()  # every message decoded was handled: their values leave the budget
        if not self.reading:
            self._settle()

    def _drop_deferred(self) -> None:
        """The connection is closing: messages still waiting are not handled."""
        if self._deferred:
            self.transport.waiting_changed(-len(self._deferred))
        self._deferred = None

    # -- layers ---------------------------------------------------------------------------

    def _through_layers(self, data: bytes, now: float) -> bytes:
        """Wire bytes up through the layers: what reaches the codec, b"" if nothing does
        (then what the layers did is settled here: a handshake, an error, the stream's end)."""
        stack = self.layers
        assert stack is not None
        try:
            data = stack.feed(data)
        except ProtocolError as exc:
            stack.write_own()  # e.g. the TLS alert that says why
            self.bad_input(exc)
            return b""
        if not self.per_ip_counted and not self._readdress(stack):
            return b""
        if not data:
            busy = stack.in_progress
            if busy and not self.in_message:  # a handshake: read_timeout is its deadline
                self.in_message = True
                self.message_started = now
            elif not busy and self.in_message and not self._decoder.buffered:
                self.in_message = False  # the handshake is done; no message has begun
            if stack.ended:
                self._end_of_stream()
        return data

    def _readdress(self, stack: LayerStack) -> bool:
        """Take the real peer a layer learned (a PROXY header) and count it against the
        per-IP limit; False if the connection was refused for it."""
        known, peer = stack.learned_peer(self.peer)  # (PROXY LOCAL leaves the socket's own peer)
        if not known:
            return True
        refusal = self._host.admit(peer, self.listener)
        if refusal is not None:
            self.bad_input(refusal)
            return False
        if peer is not self.peer:
            self.peer = peer
            self._peer_url = None
        self.per_ip_counted = True
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer_url} {self.phase.value}>"


_NO_DISPATCH = Dispatch()
