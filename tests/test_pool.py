"""The pool engine: blocking handlers on a bounded pool of threads, I/O on the reactor.
(The conformance suite runs on it as on every engine; these are what only it promises.)"""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import Any

import socketkit as sk
from conftest import Gate, ends_before_the_grace_deadline, wait_until

WAIT = 10.0


def test_event_handlers_run_on_the_loop_and_blocking_ones_on_the_pool() -> None:
    """DESIGN §4's one rule: an unmarked reply function runs on the loop (never two at once);
    one marked @blocking runs on a pool thread."""
    threads: dict[bytes, str] = {}

    def where(message: bytes, conn: sk.Connection) -> bytes:
        threads[message] = threading.current_thread().name
        return message

    for handler, message in ((where, b"plain"), (sk.blocking(where), b"marked")):
        with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine="pool").start() as server:
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(message) == message
    assert threads == {b"plain": threads[b"plain"], b"marked": "socketkit-pool"}
    assert threads[b"plain"] != "socketkit-pool"


def test_blocking_reply_functions_run_at_most_pool_threads_at_once() -> None:
    lock = threading.Lock()
    running, most = 0, 0
    four = threading.Barrier(4, timeout=WAIT)

    @sk.blocking
    def slow(message: bytes, conn: sk.Connection) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if message == b"first":
            four.wait()  # four handlers block at once: they run on four threads
        with lock:
            running -= 1
        return message

    limits = sk.Limits(pool_threads=4)
    with sk.Server(
        "tcp://127.0.0.1:0", slow, codec=sk.Lines(), engine="pool", limits=limits
    ).start() as server:
        clients = [sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) for _ in range(8)]
        for client in clients[:4]:
            client.send(b"first")
        for client in clients[:4]:
            assert client.recv() == b"first"
        for client in clients:
            assert client.request(b"again") == b"again"
            client.close()
    assert most == 4


def test_replies_keep_request_order_on_a_connection() -> None:
    @sk.blocking
    def jittery(message: bytes, conn: sk.Connection) -> bytes:
        time.sleep(random.random() / 500)  # a database call of varying length
        return message

    with sk.Server("tcp://127.0.0.1:0", jittery, codec=sk.Lines(), engine="pool").start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(b"".join(b"%d\n" % n for n in range(200)))
            assert [client.recv() for _ in range(200)] == [b"%d" % n for n in range(200)]


def test_a_blocking_handler_reads_with_recv_on_a_pool_thread() -> None:
    threads: set[str] = set()

    @sk.blocking
    def chat(conn: sk.Connection) -> None:
        threads.add(threading.current_thread().name)
        conn.send(b"name?")
        name = conn.recv()
        for message in conn:
            conn.send(name + b": " + message)
            if message == b"bye":
                return

    with sk.Server("tcp://127.0.0.1:0", chat, codec=sk.Lines(), engine="pool").start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.recv() == b"name?"
            client.send(b"ada")
            assert client.request(b"hi") == b"ada: hi"
            assert client.request(b"bye") == b"ada: bye"
            client.shutdown_write()
            assert list(client) == []  # the handler returned: the connection closed
    assert threads == {"socketkit-pool"}


def test_idle_connections_hold_no_thread() -> None:
    """Reactor-class cost per idle connection: 200 connections, at most pool_threads threads."""
    before = threading.active_count()
    limits = sk.Limits(pool_threads=4)

    @sk.blocking
    def greet(conn: sk.Connection) -> None:
        conn.send(b"hello")

    with sk.Server(
        "tcp://127.0.0.1:0", lambda m, c: m, codec=sk.Lines(), engine="pool", limits=limits
    ).start() as s:
        clients = [socket.create_connection(s.addresses[0][:2], timeout=WAIT) for _ in range(200)]
        wait_until(lambda: s.stats.connections_open == 200, what="200 connections")
        for client in clients[:10]:
            client.sendall(b"x\n")
            assert client.recv(10) == b"x\n"
        assert threading.active_count() <= before + 1 + 4  # the server's loop and its pool
        for client in clients:
            client.close()


def gated_pool_server(url: str, pool_queue: int) -> tuple[sk.Server, threading.Event, list[int]]:
    """A pool server with one handler thread, whose echo handler waits for the event
    returned (so messages queue behind it) and notes how many waited as each began."""
    release = threading.Event()
    waiting: list[int] = []
    limits = sk.Limits(pool_threads=1, pool_queue=pool_queue)
    server = sk.Server(url, lambda m, c: m, codec=sk.Lines(), engine="pool", limits=limits)

    def gated(message: bytes, conn: sk.Connection) -> bytes:
        waiting.append(server._engine.queued)  # type: ignore[union-attr]
        release.wait(WAIT)
        return message

    server.handler = sk.handlers.adapt(sk.blocking(gated))
    return server, release, waiting


def test_a_full_queue_stops_reading_instead_of_growing() -> None:
    """pool_queue messages wait at most, all connections together; the rest wait in the
    kernel's buffers, and every request is answered once the handlers catch up."""
    server, release, waiting = gated_pool_server("tcp://127.0.0.1:0", pool_queue=4)
    with server.start():
        clients = [sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) for _ in range(10)]
        for n, client in enumerate(clients):
            client.sock.sendall(b"".join(b"%d-%d\n" % (n, i) for i in range(5)))
        wait_until(lambda: len(waiting) >= 1, what="the first handler to run")
        engine = server._engine
        assert engine is not None
        wait_until(lambda: engine.queued >= 4, what="the queue to fill")  # type: ignore[attr-defined]
        release.set()
        for n, client in enumerate(clients):
            assert [client.recv() for _ in range(5)] == [b"%d-%d" % (n, i) for i in range(5)]
            client.close()
    assert max(waiting) <= 4 + 5  # one read's worth over the bound at most


