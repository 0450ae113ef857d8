"""The connection core without a socket: every event order the engine bugs came from."""

from __future__ import annotations

from typing import Any

import pytest

import socketkit as sk
from socketkit.errors import IdleTimeout, ReadTimeout, WriteTimeout
from socketkit.handlers import adapt
from socketkit.layers import Layer, LayerFactory
from socketkit.session import (
    CLOSED,
    CLOSING,
    FIRST_REQUEST_WAIT,
    INPUT_ENDED,
    OPEN,
    Session,
    SessionHost,
    Transport,
)
from socketkit.stats import StatsRecorder


class Host(SessionHost):
    def __init__(
        self,
        handler: object,
        codec: sk.codecs.Codec | None = None,
        limits: sk.Limits | None = None,
        layers: tuple[LayerFactory, ...] = (),
    ) -> None:
        self.codec = codec or sk.Lines()
        self.limits = limits or sk.Limits(idle_timeout=100, read_timeout=10)
        self.handler = adapt(handler)
        self.stats = StatsRecorder()
        self.layer_factories = layers
        self.stopping = False
        self.finished: list[Session] = []

    def connection_finished(self, session: Session) -> None:
        self.finished.append(session)


class Recorded(Transport):
    """A transport that only records what the session asked of the engine."""

    def __init__(self) -> None:
        self.added = 0
        self.released = 0

    def output_added(self) -> None:
        self.added += 1

    def release(self) -> None:
        self.released += 1

    def wait_for_input(self) -> None:
        assert self.session is not None
        self.session.received(b"", 0.0)  # nothing more will come

    session: Session | None = None


def close_watcher(events: list[str]) -> type[sk.Protocol]:
    """A Protocol that notes each on_close and its reason in ``events``."""

    class Watch(sk.Protocol):
        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            events.append(f"on_close {type(error).__name__}")

    return Watch


def session(
    handler: object = lambda m, c: m, kind: type[Recorded] = Recorded, **options: Any
) -> tuple[Any, Host]:
    host = Host(handler, **options)
    transport = kind()
    conn = transport.session = Session(
        host, transport, ("127.0.0.1", 5000), None, "tcp", 0.0, host.layer_factories
    )
    conn.start()
    return conn, host


def test_replies_made_during_one_read_leave_together() -> None:
    conn, _ = session()
    conn.received(b"a\nb\npart", 1.0)
    assert conn.out == b"a\nb\n"
    assert (conn.phase, conn.messages_in, conn.messages_out, conn.transport.added) == (OPEN, 2, 2, 0)
    conn.sent(4, 1.0)
    assert conn.out == b"" and conn.bytes_out == 4


def test_a_close_mid_batch_keeps_the_replies_before_it_and_answers_nothing_after() -> None:
    def handler(message: bytes, c: sk.Connection) -> bytes | None:
        if message == b"bye":
            c.send(b"goodbye")
            c.close()
            return None
        return message

    conn, _ = session(handler)
    conn.received(b"one\nbye\nthree\n", 1.0)
    assert conn.out == b"one\ngoodbye\n"
    assert conn.phase is CLOSING and conn.error is None and conn.out
    conn.sent(len(conn.out), 1.0)
    assert conn.phase is CLOSING and not conn.out  # the engine ends it now


def test_a_handler_error_keeps_earlier_replies_and_is_the_reason() -> None:
    def handler(message: bytes, c: sk.Connection) -> bytes:
        if message == b"boom":
            raise ValueError("on purpose")
        return message

    conn, host = session(handler)
    conn.received(b"ok\nboom\nlater\n", 1.0)
    assert conn.out == b"ok\nerror: internal error\n" and conn.phase is CLOSING
    assert isinstance(conn.error, ValueError)
    conn.finish()
    assert host.stats.snapshot().errors == {"handler": 1}


def test_good_messages_before_bad_input_are_answered_then_the_error_reply() -> None:
    conn, _ = session(codec=sk.Json())
    conn.received(b'{"n":1}\n{bad\n{"n":2}\n', 1.0)
    replies = conn.out.split(b"\n")
    assert replies[0] == b'{"n":1}' and b'"error"' in replies[1] and replies[2] == b""
    assert conn.phase is CLOSING and isinstance(conn.error, sk.RemoteProtocolError)
    conn.received(b'{"n":3}\n', 2.0)  # closing: input is no longer taken
    assert conn.messages_in == 1


