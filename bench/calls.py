"""Python-level calls per request: the hot path's figure that machine noise cannot move.

Why count calls and not time: on a shared 2-core machine one run's CPU time
varies by 10% or more, but the number of Python function calls (and C
functions called from Python) that the server makes per request is the same
on every run. Every change to the session, the engines, the codecs or the
layers is checked against it; the budget is written in the README.

How: the server runs in process (``Server.start()``) with a profile hook on
every thread it starts (``threading.setprofile``), counting what cProfile
counts: each call of a Python function and each C function called from Python.
The client runs in the main thread, which the hook does not see, one request
at a time, so each request is one round trip and the server does the same work
for each. Each case runs twice, with ``SHORT`` and ``LONG``
requests, and the figure is the difference in calls divided by the difference
in requests: start-up, warm-up and shutdown cancel out.

Cases (the numbering of bench/run.py and the issues):
  (a) HTTP hello, keep-alive: one connection, a GET at a time;
  (b) HTTP hello, a new connection per request (the client closes after the reply);
  (c) Lines echo with a request/reply function: one connection, a line at a time;
  (d) WebSocket echo, the same function: one connection, a 5-byte text message at a time;
  (e) the same, compressed (permessage-deflate).

Run from the repository root, after ``make test`` made the venv:

    .venv/bin/python bench/calls.py                    # epoll, asyncio and uvloop (if installed)
    .venv/bin/python bench/calls.py --engine epoll --cases a,c
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import socketkit as sk
from socketkit.codecs.websocket_deflate import Deflater, Inflater
from socketkit.codecs.websocket_frames import TEXT, FrameReader, frame
from socketkit.codecs.websocket_handshake import client_request, new_key
from socketkit.services import load_service

SHORT = 200
LONG = 1200
WAIT = 10.0
GET = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def _read_response(sock: socket.socket, buffered: bytearray) -> None:
    """Read one HTTP response (head and Content-Length body) from ``sock``."""
    while True:
        end = buffered.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffered[:end]).lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(buffered) >= end + 4 + length:
                del buffered[: end + 4 + length]
                return
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        buffered += data


def hello_keep_alive(url: str, requests: int) -> None:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        buffered = bytearray()
        for _ in range(requests):
            sock.sendall(GET)
            _read_response(sock, buffered)


def hello_new_connection(url: str, requests: int) -> None:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    for _ in range(requests):
        with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
            sock.sendall(GET)
            _read_response(sock, bytearray())


def lines_echo(url: str, requests: int) -> None:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        for _ in range(requests):
            sock.sendall(b"hello\n")
            reply = b""
            while not reply.endswith(b"\n"):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                reply += data


def websocket_echo(url: str, requests: int, deflate: bool = False) -> None:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    offer = "permessage-deflate; client_max_window_bits" if deflate else None
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(client_request(f"{host}:{port}", "/", new_key(), extensions=offer))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        if deflate and b"permessage-deflate" not in head:
            raise ConnectionError("the server did not agree to compress")
        reader = FrameReader(
            masked=False, max_message=1 << 20, inflater=Inflater(15, True) if deflate else None
        )
        deflater = Deflater(12, True) if deflate else None
        for _ in range(requests):
            payload = deflater.compress(b"hello") if deflater is not None else b"hello"
            sock.sendall(frame(TEXT, payload, masked=True, compressed=deflate))
            while not reader.feed(sock.recv(65536)):
                pass


def _echo(message: bytes, conn: sk.Connection) -> bytes:
    return message


def _server(case: str, engine: str) -> sk.Server:
    # (stall_warning far off: on a busy machine the watch's one warning, a log line and a
    # look at the loop's frame, would land in one run's count and not the other's)
    limits = sk.Limits(max_connections_per_ip=100_000, stall_warning=3600.0)
    if case == "c":
        return sk.Server("tcp://127.0.0.1:0", _echo, codec=sk.Lines(), engine=engine, limits=limits)
    if case in "de":
        codec = sk.WebSocket(deflate=case == "e")
        return sk.Server("tcp://127.0.0.1:0", _echo, codec=codec, engine=engine, limits=limits)
    hello = load_service("hello")
    return sk.Server("tcp://127.0.0.1:0", hello.handler, codec=hello.codec, engine=engine, limits=limits)


CASES: dict[str, tuple[str, Callable[[str, int], None]]] = {
    "a": ("HTTP hello, keep-alive (per request)", hello_keep_alive),
    "b": ("HTTP hello, a new connection per request", hello_new_connection),
    "c": ("Lines echo, a reply function (per message)", lines_echo),
    "d": ("WebSocket echo, text (per message)", websocket_echo),
    "e": ("WebSocket echo, compressed (per message)", lambda url, n: websocket_echo(url, n, deflate=True)),
}


def calls_for(case: str, engine: str, requests: int) -> int:
    """Python calls the server's threads made to serve ``requests`` requests of ``case``,
    start-up and shutdown included."""
    server = _server(case, engine)
    counter = itertools.count()

    def count(frame: FrameType, event: str, arg: object) -> None:
        if event in {"call", "c_call"}:
            next(counter)

    threading.setprofile(count)  # every thread started from here on: the server's, not this one
    try:
        with server.start():
            CASES[case][1](server.url, requests)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    return next(counter)


def per_request(case: str, engine: str, short: int = SHORT, long: int = LONG) -> float:
    """Calls per request of ``case`` on ``engine``, after a warm-up run (first imports)."""
    calls_for(case, engine, 1)
    return (calls_for(case, engine, long) - calls_for(case, engine, short)) / (long - short)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", action="append", help="an engine name (repeatable)")
    parser.add_argument("--cases", default="a,b,c", help="which cases, comma-separated (a,b,c,d,e)")
    args = parser.parse_args()
    engines = args.engine or ["epoll", "asyncio"]
    if not args.engine and importlib.util.find_spec("uvloop") is not None:
        engines.append("uvloop")
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = [case for case in cases if case not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(CASES)}")
    print(f"Python calls per request (({LONG} - {SHORT} requests), the server's threads)")
    print(f"{'case':<46}" + "".join(f"{engine:>10}" for engine in engines))
    for case in cases:
        figures = [per_request(case, engine) for engine in engines]
        print(f"({case}) {CASES[case][0]:<42}" + "".join(f"{figure:>10.1f}" for figure in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
