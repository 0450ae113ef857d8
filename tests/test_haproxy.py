"""A real HAProxy in front of two socketkit whoami servers over the PROXY protocol v2.

whoami sees each client's own address and port through HAProxy, and a backend
that stops is taken out of rotation with no failed request. The configuration
is examples/haproxy.cfg, the one the README shows.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from test_cli import WAIT, cli_server, tool

CONFIG = Path(__file__).parent.parent / "examples" / "haproxy.cfg"


def free_port() -> int:
    """A port free now, for a program that cannot report the one it bound (HAProxy, and
    redis-server, which binds it twice). Chosen below the kernel's ephemeral range: the
    port-0 binds and outgoing connections of tests running beside this one take theirs
    from that range, so none of them can take this port before the program binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another try
            return port
    raise AssertionError("no free port below the ephemeral range")


def get(port: int) -> str:
    """One HTTP request through the frontend, from a client whose own port is known."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        reply = b""
        while data := sock.recv(65536):
            reply += data
    text = reply.decode()
    assert text.startswith("HTTP/1.1 200"), text
    assert f"client: tcp://127.0.0.1:{client_port}\n" in text, text  # the client itself, not HAProxy
    return text


@contextmanager
def haproxy(frontend: int, backend_a: str, backend_b: str) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, FRONTEND=f"127.0.0.1:{frontend}", BACKEND_A=backend_a, BACKEND_B=backend_b)
    proc = subprocess.Popen(
        [tool("haproxy"), "-db", "-f", str(CONFIG)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def backends_seen(port: int, deadline: float) -> set[str]:
    """Request until both backends have answered (their health checks pass), within the deadline."""
    seen: set[str] = set()
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"both backends never answered; saw {seen}"
        try:
            seen.add(re.search(r"local: (\S+)", get(port)).group(1))  # type: ignore[union-attr]
        except (OSError, AssertionError):
            time.sleep(0.05)  # HAProxy still starting, or no backend up yet: poll again
    return seen


@pytest.mark.timeout(90)
def test_whoami_behind_haproxy_sees_the_client_and_survives_a_backend_stopping() -> None:
    args = ["whoami", "-l", "tcp://127.0.0.1:0", "--proxy-protocol", "v2"]
    with cli_server(*args) as (a, urls_a), cli_server(*args) as (_, urls_b):
        backend_a, backend_b = (url.split("://", 1)[1] for url in (urls_a[0], urls_b[0]))
        if True:
            port = free_port()
            with haproxy(port, backend_a, backend_b):
                assert backends_seen(port, time.monotonic() + 30) == {
                    f"tcp://{backend_a}",
                    f"tcp://{backend_b}",
                }
                a.send_signal(signal.SIGINT)  # backend a drains and goes away
                a.wait(WAIT)
                answered = [get(port) for _ in range(20)]  # none fails: HAProxy retries on b
                assert all(f"local: tcp://{backend_b}\n" in text for text in answered[-5:])
