"""prefork: a master and worker processes on the same sockets. The server runs as a real
`socketkit serve --workers N` process; the tests send it signals and count what clients see."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import socketkit as sk
from conftest import wait_until
from test_metrics import scrape

SK = [sys.executable, "-m", "socketkit"]
WAIT = 10.0

APP = """
import os, time

VERSION = b"v1"

def handle(message, conn):
    if message == b"hang":
        time.sleep(3600)  # a handler stuck on the reactor's loop
    return VERSION + b" %d " % os.getpid() + message
"""


class Serve:
    """A `socketkit serve` process and the lines of its log, read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` log lines matching ``pattern``, once there are that many."""

        def found() -> list[re.Match[str]]:
            return [m for line in list(self.lines) if (m := re.search(pattern, line))]

        wait_until(lambda: len(found()) >= count or self.proc.poll() is not None, what=pattern)
        matches = found()
        assert len(matches) >= count, "".join(self.lines)
        return matches[:count]

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def request(self, message: bytes = b"hello") -> bytes:
        with sk.connect(self.url, codec=sk.Lines(), timeout=WAIT) as client:
            return bytes(client.request(message))


@contextmanager
def serve_process(tmp_path: Path, *args: str) -> Iterator[Serve]:
    """`socketkit serve ARGS` in ``tmp_path``, once it says where it serves; SIGTERM after."""
    proc = subprocess.Popen(
        [*SK, "serve", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path
    )
    server = Serve(proc)
    try:
        server.url = server.wait_for(r"serving (tcp://\S+)")[0].group(1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(WAIT + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serving(tmp_path: Path, *args: str, workers: int = 2) -> Iterator[Serve]:
    """The pidapp handler with ``workers`` worker processes, once every worker is ready."""
    (tmp_path / "pidapp.py").write_text(APP)
    command = ["pidapp:handle", "--codec", "lines", "--workers", str(workers), "-l", "127.0.0.1:0", *args]
    with serve_process(tmp_path, *command) as server:
        server.wait_for(r"worker \d+ \(pid \d+\) ready", workers)
        yield server


def worker_pids(server: Serve) -> set[int]:
    """The live (not exited) children of the master."""
    return {pid for pid, state in children(server.proc.pid) if state != "Z"}


def children(parent: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append((int(entry.name), fields[0]))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Load:
    """Clients making a new connection per request until stopped; every outcome counted."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.stop = threading.Event()
        self.ok: Counter[int] = Counter()  # replies by worker pid
        self.versions: Counter[bytes] = Counter()
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(WAIT)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with sk.connect(self.url, codec=sk.Lines(), timeout=WAIT) as client:
                    version, pid, _ = bytes(client.request(b"load")).split(b" ", 2)
                self.ok[int(pid)] += 1
                self.versions[version] += 1
            except sk.SocketkitError as exc:
                self.failures.append(repr(exc))

    def total(self) -> int:
        return sum(self.ok.values())


def test_each_worker_serves_from_its_own_process(tmp_path: Path) -> None:
    """With the iterative engine a worker serves one connection at a time, so a second
    connection held open at once must be another worker's."""
    with serving(tmp_path, "--engine", "iterative") as server:
        pids = worker_pids(server)
        assert len(pids) == 2 and server.proc.pid not in pids
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as first:
            one = int(bytes(first.request(b"a")).split()[1])
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as second:
                two = int(bytes(second.request(b"b")).split()[1])
        assert {one, two} == pids
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(WAIT + 5) == 0
    assert "served 2 connection(s), 2 message(s) in, 2 out" in server.log  # summed over the workers


def test_a_killed_worker_is_replaced_and_only_its_requests_fail(tmp_path: Path) -> None:
    with serving(tmp_path) as server, Load(server.url) as load:
        victim = min(worker_pids(server))
        wait_until(lambda: load.total() >= 50, what="the load to run")
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf"worker \d+ \(pid {victim}\) killed by signal 9")
        server.wait_for(r"worker \d+ \(pid \d+\) ready", 3)  # its replacement
        before = load.total()
        wait_until(lambda: load.total() >= before + 50, what="the load to go on")
    assert len(load.failures) <= 4, load.failures  # at most the one in flight per client, on the victim
    assert len(load.ok) >= 2 and victim in load.ok


def test_sighup_replaces_every_worker_with_new_code_and_no_failed_request(tmp_path: Path) -> None:
    with serving(tmp_path) as server, Load(server.url) as load:
        old = worker_pids(server)
        wait_until(lambda: load.total() >= 50, what="the load to run")
        (tmp_path / "pidapp.py").write_text(APP.replace('b"v1"', 'b"v2"'))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for(r"SIGHUP: replacing 2 worker\(s\)")
        wait_until(lambda: not old & worker_pids(server) and len(worker_pids(server)) == 2, what="the roll")
        before = load.versions[b"v2"]
        wait_until(lambda: load.versions[b"v2"] >= before + 50, what="the new code to serve")
    assert load.failures == [], load.failures[:5]
    assert "SIGHUP: loaded pidapp:handle again" in server.log
    assert not old & set(load.ok) or load.versions[b"v1"] > 0


def test_a_broken_reload_keeps_the_running_workers(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        old = worker_pids(server)
        (tmp_path / "pidapp.py").write_text("this is not python\n")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for(r"SIGHUP: cannot load pidapp:handle again")
        assert server.request(b"still").startswith(b"v1 ")
        assert worker_pids(server) == old


def test_a_workers_log_lines_name_it(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-message-size", "16") as server:
        with socket.create_connection(server.url.split("://")[1].rsplit(":", 1), timeout=WAIT) as sock:
            sock.sendall(b"x" * 100 + b"\n")
            assert sock.recv(100).startswith(b"error:")
        server.wait_for(r"worker [01]: tcp://127\.0\.0\.1:\d+: closed: line longer than 16 bytes")


def test_workers_stop_when_the_master_is_killed(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        pids = worker_pids(server)
        server.proc.kill()
        server.proc.wait(WAIT)
        wait_until(lambda: not any(alive(pid) for pid in pids), what="the orphaned workers to exit")


def test_ttin_adds_a_worker_and_ttou_removes_one(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        server.proc.send_signal(signal.SIGTTIN)
        server.wait_for(r"worker 2 \(pid \d+\) ready")
        wait_until(lambda: len(worker_pids(server)) == 3, what="three workers")
        server.proc.send_signal(signal.SIGTTOU)
        server.wait_for(r"worker 2 \(pid \d+\) stopped")
        wait_until(lambda: len(worker_pids(server)) == 2, what="two workers again")
        assert server.request().startswith(b"v1 ")


@pytest.mark.parametrize("engine", ["epoll", "uvloop"])
def test_a_stuck_worker_is_killed_when_its_heartbeat_stops(tmp_path: Path, engine: str) -> None:
    """On the asyncio engines too: their loop answers the heartbeat (and is ready well
    within a one-second timeout, though it runs only once the worker serves)."""
    with serving(tmp_path, "--worker-timeout", "1", "--engine", engine) as server:
        stuck = socket.create_connection(server.url.split("://")[1].rsplit(":", 1), timeout=WAIT)
        stuck.sendall(b"hang\n")
        match = server.wait_for(r"worker \d+ \(pid (\d+)\) sent no heartbeat")[0]
        server.wait_for(rf"pid {match.group(1)}\) killed by signal 9")
        assert stuck.recv(10) == b""  # its connection went with it
        stuck.close()
        server.wait_for(r"worker \d+ \(pid \d+\) ready", 3)
        for _ in range(5):
            assert server.request().startswith(b"v1 ")


def test_a_worker_that_fails_to_boot_stops_the_server(tmp_path: Path) -> None:
    script = tmp_path / "boot.py"
    script.write_text(
        "import socketkit as sk\n"
        "def init():\n"
        "    raise RuntimeError('the database is not there')\n"
        "server = sk.Server('tcp://127.0.0.1:0', lambda m, c: m, workers=2, worker_init=init)\n"
        "try:\n"
        "    server.serve_forever()\n"
        "except sk.SocketkitError as exc:\n"
        "    print('halted:', exc)\n"
        "    raise SystemExit(1)\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "halted: worker" in result.stdout and "failed to boot" in result.stdout
    assert "the database is not there" in result.stderr
    assert result.stderr.count("started worker") <= 2  # halted, not restarted in a loop
    assert time.monotonic() - started < 30


def test_stats_and_metrics_sum_over_the_workers(tmp_path: Path) -> None:
    with serving(tmp_path, "--engine", "iterative", "--metrics", "127.0.0.1:0") as server:
        metrics = re.search(r"metrics at (tcp://\S+)/metrics", server.log)
        assert metrics is not None
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as first:
            first.request(b"a")
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as second:
                second.request(b"b")
                second.request(b"c")

        def received() -> float:
            return scrape(metrics.group(1))[1].get("socketkit_received_messages_total", 0)

        wait_until(lambda: received() == 3, what="the workers' reports to reach the master")
        samples = scrape(metrics.group(1), by_listener=True)[1]
        per_worker = sorted(
            v for k, v in samples.items() if k.startswith("socketkit_worker_received_messages")
        )
        assert per_worker == [1, 2]


def test_worker_stats_in_python(tmp_path: Path) -> None:
    server = sk.Server("tcp://127.0.0.1:0", lambda m, c: m, codec=sk.Lines(), engine="iterative", workers=2)
    with server.start():
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as first:
            first.request(b"a")
            with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as second:
                second.request(b"b")
        wait_until(lambda: server.stats.messages_in == 2, what="the workers' reports")
        assert sorted(s.messages_in for s in server.worker_stats.values()) == [1, 1]
        assert set(server.worker_stats) == {0, 1}
    assert not server.running


def test_bad_worker_settings_are_clear() -> None:
    with pytest.raises(ValueError, match="workers must be"):
        sk.Server("tcp://127.0.0.1:0", lambda m, c: m, workers=0)
    with pytest.raises(ValueError, match="workers must be"):
        sk.Server("tcp://127.0.0.1:0", lambda m, c: m, workers="many")
    result = subprocess.run(
        [*SK, "serve", "echo", "--workers", "none"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "workers must be" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [*SK, "serve", "broker", "--workers", "2"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "clients meet in one process" in result.stderr
