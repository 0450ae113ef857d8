"""A line server: every line a client sends comes back in capitals.

Run: python shout_server.py [PORT]   (12345 unless told; 0: any free port)
"""

import logging
import sys

import socketkit as sk


def shout(line: bytes, conn: sk.Connection) -> bytes:
    """The handler: one decoded message in (a line, without its newline), its reply out."""
    return line.upper()


if __name__ == "__main__":  # run as a script (socketkit serve imports it, and serves shout)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = sk.Server(f"tcp://127.0.0.1:{port}", shout, codec=sk.Lines())
    server.serve_forever()  # until Ctrl-C, which lets open connections finish first
