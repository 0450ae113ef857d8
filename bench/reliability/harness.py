"""What every reliability case needs: a server in its own process, and what to read of it.

Why a process of its own: a case judges the server by what an operator would
see of it (its resident memory, its open descriptors, whether it is alive),
and by what its clients get. The attack runs in this process, the server in a
child started from a small launcher with the Python API, on a listening socket
this process bound (port 0, loopback only) and handed down, so the case knows
its address before the child is up and no port is ever fixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..run import rss_kb, stop_process

ROOT = Path(__file__).resolve().parent.parent.parent

#: The child: builds a Server from the JSON config in argv[1] and serves until signalled.
LAUNCHER = r"""
import json, resource, socket, sys
import socketkit as sk
from socketkit.services import load_service

config = json.loads(sys.argv[1])
if config.get("nofile"):
    resource.setrlimit(resource.RLIMIT_NOFILE, (config["nofile"], config["nofile"]))
kind = socket.SOCK_DGRAM if config.get("datagram") else socket.SOCK_STREAM
listening = socket.socket(socket.AF_INET, kind, fileno=config["fd"])
codec = config.get("codec")
name = config["handler"]
if name == "echo":
    handler = lambda message, conn: message
    codec = codec or "lines"
else:
    service = load_service(name)
    handler = service.handler
    codec = codec or service.codec
    if config.get("backend"):  # the broker's relay, connected before serving
        service.backend(config["backend"])()
if isinstance(codec, str):
    from socketkit.codecs import codec_by_name
    codec = codec_by_name(codec)
layers = []
if config.get("tls"):  # (a socket handed down has no tls:// URL: the layer is given itself)
    import functools
    from socketkit.layers.tls import TlsLayer
    from socketkit.tls import server_context
    layers.append(functools.partial(TlsLayer, server_context(config["tls"])))
if config.get("proxy_trusted"):  # a PROXY header first, believed only from these networks
    import functools
    from socketkit.layers.proxy import ProxyProtocolLayer, trusted_networks
    trusted = trusted_networks(config["proxy_trusted"])
    layers.insert(0, functools.partial(ProxyProtocolLayer, ("v1", "v2"), trusted))
server = sk.Server(
    listening,
    handler,
    codec=codec,
    engine=config.get("engine", "epoll"),
    limits=sk.Limits(**config.get("limits", {})),
    layers=layers,
    workers=config.get("workers"),
)
print("ready", flush=True)
server.serve_forever()
"""


#: The child for the socketserver drop-in: a bounded ThreadingTCPServer echoing lines, on
#: the socket handed down.
COMPAT_LAUNCHER = r"""
import json, socket, sys
from socketkit.compat import socketserver

config = json.loads(sys.argv[1])


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        while line := self.rfile.readline():
            self.wfile.write(line)


class Server(socketserver.ThreadingTCPServer):
    max_threads = config["max_threads"]
    shed_after = config.get("shed_after", socketserver.ThreadingTCPServer.shed_after)
    daemon_threads = True


server = Server(("127.0.0.1", 0), Echo, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, fileno=config["fd"])
server.server_address = server.socket.getsockname()
print("ready", flush=True)
server.serve_forever()
"""


@dataclasses.dataclass
class Result:
    """One case's outcome: what it did, the figure it measured, and whether that passes."""

    case: str
    size: str  # what was thrown at the server ("200 connections, 1 byte / 0.5 s")
    figure: str  # what it measured ("all cut at 2.1 s; a normal client's p99 4.2 ms")
    passed: bool
    criterion: str  # what passing means
    seconds: float = 0.0
    skipped: str = ""  # why the case could not run here (a peer program missing), if it could not


class ServerProcess:
    """A socketkit server in a child process, on a loopback socket bound here."""

    def __init__(
        self, handler: str, *, datagram: bool = False, launcher: str = LAUNCHER, **config: Any
    ) -> None:
        kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        if not datagram:
            self.sock.listen(4096)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.config = {"handler": handler, "datagram": datagram, "fd": self.sock.fileno(), **config}
        self.proc: subprocess.Popen[str] | None = None
        self.launcher = launcher

    def __enter__(self) -> ServerProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.launcher, json.dumps(self.config)],
            pass_fds=[self.sock.fileno()],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {self.config}")
        self.sock.close()  # the child's now
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        """Resident memory of the server, in KiB."""
        return rss_kb(self.pid)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def children(self) -> list[int]:
        """The server's child processes (prefork workers)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    """Whether ``predicate`` became true within ``timeout`` seconds (polled: the server is
    another process, and what is awaited is its state as the kernel shows it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def connect(address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def echo_round_trip(address: tuple[str, int], line: bytes = b"ping\n", timeout: float = 5.0) -> float:
    """Seconds a new client waits for its line to come back (raises if it does not)."""
    started = time.perf_counter()
    with connect(address, timeout) as sock:
        sock.sendall(line)
        got = b""
        while not got.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the reply")
            got += chunk
    return time.perf_counter() - started


GET = b"GET / HTTP/1.1\r\nHost: reliability\r\n\r\n"


def http_get(sock: socket.socket) -> None:
    """One keep-alive GET on ``sock``, its whole response read (hello's fixed body)."""
    sock.sendall(GET)
    got = b""
    while b"Hello, world!\n" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        got += chunk


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock``: what it sent before (an error reply, lines
    not read) is read and dropped, without waiting."""
    try:
        while sock.recv(1 << 16, socket.MSG_DONTWAIT):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.contextmanager
def many(count: int) -> Iterator[list[socket.socket]]:
    """A list the case fills with sockets, all closed at the end."""
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()
