"""Prometheus metrics: the exposition parsed by prometheus-client's own parser, and a real
Prometheus scraping a running server and answering a query about it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import socketkit as sk
from conftest import ENGINES, echo, peer_tool, wait_until
from test_cli import SK, WAIT
from test_haproxy import free_port


def scrape(url: str, path: str = "/metrics", by_listener: bool = False) -> tuple[int, dict[str, float], str]:
    """(status, {sample name with labels: value}, content type) of one scrape: summed over
    the listeners (as ``sum without (listener)``) unless ``by_listener``."""
    try:
        with urllib.request.urlopen(url.replace("tcp://", "http://") + path, timeout=WAIT) as response:
            text = response.read().decode()
            content_type = response.headers["Content-Type"]
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, {}, ""
    samples: dict[str, float] = {}
    dropped = {"engine"} if by_listener else {"engine", "listener"}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert "listener" in sample.labels and "engine" in sample.labels, sample
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k not in dropped)
            name = f"{sample.name}{{{labels}}}" if labels else sample.name
            samples[name] = samples.get(name, 0) + sample.value
    return status, samples, content_type


@pytest.mark.parametrize("engine", ENGINES)
def test_the_exposition_counts_what_happened(engine: str) -> None:
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.Json(), engine=engine, metrics="127.0.0.1:0"
    ).start() as s:
        assert s.metrics_url is not None
        with sk.connect(s.url, codec=sk.Json(), timeout=WAIT) as client:
            for i in range(3):
                assert client.request({"n": i}) == {"n": i}
        with sk.connect(s.url, codec=sk.Json(), timeout=WAIT) as bad:
            bad.sock.sendall(b"{not json}\n")
            assert "error" in bad.recv()
        wait_until(lambda: s.stats.connections_open == 0, what="the connections to close")
        status, samples, content_type = scrape(s.metrics_url)
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert samples["socketkit_connections_total"] == 2
    assert samples["socketkit_connections_open"] == 0
    assert samples["socketkit_received_messages_total"] == 3
    assert samples["socketkit_sent_messages_total"] == 3
    assert samples["socketkit_errors_total{kind=protocol}"] == 1
    assert samples["socketkit_handler_seconds_count"] == 3
    assert samples["socketkit_handler_seconds_bucket{le=+Inf}"] == 3
    assert samples["socketkit_received_bytes_total"] > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_each_listener_has_its_own_series(engine: str, short_tmp: str) -> None:
    unix = f"unix://{short_tmp}/m.sock"
    urls = ["tcp://127.0.0.1:0", unix, "udp://127.0.0.1:0"]
    limits = sk.Limits(max_connections_per_ip=1)
    with sk.Server(
        urls, echo, codec=sk.Lines(), engine=engine, limits=limits, metrics="127.0.0.1:0"
    ).start() as s:
        assert s.metrics_url is not None
        tcp, unix, udp = s.urls
        with sk.connect(tcp, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"one") == b"one"
            if engine != "iterative":  # it serves one connection at a time: no second to refuse
                with sk.connect(tcp, codec=sk.Lines(), timeout=WAIT) as second:
                    with pytest.raises(sk.ClosedError):
                        second.recv()  # over max_connections_per_ip
        for _ in range(2):
            with sk.connect(unix, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"two") == b"two"
                client.sock.sendall(b"x" * 70000 + b"\n")  # longer than a line may be
                assert client.recv().startswith(b"error:")
        with sk.DatagramClient(udp, codec=sk.Lines(), timeout=WAIT) as datagrams:
            for _ in range(3):
                assert datagrams.request(b"three") == b"three"
        wait_until(lambda: s.stats.connections_open == 0, what="the connections to close")
        # a datagram's reply leaves from inside its handler, a moment before its time is counted
        udp_latency = s.latency_by_listener[udp]
        wait_until(lambda: sum(udp_latency.snapshot()[0]) == 3, what="the third datagram's time")
        status, samples, _ = scrape(s.metrics_url, by_listener=True)
        stats = s.stats
        assert set(stats.listeners) == {tcp, unix, udp}
        assert stats.listeners[unix].connections_total == 2 and stats.listeners[tcp].connections_total == 1
        assert sum(each.messages_in for each in stats.listeners.values()) == stats.messages_in
    assert status == 200
    assert samples[f"socketkit_connections_total{{listener={tcp}}}"] == 1
    assert samples[f"socketkit_connections_total{{listener={unix}}}"] == 2
    assert samples[f"socketkit_connections_total{{listener={udp}}}"] == 0
    assert samples[f"socketkit_received_messages_total{{listener={udp}}}"] == 3
    assert samples[f"socketkit_received_messages_total{{listener={unix}}}"] == 2
    assert samples[f"socketkit_errors_total{{kind=limit,listener={unix}}}"] == 2
    assert f"socketkit_errors_total{{kind=limit,listener={tcp}}}" not in samples
    rejected = 0 if engine == "iterative" else 1
    assert samples[f"socketkit_connections_rejected_total{{listener={tcp}}}"] == rejected
    assert samples[f"socketkit_handler_seconds_count{{listener={udp}}}"] == 3
    assert samples[f"socketkit_handler_seconds_count{{listener={unix}}}"] == 2
    assert samples[f"socketkit_handler_seconds_count{{listener={tcp}}}"] == 1


def test_only_slash_metrics_answers() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, metrics="tcp://127.0.0.1:0").start() as server:
        assert server.metrics_url is not None
        assert scrape(server.metrics_url, "/")[0] == 404
    with pytest.raises(ValueError, match="must be a stream"):
        sk.Server("tcp://127.0.0.1:0", echo, metrics="udp://127.0.0.1:0")


def test_serve_metrics_from_the_command_line() -> None:
    proc = subprocess.Popen(
        [*SK, "serve", "echo", "-l", "tcp://127.0.0.1:0", "--metrics", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving tcp://127.0.0.1:" in line and "; metrics at tcp://127.0.0.1:" in line, line
        metrics_url = line.split("metrics at ", 1)[1].split("/metrics", 1)[0]
        status, samples, _ = scrape(metrics_url)
        assert status == 200 and samples["socketkit_connections_open"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == 0


@pytest.mark.timeout(90)
def test_a_real_prometheus_scrapes_the_server(tmp_path: Path) -> None:
    prometheus = peer_tool("prometheus")
    with sk.Server(
        "tcp://127.0.0.1:0", echo, codec=sk.Lines(), metrics="tcp://127.0.0.1:0"
    ).start() as server:
        assert server.metrics_url is not None
        for _ in range(4):
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"counted") == b"counted"
        target = server.metrics_url.split("://", 1)[1]
        (tmp_path / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: socketkit\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        port = free_port()
        proc = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            query = f"http://127.0.0.1:{port}/api/v1/query?query=socketkit_connections_total"
            deadline = time.monotonic() + 60
            value = None
            while value is None:
                assert time.monotonic() < deadline, "Prometheus never reported socketkit_connections_total"
                try:
                    with urllib.request.urlopen(query, timeout=WAIT) as response:
                        result = json.load(response)["data"]["result"]
                    value = float(result[0]["value"][1]) if result else None
                except OSError:
                    value = None  # Prometheus still starting
                if value is None:
                    time.sleep(0.2)  # polling Prometheus's own API for its first scrape
            assert value == 4
            assert result[0]["metric"]["job"] == "socketkit"
        finally:
            proc.terminate()
            proc.wait(WAIT)