def test_an_end_of_stream_mid_message_is_bad_input() -> None:
    conn, _ = session()
    conn.received(b"half", 1.0)
    conn.received(b"", 2.0)
    assert conn.phase is CLOSING and isinstance(conn.error, sk.RemoteProtocolError)


def test_a_clean_end_of_stream_flushes_then_closes() -> None:
    conn, _ = session()
    conn.received(b"last\n", 1.0)
    conn.received(b"", 1.0)
    assert conn.phase is CLOSING and conn.error is None and conn.out == b"last\n"


def test_stopping_serves_what_arrived_while_the_handler_was_busy() -> None:
    """The reactor bug: stop lands mid-handler; the bytes queued behind it are still answered."""
    conn, host = session()
    conn.received(b"slow\n", 1.0)
    host.stopping = True  # SIGTERM while the handler ran
    conn.received(b"second\n", 1.1)  # the engine reads on before it looks at stopping
    assert conn.out == b"slow\nsecond\n" and conn.phase is OPEN
    conn.quiet(1.2)  # nothing more waiting
    assert conn.phase is CLOSING and conn.out == b"slow\nsecond\n"


def test_stopping_leaves_a_half_received_message_to_the_grace_deadline() -> None:
    conn, host = session()
    host.stopping = True
    conn.received(b"half", 1.0)
    conn.quiet(1.0)
    assert conn.phase is OPEN
    conn.received(b" done\n", 2.0)
    conn.quiet(2.0)
    assert conn.phase is CLOSING and conn.out == b"half done\n"


def test_quiet_without_stopping_changes_nothing() -> None:
    conn, _ = session()
    conn.quiet(1.0)
    assert conn.phase is OPEN


def test_stopping_waits_for_a_new_connections_first_request_a_little() -> None:
    """Accepted at 0.0 and nothing heard yet when stop() comes: its request may be on the
    way, so quiet() keeps it open until FIRST_REQUEST_WAIT has passed, and not after."""
    conn, host = session()
    host.stopping = True
    assert conn.fresh_until() == FIRST_REQUEST_WAIT
    conn.quiet(FIRST_REQUEST_WAIT / 2)
    assert conn.phase is OPEN
    conn.received(b"late\n", FIRST_REQUEST_WAIT * 0.9)
    assert conn.out == b"late\n" and conn.fresh_until() is None
    conn.quiet(FIRST_REQUEST_WAIT * 0.95)  # answered: now it is idle like any other
    assert conn.phase is CLOSING
    silent, host = session()
    host.stopping = True
    silent.quiet(FIRST_REQUEST_WAIT)
    assert silent.phase is CLOSING


def test_deadlines_first_byte_then_read_then_idle_then_write() -> None:
    limits = sk.Limits(idle_timeout=100, read_timeout=10)
    conn, _ = session(limits=limits)
    assert conn.deadline() == 10  # nothing heard yet: read_timeout, not idle_timeout
    error = conn.expired(10)
    assert isinstance(error, ReadTimeout) and "no request" in str(error)
    conn.received(b"part", 5.0)
    assert conn.deadline() == 15  # the message started at 5
    assert isinstance(conn.expired(15), ReadTimeout)
    conn.received(b"ial\n", 6.0)
    conn.sent(len(conn.out), 7.0)
    assert conn.deadline() == 107 and conn.expired(106) is None
    assert isinstance(conn.expired(107), IdleTimeout)
    conn.received(b"unread\n", 8.0)
    assert isinstance(conn.expired(108), WriteTimeout)


def test_a_server_that_speaks_first_is_not_held_to_the_first_byte_deadline() -> None:
    class Greeter(sk.Protocol):
        def on_connect(self, conn: sk.Connection) -> None:
            conn.send(b"hello")

    conn, _ = session(Greeter)
    assert conn.out == b"hello\n"
    conn.sent(6, 1.0)
    assert conn.deadline() == 101


