"""socketkit bench: modes, limits, open loop, processes, and its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import socketkit as sk
from conftest import echo
from socketkit.bench import BenchConfig, run_bench
from socketkit.cli import main
from socketkit.services import load_service

SK = [sys.executable, "-m", "socketkit"]


def lines_server() -> sk.Server:
    return sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start()


def hello_server() -> sk.Server:
    hello = load_service("hello")
    return sk.Server("tcp://127.0.0.1:0", hello.handler, codec=hello.codec).start()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"url": "udp://127.0.0.1:9"}, "datagram"),
        ({"url": "tcp://127.0.0.1:9", "mode": "ping"}, "unknown mode"),
        ({"url": "tcp://127.0.0.1:9", "connections": 2, "processes": 3}, "at least as many connections"),
        ({"url": "tcp://127.0.0.1:9", "duration": 0}, "duration"),
        ({"url": "tcp://127.0.0.1", "duration": 1}, "no port"),
        ({"url": "tcp://127.0.0.1:9", "rate": -1}, "rate"),
    ],
)
def test_bad_configurations_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BenchConfig(**kwargs)  # type: ignore[arg-type]


def test_request_mode_counts_every_reply() -> None:
    with lines_server() as server:
        result = run_bench(BenchConfig(server.url, connections=5, requests=500, size=100))
        stats = server.stats
    assert result.requests == 500 and result.errors == {}
    assert result.bytes_sent == result.bytes_received == 500 * 101
    assert stats.messages_in >= 500
    latency = result.latency_ms()
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"] <= latency["max"]


@pytest.mark.parametrize("codec", ["json", "length", "msgpack"])
def test_request_mode_over_other_codecs(codec: str) -> None:
    chosen = sk.codecs.codec_by_name(codec)
    with sk.Server("tcp://127.0.0.1:0", echo, codec=chosen).start() as server:
        result = run_bench(BenchConfig(server.url, connections=2, requests=100, codec=codec, size=256))
    assert result.requests == 100 and result.errors == {}


def test_http_and_connect_modes_against_hello() -> None:
    with hello_server() as server:
        keep_alive = run_bench(BenchConfig(server.url, mode="http", connections=4, requests=300))
        per_connection = run_bench(
            BenchConfig(server.url, mode="connect", codec="http", connections=2, requests=50)
        )
        total_connections = server.stats.connections_total
    assert keep_alive.requests == 300 and keep_alive.errors == {}
    assert per_connection.requests == 50 and per_connection.errors == {}
    assert total_connections >= 4 + 50


def test_ws_mode_against_our_websocket_server_and_the_websockets_librarys() -> None:
    """Each connection's upgrade is its first reply, then one echoed message per request."""
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket()).start() as server:
        result = run_bench(BenchConfig(server.url, mode="ws", connections=4, requests=400, size=200))
        messages = server.stats.messages_in
    assert result.requests == 400 and result.errors == {}
    assert messages == 400 - 4  # (four of the replies were the upgrades' 101s)

    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(handler, "127.0.0.1", 0) as peer:
        thread = threading.Thread(target=peer.serve_forever, daemon=True)
        thread.start()
        port = peer.socket.getsockname()[1]
        theirs = run_bench(BenchConfig(f"tcp://127.0.0.1:{port}", mode="ws", connections=2, requests=100))
        peer.shutdown()
    assert theirs.requests == 100 and theirs.errors == {}


def test_ws_mode_compressed_against_ours_and_the_websockets_librarys() -> None:
    """--deflate: every message compressed (the server inflates and echoes it compressed);
    a server that does not agree is an error on each connection, not a silent plain run."""
    received: list[Any] = []

    def keep(message: Any, conn: sk.Connection) -> Any:
        received.append(message)
        return message

    with sk.Server("tcp://127.0.0.1:0", keep, codec=sk.WebSocket(deflate=True)).start() as server:
        ours = run_bench(
            BenchConfig(server.url, mode="ws", connections=2, requests=200, size=300, deflate=True)
        )
    assert ours.requests == 200 and ours.errors == {}
    assert received and set(received) == {"x" * 300}  # (inflated as sent)

    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(handler, "127.0.0.1", 0) as peer:  # (compression on, as by default)
        thread = threading.Thread(target=peer.serve_forever, daemon=True)
        thread.start()
        port = peer.socket.getsockname()[1]
        theirs = run_bench(
            BenchConfig(f"tcp://127.0.0.1:{port}", mode="ws", connections=2, requests=100, deflate=True)
        )
        peer.shutdown()
    assert theirs.requests == 100 and theirs.errors == {}

    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.WebSocket()).start() as plain:
        refused = run_bench(
            BenchConfig(plain.url, mode="ws", connections=2, requests=20, duration=0.5, deflate=True)
        )
    assert refused.requests == 0 and refused.errors, refused.errors
    with pytest.raises(ValueError, match="--deflate is WebSocket's"):
        BenchConfig("tcp://127.0.0.1:1", mode="http", deflate=True)


