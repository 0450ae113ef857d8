"""The comparison harness runs end to end (a smoke test on the standard-library peers;
the full suite, with uvloop, gevent, Twisted and trio, is run by hand: see README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import peer_tool

ROOT = Path(__file__).resolve().parent.parent


def test_harness_quick_run(tmp_path: Path) -> None:
    peer_tool("wrk")  # the load of case (a)
    # Every case and the median of two runs, on one engine and one peer: a smoke test of the
    # harness (the comparison itself is the full run, by hand).
    servers = "socketkit epoll,asyncio protocol"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--cases",
            "a,d",  # b runs a's path with wrk; c runs socketkit bench, tested in test_bench
            "--servers",
            servers,
            "--repeat",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "results.json").read_text())
    for case, rows in report["results"].items():
        for name, row in rows.items():
            assert "failed" not in row, (case, name, row)
            if case == "d":
                assert row["rss_kb_per_connection"] > 0
            else:
                assert row["requests"] > 0 and row["user_us"] + row["sys_us"] > 0
                low, high = row["total_us_range"]  # two runs, the median one shown
                assert row["runs"] == 2 and low <= row["user_us"] + row["sys_us"] <= high
    markdown = (tmp_path / "results.md").read_text()
    assert "| socketkit epoll |" in markdown and "(d) RSS per idle connection" in markdown
    assert "the median of 2 interleaved runs" in markdown and "total, all runs" in markdown
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def test_call_counter_counts_the_servers_threads_only_and_the_same_each_run() -> None:
    """bench/calls.py: the figure is the server's calls, the same from run to run for a
    one-request-at-a-time client (machine noise does not move it), and grows with the requests."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import calls
    finally:
        sys.path.remove(str(ROOT / "bench"))
    few, more = calls.calls_for("c", "epoll", 20), calls.calls_for("c", "epoll", 120)
    assert more > few > 0
    per_message = calls.per_request("c", "epoll", 20, 220)
    # start-up and shutdown vary by a few calls (how often the loop wakes while stopping);
    # over 200 requests that is a few hundredths of a call per request
    assert abs(per_message - calls.per_request("c", "epoll", 20, 220)) <= 0.1
    assert 5 < per_message < 200  # a handful of calls per message, not the client's work too


def test_call_counter_command_line() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "calls.py"), "--engine", "epoll", "--cases", "c"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(c) Lines echo" in result.stdout
    refused = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "calls.py"), "--cases", "z"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "unknown case(s) z" in refused.stderr
    assert "Traceback" not in refused.stderr
