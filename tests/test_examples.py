"""Every program in examples/ runs and does what its docstring says."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import socketkit as sk
from conftest import peer_tool
from socketkit.tls import client_context

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextmanager
def serving(name: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start a long-running example on a free port; yields (process, its URL)."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "tcp://127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        match = re.search(r"serving (tcp://\S+?),? \(", first)
        assert match, f"no startup line, got {first!r}"
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_echo_server_and_client() -> None:
    with serving("echo_server.py") as (proc, url):
        assert run_example("echo_client.py", url, "ping", "pong") == "ping\npong\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_udp_echo() -> None:
    assert run_example("udp_echo.py") == "one datagram\nanother\n"


def test_same_handler_two_engines() -> None:
    out = run_example("same_handler_two_engines.py")
    for engine in ("threads", "epoll"):
        assert re.search(
            rf"^{engine}\s+50 clients served, first reply b'CLIENT 0 SAYS HI', 50 requests", out, re.M
        )


def test_json_rpc() -> None:
    lines = run_example("json_rpc.py").splitlines()
    assert lines[:2] == ["{'result': 42}", "{'result': 42}"]
    assert lines[2].startswith("{'error': \"unknown op 'div'")


def test_select_chat() -> None:
    with serving("select_chat.py") as (proc, url):
        with sk.connect(url, codec=sk.Lines(), timeout=10) as alice:
            assert alice.recv() == b"* welcome; 0 other(s) here"
            with sk.connect(url, codec=sk.Lines(), timeout=10) as bob:
                assert bob.recv() == b"* welcome; 1 other(s) here"
                assert alice.recv().endswith(b" joined")
                bob.send(b"hello alice")
                assert alice.recv().endswith(b": hello alice")
            assert alice.recv().endswith(b" left")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("name", ["echo_server.py", "echo_client.py"])
def test_the_echo_pair_is_short(name: str) -> None:
    code = [
        line
        for line in (EXAMPLES / name).read_text().splitlines()
        if line.strip() and not line.startswith('"""')
    ]
    assert len(code) < 15


def test_starttls_smtp_with_openssl_and_socketkits_client(test_pki: tuple[str, str]) -> None:
    """OpenSSL's own SMTP STARTTLS client upgrades, verifies the certificate and is answered
    over TLS; socketkit's client does the same by hand."""
    ca, cert = test_pki
    openssl = peer_tool("openssl")
    with serving("starttls_smtp.py", cert) as (_, url):
        port = url.rsplit(":", 1)[1]
        verify = ["-CAfile", ca, "-verify_hostname", "localhost", "-verify_return_error"]
        result = subprocess.run(
            [
                openssl,
                "s_client",
                "-starttls",
                "smtp",
                "-connect",
                f"127.0.0.1:{port}",
                *verify,
                "-crlf",
                "-quiet",
            ],
            input="NOOP\nQUIT\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "250 2.0.0 OK (TLSv1." in result.stdout, result.stdout
        assert "221 2.0.0 Bye" in result.stdout
        with sk.connect(url, codec=sk.Lines(b"\r\n"), timeout=10) as client:
            assert client.recv().startswith(b"220 ")
            client.send(b"EHLO me")
            assert [client.recv(), client.recv()] == [b"250-socketkit greets you", b"250 STARTTLS"]
            assert client.request(b"STARTTLS") == b"220 2.0.0 Ready to start TLS"
            client.start_tls(client_context(ca), server_hostname="localhost")
            assert client.request(b"NOOP").startswith(b"250 2.0.0 OK (TLSv1.")
            assert client.request(b"QUIT") == b"221 2.0.0 Bye"
