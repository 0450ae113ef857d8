"""Requests/s and server CPU per request with 1, 2, ... worker processes: socketkit's
prefork hello against uvicorn --workers (a raw ASGI hello), keep-alive and a new
connection per request, with wrk as the load.

Run from the repository root: ``python bench/prefork_scaling.py [--workers 1,2]
[--duration 5] [--connections 50]``. It needs wrk; uvicorn is measured when it is
installed (``pip install -e '.[bench]'``). The load generator runs on the same
machine as the server: on a small machine the two compete for the cores, which the
table's CPU column makes visible (server CPU per request, all its processes).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def wait_ready(port: int, deadline: float = 30.0) -> None:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no server on port {port}")


def server_command(kind: str, workers: int, port: int) -> list[str]:
    if kind == "socketkit":
        return [sys.executable, "-m", "socketkit", "serve", "hello", "--engine", "epoll",
                "--workers", str(workers), "-l", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", "bench.peers.uvicorn_hello:app", "--workers", str(workers),
            "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip


def measure(kind: str, workers: int, close: bool, duration: float, connections: int) -> tuple[float, float]:
    """(requests/s, server CPU ms per 1000 requests)."""
    port = free_port()
    server = subprocess.Popen(server_command(kind, workers, port), cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        time.sleep(0.5)  # every worker up
        pids = tree(server.pid)
        before = cpu_seconds(pids)
        command = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"http://127.0.0.1:{port}/",
        ]
        if close:
            command[1:1] = ["-H", "Connection: close"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(pids) - before
    finally:
        server.terminate()
        server.wait(30)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, used * 1000 / max(1.0, rate * duration) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per case (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    options = parser.parse_args()
    try:
        counts = [int(n) for n in options.workers.split(",")]
    except ValueError:
        parser.error("--workers takes numbers separated by commas, e.g. 1,2,4")
    if shutil.which("wrk") is None:
        parser.error("wrk is needed (Debian package wrk)")
    kinds = ["socketkit"]
    try:
        import uvicorn  # noqa: F401, PLC0415
    except ImportError:
        print("uvicorn is not installed: measuring socketkit only", file=sys.stderr)
    else:
        kinds.append("uvicorn")
    print(
        f"{os.cpu_count()} cores; wrk -t1 -c{options.connections} -d{options.duration:g}s on the same machine"
    )
    print()
    print("| server | workers | connection | requests/s | server CPU ms per 1000 requests |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        for workers in counts:
            for close in (False, True):
                rate, cpu = measure(kind, workers, close, options.duration, options.connections)
                mode = "new per request" if close else "keep-alive"
                print(f"| {kind} | {workers} | {mode} | {rate:,.0f} | {cpu:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
