"""The conformance suite: every engine keeps the rules of DESIGN §4.

Parametrized over every engine x (tcp, unix) for streams, and every engine x
(udp, unixgram) for datagrams. No fixed ports, no sleeps to synchronise: every
wait is on an event or a socket with a deadline.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import socketkit as sk
from conftest import (
    CONCURRENT,
    ENGINES,
    REACTORS,
    THREADED,
    Gate,
    echo,
    ends_before_the_grace_deadline,
    fd_count,
    wait_until,
)
from socketkit import server as server_module
from socketkit.engines import engine_class
from socketkit.layers import Layer
from socketkit.services import load_service

WAIT = 10.0  # generous deadline for events that normally take milliseconds


def test_echo_round_trip(engine: str, stream_url: str) -> None:
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"hello") == b"hello"
            assert client.request(b"") == b""
            assert client.request(b"x" * 60000) == b"x" * 60000


@pytest.mark.parametrize("bind_host", ["127.0.0.1", "*"])
def test_connection_knows_both_ends(engine: str, bind_host: str) -> None:
    """conn.local, conn.peer and conn.peer_url, whether or not the bind address names the host."""

    def whoami(message: bytes, conn: sk.Connection) -> bytes:
        conn.state["seen"] = conn.state.get("seen", 0) + 1
        return f"{conn.local[0]} {conn.local[1]} {conn.peer[1]} {conn.peer_url} {conn.state['seen']}".encode()

    with sk.Server(f"tcp://{bind_host}:0", whoami, codec=sk.Lines(), engine=engine).start() as server:
        port = server.addresses[0][1]
        with sk.connect(f"tcp://127.0.0.1:{port}", codec=sk.Lines(), timeout=WAIT) as client:
            client_port = client.sock.getsockname()[1]
            local_host, local_port, peer_port, peer_url, seen = client.request(b"?").decode().split()
            assert client.request(b"?").decode().endswith(" 2")
    assert local_host in ("127.0.0.1", "::ffff:127.0.0.1")
    assert (int(local_port), int(peer_port), seen) == (port, client_port, "1")
    assert peer_url.startswith("tcp://") and peer_url.endswith(f":{client_port}")


def test_datagram_round_trip(engine: str, datagram_url: str) -> None:
    with sk.Server(datagram_url, echo, codec=sk.Lines(), engine=engine).start() as server:
        with sk.DatagramClient(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"ping") == b"ping"
            assert client.request(b"pong") == b"pong"
        stats = server.stats
    assert stats.messages_in == 2
    assert stats.messages_out == 2
    assert stats.connections_total == 0


def test_raw_datagram_reply_goes_to_sender(engine: str) -> None:
    with sk.Server("udp://127.0.0.1:0", lambda m, c: m.upper(), engine=engine).start() as server:
        host, port = server.addresses[0]
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with a, b:
            a.settimeout(WAIT)
            b.settimeout(WAIT)
            a.sendto(b"from a", (host, port))
            b.sendto(b"from b", (host, port))
            assert a.recv(100) == b"FROM A"
            assert b.recv(100) == b"FROM B"


def test_many_concurrent_clients(engine: str, stream_url: str) -> None:
    clients = 20 if engine == "iterative" else 200
    concurrent = engine != "iterative"
    barrier = threading.Barrier(clients)

    def session(i: int) -> list[bytes]:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT * 3) as client:
            replies = [client.request(f"{i}-first".encode())]
            if concurrent:  # every client is connected and served at the same time
                barrier.wait(WAIT * 3)
            replies += [client.request(f"{i}-{n}".encode()) for n in range(3)]
            return replies

    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start() as server:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(session, range(clients)))
        stats = server.stats
    for i, replies in enumerate(results):
        assert replies == [f"{i}-first".encode()] + [f"{i}-{n}".encode() for n in range(3)]
    assert stats.connections_total == clients
    assert stats.messages_in == clients * 4


def test_pipelined_messages_get_replies_in_order(engine: str, stream_url: str) -> None:
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"".join(b"msg %d\n" % i for i in range(100)))
            assert [client.recv() for _ in range(100)] == [b"msg %d" % i for i in range(100)]


def test_a_big_upload_then_a_half_close_is_echoed_whole_with_no_error_logged(
    engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Megabytes sent while the replies stream back, then the client's end of input: every
    byte comes back and the server logs no error (asyncio logged a traceback from
    ``_call_connection_lost`` here)."""
    size = 8 << 20
    received = bytearray()
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Raw(), engine=engine).start() as server:
        with (
            caplog.at_level(logging.WARNING),
            socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock,
        ):

            def read() -> None:
                while chunk := sock.recv(1 << 20):
                    received.extend(chunk)

            reader = threading.Thread(target=read)
            reader.start()
            chunk = b"u" * (1 << 20)
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            reader.join(WAIT)
    assert len(received) == size
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_half_closed_client_still_gets_replies(engine: str, stream_url: str) -> None:
    """`echo hi | nc host port`: the client shuts its write side and waits."""
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"one\ntwo\n")
            client.shutdown_write()
            assert list(client) == [b"one", b"two"]


