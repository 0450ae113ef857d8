"""Reactor (and asyncio engine) internals that the conformance suite cannot see from outside."""

from __future__ import annotations

import socket

import pytest

import socketkit as sk
from conftest import REACTORS, echo, wait_until

WAIT = 10.0


@pytest.mark.parametrize("engine", [*REACTORS, "asyncio", "uvloop"])
def test_churn_leaves_no_deadline_entries_or_handlers_behind(engine: str) -> None:
    """Many short connections: the lazy deadline heap is compacted (the asyncio engines keep
    one too, not a timer per connection), and the reactor forgets closed descriptors."""
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine).start() as server:
        for i in range(300):
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"%d" % i) == b"%d" % i
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"last") == b"last"
            wait_until(lambda: server.stats.connections_open == 1, what="the earlier closes")
            loop = server._engine
            assert loop is not None
            assert len(loop.deadlines.heap) <= 2 * 1 + 64  # type: ignore[attr-defined]
            if engine in REACTORS:  # the wake socket, the listener and this one connection
                assert len(loop._handlers) == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("engine", REACTORS)
def test_a_producer_that_raises_with_output_pending_closes_only_its_connection(engine: str) -> None:
    """on_drain raising while part of the output is still unsent: that connection ends, the loop goes on."""

    class Producer(sk.Protocol):
        def on_drain(self, conn: sk.Connection) -> None:
            if conn.write_buffer_size:  # called below write_buffer_low with bytes still queued
                raise RuntimeError("producer broke")
            conn.send(b"p" * 300_000)

    errors: list[BaseException | None] = []

    class Recorder(Producer):
        def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
            errors.append(error)

    with sk.Server("tcp://127.0.0.1:0", Recorder, engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as client:
            received = 0
            try:
                while data := client.recv(65536):  # until the server closes this connection
                    received += len(data)
            except ConnectionResetError:
                pass  # closed with output still unsent: the kernel resets
            assert received >= 300_000
        assert server.running
        # The peer may see the close before on_close has run: wait for it.
        wait_until(lambda: errors, what="on_close")
        assert [type(e) for e in errors] == [RuntimeError]
        assert server.stats.errors.get("handler") == 1
        with sk.connect(server.url, timeout=WAIT) as other:
            assert other.sock.recv(10)  # a new producer is served
