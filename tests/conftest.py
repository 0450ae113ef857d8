"""Shared fixtures: engines, transports, and servers that always stop."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

import socketkit as sk
from socketkit.engines import ENGINES as REGISTRY
from socketkit.engines import engine_class

#: Every engine in the registry, and the families the conformance suite needs.
ENGINES = list(REGISTRY)
THREADED = [name for name in ENGINES if engine_class(name).supports_blocking]
CONCURRENT = [name for name in ENGINES if name != "iterative"]  # serve two connections at once
REACTORS = [name for name in ENGINES if getattr(engine_class(name), "selector_name", None)]
STREAMS = ["tcp", "unix"]
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
    name = os.path.join(directory, f"{uuid.uuid4().hex[:8]}.sock")
    return f"{transport}://{name}"


@pytest.fixture(params=STREAMS)
def stream_url(request: pytest.FixtureRequest, short_tmp: str) -> str:
    return make_url(request.param, short_tmp)


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