class Tally(sk.Protocol):
    """Counts lines; at the peer's half-close it answers the count at once and, kept open,
    a second line later from another thread (as a relay's far side would), then closes."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep

    def on_message(self, conn: sk.Connection, message: bytes) -> None:
        conn.state["lines"] = conn.state.get("lines", 0) + 1

    def on_input_end(self, conn: sk.Connection) -> bool:
        conn.send(b"count %d" % conn.state.get("lines", 0))
        if self.keep:

            def later() -> None:
                conn.send(b"and later")
                conn.close()

            threading.Thread(target=later).start()
        return self.keep


@pytest.mark.parametrize("engine", [name for name in ENGINES if engine_class(name).keeps_half_open])
def test_on_input_end_keeps_a_half_closed_connection_open_for_what_follows(
    engine: str, stream_url: str
) -> None:
    with sk.Server(stream_url, Tally(), codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"one\ntwo\nthree\n")
            client.shutdown_write()
            assert list(client) == [b"count 3", b"and later"]
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to close")
        assert server.stats.errors == {}
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:  # nothing sent first
            client.shutdown_write()
            assert list(client) == [b"count 0", b"and later"]


@pytest.mark.parametrize("engine", [name for name in ENGINES if not engine_class(name).keeps_half_open])
def test_on_input_end_is_refused_where_a_thread_serves_the_connection(engine: str) -> None:
    with pytest.raises(
        ValueError, match=r"Tally.on_input_end may keep half-closed connections open.*loop engine"
    ):
        sk.Server("tcp://127.0.0.1:0", Tally(), codec=sk.Lines(), engine=engine)


@pytest.mark.parametrize("engine", [name for name in ENGINES if engine_class(name).keeps_half_open])
def test_on_input_end_returning_false_closes_once_answered(engine: str) -> None:
    with sk.Server("tcp://127.0.0.1:0", Tally(keep=False), codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"one\n")
            client.shutdown_write()
            assert list(client) == [b"count 1"]


@pytest.mark.parametrize("engine", ["asyncio", "uvloop"])
def test_on_input_end_comes_after_the_messages_before_it_were_handled(engine: str) -> None:
    """Awaited messages still in hand when the peer half-closes are handled first."""
    import asyncio

    class Slow(sk.Protocol):
        async def on_message(self, conn: sk.Connection, message: bytes) -> None:
            await asyncio.sleep(0.01)
            conn.send(b"handled " + message)

        def on_input_end(self, conn: sk.Connection) -> bool:
            conn.send(b"end")
            conn.close()
            return True

    with sk.Server("tcp://127.0.0.1:0", Slow(), codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"a\nb\nc\n")
            client.shutdown_write()
            assert list(client) == [b"handled a", b"handled b", b"handled c", b"end"]


@pytest.mark.parametrize("engine", [name for name in ENGINES if engine_class(name).keeps_half_open])
def test_a_stopping_server_tells_on_input_end_and_waits_for_its_close(engine: str) -> None:
    """stop() ends input for a connection between messages: on_input_end hears it and may
    finish what it has in flight (a relay's far side) within the grace period."""
    told = threading.Event()
    finish = threading.Event()
    heard = threading.Event()

    class Finisher(sk.Protocol):
        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            heard.set()

        def on_input_end(self, conn: sk.Connection) -> bool:
            told.set()

            def later() -> None:
                finish.wait(WAIT)
                conn.send(b"last words")
                conn.close()

            threading.Thread(target=later).start()
            return True

    limits = sk.Limits(grace=WAIT)
    server = sk.Server(
        "tcp://127.0.0.1:0", Finisher(), codec=sk.Lines(), engine=engine, limits=limits
    ).start()
    with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
        client.send(b"hello")  # then between messages
        assert heard.wait(WAIT)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        assert told.wait(WAIT)
        assert stopper.is_alive()  # waiting for the connection the handler keeps
        finish.set()
        assert list(client) == [b"last words"]
        stopper.join(WAIT)
        assert not stopper.is_alive()


def test_handler_exception_closes_only_that_connection(
    engine: str, stream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(message: bytes, conn: sk.Connection) -> bytes:
        if message == b"boom":
            raise ValueError("the handler failed on purpose")
        return message

    with sk.Server(stream_url, handler, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as bad:
            with caplog.at_level(logging.ERROR, logger="socketkit"):
                bad.send(b"boom")
                assert bad.recv() == b"error: internal error"  # told, without the detail
                with pytest.raises(sk.ClosedError):
                    bad.recv()
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as good:
            assert good.request(b"still serving") == b"still serving"
        assert server.stats.errors.get("handler") == 1
    records = [r for r in caplog.records if "ValueError" in r.getMessage()]
    assert records, "the handler's exception was not logged"
    assert records[0].exc_info is not None
    assert "://" in records[0].getMessage()  # the peer is named


def test_oversize_message_closes_only_that_connection(engine: str, stream_url: str) -> None:
    limits = sk.Limits(max_message_size=1024)
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as good:
            assert good.request(b"before") == b"before"
            if engine == "iterative":  # one at a time: let the first client go
                good.close()
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as big:
                big.send(b"x" * 2048)
                assert big.recv() == b"error: line longer than 1024 bytes"  # the reason, as a line
                with pytest.raises((sk.ClosedError, sk.BrokenError)):
                    big.recv()
            if engine != "iterative":
                assert good.request(b"after") == b"after"
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as later:
            assert later.request(b"later") == b"later"
        assert server.stats.errors.get("limit") == 1


@pytest.mark.parametrize("frame", [b"NaN", b"1e999999", b'"\\ud800"'])
def test_json_python_accepts_but_cannot_send_back_gets_an_error_reply(engine: str, frame: bytes) -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Json(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Json(), timeout=WAIT) as client:
            client.sock.sendall(frame + b"\n")
            assert "error" in client.recv()
            with pytest.raises(sk.ClosedError):
                client.recv()
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to close")
        assert server.stats.errors == {"protocol": 1}


def test_bad_json_gets_an_error_reply(engine: str, stream_url: str) -> None:
    with sk.Server(stream_url, echo, codec=sk.Json(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Json(), timeout=WAIT) as client:
            assert client.request({"op": "ok"}) == {"op": "ok"}
            client.sock.sendall(b"{this is not json}\n")
            reply = client.recv()
            assert "error" in reply and "invalid json" in reply["error"]
            with pytest.raises(sk.ClosedError):
                client.recv()
        assert server.stats.errors.get("protocol") == 1


@pytest.mark.waits
def test_idle_timeout_closes_an_idle_connection(engine: str, stream_url: str) -> None:
    limits = sk.Limits(idle_timeout=0.3)
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"hi") == b"hi"
            with pytest.raises(sk.ClosedError):
                client.recv()  # returns when the server closes the idle connection
        assert server.stats.errors.get("idle_timeout") == 1


@pytest.mark.waits
def test_read_timeout_closes_a_slow_drip_client(engine: str, stream_url: str) -> None:
    limits = sk.Limits(idle_timeout=30, read_timeout=0.3)
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"a line that never ends")
            with pytest.raises(sk.ClosedError):
                client.recv()
        assert server.stats.errors.get("read_timeout") == 1


def test_stop_with_no_clients_ends_the_server(engine: str, stream_url: str) -> None:
    """How fast it returns is measured by bench/stop_latency.py, not asserted here."""
    server = sk.Server([stream_url, "udp://127.0.0.1:0"], echo, engine=engine).start()
    with sk.connect(server.url, timeout=WAIT) as client:
        assert client.request(b"x") == b"x"
    with sk.DatagramClient(server.urls[1], timeout=WAIT) as dgram:
        assert dgram.request(b"d") == b"d"
    server.stop()
    assert not server.running
    assert server.stats.connections_open == 0


def test_stop_closes_idle_clients_at_once(engine: str, stream_url: str) -> None:
    server = sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start()
    client = sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)
    with client:
        assert client.request(b"x") == b"x"
        stopper = threading.Thread(target=server.stop, kwargs={"grace": WAIT * 3})
        stopper.start()
        # Closed at once: held for the grace period, this recv would time out first.
        with pytest.raises(sk.ClosedError):
            client.recv()
        stopper.join(WAIT)
        assert not stopper.is_alive(), "an idle connection held stop() back"


@pytest.mark.parametrize("engine", CONCURRENT)  # (iterative stops accepting only after it)
def test_stop_ends_a_connection_as_soon_as_its_half_sent_request_is_answered(
    engine: str, stream_url: str
) -> None:
    """A request half sent when the stop begins is finished and answered, and then the
    connection ends at once, not at the grace deadline: stopping notices it became idle."""
    server = sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start()
    try:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"first") == b"first"  # (not a new connection's first-request wait)
            client.sock.sendall(b"hal")
            stopper = threading.Thread(target=server.stop, kwargs={"grace": WAIT * 3})
            stopper.start()

            def listener_closed() -> bool:  # the stop sequence has begun on the engine's thread
                try:
                    sk.connect(server.url, timeout=WAIT).close()
                except sk.SocketkitError:
                    return True
                return False

            wait_until(listener_closed, what="the listener to close")
            client.sock.sendall(b"f\n")
            assert client.recv() == b"half"
            ends_before_the_grace_deadline(client, stopper, WAIT)  # (grace: 3 x WAIT)
    finally:
        server.stop(0)


def test_stop_lets_an_in_flight_request_finish(engine: str, stream_url: str) -> None:
    entered = threading.Event()
    stop_begun = threading.Event()

    def slow(message: bytes, conn: sk.Connection) -> bytes:
        entered.set()
        assert stop_begun.wait(WAIT)
        return b"finished " + message

    server = sk.Server(stream_url, slow, codec=sk.Lines(), engine=engine).start()
    engine_obj = server._engine
    assert engine_obj is not None
    original_stop = engine_obj.stop

    def stop_and_tell(grace: float) -> None:
        original_stop(grace)
        stop_begun.set()

    engine_obj.stop = stop_and_tell  # type: ignore[method-assign]
    with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
        client.send(b"work")
        assert entered.wait(WAIT)
        server.stop(grace=WAIT)
        assert client.recv() == b"finished work"
        with pytest.raises(sk.ClosedError):
            client.recv()
    assert not server.running


