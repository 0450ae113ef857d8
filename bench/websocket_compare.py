"""WebSocket echo: socketkit's server beside the websockets library's (asyncio and sync), loaded
by ``socketkit bench --mode ws``; messages a second and the server's CPU per message.

Why this shape: as bench/run.py measures, the server is pinned to core 0 and the load to
core 1, and the figure is the server's CPU time (user + system, from /proc) over the
messages it echoed, which machine noise moves less than messages a second. The upgrade
of each connection counts as one of its messages (a few among tens of thousands).

    .venv/bin/python -m bench.websocket_compare [--duration 5] [--connections 10] [--size 64] [--deflate]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from bench.run import PEERS, PY, TICKS, Running, cpu_ticks


def socketkit_ws(engine: str, deflate: bool) -> list[str]:
    return [PY, "-m", "socketkit", "serve", "echo", "--codec", "ws", "--engine", engine, "-l",
            "tcp://127.0.0.1:{port}", "--log-level", "warning"] + (["--deflate"] if deflate else [])  # fmt: skip


def servers(deflate: bool) -> dict[str, list[str]]:
    """The servers compared; with ``deflate``, each with permessage-deflate on."""
    peer = [PY, str(PEERS / "websockets_echo.py")]
    flag = ["deflate"] if deflate else []
    return {
        "socketkit epoll": socketkit_ws("epoll", deflate),
        "socketkit uvloop": socketkit_ws("uvloop", deflate),
        "websockets asyncio": [*peer, "asyncio", "{port}", *flag],
        "websockets sync": [*peer, "sync", "{port}", *flag],
    }


def measure(name: str, duration: float, connections: int, size: int, deflate: bool = False) -> dict[str, Any]:
    with Running(name, "echo", servers(deflate)[name]) as server:
        load = [
            PY,
            "-m",
            "socketkit",
            "bench",
            f"ws://127.0.0.1:{server.port}/",
            "-c",
            str(connections),
            "-d",
            str(duration),
            "--size",
            str(size),
            "--json",
            *(["--deflate"] if deflate else []),
        ]
        user0, sys0 = cpu_ticks(server.proc.pid)
        out = subprocess.run(["taskset", "-c", "1", *load], capture_output=True, text=True, check=True).stdout
        user1, sys1 = cpu_ticks(server.proc.pid)
    end = json.loads(out)["end"]
    cpu_s = (user1 - user0 + sys1 - sys0) / TICKS
    return {
        "messages_per_s": end["requests_per_second"],
        "cpu_us_per_message": 1e6 * cpu_s / max(1, end["requests"]),
        "p50_ms": end["latency_ms"]["p50"],
        "p99_ms": end["latency_ms"]["p99"],
        "errors": end["errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--deflate", action="store_true", help="every message compressed, both ways")
    options = parser.parse_args()
    print("| server | messages/s | server CPU µs/message | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for name in servers(options.deflate):
        row = measure(name, options.duration, options.connections, options.size, options.deflate)
        print(
            f"| {name} | {row['messages_per_s']:,.0f} | {row['cpu_us_per_message']:.1f} | "
            f"{row['p50_ms']:.3f} | {row['p99_ms']:.3f} |"
            + (f" errors {row['errors']}" if row["errors"] else ""),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