def test_backpressure_pauses_reading_above_high_until_below_low() -> None:
    limits = sk.Limits(write_buffer_high=250, write_buffer_low=100)
    conn, _ = session(lambda m, c: m * 99, limits=limits)
    conn.received(b"a\nb\n", 1.0)
    assert len(conn.out) == 200 and conn.reading
    conn.received(b"c\n", 1.0)
    assert not conn.reading
    conn.sent(150, 2.0)
    assert not conn.reading  # 150 left: above low
    conn.sent(60, 2.0)
    assert conn.reading


def test_a_blocking_handler_replies_after_the_peer_half_closed() -> None:
    """`echo hi | nc`: the input ended, the handler still takes what came and its replies go out."""
    conn, _ = session(sk.blocking(lambda c: None))
    conn.received(b"one\ntwo\n", 1.0)
    conn.received(b"", 1.0)
    assert conn.phase is INPUT_ENDED and not conn.closed
    assert [conn.recv(), conn.recv()] == [b"one", b"two"]
    conn.send(b"reply")
    assert conn.out == b"reply\n" and conn.transport.added == 1
    with pytest.raises(sk.ClosedError):
        conn.recv()
    conn.close()
    assert conn.phase is CLOSING


def test_a_blocking_handler_gets_the_good_messages_before_the_bad_input() -> None:
    conn, _ = session(sk.blocking(lambda c: None), codec=sk.Json())
    conn.received(b'{"n":1}\n{bad\n', 1.0)
    assert conn.recv() == {"n": 1}
    conn.send({"ok": 1})
    with pytest.raises(sk.ClosedError):
        conn.recv()
    assert conn.phase is CLOSING and b'"error"' in conn.out


class Deferring(Recorded):
    """A transport whose messages are handled elsewhere (as on the pool's threads or in
    asyncio tasks): the test plays the handler, calling :func:`finish_one` when it returns."""

    defers = True

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[Any] = []

    def run_elsewhere(self, message: Any) -> None:
        self.handed.append(message)


def finish_one(conn: Session, reply: object = None, error: Exception | None = None) -> None:
    """The handler run elsewhere returns, having sent ``reply`` (if any) or raised ``error``."""
    before = conn.messages_out
    if reply is not None:
        conn.send(reply)
    conn.handled(error, conn.messages_out != before)


def deferring(handler: object = lambda m, c: m, **options: Any) -> tuple[Any, Host]:
    return session(handler, Deferring, **options)


def test_deferred_messages_are_handled_one_at_a_time_in_order() -> None:
    conn, _ = deferring()
    conn.received(b"a\n", 1.0)
    assert conn.transport.handed == [b"a"] and conn.reading  # one in hand: reading goes on
    conn.received(b"b\nc\n", 1.0)
    assert conn.transport.handed == [b"a"] and not conn.reading  # others wait: a read's worth at most
    assert not conn.idle
    finish_one(conn, b"A")
    assert conn.transport.handed == [b"a", b"b"] and not conn.reading
    finish_one(conn, b"B")
    assert conn.transport.handed == [b"a", b"b", b"c"] and conn.reading  # none waits now
    finish_one(conn, b"C")
    assert conn.out == b"A\nB\nC\n" and not conn.idle  # (its replies are not sent yet)
    conn.sent(6, 2.0)
    assert conn.idle


def test_a_deferred_message_waits_while_the_peer_does_not_read_its_replies() -> None:
    conn, _ = deferring(limits=sk.Limits(write_buffer_high=250, write_buffer_low=100))
    conn.received(b"a\nb\n", 1.0)
    finish_one(conn, b"x" * 300)
    assert conn.transport.handed == [b"a"] and not conn.reading  # above high: b does not start
    conn.sent(100, 2.0)
    assert conn.transport.handed == [b"a"]  # 201 unsent: above low
    conn.sent(150, 2.0)
    assert conn.transport.handed == [b"a", b"b"]