@pytest.mark.waits
def test_grace_deadline_closes_stuck_connections(
    engine: str, stream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that never finishes its message is cut off at the grace deadline, and named in the log."""
    server = sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start()
    with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
        assert client.request(b"x") == b"x"
        before = server.stats.bytes_in  # (over TLS the handshake counts too)
        client.sock.sendall(b"half a line")
        # Make sure the partial line reached the server before stopping.
        wait_until(lambda: server.stats.bytes_in > before, what="the partial line to arrive")
        with caplog.at_level(logging.WARNING, logger="socketkit"):
            server.stop(grace=0.3)  # read_timeout (30 s) would hold it far longer than the client waits
        assert any("grace period over: cutting 1 connection(s): " in r.getMessage() for r in caplog.records)
        with pytest.raises((sk.ClosedError, sk.BrokenError)):
            client.recv()
    assert not server.running


def test_no_fd_leak(engine: str, stream_url: str) -> None:
    def run_once() -> None:
        with sk.Server([stream_url, "udp://127.0.0.1:0"], echo, codec=sk.Lines(), engine=engine).start() as s:
            for _ in range(5):
                with sk.connect(s.url, codec=sk.Lines(), timeout=WAIT) as client:
                    assert client.request(b"x") == b"x"
            with sk.DatagramClient(s.urls[1], codec=sk.Lines(), timeout=WAIT) as dgram:
                assert dgram.request(b"d") == b"d"
            with sk.connect(s.url, codec=sk.Lines(), timeout=WAIT) as client:
                client.sock.sendall(b"x" * 5000 + b"\n" + b"partial")

    run_once()  # warm up lazily opened descriptors
    before = fd_count()
    run_once()
    assert fd_count() == before


def test_a_client_that_never_reads_does_not_grow_server_memory(engine: str, stream_url: str) -> None:
    high = 64 * 1024
    limits = sk.Limits(write_buffer_high=high, write_buffer_low=16 * 1024, idle_timeout=30)
    buffered: list[int] = []

    def tracking_echo(message: bytes, conn: sk.Connection) -> bytes:
        buffered.append(conn.write_buffer_size)
        return message

    with sk.Server(stream_url, tracking_echo, engine=engine, limits=limits).start() as server:
        # A send that waits this long means the buffers are full: the server stopped reading.
        with sk.connect(server.url, timeout=0.25) as client:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            chunk = b"z" * 65536
            sent = 0
            with pytest.raises(sk.Timeout):
                for _ in range(2000):  # 128 MiB: far more than any kernel buffers
                    client.send(chunk)
                    sent += len(chunk)
            stats = server.stats
        assert sent < 2000 * len(chunk), "the server kept reading from a client that never reads"
        # Output held in the server's memory never exceeds the mark by more than one read's replies.
        assert max(buffered) <= high + 65536
        assert stats.bytes_in - stats.bytes_out <= high + 2 * 65536


@pytest.mark.waits
def test_a_client_that_never_reads_is_cut_off_at_idle_timeout(engine: str, stream_url: str) -> None:
    """The server's send waits for a peer that does not read for idle_timeout, no longer."""
    limits = sk.Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024, idle_timeout=0.5)
    with sk.Server(stream_url, echo, engine=engine, limits=limits).start() as server:
        # The client's own send timeout is long: on a busy machine a short one could end the
        # sending before the server's output backs up, and the connection would only go idle.
        with sk.connect(server.url, timeout=WAIT) as client:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with pytest.raises((sk.Timeout, sk.BrokenError)):
                for _ in range(2000):
                    client.send(b"w" * 65536)
            wait_until(lambda: server.stats.errors.get("write_timeout"), what="the write timeout")
            assert server.stats.errors.get("write_timeout") == 1
            assert server.stats.connections_open == 0


