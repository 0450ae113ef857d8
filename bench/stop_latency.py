"""How long ``Server.stop()`` takes with no client connected, per engine.

Run from the repository root: ``python bench/stop_latency.py [--runs 30]``.
Each run starts a server on tcp and udp (port 0), serves one request on each,
then times ``stop()``. The goal (DESIGN §3: "returns promptly", a wake-up
socket, never a polling interval) is within 10 ms; the suite never asserts a
time, so this is where it is measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import socketkit as sk
from socketkit.engines import ENGINES


def one_stop(engine: str) -> float:
    server = sk.Server(["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], lambda m, c: m, engine=engine).start()
    with sk.connect(server.url, timeout=5) as client:
        client.request(b"x")
    with sk.DatagramClient(server.urls[1], timeout=5) as dgram:
        dgram.request(b"d")
    started = time.perf_counter()
    server.stop()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="stops timed per engine (default 30)")
    options = parser.parse_args()
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    print("| engine | median ms | max ms |")
    print("|---|---|---|")
    for engine in ENGINES:
        times = [one_stop(engine) * 1000 for _ in range(options.runs)]
        print(f"| {engine} | {statistics.median(times):.2f} | {max(times):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
