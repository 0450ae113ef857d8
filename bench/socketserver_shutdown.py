"""How long ``shutdown()`` takes: the standard library's socketserver against
``socketkit.compat.socketserver``, in one run.

Run from the repository root: ``python bench/socketserver_shutdown.py [--runs 30]
[--poll-interval 0.5]``. Each run starts a TCPServer on port 0 with
``serve_forever(poll_interval)`` in a thread, serves one request (so the loop is
surely waiting), then times ``shutdown()`` until it returns. The standard
library notices the request at its next poll, so it takes up to
``poll_interval``; the compat module wakes its loop through a socket.
"""

from __future__ import annotations

import argparse
import socket
import socketserver as stdlib
import statistics
import sys
import threading
import time
from types import ModuleType

from socketkit.compat import socketserver as compat


def one_shutdown(module: ModuleType, poll_interval: float) -> float:
    server = module.TCPServer(("127.0.0.1", 0), module.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    thread.start()
    with socket.create_connection(server.server_address, timeout=5) as sock:
        sock.recv(1)  # the handler returned and the server closed: the loop waits again
    started = time.perf_counter()
    server.shutdown()
    elapsed = time.perf_counter() - started
    thread.join()
    server.server_close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="shutdowns timed per module (default 30)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="serve_forever's (default 0.5)")
    options = parser.parse_args()
    if options.runs < 1 or options.poll_interval <= 0:
        parser.error("--runs must be at least 1 and --poll-interval above 0")
    print(f"| module (poll_interval {options.poll_interval:g} s) | median ms | max ms |")
    print("|---|---|---|")
    for name, module in (("socketserver", stdlib), ("socketkit.compat.socketserver", compat)):
        times = [one_shutdown(module, options.poll_interval) * 1000 for _ in range(options.runs)]
        print(f"| {name} | {statistics.median(times):.2f} | {max(times):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