def _open_sockets() -> set[str]:
    """This process's open sockets, by inode (a descriptor number can be reused)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.mark.parametrize("engine", CONCURRENT)
def test_a_member_that_never_reads_a_fan_out_is_closed_for_good(engine: str) -> None:
    """The broker: a member cut off for not reading what others send it is closed then and
    there (its socket freed), not left open behind a buffer that never drains."""
    broker = load_service("broker")
    limits = sk.Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024, idle_timeout=60)
    with sk.Server(
        "tcp://127.0.0.1:0", broker.handler, codec=broker.codec, engine=engine, limits=limits
    ).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as silent:
            silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            wait_until(lambda: server.stats.connections_open == 1, what="the silent member to join")
            with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as talker:
                wait_until(lambda: server.stats.connections_open == 2, what="the talker to join")
                sockets_before = _open_sockets()  # the two clients' and the server's two
                lines = (b"x" * 1000 + b"\n") * 20
                for _ in range(1000):  # 20 MB for the silent member, which reads none of it
                    if server.stats.errors.get("limit"):
                        break
                    talker.sendall(lines)
                wait_until(lambda: server.stats.errors.get("limit") == 1, what="the silent member cut off")
                wait_until(lambda: server.stats.connections_open == 1, what="only the talker left")
                wait_until(
                    lambda: len(sockets_before - _open_sockets()) == 1,
                    what="the silent member's socket closed",
                )


@pytest.mark.plaintext  # counts raw reply bytes
def test_replies_reach_a_client_that_keeps_sending_after_the_server_closes(
    engine: str, stream_url: str
) -> None:
    """Lingering close: the server closes (here on "quit") with input from the client, a slow
    reader, still unread, and more coming. Closing a socket with unread input makes the
    kernel reset it and drop what it had not sent yet; the server must shut its sending
    side, read and discard what comes until the client is done, then close, so every reply
    made arrives."""

    def handler(message: bytes, conn: sk.Connection) -> bytes | None:
        if message == b"quit":
            conn.send(b"bye")
            conn.close()
            return None
        return b"r" * 16383  # with its newline, 16 KiB a reply

    limits = sk.Limits(write_buffer_high=1 << 20, write_buffer_low=256 * 1024)
    with sk.Server(stream_url, handler, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        address = server.addresses[0]
        client = socket.socket(socket.AF_UNIX if isinstance(address, str) else socket.AF_INET)
        with client:
            # a reader slower than the server: set before connecting, as a small window is
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
            client.settimeout(WAIT)
            client.connect(address if isinstance(address, str) else address[:2])
            # 3.2 MB of replies, the close, and more behind it that the server will not read
            client.sendall(b"n\n" * 200 + b"quit\n" + b"late\n" * 40_000)

            def keep_sending() -> None:  # a pipelining client does not know it is over yet
                try:
                    for _ in range(2000):
                        client.sendall(b"late\n" * 100)
                    client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

            sender = threading.Thread(target=keep_sending)
            sender.start()
            received = b""
            try:
                while data := client.recv(65536):
                    received += data
            finally:
                sender.join(WAIT)
        assert received.count(b"r" * 16383 + b"\n") == 200, f"{len(received)} bytes before the end"
        assert received.endswith(b"bye\n")


@pytest.mark.parametrize("engine", THREADED)
def test_blocking_handler(engine: str, stream_url: str) -> None:
    @sk.blocking
    def handle(conn: sk.Connection) -> None:
        conn.send(b"welcome")
        for message in conn:
            conn.send(message[::-1])

    with sk.Server(stream_url, handle, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.recv() == b"welcome"
            assert client.request(b"abc") == b"cba"
            assert client.request(b"xyz") == b"zyx"


@pytest.mark.parametrize("engine", REACTORS)
def test_blocking_handler_is_refused_on_event_loops(engine: str) -> None:
    @sk.blocking
    def handle(conn: sk.Connection) -> None:
        pass

    with pytest.raises(ValueError, match="threads"):
        sk.Server("tcp://127.0.0.1:0", handle, engine=engine)


def test_blocking_handler_is_refused_for_datagrams() -> None:
    @sk.blocking
    def handle(conn: sk.Connection) -> None:
        pass

    with pytest.raises(ValueError, match="datagram"):
        sk.Server("udp://127.0.0.1:0", handle, engine="threads")


def test_auto_engine_picks_threads_for_blocking_handlers() -> None:
    @sk.blocking
    def handle(conn: sk.Connection) -> None:
        pass

    assert sk.Server("tcp://127.0.0.1:0", handle).engine_name == "threads"
    assert sk.Server("tcp://127.0.0.1:0", sk.blocking(echo)).engine_name == "pool"
    assert sk.Server("tcp://127.0.0.1:0", echo).engine_name == "reactor"


@pytest.mark.parametrize("engine", THREADED)
def test_blocking_reply_functions_run_concurrently(engine: str, stream_url: str) -> None:
    """@blocking on a request/reply function: its calls run at once on threads (the one rule
    serializes only unmarked handlers); iterative serves one connection at a time."""
    both = threading.Barrier(1 if engine == "iterative" else 2, timeout=WAIT)

    @sk.blocking
    def lookup(message: bytes, conn: sk.Connection) -> bytes:
        both.wait()  # a database call that needs the other one to be running too
        return message.upper()

    with sk.Server(stream_url, lookup, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as first:
            if engine == "iterative":
                assert first.request(b"alone") == b"ALONE"
                return
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as second:
                first.send(b"a")
                second.send(b"b")
                assert (first.recv(), second.recv()) == (b"A", b"B")


@pytest.mark.parametrize("engine", REACTORS)
def test_blocking_reply_function_is_refused_on_event_loops(engine: str) -> None:
    with pytest.raises(ValueError, match="engine='pool'"):
        sk.Server("tcp://127.0.0.1:0", sk.blocking(echo), engine=engine)


def test_protocol_handler_callbacks(engine: str, stream_url: str) -> None:
    closed: list[BaseException | None] = []
    done = threading.Event()

    class Greeter(sk.Protocol):
        def on_connect(self, conn: sk.Connection) -> None:
            conn.state["count"] = 0
            conn.send(b"hello")

        def on_message(self, conn: sk.Connection, message: Any) -> None:
            conn.state["count"] += 1
            if message == b"bye":
                conn.send(b"bye after %d" % conn.state["count"])
                conn.close()
            else:
                conn.send(message)

        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            closed.append(error)
            done.set()

    with sk.Server(stream_url, Greeter, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.recv() == b"hello"
            assert client.request(b"one") == b"one"
            assert client.request(b"bye") == b"bye after 2"
            with pytest.raises(sk.ClosedError):
                client.recv()
        assert done.wait(WAIT)
    assert closed == [None]


def test_protocol_on_close_gets_the_error(engine: str, stream_url: str) -> None:
    errors: list[BaseException | None] = []
    done = threading.Event()

    class Strict(sk.Protocol):
        def on_message(self, conn: sk.Connection, message: Any) -> None:
            conn.send(message)

        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            errors.append(error)
            done.set()

    limits = sk.Limits(max_message_size=10)
    with sk.Server(stream_url, Strict, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.send(b"far too long for the limit")
            assert done.wait(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], sk.LimitExceeded)


def _example_chat_room() -> type[sk.Protocol]:
    """examples/select_chat.py's ChatRoom, unchanged: a shared set of members and no lock."""
    path = Path(__file__).parent.parent / "examples" / "select_chat.py"
    spec = importlib.util.spec_from_file_location("select_chat", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    room: type[sk.Protocol] = module.ChatRoom
    return room


CHURN_THREADS, CHURN_ROUNDS = 8, 12  # members that join, say a line and leave, at once


@pytest.mark.parametrize("engine", CONCURRENT)  # a chat needs two clients served at once
def test_a_shared_chat_room_needs_no_lock_and_keeps_one_order(engine: str, stream_url: str) -> None:
    """DESIGN §4's one rule: event handlers are never called concurrently, on any engine, so
    the example's ChatRoom works unchanged under churn (no handler error), and every member
    sees the lines in the order the room broadcast them, none lost."""

    class Room(_example_chat_room()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.said: list[bytes] = []  # every line broadcast, in order

        def broadcast(self, sender: sk.Connection, line: bytes) -> None:
            self.said.append(line)
            super().broadcast(sender, line)

    room = Room()

    def member_comes_and_goes(number: int) -> None:
        for round_ in range(CHURN_ROUNDS):
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as member:
                assert member.recv().startswith(b"* welcome")
                member.send(b"line %d.%d" % (number, round_))

    def lines_until_end(watcher: sk.Client) -> list[bytes]:
        seen = []
        while not seen or not seen[-1].endswith(b": END"):
            seen.append(watcher.recv())
        return seen

    with sk.Server(stream_url, room, codec=sk.Lines(), engine=engine).start() as server:
        with contextlib.ExitStack() as stack:
            watchers = []
            for _ in "ab":  # one after the other: the second's joining reaches the first
                watchers.append(stack.enter_context(sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)))
                assert watchers[-1].recv().startswith(b"* welcome")
            with ThreadPoolExecutor(CHURN_THREADS) as pool:
                list(pool.map(member_comes_and_goes, range(CHURN_THREADS)))
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as last:
                assert last.recv().startswith(b"* welcome")
                last.send(b"END")
                seen = [lines_until_end(watcher) for watcher in watchers]
        errors = server.stats.errors
    said = room.said[: room.said.index(seen[0][-1]) + 1]
    assert "handler" not in errors, errors
    assert seen[0] == said[1:]  # all but its own joining, in the room's order
    assert seen[1] == said[2:]
    # every member left, the watchers and the last one too (after END, or at the stop)
    assert sum(line.endswith(b"left") for line in room.said) == CHURN_THREADS * CHURN_ROUNDS + 3


@pytest.mark.parametrize("engine", CONCURRENT)
def test_each_peer_gets_replies_and_fan_out_in_the_order_handlers_made_them(
    engine: str, stream_url: str
) -> None:
    """A reply to the sender and lines sent to the others from the same event reach each
    peer in the order the handlers sent them, whichever thread or loop ran them."""
    clients, lines = 4, 40

    class Echoes(sk.Protocol):
        def __init__(self) -> None:
            self.members: list[sk.Connection] = []
            self.sent: dict[int, list[bytes]] = {}  # what each member was sent, in order

        def on_connect(self, conn: sk.Connection) -> None:
            self.members.append(conn)

        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            for member in self.members:
                line = b"ack " + message if member is conn else message
                member.send(line)
                self.sent.setdefault(id(member), []).append(line)

        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            self.members.remove(conn)

    room = Echoes()
    with sk.Server(stream_url, room, codec=sk.Lines(), engine=engine).start() as server:
        with contextlib.ExitStack() as stack:
            peers = [
                stack.enter_context(sk.connect(server.url, codec=sk.Lines(), timeout=WAIT))
                for _ in range(clients)
            ]
            wait_until(lambda: len(room.members) == clients)

            def say(number: int) -> list[bytes]:
                peer = peers[number]
                for line in range(lines):
                    peer.send(b"%d.%d" % (number, line))
                return [peer.recv() for _ in range(clients * lines)]

            with ThreadPoolExecutor(clients) as pool:
                received = list(pool.map(say, range(clients)))
    for number, got in enumerate(received):
        assert got.count(b"ack %d.%d" % (number, lines - 1)) == 1
    orders = sorted(map(tuple, room.sent.values()))
    assert sorted(map(tuple, received)) == orders


@pytest.mark.parametrize("engine", CONCURRENT)
def test_a_close_from_another_connections_handler_is_not_taken_for_the_peers_end(
    engine: str, stream_url: str
) -> None:
    """One handler closes another connection (a kick). The server ends it as its own close:
    the peer did not end its input, so the close lingers where input waits, as every close
    the server makes (on threads the close reaches the connection's thread from another)."""
    lingers: dict[str, bool] = {}
    kicked = threading.Event()

    class Room(sk.Protocol):
        def __init__(self) -> None:
            self.members: dict[bytes, sk.Connection] = {}

        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            verb, _, name = message.partition(b" ")
            if verb == b"join":
                self.members[name] = conn
                conn.send(b"joined")
            elif verb == b"kick":
                self.members.pop(name).close()

        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            if conn not in self.members.values():
                lingers["kicked"] = conn.may_linger  # type: ignore[attr-defined]
                kicked.set()

    with sk.Server(stream_url, Room(), codec=sk.Lines(), engine=engine).start() as server:
        with (
            sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as bob,
            sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as alice,
        ):
            assert bob.request(b"join bob") == b"joined"
            assert alice.request(b"join alice") == b"joined"
            alice.send(b"kick bob")
            with pytest.raises(sk.ClosedError):
                bob.recv()
            assert kicked.wait(WAIT)
    assert lingers == {"kicked": True}


@pytest.mark.plaintext  # it counts exact wire bytes, and TLS adds its records
def test_stats_count_traffic(engine: str, stream_url: str) -> None:
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            for _ in range(3):
                assert client.request(b"12345") == b"12345"
            live = server.stats
        assert live.connections_open == 1
        assert live.bytes_in == 18 and live.messages_in == 3
    stats = server.stats
    assert stats.connections_open == 0
    assert stats.connections_total == 1
    assert stats.bytes_in == stats.bytes_out == 18
    assert stats.messages_in == stats.messages_out == 3


def test_stop_from_inside_a_handler(engine: str, stream_url: str) -> None:
    def handler(message: bytes, conn: sk.Connection) -> bytes:
        server.stop(grace=WAIT)
        return b"stopping"

    server = sk.Server(stream_url, handler, codec=sk.Lines(), engine=engine)
    with server.start(), sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
        assert client.request(b"stop please") == b"stopping"
        with pytest.raises(sk.ClosedError):
            client.recv()
    assert server._done.wait(WAIT)


@pytest.mark.parametrize("engine", CONCURRENT)  # iterative never holds two connections at once
def test_max_connections_per_ip(engine: str) -> None:
    limits = sk.Limits(max_connections_per_ip=1)
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine, limits=limits
    ).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as first:
            assert first.request(b"1") == b"1"
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as second:
                second.send(b"2")
                with pytest.raises((sk.ClosedError, sk.BrokenError)):
                    second.recv()
            assert first.request(b"still") == b"still"
        assert server.stats.connections_rejected == 1


