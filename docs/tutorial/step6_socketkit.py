"""Step 6: the same echo with socketkit.

Run: python step6_socketkit.py [PORT]
"""

import logging
import sys

import socketkit as sk

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345
logging.basicConfig(level=logging.INFO, format="%(message)s")  # the "serving ..." line, and more


def echo(line: bytes, conn: sk.Connection) -> bytes:  # a whole line in, its reply out
    return line


server = sk.Server(
    f"tcp://127.0.0.1:{port}",
    echo,
    codec=sk.Lines(max_length=64 * 1024),  # framing, with a bound: a longer line is refused
    engine="epoll",  # or "threads", "pool", "asyncio", ...: the same handler on each
    limits=sk.Limits(max_connections=1000, idle_timeout=30, grace=10),
)
server.serve_forever()  # Ctrl-C: stop accepting, finish what arrived, then exit
