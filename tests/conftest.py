"""Shared fixtures: engines, transports, and servers that always stop."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import pytest

import socketkit as sk

ENGINES = ["iterative", "threads", "select", "poll", "epoll", "reactor"]
THREADED = ["iterative", "threads"]
CONCURRENT = ["threads", "select", "poll", "epoll", "reactor"]
REACTORS = ["select", "poll", "epoll", "reactor"]
STREAMS = ["tcp", "unix"]
DATAGRAMS = ["udp", "unixgram"]


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
