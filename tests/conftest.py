"""Shared fixtures: engines, transports, and servers that always stop."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import socketkit as sk
from socketkit.engines import ENGINES as REGISTRY
from socketkit.engines import engine_class

# A shell that starts the tests in the background (`.ci/run &` from a script) leaves SIGINT
# ignored, and every program they start inherits that: the pages' plain Python servers then
# never see the Ctrl-C that stops them. Tests run as if from a terminal: a handler of our
# own is reset to the default in the programs they start.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: Debian packages of the peer programs the tests drive, where the name differs
_PACKAGES = {"systemd-socket-activate": "systemd"}


_PACKAGE_SAYS = "Debian package "  # how a skip names the package: the summary line finds it


def peer_tool(name: str) -> str:
    """The path of a real peer program the tests drive (curl, wrk, ncat, haproxy...).

    Missing, the test is skipped with the package to install, so `make test` on a new
    machine is green; where SOCKETKIT_REQUIRE_PEERS is set (.ci/run sets it, after it
    installs them all) a missing peer fails the test instead: CI never skips one."""
    path = shutil.which(name)
    if path is not None:
        return path
    package = _PACKAGES.get(name, name)
    message = f"{name} is not installed ({_PACKAGE_SAYS}{package}; .ci/run installs it)"
    if os.environ.get("SOCKETKIT_REQUIRE_PEERS"):
        pytest.fail(message)
    pytest.skip(message)


class Gate:
    """An echo handler that holds the message ``hold`` until released: a busy or stuck handler."""

    def __init__(self, hold: bytes) -> None:
        self.hold = hold
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def __call__(self, message: bytes, conn: sk.Connection) -> bytes:
        if message == self.hold:
            self.entered.set()
            self.release.wait(30.0)  # past every test's own deadline: only release() ends it sooner
            self.returned.set()
        return message


def ends_before_the_grace_deadline(client: sk.Client, stopper: threading.Thread, wait: float) -> None:
    """The server closes ``client``'s connection within ``wait`` (far short of the grace
    period the test gave stop()), and the stop() running in ``stopper`` returns."""
    with pytest.raises(sk.ClosedError):
        client.recv()
    stopper.join(wait)
    assert not stopper.is_alive(), "the connection held stop() back"


def reactor_is_an_alias() -> bool:
    """Whether ``reactor`` runs the same poller as one of the engines named after pollers."""
    import select

    from socketkit.engines.loop.poller import poller_class

    named = [name for name in ("epoll", "poll", "select") if name in REGISTRY and hasattr(select, name)]
    return any(poller_class("auto") is poller_class(name) for name in named)


#: Every engine in the registry, and the families the conformance suite needs. prefork
#: runs these same engines in worker processes; tests/test_prefork.py covers it.
#: ``reactor`` is left out where it is the very engine another name runs (epoll on Linux):
#: the same code twice would only cost the suite's time (test_server checks the alias).
ENGINES = [name for name in REGISTRY if not (name == "reactor" and reactor_is_an_alias())]
THREADED = [name for name in ENGINES if engine_class(name).supports_blocking]
CONCURRENT = [name for name in ENGINES if name != "iterative"]  # serve two connections at once
#: engines whose loop runs the handlers (pool runs them on threads, @blocking ones too)
REACTORS = [
    name
    for name in ENGINES
    if getattr(engine_class(name), "selector_name", None) and not engine_class(name).supports_blocking
]
STREAMS = ["tcp", "unix", "tls"]
DATAGRAMS = ["udp", "unixgram"]


@pytest.fixture(autouse=True)
def socketkit_logger_restored() -> Iterator[None]:
    """A CLI command run in-process points socketkit's logger at that test's captured stderr; undo it."""
    logger = logging.getLogger("socketkit")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short directory for unix socket paths (sun_path holds 107 bytes)."""
    path = tempfile.mkdtemp(prefix="sk-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_url(transport: str, directory: str) -> str:
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    if transport == "udp":
        return "udp://127.0.0.1:0"
    if transport == "tls":
        return "tls://127.0.0.1:0"
    name = os.path.join(directory, f"{uuid.uuid4().hex[:8]}.sock")
    return f"{transport}://{name}"


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(CA file, server certificate and key file) for localhost and 127.0.0.1, from trustme."""
    import trustme

    root = tmp_path_factory.mktemp("test-pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    ca.issue_cert("localhost", "127.0.0.1", "::1").private_key_and_cert_chain_pem.write_to_path(
        str(root / "server.pem")
    )
    return str(root / "ca.pem"), str(root / "server.pem")


@pytest.fixture(params=STREAMS)
def stream_url(
    request: pytest.FixtureRequest, short_tmp: str, monkeypatch: pytest.MonkeyPatch, test_pki: tuple[str, str]
) -> str:
    """A stream endpoint of each transport. For tls:// the suite runs unchanged: servers on a
    tls:// URL get the test certificate, and clients trust the test CA (SSL_CERT_FILE, which
    ssl.create_default_context reads) and verify it as they would any other."""
    if request.param == "tls":
        from socketkit.tls import server_context

        ca, cert = test_pki
        monkeypatch.setenv("SSL_CERT_FILE", ca)
        original = sk.Server.__init__

        def with_test_certificate(self: sk.Server, endpoints: Any, *args: Any, **kwargs: Any) -> None:
            urls = [endpoints] if isinstance(endpoints, str) else endpoints
            if any(isinstance(url, str) and url.startswith("tls://") for url in urls):
                kwargs.setdefault("tls", server_context(cert))
            original(self, endpoints, *args, **kwargs)

        monkeypatch.setattr(sk.Server, "__init__", with_test_certificate)
    return make_url(request.param, short_tmp)


_missing_peers = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Note the peer tools that were missing, for the run's last line (pytest_unconfigure)."""
    packages: set[str] = set()
    skipped = 0
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        if _PACKAGE_SAYS in reason:
            skipped += 1
            packages.add(reason.partition(_PACKAGE_SAYS)[2].partition(";")[0])
    if packages:
        config.stash[_missing_peers] = (
            f"{skipped} test(s) skipped: peer tools missing; to run them: "
            f"sudo apt-get install {' '.join(sorted(packages))}"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run ends with one line naming the peer tools that were missing and the line that
    brings them: a new machine's `make test` is green without them, and says what it left out."""
    line = config.stash.get(_missing_peers, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if line is not None and reporter is not None:
        reporter.write_line(line, yellow=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked plaintext speak raw bytes to the socket: they run over tcp and unix only.
    Tests marked waits wait out a timeout: they run over tcp and tls, not unix too (an engine
    keeps a unix connection's deadlines exactly as a tcp one's; only TLS adds a layer)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        transport = params.params.get("stream_url") if params is not None else None
        plaintext_over_tls = transport == "tls" and item.get_closest_marker("plaintext")
        waits_over_unix = transport == "unix" and item.get_closest_marker("waits")
        (dropped if plaintext_over_tls or waits_over_unix else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=DATAGRAMS)
def datagram_url(request: pytest.FixtureRequest, short_tmp: str) -> str:
    return make_url(request.param, short_tmp)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def echo(message: object, conn: sk.Connection) -> object:
    return message


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_until(predicate: Callable[[], object], deadline: float = 10.0, what: str = "the condition") -> None:
    """Wait for ``predicate()`` to be true, checking often, for at most ``deadline`` seconds.

    For state that has no event to wait on (a server's counters). Fails the test
    with ``what`` when the deadline passes; a busy machine only makes it wait longer.
    """
    give_up = time.monotonic() + deadline
    pause = 0.001
    while not predicate():
        if time.monotonic() >= give_up:
            pytest.fail(f"timed out after {deadline:g}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def until_they_meet(sender: Any, receiver: Any, probe: Any, heard: Any, deadline: float = 10.0) -> None:
    """Send ``probe`` from ``sender`` until ``receiver`` gets it (as ``heard``): both are
    members of a room by then (a broker's, or two joined through a backend), with no event
    to wait on. The receiver's timeout is put back as it was."""
    give_up = time.monotonic() + deadline
    timeout = receiver.timeout
    try:
        while True:
            if time.monotonic() >= give_up:
                pytest.fail(f"the clients never met within {deadline:g}s")
            sender.send(probe)
            receiver.timeout = 0.2
            try:
                if receiver.recv() == heard:
                    return
            except sk.Timeout:
                pass
    finally:
        receiver.timeout = timeout