def test_stop_lets_a_running_handler_answer() -> None:
    entered, release = threading.Event(), threading.Event()

    @sk.blocking
    def slow(message: bytes, conn: sk.Connection) -> bytes:
        entered.set()
        release.wait(WAIT)
        return message

    server = sk.Server("tcp://127.0.0.1:0", slow, codec=sk.Lines(), engine="pool").start()
    with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
        client.send(b"in flight")
        assert entered.wait(WAIT)
        stopper = threading.Thread(target=server.stop, args=(WAIT,))
        stopper.start()
        wait_until(lambda: server._engine is not None and server._engine.stopping, what="stop() to begin")
        release.set()
        assert client.recv() == b"in flight"
    stopper.join(WAIT)
    assert not server.running


def test_a_blocking_datagram_handler_runs_on_the_pool_not_on_the_loop() -> None:
    """A UDP request whose handler blocks (a database call) holds a pool thread, not the
    loop: a TCP client of the same server is answered meanwhile, and the datagram's reply
    comes once the handler returns, counted as every reply is."""
    entered, release = threading.Event(), threading.Event()

    @sk.blocking
    def slow(message: bytes, conn: sk.Connection) -> bytes:
        if message == b"block":
            entered.set()
            release.wait(WAIT)
        return message.upper()

    urls = ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
    with sk.Server(urls, slow, codec=sk.Lines(), engine="pool").start() as server:
        with sk.DatagramClient(server.urls[0], codec=sk.Lines(), timeout=WAIT) as dgram:
            dgram.send(b"block")
            assert entered.wait(WAIT)
            with sk.connect(server.urls[1], codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"meanwhile") == b"MEANWHILE"
            release.set()
            assert dgram.recv() == b"BLOCK"
        wait_until(lambda: server.stats.messages_out == 2, what="both replies counted")
        assert server.stats.messages_in == 2


def test_datagrams_past_pool_queue_wait_in_the_kernel_then_are_answered() -> None:
    """With the pool behind, the datagram socket is not read past pool_queue waiting; once
    the handler returns, reading resumes and every datagram is answered."""
    server, release, waiting = gated_pool_server("udp://127.0.0.1:0", pool_queue=2)
    with server.start(), sk.DatagramClient(server.url, codec=sk.Lines(), timeout=WAIT) as dgram:
        for i in range(8):
            dgram.send(b"%d" % i)
        engine = server._engine
        assert engine is not None
        wait_until(lambda: engine.queued >= 2, what="the queue to fill")  # type: ignore[attr-defined]
        assert engine.queued <= 2  # type: ignore[attr-defined]  # the other datagrams wait unread
        release.set()
        assert sorted(dgram.recv() for _ in range(8)) == [b"%d" % i for i in range(8)]
    assert max(waiting) <= 2


def test_messages_on_the_pool_stay_in_the_structured_codecs_budget_until_handled() -> None:
    """max_items_total bounds the decoded values held by all connections: a message whose
    handler is still running counts, so another that would pass the bound is refused;
    once the handler returns, its values are released."""
    entered, release = threading.Event(), threading.Event()

    @sk.blocking
    def slow(message: Any, conn: sk.Connection) -> Any:
        if message == ["hold"] * 5:
            entered.set()
            release.wait(WAIT)
        return {"ok": len(message)}

    codec = sk.Json(max_items_total=50)
    with sk.Server("tcp://127.0.0.1:0", slow, codec=codec, engine="pool").start() as server:
        with sk.connect(server.url, codec=sk.Json(), timeout=WAIT) as holder:
            holder.send(["hold"] * 5)  # a 36-byte frame: up to 36 values
            assert entered.wait(WAIT)
            with sk.connect(server.url, codec=sk.Json(), timeout=WAIT) as refused:
                refused.send(["x"] * 5)  # 21 more would pass 50
                assert "max_items_total" in refused.recv()["error"]
            release.set()
            assert holder.recv() == {"ok": 5}
            # The reply leaves as soon as it is sent; the values are let go once the pool
            # thread reports the handler's return, which may come a moment after it.
            wait_until(lambda: codec.items_held == 0, what="the held message's values to be released")
            with sk.connect(server.url, codec=sk.Json(), timeout=WAIT) as later:
                assert later.request(["x"] * 5) == {"ok": 5}


def test_stop_ends_a_connection_once_its_blocking_handler_has_answered() -> None:
    """The handler is running on a pool thread when the stop begins: once its reply is out
    the connection ends at once (stopping looks at each connection as it becomes idle),
    not at the grace deadline."""
    gate = Gate(b"in flight")
    server = sk.Server("tcp://127.0.0.1:0", sk.blocking(gate), codec=sk.Lines(), engine="pool").start()
    try:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"warm") == b"warm"  # (not a new connection's first-request wait)
            client.send(b"in flight")
            assert gate.entered.wait(WAIT)
            stopper = threading.Thread(target=server.stop, kwargs={"grace": WAIT * 3})
            stopper.start()
            wait_until(lambda: getattr(server._engine, "_drained", False), what="the stop to begin")
            gate.release.set()
            assert client.recv() == b"in flight"
            ends_before_the_grace_deadline(client, stopper, WAIT)  # (grace: 3 x WAIT)
    finally:
        server.stop(0)
