"""TCP echo server: every line a client sends comes back. Stop it with Ctrl-C."""

import logging
import sys

import socketkit as sk

logging.basicConfig(level=logging.INFO, format="%(message)s")


def echo(message: bytes, conn: sk.Connection) -> bytes:
    return message


url = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:8888"
sk.Server(url, echo, codec=sk.Lines()).serve_forever()
