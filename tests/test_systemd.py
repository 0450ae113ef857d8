"""Sockets bound elsewhere (a caller's socket, fd://N, systemd socket activation with the
real systemd-socket-activate), and sd_notify READY/STOPPING/WATCHDOG."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest

import socketkit as sk
from conftest import echo
from test_cli import WAIT, tool
from test_haproxy import free_port

SK = [sys.executable, "-m", "socketkit"]


def test_a_server_adopts_sockets_the_caller_bound(short_tmp: str) -> None:
    stream = socket.create_server(("127.0.0.1", 0))
    datagram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    datagram.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(os.path.join(short_tmp, "a.sock"))  # bound, not listening: the server listens
    with sk.Server([stream, datagram, unix], echo, codec=sk.Lines()).start() as server:
        assert [e.scheme for e in server.endpoints] == ["tcp", "udp", "unix"]
        with sk.connect(server.urls[0], codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"adopted") == b"adopted"
        with sk.DatagramClient(server.urls[1], codec=sk.Lines(), timeout=WAIT) as udp:
            assert udp.request(b"too") == b"too"
        with sk.connect(server.urls[2], codec=sk.Lines(), timeout=WAIT) as local:
            assert local.request(b"unix") == b"unix"


def test_bad_inherited_descriptors_are_clear() -> None:
    with pytest.raises(ValueError, match="fd://N"):
        sk.Server("fd://three", echo)
    with pytest.raises(ValueError, match="not an open socket"):
        sk.Server("fd://987", echo)
    with pytest.raises(ValueError, match="systemd passed no socket"):
        sk.Server("systemd://web", echo)


def test_fd_n_serves_a_descriptor_passed_by_hand() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    fd = listener.fileno()
    proc = subprocess.Popen(
        [*SK, "serve", "echo", "--codec", "lines", "-l", f"fd://{fd}"],
        pass_fds=[fd],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert "serving tcp://127.0.0.1:" in proc.stderr.readline()
        with sk.connect(
            f"tcp://127.0.0.1:{listener.getsockname()[1]}", codec=sk.Lines(), timeout=WAIT
        ) as client:
            assert client.request(b"by hand") == b"by hand"
    finally:
        listener.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == 0


@pytest.mark.parametrize("datagram", [False, True])
def test_systemd_socket_activate_passes_the_socket(datagram: bool) -> None:
    port = free_port()
    activate = [tool("systemd-socket-activate"), "-l", f"127.0.0.1:{port}", "--fdname=web"]
    if datagram:
        activate.append("--datagram")
    proc = subprocess.Popen(
        [
            *activate,
            sys.executable,
            "-m",
            "socketkit",
            "serve",
            "echo",
            "--codec",
            "lines",
            "-l",
            "systemd://web",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    listening = proc.stderr.readline()  # systemd-socket-activate has bound the socket
    try:
        assert f"127.0.0.1:{port}" in listening, listening
        if datagram:
            with sk.DatagramClient(f"udp://127.0.0.1:{port}", codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"activated") == b"activated"
        else:
            with sk.connect(f"tcp://127.0.0.1:{port}", codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"activated") == b"activated"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    assert f"serving {'udp' if datagram else 'tcp'}://127.0.0.1:{port}" in err, listening + err


def test_sd_notify_ready_watchdog_and_stopping() -> None:
    name = f"socketkit-test-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        notify.settimeout(WAIT)
        env = dict(os.environ, NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="200000")
        proc = subprocess.Popen(
            [*SK, "serve", "echo", "-l", "tcp://127.0.0.1:0"], env=env, stderr=subprocess.PIPE
        )
        stopped = False
        try:
            assert notify.recv(100) == b"READY=1"
            assert notify.recv(100) == b"WATCHDOG=1"  # every WATCHDOG_USEC / 2
            proc.send_signal(signal.SIGTERM)
            stopped = True  # once: a second SIGTERM would end the drain (or find no handler)
            states = [notify.recv(100)]
            while states[-1] == b"WATCHDOG=1":
                states.append(notify.recv(100))
            assert states[-1] == b"STOPPING=1"
        finally:
            if not stopped:
                proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=WAIT)
        assert proc.returncode == 0