def test_bad_input_behind_deferred_messages_is_answered_after_their_replies() -> None:
    conn, _ = deferring(codec=sk.Json())
    conn.received(b'{"n":1}\n{bad\n', 1.0)
    assert conn.phase is OPEN and not conn.reading
    finish_one(conn, {"ok": 1})
    assert conn.phase is CLOSING
    assert conn.out.startswith(b'{"ok":1}\n') and b'"error"' in conn.out


def test_the_peers_end_of_input_closes_after_the_deferred_replies() -> None:
    conn, _ = deferring()
    conn.received(b"a\nb\n", 1.0)
    conn.received(b"", 1.0)
    assert conn.phase is INPUT_ENDED
    finish_one(conn, b"A")
    assert conn.phase is INPUT_ENDED and conn.transport.handed == [b"a", b"b"]
    finish_one(conn, b"B")
    assert conn.phase is CLOSING and conn.out == b"A\nB\n"


def test_a_deferred_handler_error_gets_the_failure_reply_and_drops_what_waits() -> None:
    conn, host = deferring(codec=sk.HttpRequest())
    conn.received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", 1.0)
    finish_one(conn, error=RuntimeError("boom"))
    assert conn.phase is CLOSING and conn.out.startswith(b"HTTP/1.1 500")
    assert len(conn.transport.handed) == 1
    assert host.stats.snapshot().errors == {"handler": 1}


def test_on_close_waits_for_the_deferred_handler_in_hand() -> None:
    events: list[str] = []
    Watch = close_watcher(events)
    conn, _ = deferring(Watch)
    conn.received(b"a\nb\n", 1.0)
    conn.finish(sk.BrokenError("reset"))
    assert conn.phase is CLOSED and events == []  # its handler still runs
    finish_one(conn)
    assert events == ["on_close BrokenError"] and conn.transport.handed == [b"a"]


def test_stopping_waits_for_deferred_messages_before_an_idle_close() -> None:
    conn, host = deferring()
    conn.received(b"a\n", 1.0)
    host.stopping = True
    conn.quiet(5.0)
    assert conn.phase is OPEN
    finish_one(conn, b"A")
    conn.quiet(5.0)
    assert conn.phase is CLOSING and conn.out == b"A\n"


def test_the_close_sequence_runs_once_in_order() -> None:
    events: list[str] = []
    Watch = close_watcher(events)
    conn, host = session(Watch)
    conn.finish(IdleTimeout("idle"))
    conn.finish(sk.BrokenError("later"))
    assert conn.phase is CLOSED and conn.closed
    assert host.finished == [conn] and conn.transport.released == 1
    assert events == ["on_close IdleTimeout"]
    assert host.stats.snapshot().errors == {"idle_timeout": 1}
    with pytest.raises(sk.ClosedError):
        conn.send(b"too late")


def test_a_send_on_a_closing_connection_raises() -> None:
    conn, _ = session()
    conn.close()
    assert conn.phase is CLOSING and conn.transport.added == 1
    with pytest.raises(sk.ClosedError):
        conn.send(b"x")


class Handshake(Layer):
    """A test layer: says HELLO first, frames what passes with brackets, strips its own from input."""

    def __init__(self) -> None:
        self.greeted = False

    def feed(self, data: bytes) -> bytes:
        return data.replace(b"[", b"").replace(b"]", b"")

    def wrap(self, data: bytes) -> bytes:
        return b"[" + data + b"]"

    def take_output(self) -> bytes:
        if self.greeted:
            return b""
        self.greeted = True
        return b"HELLO;"


def test_layers_sit_between_the_wire_and_the_codec() -> None:
    conn, _ = session(layers=(Handshake,))
    assert conn.out == b"HELLO;"  # the layer's own output goes out at the start
    conn.received(b"[ab][c\n]", 1.0)
    assert conn.out == b"HELLO;[abc\n]"
    assert conn.bytes_in == 8 and conn.messages_in == 1


def test_the_seam_stacks_layers_nearest_the_socket_first() -> None:
    class Upper(Layer):
        def feed(self, data: bytes) -> bytes:
            return data.upper()

    conn, _ = session(layers=(Handshake, Upper))
    conn.received(b"[x\n]", 1.0)
    assert conn.out == b"HELLO;[X\n]"