@pytest.mark.parametrize("engine", CONCURRENT)
@pytest.mark.plaintext  # a newcomer's TLS connect waits for its handshake, which waits for the accept
def test_max_connections_makes_newcomers_wait(engine: str, stream_url: str) -> None:
    """Over max_connections a client waits in the backlog; it is served once a slot frees."""
    limits = sk.Limits(max_connections=2)
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        first = sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)
        second = sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)
        assert first.request(b"1") == b"1"
        assert second.request(b"2") == b"2"
        with sk.connect(server.url, codec=sk.Lines(), timeout=0.3) as third:
            third.send(b"3")
            with pytest.raises(sk.Timeout):
                third.recv()  # not served while two connections are open
            assert server.stats.connections_open == 2
            first.close()
            third.timeout = WAIT
            assert third.recv() == b"3"
        second.close()
        assert server.stats.connections_rejected == 0


@pytest.mark.parametrize("engine", CONCURRENT)
def test_max_connections_clients_connecting_at_once_are_all_served(engine: str) -> None:
    """As many clients as max_connections, connecting in one burst, are each accepted and
    served while every one of them stays open: none waits in the backlog for a close."""
    limits = sk.Limits(max_connections=40)
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine, limits=limits
    ).start() as server:
        host, port = server.addresses[0][:2]
        socks = [socket.socket() for _ in range(40)]
        try:
            for sock in socks:
                sock.setblocking(False)
                sock.connect_ex((host, port))  # all at once: the connects race the accepts
            for sock in socks:
                sock.setblocking(True)
                sock.settimeout(WAIT)
                sock.sendall(b"here\n")
            for sock in socks:
                assert sock.recv(100) == b"here\n"  # a client left in the backlog times out here
            assert server.stats.connections_open == 40
        finally:
            for sock in socks:
                sock.close()


def test_good_requests_before_a_bad_one_are_answered(engine: str, stream_url: str) -> None:
    """Pipelined: two good messages, then a bad one in the same read. The good ones get replies."""
    with sk.Server(stream_url, echo, codec=sk.Json(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Json(), timeout=WAIT) as client:
            client.sock.sendall(b'{"n":1}\n{"n":2}\n{not json}\n')
            assert client.recv() == {"n": 1}
            assert client.recv() == {"n": 2}
            assert "error" in client.recv()
            with pytest.raises(sk.ClosedError):
                client.recv()


# -- shutdown keeps its word, and replies are never thrown away (issue 9) --------------------------


def test_a_request_queued_behind_a_busy_handler_is_answered_after_stop(engine: str, stream_url: str) -> None:
    """Bytes that arrived before stop() get their reply, even while the handler was busy then."""
    gate = Gate(b"slow")
    server = sk.Server(stream_url, gate, codec=sk.Lines(), engine=engine).start()
    try:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.send(b"slow")
            assert gate.entered.wait(WAIT)
            client.send(b"second")  # waits in the server's socket buffer: the handler is busy
            engine_obj = server._engine
            assert engine_obj is not None
            engine_obj.stop(WAIT)  # what SIGTERM does, while the handler is still busy
            gate.release.set()
            assert client.recv() == b"slow"
            assert client.recv() == b"second"
            with pytest.raises(sk.ClosedError):
                client.recv()
    finally:
        gate.release.set()
        server.stop()
    assert server.stats.messages_out == 2


@pytest.mark.plaintext  # the clients connect while the server is kept busy, and a TLS handshake needs the server
def test_every_client_queued_at_stop_is_answered(engine: str, stream_url: str) -> None:
    """Many clients sent while the server was busy; stop() begins; every one gets its reply."""
    gate = Gate(b"block")
    count = 30
    server = sk.Server(stream_url, gate, codec=sk.Lines(), engine=engine).start()
    clients: list[sk.Client] = []
    try:
        first = sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)
        clients.append(first)
        first.send(b"block")
        assert gate.entered.wait(WAIT)
        for i in range(count):
            client = sk.connect(server.url, codec=sk.Lines(), timeout=WAIT)
            clients.append(client)
            client.send(b"request %d" % i)
        engine_obj = server._engine
        assert engine_obj is not None
        engine_obj.stop(WAIT)
        gate.release.set()
        assert first.recv() == b"block"
        for i, client in enumerate(clients[1:]):
            assert client.recv() == b"request %d" % i
    finally:
        gate.release.set()
        for client in clients:
            client.close()
        server.stop()
    assert server.stats.messages_out == count + 1


def test_replies_made_before_a_close_are_written(engine: str, stream_url: str) -> None:
    """Pipelined: a reply, a close, then more input. Both replies arrive; what came after is not answered."""

    def handler(message: bytes, conn: sk.Connection) -> bytes | None:
        if message == b"bye":
            conn.send(b"goodbye")
            conn.close()
            return None
        return message

    with sk.Server(stream_url, handler, codec=sk.Lines(), engine=engine).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"one\nbye\nthree\n")
            assert client.recv() == b"one"
            assert client.recv() == b"goodbye"
            with pytest.raises(sk.ClosedError):
                client.recv()
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to close")
        stats = server.stats
    assert (stats.messages_out, stats.errors) == (2, {})


def test_pipelined_http_with_a_closing_request_gets_its_responses(engine: str) -> None:
    """The hello service: keep-alive, then HTTP/1.0 (closes), then one more. Two responses, then EOF."""
    hello = load_service("hello")
    with sk.Server("tcp://127.0.0.1:0", hello.handler, codec=hello.codec, engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            received = b""
            while data := sock.recv(65536):
                received += data
        assert received.count(b"HTTP/1.1 200 OK") == 2
        assert received.endswith(b"Hello, world!\n")
        wait_until(lambda: server.stats.connections_open == 0, what="the connection to close")
        assert server.stats.messages_out == 2


def test_a_client_that_connected_just_before_stop_gets_its_answer(engine: str, stream_url: str) -> None:
    """Its request is on the way when stop() comes: the connection is not closed as idle
    (it has FIRST_REQUEST_WAIT from when it was accepted), over TLS too."""
    server = sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine).start()
    with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
        wait_until(lambda: server.stats.connections_open == 1, what="the connection to be accepted")
        stopper = threading.Thread(target=server.stop, args=(WAIT,))
        stopper.start()
        wait_until(lambda: not server.running or server._engine.stopping, what="stop() to begin")  # type: ignore[union-attr]
        assert client.request(b"just in time") == b"just in time"
        with pytest.raises(sk.ClosedError):  # answered, then the stopping server closed it
            client.recv()
    stopper.join(WAIT)
    assert not stopper.is_alive() and not server.running