def test_connect_mode_with_a_codec() -> None:
    with lines_server() as server:
        result = run_bench(BenchConfig(server.url, mode="connect", connections=2, requests=40))
        assert server.stats.connections_total == 40
    assert result.requests == 40


def test_processes_split_the_work_and_merge_the_histograms() -> None:
    with lines_server() as server:
        result = run_bench(BenchConfig(server.url, connections=4, requests=400, processes=2))
    assert result.requests == 400 and result.histogram.get_total_count() == 400


def test_errors_are_counted_by_kind() -> None:
    with lines_server() as server:
        url = server.url
    refused = run_bench(BenchConfig(url, connections=2, duration=0.3))
    assert refused.requests == 0 and refused.errors.get("connection refused", 0) > 0

    def close_at_once(message: bytes, conn: sk.Connection) -> None:
        conn.close()

    with sk.Server("tcp://127.0.0.1:0", close_at_once, codec=sk.Lines()).start() as closing:
        result = run_bench(BenchConfig(closing.url, connections=2, duration=0.3))
    assert result.errors.get("closed by server", 0) > 0

    with hello_server() as server:
        missing = run_bench(
            BenchConfig(server.url, mode="http", connections=1, requests=5, path="/x", timeout=2)
        )
    assert missing.requests == 5  # hello answers any path; statuses are counted when not 2xx


def test_open_loop_keeps_its_rate_and_counts_stalls_for_every_request_due_during_them() -> None:
    """Coordinated omission: a 300 ms server stall must show in every request due in it."""
    stalled = threading.Event()

    def stall_once(message: bytes, conn: sk.Connection) -> bytes:
        if not stalled.is_set():
            stalled.set()
            threading.Event().wait(0.3)  # the server misbehaving, not test synchronisation
        return message

    def run(rate: float | None) -> dict[str, float]:
        stalled.clear()
        with sk.Server("tcp://127.0.0.1:0", stall_once, codec=sk.Lines(), engine="epoll").start() as server:
            result = run_bench(BenchConfig(server.url, connections=4, duration=1.5, rate=rate))
        if rate is not None:
            assert 0.7 * rate * 1.5 <= result.requests <= 1.1 * rate * 1.5, result.requests
        return result.latency_ms()

    open_loop = run(200.0)
    closed_loop = run(None)
    assert open_loop["max"] >= 250
    # about 60 of some 300 requests were due during the stall: they dominate the tail
    assert open_loop["p90"] >= 20
    # a closed loop waits out the stall and records it about once per connection
    assert closed_loop["p90"] < open_loop["p90"]


def test_cli_bench_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "latency.png"
    with lines_server() as server:
        result = subprocess.run(
            [*SK, "bench", server.url, "-c", "3", "-n", "200", "--json", "--plot", str(plot)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"start", "intervals", "end"}
    assert report["end"]["requests"] == 200 and report["end"]["errors"] == {}
    assert report["start"]["test"]["connections"] == 3
    assert sum(i["requests"] for i in report["intervals"]) == 200
    assert set(report["end"]["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max"}
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_cli_bench_table_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with hello_server() as server:
        assert main(["bench", server.url, "--mode", "http", "-c", "2", "-d", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "requests/s" in out and "latency p99.9" in out and "errors" in out
    assert main(["bench", "tcp://127.0.0.1:1", "-d", "0.3"]) == 1
    assert "no request completed (connection refused" in capsys.readouterr().err
    assert main(["bench", "tcp://127.0.0.1:1", "--plot", "out.svg"]) == 2
    assert main(["bench", "udp://127.0.0.1:1"]) == 2
