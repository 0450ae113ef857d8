"""socketkit bench over TLS: handshakes per connection, session resumption, verification."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import socketkit as sk
from conftest import echo
from socketkit.bench import BenchConfig, run_bench
from socketkit.cli import main
from socketkit.services import load_service
from socketkit.tls import server_context

SK = [sys.executable, "-m", "socketkit"]


def tls_hello(cert: str) -> sk.Server:
    hello = load_service("hello")
    return sk.Server("tls://127.0.0.1:0", hello.handler, codec=hello.codec, tls=server_context(cert)).start()


def test_keep_alive_makes_one_handshake_per_connection(test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    with tls_hello(cert) as server:
        result = run_bench(BenchConfig(server.url, mode="http", connections=4, requests=300, tls_ca=ca))
        assert server.stats.connections_total == 4
    assert result.requests == 300 and result.errors == {}
    assert result.handshakes == 4 and result.resumed == 0
    # bytes are counted on the wire: every request and reply carries a record header and tag
    plaintext = len(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert result.bytes_sent > 300 * plaintext
    assert result.to_json()["end"]["tls"] == {"handshakes": 4, "resumed": 0}


def test_connect_mode_handshakes_per_request_and_resumes_sessions(test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    with tls_hello(cert) as server:
        result = run_bench(
            BenchConfig(server.url, mode="connect", codec="http", connections=2, requests=40, tls_ca=ca)
        )
        assert server.stats.connections_total == 40
    assert result.requests == 40 and result.errors == {}
    assert result.handshakes == 40
    assert 0 < result.resumed < 40  # the first connections have no session to resume


def test_request_mode_over_tls_with_processes(test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    with sk.Server("tls://127.0.0.1:0", echo, codec=sk.Lines(), tls=server_context(cert)).start() as server:
        result = run_bench(BenchConfig(server.url, connections=4, requests=200, processes=2, tls_ca=ca))
    assert result.requests == 200 and result.errors == {} and result.handshakes == 4


def test_an_untrusted_certificate_is_an_error_unless_insecure(test_pki: tuple[str, str]) -> None:
    _, cert = test_pki
    with tls_hello(cert) as server:
        refused = run_bench(BenchConfig(server.url, mode="http", connections=1, duration=0.3))
        insecure = run_bench(BenchConfig(server.url, mode="http", connections=1, requests=5, insecure=True))
    assert refused.requests == 0 and refused.errors.get("tls: CERTIFICATE_VERIFY_FAILED", 0) > 0
    assert insecure.requests == 5 and insecure.errors == {}


def test_tls_to_a_plaintext_server_is_an_error(test_pki: tuple[str, str]) -> None:
    ca, _ = test_pki
    hello = load_service("hello")
    with sk.Server("tcp://127.0.0.1:0", hello.handler, codec=hello.codec).start() as server:
        result = run_bench(
            BenchConfig(server.url, mode="http", connections=1, duration=0.3, tls=True, tls_ca=ca)
        )
    assert result.requests == 0
    assert any(kind.startswith("tls: ") or kind == "closed by server" for kind in result.errors), (
        result.errors
    )


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"insecure": True}, "need --tls"),
        ({"tls_ca": "ca.pem"}, "need --tls"),
        ({"tls": True, "tls_ca": "ca.pem", "insecure": True}, "exclude each other"),
    ],
)
def test_bad_tls_configurations_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BenchConfig("tcp://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]


def test_cli_bench_tls(test_pki: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    ca, cert = test_pki
    with tls_hello(cert) as server:
        port = server.addresses[0][1]
        command = [*SK, "bench", f"127.0.0.1:{port}", "--tls", "--tls-ca", ca, "--mode", "http"]
        result = subprocess.run(
            [*command, "-c", "2", "-n", "50", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["end"]["requests"] == 50 and report["end"]["tls"]["handshakes"] == 2
        assert report["start"]["test"]["tls"] is True
        assert main(["bench", server.url, "--mode", "http", "-c", "1", "-n", "5", "--insecure"]) == 0
        assert "TLS handshakes" in capsys.readouterr().out
        assert main(["bench", server.url, "--mode", "http", "-c", "1", "-d", "0.3"]) == 1
        assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    assert main(["bench", "127.0.0.1:9", "--insecure"]) == 2
    assert "--insecure need --tls" in capsys.readouterr().err