@pytest.mark.parametrize(
    ("engine_name", "style"),
    [(name, "function") for name in ENGINES]
    + [(name, "blocking function") for name in THREADED]
    + [(name, "async function") for name in ENGINES if engine_class(name).awaits_handlers],
)
@pytest.mark.parametrize("codec", [sk.Lines(), sk.Json()], ids=["lines", "json"])
def test_a_handler_that_raises_tells_the_client_so(
    engine_name: str, codec: sk.codecs.Codec, style: str
) -> None:
    """Lines and JSON say a failure as HTTP's 500 does (``error: internal error``, ``{"error":
    "internal error"}``), naming no detail, after the replies before it; then the connection
    closes. A client no longer sees the same close as a clean one."""

    def fn(message: Any, conn: sk.Connection) -> Any:
        if message in (b"boom", {"boom": 1}):
            raise RuntimeError("secret detail")
        return message

    async def afn(message: Any, conn: sk.Connection) -> Any:
        return fn(message, conn)

    handler: Any = {"function": fn, "blocking function": sk.blocking(fn), "async function": afn}[style]
    first, boom = (b"ok", b"boom") if isinstance(codec, sk.Lines) else ({"ok": 1}, {"boom": 1})
    with sk.Server("tcp://127.0.0.1:0", handler, codec=codec, engine=engine_name).start() as server:
        with sk.connect(server.url, codec=codec, timeout=WAIT) as client:
            # In one write: the message after the failure is read with the others (and not
            # answered); one still in flight when the server closes could meet a reset.
            client.sock.sendall(codec.encode(first) + codec.encode(boom) + codec.encode(first))
            assert client.recv() == first
            reply = client.recv()
            with pytest.raises(sk.ClosedError):
                client.recv()
        wait_until(lambda: server.stats.errors.get("handler") == 1, what="the failure to be counted")
    assert reply == (b"error: internal error" if isinstance(codec, sk.Lines) else {"error": "internal error"})


@pytest.mark.parametrize("codec", [sk.Lines(), sk.Json()], ids=["lines", "json"])
def test_a_datagram_handler_that_raises_tells_the_sender_so(
    engine: str, datagram_url: str, codec: sk.codecs.Codec
) -> None:
    """As on a stream: the sender of a datagram whose handler raised gets the codec's failure
    reply (no detail), not silence it can only take for a lost datagram; the server goes on."""

    def fn(message: Any, conn: sk.Connection) -> Any:
        if message in (b"boom", {"boom": 1}):
            raise RuntimeError("secret detail")
        return message

    ok, boom = (b"ok", b"boom") if isinstance(codec, sk.Lines) else ({"ok": 1}, {"boom": 1})
    with sk.Server(datagram_url, fn, codec=codec, engine=engine).start() as server:
        with sk.DatagramClient(server.url, codec=codec, timeout=WAIT) as client:
            reply = client.request(boom)
            assert client.request(ok) == ok
        wait_until(lambda: server.stats.errors.get("handler") == 1, what="the failure to be counted")
    assert reply == (b"error: internal error" if isinstance(codec, sk.Lines) else {"error": "internal error"})


@pytest.mark.parametrize("timed", [False, True], ids=["untimed", "timed"])
def test_an_http_handler_that_raises_gets_its_request_a_500(engine: str, timed: bool) -> None:
    """Pipelined: the request before is answered, the failing one gets a 500 that names no
    detail, the one after is not served; a handler that answered before raising sends no 500."""

    def handler(request: sk.Request, conn: sk.Connection) -> sk.HttpResponse | None:
        if request.target == b"/boom":
            raise RuntimeError("secret detail")
        if request.target == b"/late":
            conn.send(sk.HttpResponse(200, b"answered\n"))
            raise RuntimeError("after the answer")
        return sk.HttpResponse(200, b"fine\n")

    metrics = "127.0.0.1:0" if timed else None
    codec = sk.HttpRequest()
    with sk.Server(
        "tcp://127.0.0.1:0", handler, codec=codec, engine=engine, metrics=metrics
    ).start() as server:
        for failing, expected in ((b"/boom", b"HTTP/1.1 500 Internal Server Error"), (b"/late", b"answered")):
            with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
                sock.sendall(
                    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET " + failing + b" HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                )
                received = b""
                while data := sock.recv(65536):
                    received += data
            assert received.startswith(b"HTTP/1.1 200 OK") and received.count(b"fine") == 1, received
            assert expected in received and b"secret" not in received, received
            assert received.count(b"HTTP/1.1 ") == 2, received  # nothing after the failure
        wait_until(lambda: server.stats.errors.get("handler") == 2, what="both failures to be counted")
        assert b"Connection: close" in codec.failure_reply()


class Relay(sk.Protocol):
    """Every line one member sends goes to every other member; each is greeted with "joined"."""

    def __init__(self) -> None:
        self.members: list[sk.Connection] = []

    def on_connect(self, conn: sk.Connection) -> None:
        self.members.append(conn)
        conn.send(b"joined")

    def on_message(self, conn: sk.Connection, message: bytes) -> None:
        for other in list(self.members):
            if other is not conn:
                other.send(message)

    def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
        self.members.remove(conn)


@pytest.mark.parametrize("engine", CONCURRENT)  # a relay needs connections served at once
def test_a_member_that_only_listens_is_not_idle_while_lines_reach_it(engine: str) -> None:
    """Output others send a connection is activity: a broker member that never speaks but
    keeps receiving is not cut at idle_timeout (on threads the fan-out went around the
    session's clock, and a listener was cut mid-stream)."""

    limits = sk.Limits(idle_timeout=0.6)
    with sk.Server("tcp://127.0.0.1:0", Relay(), codec=sk.Lines(), engine=engine, limits=limits).start() as s:
        listener = sk.connect(s.url, codec=sk.Lines(), timeout=WAIT)
        talker = sk.connect(s.url, codec=sk.Lines(), timeout=WAIT)
        try:
            assert listener.recv() == b"joined" and talker.recv() == b"joined"
            for n in range(8):  # 1.6 s of lines, each 0.2 s apart: well past idle_timeout
                talker.send(b"line %d" % n)
                assert listener.recv() == b"line %d" % n
                time.sleep(0.2)  # the pace of the talk, not a synchronisation
        finally:
            listener.close()
            talker.close()


@pytest.mark.parametrize("engine", CONCURRENT)  # a relay needs connections served at once
def test_a_burst_fanned_out_to_readers_that_read_reaches_them(engine: str) -> None:
    """One burst from a sender, relayed to readers that keep reading: judged by draining, not by size."""

    limits = sk.Limits(write_buffer_high=16 * 1024, write_buffer_low=4 * 1024)
    lines = [b"%02d" % i + b"x" * 998 for i in range(33)]  # 33 KB in one burst: twice the mark
    with sk.Server("tcp://127.0.0.1:0", Relay(), codec=sk.Lines(), engine=engine, limits=limits).start() as s:
        readers = [sk.connect(s.url, codec=sk.Lines(), timeout=WAIT) for _ in range(3)]
        try:
            for reader in readers:
                assert reader.recv() == b"joined"
            with sk.connect(s.url, codec=sk.Lines(), timeout=WAIT) as sender:
                assert sender.recv() == b"joined"
                sender.sock.sendall(b"".join(line + b"\n" for line in lines))
                for reader in readers:
                    assert [reader.recv() for _ in lines] == lines
        finally:
            for reader in readers:
                reader.close()
        assert s.stats.errors.get("limit") is None


