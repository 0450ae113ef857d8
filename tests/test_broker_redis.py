"""serve broker --backend redis://: lines cross worker processes and servers through a real
redis-server (Debian package redis-server; .ci/run installs it)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

import socketkit as sk
from conftest import peer_tool, until_they_meet
from socketkit.services.redis_relay import DEFAULT_CHANNEL, parse_backend
from test_haproxy import free_port
from test_prefork import SK, Serve, serve_process

WAIT = 10.0


@contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    binary = peer_tool("redis-server")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(10) == b"+PONG\r\n":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)  # polling a process we started for its port
        yield proc
    finally:
        proc.terminate()
        proc.wait(WAIT)


def broker(tmp_path: Path, backend: str, *args: str) -> AbstractContextManager[Serve]:
    return serve_process(tmp_path, "broker", "--backend", backend, "-l", "127.0.0.1:0", *args)


def read_lines(client: sk.Client, count: int) -> set[bytes]:
    """The next ``count`` lines, past any probe that joined() sent."""
    lines: set[bytes] = set()
    while len(lines) < count:
        line = bytes(client.recv())
        if line != b"probe":
            lines.add(line)
    return lines


def joined(clients: list[sk.Client]) -> None:
    """Wait until every client is a member of its broker: a connection the kernel accepted
    may not have been taken by the broker yet (under load), and a line sent meanwhile does
    not reach it. Probes go out until each client heard one (client 0 probes the others,
    client 1 probes client 0); what the probes leave behind, read_lines() passes over."""
    deadline = time.monotonic() + WAIT
    for sender, hearers in ((clients[0], clients[1:]), (clients[1], clients[:1])):
        waiting = list(hearers)
        while waiting:
            assert time.monotonic() < deadline, "clients never joined their brokers"
            sender.send(b"probe")
            for client in list(waiting):
                client.timeout = 0.2
                try:
                    if client.recv() == b"probe":
                        waiting.remove(client)
                except sk.Timeout:
                    pass  # (not a member yet: the next probe)
                finally:
                    client.timeout = WAIT


def test_every_line_reaches_every_other_client_across_workers_and_servers(tmp_path: Path) -> None:
    port = free_port()
    backend = f"redis://127.0.0.1:{port}/0?channel=test"
    with (
        redis_server(port) as redis_proc,
        broker(tmp_path, backend, "--workers", "2") as a,
        broker(tmp_path, backend) as b,
    ):
        a.wait_for(r"redis broker: subscribed to channel 'test'", 2)  # each worker
        b.wait_for(r"redis broker: subscribed to channel 'test'")
        clients = [sk.connect(url, codec=sk.Lines(), timeout=WAIT) for url in (a.url, a.url, b.url, b.url)]
        try:
            joined(clients)
            for n, client in enumerate(clients):
                client.send(b"from %d" % n)
            for n, client in enumerate(clients):
                assert read_lines(client, 3) == {b"from %d" % m for m in range(4) if m != n}
            # Redis goes away and comes back: the brokers say so, resubscribe, and relay again.
            redis_proc.terminate()
            redis_proc.wait(WAIT)
            a.wait_for(r"redis broker: subscribing at \S+ failed")
            with redis_server(port):
                a.wait_for(r"redis broker: subscribed again to channel 'test'", 2)
                b.wait_for(r"redis broker: subscribed again to channel 'test'")
                for n, client in enumerate(clients):
                    client.send(b"again %d" % n)
                for n, client in enumerate(clients):
                    assert read_lines(client, 3) == {b"again %d" % m for m in range(4) if m != n}
        finally:
            for client in clients:
                client.close()


def test_backend_urls_are_checked() -> None:
    assert parse_backend("redis://127.0.0.1:6379/0?channel=room") == ("redis://127.0.0.1:6379/0", "room")
    assert parse_backend("redis://localhost") == ("redis://localhost", DEFAULT_CHANNEL)
    for bad in ("http://127.0.0.1:6379", "redis://", "redis://h:1/0?room=x"):
        with pytest.raises(ValueError, match="--backend"):
            parse_backend(bad)
    for args, problem in (
        (["serve", "echo", "--backend", "redis://127.0.0.1:1"], "it is for the broker"),
        (["serve", "broker", "--backend", "tcp://127.0.0.1:1"], "write redis://"),
    ):
        result = subprocess.run([*SK, *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2 and problem in result.stderr, result.stderr


def test_websocket_clients_meet_across_servers_as_text(tmp_path: Path) -> None:
    """serve broker --codec ws on two servers joined through Redis: text stays text."""
    port = free_port()
    backend = f"redis://127.0.0.1:{port}/0?channel=ws"
    with (
        redis_server(port),
        broker(tmp_path, backend, "--codec", "ws") as a,
        broker(tmp_path, backend, "--codec", "ws") as b,
    ):
        a.wait_for(r"redis broker: subscribed to channel 'ws'")
        b.wait_for(r"redis broker: subscribed to channel 'ws'")
        clients = [sk.connect(url.replace("tcp://", "ws://") + "/", timeout=WAIT) for url in (a.url, b.url)]
        try:
            until_they_meet(clients[0], clients[1], "probe ✓", "probe ✓")
            clients[1].send("from b, é")
            while (line := clients[0].recv()) == "probe ✓":
                pass
            assert line == "from b, é"  # a str: a text message, as it was sent
        finally:
            for client in clients:
                client.close()


def test_line_and_websocket_clients_meet_through_redis(tmp_path: Path) -> None:
    """A line broker and a WebSocket broker on one channel: each client gets the other's
    messages in its own form (a line as text; a text message as lines)."""
    port = free_port()
    backend = f"redis://127.0.0.1:{port}/0?channel=mixed"
    with (
        redis_server(port),
        broker(tmp_path, backend) as a,
        broker(tmp_path, backend, "--codec", "ws") as b,
    ):
        a.wait_for(r"redis broker: subscribed to channel 'mixed'")
        b.wait_for(r"redis broker: subscribed to channel 'mixed'")
        line = sk.connect(a.url, codec=sk.Lines(), timeout=WAIT)
        ws = sk.connect(b.url.replace("tcp://", "ws://") + "/", timeout=WAIT)
        try:
            until_they_meet(line, ws, b"probe", "probe")
            ws.send("from the browser\nin two lines")
            assert [line.recv(), line.recv()] == [b"from the browser", b"in two lines"]
        finally:
            line.close()
            ws.close()