@pytest.mark.parametrize("kind", ["json", "msgpack"])
def test_deep_nesting_is_refused_the_same_way_on_every_engine(
    engine: str, stream_url: str, kind: str
) -> None:
    """Past MAX_DEPTH is refused whatever the stack of the thread decoding (msgspec's own
    limit, like Python's parser, depends on it)."""
    codec = sk.Json() if kind == "json" else sk.Msgpack()
    with sk.Server(stream_url, echo, codec=codec, engine=engine).start() as server:
        with sk.connect(server.url, codec=codec, timeout=WAIT) as client:
            nested: object = 1
            for _ in range(200):
                nested = [nested]
            assert client.request(nested) == nested  # MAX_DEPTH levels: decoded
            if kind == "json":
                client.sock.sendall(b"[" * 980 + b"]" * 980 + b"\n")
            else:
                client.sock.sendall(sk.LengthPrefixed().encode(b"\x91" * 600 + b"\x01"))
            reply = client.recv()
            assert "nested deeper than 200" in reply["error"]
            with pytest.raises(sk.ClosedError):
                client.recv()
        with sk.connect(server.url, codec=codec, timeout=WAIT) as other:
            assert other.request({"still": "serving"}) == {"still": "serving"}
        assert server.stats.errors == {"protocol": 1}


@pytest.mark.plaintext  # a TLS client's connect sends its ClientHello: it cannot send nothing
@pytest.mark.waits
def test_a_connection_that_never_sends_a_byte_gets_read_timeout(engine: str, stream_url: str) -> None:
    """Silent connections are cut at read_timeout, not held for idle_timeout (a cheap denial of service)."""
    limits = sk.Limits(idle_timeout=60, read_timeout=0.3)
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            with pytest.raises(sk.ClosedError):
                client.recv()
        assert server.stats.errors.get("read_timeout") == 1


class _Xor(Layer):
    """A test layer: every byte XORed with a key, both ways."""

    def __init__(self, key: int = 0x5A) -> None:
        self.table = bytes(b ^ key for b in range(256))

    def feed(self, data: bytes) -> bytes:
        return data.translate(self.table)

    def wrap(self, data: bytes) -> bytes:
        return data.translate(self.table)


def test_a_byte_layer_sits_between_the_socket_and_the_codec(engine: str, stream_url: str) -> None:
    xor = _Xor()
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, layers=[_Xor]).start() as server:
        with sk.connect(server.url, timeout=WAIT) as client:
            client.sock.sendall(xor.wrap(b"hello\nworld\n"))
            received = b""
            while received.count(xor.wrap(b"\n")) < 2:
                received += client.sock.recv(100)
            assert xor.feed(received) == b"hello\nworld\n"
        assert server.stats.messages_in == 2


class _Faulty(Layer):
    """A test layer with a defect: ``boom`` in its input raises what no layer should."""

    def feed(self, data: bytes) -> bytes:
        if b"boom" in data:
            raise RuntimeError("a defect in a layer")
        return data


def test_an_error_inside_a_connection_ends_that_connection_only(
    engine: str, stream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing raised inside one connection's session reaches the engine: that connection
    closes, the error is logged with its peer and counted, and everyone else is served."""
    caplog.set_level(logging.WARNING, logger="socketkit")
    with sk.Server(stream_url, echo, codec=sk.Lines(), engine=engine, layers=[_Faulty]).start() as server:
        with contextlib.ExitStack() as stack:
            bystander = None
            if engine in CONCURRENT:  # (iterative serves one connection at a time)
                bystander = stack.enter_context(sk.connect(server.url, codec=sk.Lines(), timeout=WAIT))
                assert bystander.request(b"before") == b"before"
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as victim:
                victim.send(b"boom")
                with pytest.raises((sk.ClosedError, sk.BrokenError)):
                    victim.recv()
            wait_until(lambda: server.stats.errors.get("internal") == 1, what="the error counted")
            assert server.running
            if bystander is not None:
                assert bystander.request(b"after") == b"after"
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as newcomer:
            assert newcomer.request(b"new") == b"new"
    assert any(
        "a defect in a layer" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_stop_returns_at_the_grace_deadline_while_a_handler_is_stuck(
    engine: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler stuck in its own code cannot be killed: stop() still returns, cuts the rest, and says so."""
    monkeypatch.setattr(server_module, "_STOP_MARGIN", 0.1)  # how long stop() waits past the grace
    gate = Gate(b"hang")
    server = sk.Server("tcp://127.0.0.1:0", gate, codec=sk.Lines(), engine=engine).start()
    try:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.send(b"hang")
            assert gate.entered.wait(WAIT)
            with caplog.at_level(logging.WARNING, logger="socketkit"):
                server.stop(grace=0.1)
            assert not gate.returned.is_set()  # stop() did not wait for the handler
            assert any("still running" in r.getMessage() for r in caplog.records)
    finally:
        gate.release.set()
    assert gate.returned.wait(WAIT)
    wait_until(lambda: not server.running, what="the engine to finish once the handler returned")


STUCK_SCRIPT = """
import logging, sys, time
import socketkit as sk
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
def stuck(message, conn):
    if message == b"hang":
        print("entered", flush=True)
        time.sleep(60)  # far past every deadline of the test: only a cut ends the process sooner
    return message
limits = sk.Limits(grace=0.05)
handler = sk.blocking(stuck) if sys.argv[2:] == ["blocking"] else stuck
sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=sys.argv[1], limits=limits).serve_forever()
"""


@pytest.mark.parametrize(
    "engine", [*ENGINES, "pool blocking", "threads blocking"]
)  # (a @blocking handler runs on a thread of its own)
def test_grace_is_a_deadline_for_the_process_even_while_a_handler_blocks_the_loop(engine: str) -> None:
    """SIGTERM with a stuck handler: at the grace deadline the process ends with status 1 and
    says which handler was running and what it cut; it does not wait for the handler. On the
    serving thread (a reply function on the loop engines, any handler on iterative) it says
    where the handler is; on threads the engine cuts its connection and serving ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_SCRIPT, *engine.split()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        line = proc.stderr.readline()
        assert "serving tcp://" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        host, port = line.split("serving tcp://", 1)[1].split(" ", 1)[0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=WAIT) as client:
            client.sendall(b"hang\n")
            assert proc.stdout.readline() == "entered\n"
            proc.send_signal(signal.SIGTERM)
            _, errors = proc.communicate(timeout=WAIT)  # the handler would sleep for 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, errors
    if engine in ("threads", "threads blocking", "pool blocking"):
        assert "thread(s) of handler stuck still running" in errors, errors
        assert "cutting 1 connection(s): tcp://127.0.0.1:" in errors, errors
    else:
        assert "grace period over: handler stuck still running at <string>:" in errors, errors
        assert " in stuck; cutting 1 connection(s): tcp://127.0.0.1:" in errors, errors


EMFILE_SCRIPT = """
import logging, os, resource, sys, time
import socketkit as sk
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
server = sk.Server("tcp://127.0.0.1:0", lambda m, c: m, codec=sk.Lines(), engine=sys.argv[1]).start()
# One connection first, so descriptors an engine opens with its first one are open before the
# count (libuv keeps one, /dev/null, in reserve from its first stream on: uvloop's).
with sk.connect(server.url, codec=sk.Lines(), timeout=10) as warm:
    assert warm.request(b"warm") == b"warm"
deadline = time.monotonic() + 10
while server.stats.connections_open and time.monotonic() < deadline:
    time.sleep(0.01)

def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True

limit = 0  # the lowest descriptor limit that leaves exactly two free: two connections, then EMFILE
while limit - sum(is_open(fd) for fd in range(limit)) < 2:
    limit += 1
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print(server.url, flush=True)
sys.stdin.read()  # until the test is done
server.stop()
print("errors", server.stats.errors, flush=True)
"""


@pytest.mark.parametrize("engine", CONCURRENT)  # iterative never holds two connections
def test_running_out_of_descriptors_pauses_accepting_then_recovers(engine: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", EMFILE_SCRIPT, engine],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
        url = proc.stdout.readline().strip()
        first = sk.connect(url, codec=sk.Lines(), timeout=WAIT)
        second = sk.connect(url, codec=sk.Lines(), timeout=WAIT)
        assert first.request(b"1") == b"1" and second.request(b"2") == b"2"
        with sk.connect(url, codec=sk.Lines(), timeout=WAIT) as third:  # waits in the backlog
            third.send(b"3")
            for line in proc.stderr:
                if "pausing accepts" in line:
                    break
            first.close()  # a descriptor frees: accepting resumes after the pause
            assert third.recv() == b"3"
        assert second.request(b"still") == b"still"
        second.close()
        out, err = proc.communicate("", timeout=WAIT)
    finally:
        proc.kill()
    assert "Too many open files" in err or "pausing accepts" in err
    assert "'accept'" in out  # counted


def test_expect_100_continue_gets_continue_then_the_response(engine: str) -> None:
    """curl's large uploads: the client waits for 100 Continue before it sends the body."""

    def upload(message: Any, conn: sk.Connection) -> sk.HttpResponse:
        return sk.HttpResponse(200, b"got %d bytes" % len(message.body))

    with sk.Server("tcp://127.0.0.1:0", upload, codec=sk.HttpRequest(), engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += sock.recv(1)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"hello")
            reply = b""
            while not reply.endswith(b"got 5 bytes"):
                data = sock.recv(65536)
                assert data, reply
                reply += data
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("engine", CONCURRENT)  # the clients stay connected at once
def test_values_a_handled_message_held_are_released_for_other_connections(engine: str) -> None:
    """The codec-wide bound on decoded values counts a message only while it is being handled."""
    codec = sk.Json(max_items=20, max_items_total=30)
    with sk.Server("tcp://127.0.0.1:0", echo, codec=codec, engine=engine).start() as server:
        clients = []
        try:
            for _ in range(3):  # each stays connected and idle after its reply
                clients.append(sk.connect(server.url, codec=sk.Json(), timeout=WAIT))
                assert clients[-1].request(list(range(6))) == list(range(6))  # 14 bytes: 14 values at most
        finally:
            for client in clients:
                client.close()
        assert server.stats.errors == {}


def test_a_tls_client_hello_to_http_gets_400_at_once(engine: str) -> None:
    """Bytes that can never begin a request are refused when they arrive, not at read_timeout."""
    hello = load_service("hello")
    limits = sk.Limits(read_timeout=60)  # far beyond the client's wait: only an early answer passes
    with sk.Server(
        "tcp://127.0.0.1:0", hello.handler, codec=hello.codec, engine=engine, limits=limits
    ).start() as s:
        with socket.create_connection(s.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32))
            received = b""
            while data := sock.recv(65536):
                received += data
        assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert received.endswith(b"400 Bad Request: malformed request line\n")


#: engines where event handlers take turns on one loop or one lock (iterative serves one
#: connection at a time: a handler that waits there holds nobody else's turn)
TURN_TAKING = [name for name in ENGINES if name != "iterative"]


@pytest.mark.parametrize("engine", TURN_TAKING)
def test_a_handler_that_holds_the_loop_is_named_once_with_the_fix(
    engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing silent: an event handler that waits on a loop engine makes everyone wait, and
    the log says which handler, where it is, and what to do instead; once per server."""

    def slow_lookup(message: bytes, conn: sk.Connection) -> bytes:
        if message == b"slow":
            time.sleep(0.6)  # a blocking call in an event handler: what the watch is for
        return message

    with caplog.at_level(logging.WARNING, logger="socketkit"):
        limits = sk.Limits(stall_warning=0.2)
        with sk.Server(
            "tcp://127.0.0.1:0", slow_lookup, codec=sk.Lines(), engine=engine, limits=limits
        ).start() as server:
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"slow") == b"slow"
                assert client.request(b"slow") == b"slow"
                assert client.request(b"quick") == b"quick"
    held = [r.getMessage() for r in caplog.records if "has held the" in r.getMessage()]
    assert len(held) == 1, held
    what = "engine's handler lock" if engine == "threads" else "loop"
    assert f"handler {slow_lookup.__qualname__} has held the {engine} {what}" in held[0]
    assert "@socketkit.blocking" in held[0]
    if engine != "threads":  # (a lock's holder is any connection's thread)
        assert "in slow_lookup)" in held[0]


def test_a_quick_handler_is_never_named(caplog: pytest.LogCaptureFixture) -> None:
    """At the default stall_warning (0.1 s), steady quick traffic is never named."""
    with caplog.at_level(logging.WARNING, logger="socketkit"):
        with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines(), engine="epoll").start() as server:
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                deadline = time.monotonic() + 0.6  # six heartbeats' time of steady traffic
                while time.monotonic() < deadline:
                    assert client.request(b"x") == b"x"
    assert not [r for r in caplog.records if "has held the" in r.getMessage()]


def test_a_handler_that_holds_the_loop_a_little_is_named_at_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The newcomer's case: a handler that sleeps 0.2 s a message on the default engine
    serialises every client (200 of them take 40 s), and the default warning names it."""

    def lookup(message: bytes, conn: sk.Connection) -> bytes:
        time.sleep(0.3)  # a database call, say: it waits, and the loop waits with it
        return message

    with caplog.at_level(logging.WARNING, logger="socketkit"):
        with sk.Server("tcp://127.0.0.1:0", lookup, codec=sk.Lines()).start() as server:
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"who") == b"who"
    held = [r.getMessage() for r in caplog.records if "has held the" in r.getMessage()]
    assert len(held) == 1 and "lookup" in held[0], held


@pytest.mark.waits
def test_a_connection_keeps_the_timeouts_its_handler_gives_it(engine: str, stream_url: str) -> None:
    """``conn.set_limits``: a handler gives one connection its own idle_timeout (a login that
    waits briefly), where the server's is long; the others keep the server's."""

    class Brief(sk.Protocol):
        def on_connect(self, conn: sk.Connection) -> None:
            conn.set_limits(idle_timeout=0.4)

        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            if message == b"stay":
                conn.set_limits(idle_timeout=60)  # (logged in: the server's patience again)
            conn.send(message)

    limits = sk.Limits(idle_timeout=60)
    with sk.Server(stream_url, Brief(), codec=sk.Lines(), engine=engine, limits=limits).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as brief:
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as staying:
                assert staying.request(b"stay") == b"stay"
                started = time.monotonic()
                with pytest.raises(sk.ClosedError):
                    brief.recv()  # closed for idling 0.4 s, not 60
                assert time.monotonic() - started < WAIT / 2
                assert staying.request(b"still here") == b"still here"
        wait_until(lambda: server.stats.errors.get("idle_timeout") == 1, what="the idle close to be counted")


def test_set_limits_refuses_what_limits_refuse_and_datagrams() -> None:
    said: list[str] = []

    def handler(message: bytes, conn: sk.Connection) -> bytes:
        for bad in (0, -1, float("inf")):
            try:
                conn.set_limits(read_timeout=bad)
            except (ValueError, TypeError) as exc:
                said.append(f"{type(exc).__name__}: {exc}")
        return message

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines()).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"x") == b"x"
    assert len(said) == 3 and all(s.startswith("ValueError: Limits.read_timeout") for s in said), said
    said.clear()
    with sk.Server("udp://127.0.0.1:0", handler, codec=sk.Lines()).start() as server:
        with sk.DatagramClient(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"x") == b"x"
    assert said and all("a datagram has no connection to time out" in s for s in said), said


@pytest.mark.parametrize("codec", [sk.Lines(), sk.Json()], ids=["lines", "json"])
def test_a_client_still_sending_an_oversize_message_hears_why_it_was_refused(
    engine: str, codec: sk.codecs.Codec
) -> None:
    """The server answers the oversize message with its error reply and closes, lingering; the
    client, cut off mid-send, reports that reply's reason instead of a bare broken pipe."""
    big: Any = b"x" * (32 << 20) if isinstance(codec, sk.Lines) else {"blob": "x" * (32 << 20)}
    with sk.Server("tcp://127.0.0.1:0", echo, codec=codec, engine=engine).start() as server:
        with sk.connect(server.url, codec=codec, timeout=WAIT) as client:
            with pytest.raises(
                sk.BrokenError, match=r"refused the message and closed: line longer than 65536"
            ):
                client.send(big)  # (32 MiB: more than the kernel's buffers and the linger take)
