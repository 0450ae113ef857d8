"""TLS: the sans-IO layer, tls:// on every engine, socketkit's verifying client, and
peers no one here wrote (curl, openssl s_client, ncat --ssl). Certificates come
from trustme, made fresh for the test session."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

import socketkit as sk
from conftest import CONCURRENT, ENGINES, echo, wait_until
from socketkit.errors import RemoteProtocolError
from socketkit.layers.tls import TlsLayer
from socketkit.tls import client_context, server_context
from test_cli import SK, WAIT, cli_server, run, tool


@dataclass
class Pki:
    ca: Path  # the CA certificate clients trust
    server: Path  # certificate chain and key for localhost and 127.0.0.1
    client: Path  # a client certificate from the same CA
    other_host: Path  # valid, but for another name
    expired: Path
    self_signed: Path  # from a CA nobody trusts


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    files = {
        "server": ca.issue_cert("localhost", "127.0.0.1", "::1"),
        "client": ca.issue_cert("client@example"),
        "other_host": ca.issue_cert("other.example"),
        "expired": ca.issue_cert(
            "localhost", "127.0.0.1", not_before=past, not_after=past + datetime.timedelta(days=1)
        ),
        "self_signed": stranger.issue_cert("localhost", "127.0.0.1"),
    }
    paths = {}
    for name, cert in files.items():
        paths[name] = root / f"{name}.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(paths[name]))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    return Pki(ca=root / "ca.pem", **paths)


def trusting(pki: Pki) -> ssl.SSLContext:
    return client_context(str(pki.ca))


# -- the layer alone, no sockets ---------------------------------------------------------------


def pump(server: TlsLayer, client: ssl.SSLObject, c_in: ssl.MemoryBIO, c_out: ssl.MemoryBIO) -> bytes:
    """Move the client's pending records to the server and back; the plaintext the server got."""
    got = b""
    data = c_out.read()
    if data:
        got = server.feed(data)
    c_in.write(server.take_output())
    return got


def handshake(server: TlsLayer, client: ssl.SSLObject, c_in: ssl.MemoryBIO, c_out: ssl.MemoryBIO) -> None:
    """Pump records both ways until the client's handshake is done, then its Finished to the
    server: both sides are done."""
    for _ in range(5):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump(server, client, c_in, c_out)
    pump(server, client, c_in, c_out)


def test_the_layer_handshakes_holds_early_output_and_ends_on_close_notify(pki: Pki) -> None:
    server = TlsLayer(server_context(str(pki.server)))
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = trusting(pki).wrap_bio(c_in, c_out, server_hostname="localhost")
    assert server.in_progress and server.wrap(b"greeting first\n") == b""  # held until the handshake
    handshake(server, client, c_in, c_out)
    assert not server.in_progress and server.version in ("TLSv1.2", "TLSv1.3")
    assert client.read(100) == b"greeting first\n"
    client.write(b"hello")
    assert pump(server, client, c_in, c_out) == b"hello"
    c_in.write(server.wrap(b"back"))
    assert client.read(100) == b"back"
    with pytest.raises(ssl.SSLWantReadError):
        client.unwrap()
    pump(server, client, c_in, c_out)
    assert server.ended


def test_a_plaintext_peer_fails_the_handshake(pki: Pki) -> None:
    server = TlsLayer(server_context(str(pki.server)))
    with pytest.raises(RemoteProtocolError, match="TLS handshake failed"):
        server.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="during the TLS handshake"):
        TlsLayer(server_context(str(pki.server))).end()


#: An application-data record no key made: it fails its MAC, a fatal TLS error for the session.
FORGED_RECORD = b"\x17\x03\x03\x00\x20" + bytes(32)


def test_after_a_fatal_error_the_layer_sends_nothing_but_its_alert(pki: Pki) -> None:
    """A TLS session that failed (a forged record) takes no more data to wrap and sends no
    close_notify: the alert OpenSSL wrote is all the peer gets, and nothing raises."""
    server = TlsLayer(server_context(str(pki.server)))
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = trusting(pki).wrap_bio(c_in, c_out, server_hostname="localhost")
    handshake(server, client, c_in, c_out)
    assert server.handshake_done
    with pytest.raises(RemoteProtocolError, match="TLS error"):
        server.feed(FORGED_RECORD)
    server.take_output()  # the alert
    assert server.wrap(b"error: bad input\n") == b""
    server.close()
    assert server.take_output() == b""


# -- tls:// on every engine --------------------------------------------------------------------


@pytest.fixture(params=ENGINES)
def tls_server(request: pytest.FixtureRequest, pki: Pki) -> Iterator[sk.Server]:
    server = sk.Server(
        "tls://127.0.0.1:0",
        echo,
        codec=sk.Lines(max_length=2 * 1024 * 1024),
        engine=request.param,
        tls=server_context(str(pki.server)),
        limits=sk.Limits(read_timeout=5.0),
    )
    with server.start():
        yield server


def test_echo_over_tls_with_a_megabyte_line(tls_server: sk.Server, pki: Pki) -> None:
    big = b"x" * (1024 * 1024)
    with sk.connect(
        tls_server.url, codec=sk.Lines(max_length=2 * 1024 * 1024), tls=trusting(pki), timeout=WAIT
    ) as c:
        assert c.request(b"hello") == b"hello"
        c.sock.sendall(b"one\ntwo\n")  # pipelined
        assert [c.recv(), c.recv()] == [b"one", b"two"]
        assert c.request(big) == big  # far past the write buffer marks: backpressure through TLS
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    wait_until(lambda: tls_server.stats.connections_open == 0, what="the connection to close")
    assert tls_server.stats.errors == {}


class Greeter(sk.Protocol):
    def on_connect(self, conn: sk.Connection) -> None:
        conn.send(b"welcome")  # before the handshake is done: held, then sent

    def on_message(self, conn: sk.Connection, message: bytes) -> None:
        conn.send(message[::-1])


@pytest.mark.parametrize("engine", ENGINES)
def test_what_a_handler_sends_before_the_handshake_arrives_after_it(engine: str, pki: Pki) -> None:
    ctx = server_context(str(pki.server))
    with sk.Server("tls://127.0.0.1:0", Greeter, codec=sk.Lines(), engine=engine, tls=ctx).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as client:
            assert client.recv() == b"welcome"
            assert client.request(b"abc") == b"cba"


def test_a_plaintext_client_is_closed_never_echoed_and_logged(
    tls_server: sk.Server, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="socketkit")
    with socket.create_connection(tls_server.addresses[0][:2], timeout=WAIT) as sock:
        sock.sendall(b"hello in plaintext\n")
        received = b""
        while data := sock.recv(65536):
            received += data
    assert b"plaintext" not in received
    wait_until(lambda: tls_server.stats.errors.get("protocol") == 1, what="the refusal counted")
    assert any(
        "TLS handshake failed" in r.getMessage() and "tls://127.0.0.1:" in r.getMessage()
        for r in caplog.records
    )
    with sk.connect(tls_server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as client:
        assert client.request(b"still serving") == b"still serving"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_handshake_never_finished_ends_at_read_timeout(engine: str, pki: Pki) -> None:
    limits = sk.Limits(read_timeout=0.3, idle_timeout=60)
    ctx = server_context(str(pki.server))
    with sk.Server("tls://127.0.0.1:0", echo, engine=engine, tls=ctx, limits=limits).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")  # the start of a ClientHello
            assert sock.recv(65536) == b""  # closed at read_timeout, far before idle_timeout
        wait_until(lambda: server.stats.errors.get("read_timeout") == 1, what="the timeout counted")


# -- socketkit's client verifies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cert", "reason"),
    [("other_host", "match|mismatch"), ("expired", "expired"), ("self_signed", "issuer")],
)
def test_the_client_refuses_certificates_that_do_not_verify(pki: Pki, cert: str, reason: str) -> None:
    ctx = server_context(str(getattr(pki, cert)))
    with sk.Server("tls://127.0.0.1:0", echo, tls=ctx).start() as server:
        with pytest.raises(sk.ConnectError, match=f"does not verify: .*({reason})"):
            sk.connect(server.url, tls=trusting(pki), server_hostname="localhost", timeout=WAIT)


def test_the_client_says_when_the_server_does_not_speak_tls() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo).start() as server:
        with pytest.raises(sk.ConnectError, match=r"TLS handshake with .* failed"):
            sk.connect(server.url, tls=True, timeout=WAIT)


def test_client_certificates_when_required(pki: Pki) -> None:
    ctx = server_context(str(pki.server), ca=str(pki.ca), client_auth=True)
    with sk.Server("tls://127.0.0.1:0", echo, codec=sk.Lines(), tls=ctx).start() as server:
        with_cert = trusting(pki)
        with_cert.load_cert_chain(str(pki.client))
        with sk.connect(server.url, codec=sk.Lines(), tls=with_cert, timeout=WAIT) as client:
            assert client.request(b"known") == b"known"
        with pytest.raises((sk.ConnectError, sk.ClosedError, sk.BrokenError)):
            with sk.connect(server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as anonymous:
                anonymous.request(b"who am I")  # TLS 1.3 refuses after the handshake: on first use


def test_tls_misconfigurations_are_clear(pki: Pki) -> None:
    ctx = server_context(str(pki.server))
    with pytest.raises(ValueError, match="needs a TLS context"):
        sk.Server("tls://127.0.0.1:0", echo)
    with pytest.raises(ValueError, match="tcp:// stays plaintext"):
        sk.Server("tcp://127.0.0.1:0", echo, tls=ctx)
    with pytest.raises(ValueError, match="no DTLS"):
        sk.Server("udp://127.0.0.1:0", echo, tls=ctx)
    with pytest.raises(ValueError, match="not found"):
        server_context("/nonexistent/cert.pem")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED  # what the library allows: maybe TLS 1.0
    sk.Server("tls://127.0.0.1:0", echo, tls=old)
    assert old.minimum_version == ssl.TLSVersion.TLSv1_2  # raised: TLS 1.2 or newer


# -- peers no one here wrote, and the command line ------------------------------------------------


def test_https_hello_with_curl(pki: Pki) -> None:
    args = ["hello", "-l", "tls://127.0.0.1:0", "--tls-cert", str(pki.server)]
    with cli_server(*args) as (_, urls):
        url = urls[0].replace("tls://", "https://") + "/"
        result = run([tool("curl"), "-s", "--cacert", str(pki.ca), url])
        assert result.returncode == 0 and result.stdout == b"Hello, world!\n", result.stderr
        refused = run([tool("curl"), "-s", url])  # the system's CAs do not know the test CA
        assert refused.returncode == 60


def test_openssl_s_client_against_https_hello_and_ncat_ssl_against_echo(pki: Pki) -> None:
    with cli_server("hello", "-l", "tls://127.0.0.1:0", "--tls-cert", str(pki.server)) as (_, urls):
        host, port = urls[0].split("://", 1)[1].rsplit(":", 1)
        request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        s_client = run(
            [tool("openssl"), "s_client", "-quiet", "-verify_return_error", "-CAfile", str(pki.ca),
             "-connect", f"{host}:{port}", "-servername", "localhost"],
            request,
        )  # fmt: skip
        assert s_client.stdout.endswith(b"Hello, world!\n"), s_client.stderr
    args = ["echo", "--codec", "lines", "-l", "tls://127.0.0.1:0", "--tls-cert", str(pki.server)]
    with cli_server(*args) as (_, urls):
        port = urls[0].rsplit(":", 1)[1]
        ncat = run(
            [tool("ncat"), "--ssl", "--ssl-verify", "--ssl-trustfile", str(pki.ca), "localhost", port],
            "via ncat\n",
        )
        assert ncat.stdout == b"via ncat\n", ncat.stderr


def test_socketkit_connect_and_send_speak_tls(pki: Pki) -> None:
    args = ["echo", "--codec", "lines", "-l", "tls://127.0.0.1:0", "--tls-cert", str(pki.server)]
    with cli_server(*args) as (_, urls):
        relayed = run([*SK, "connect", "--tls-ca", str(pki.ca), urls[0]], "one\ntwo\n")
        assert relayed.returncode == 0 and relayed.stdout == b"one\ntwo\n", relayed.stderr
        port = urls[0].rsplit(":", 1)[1]
        sent = run([*SK, "send", "--tls", "--tls-ca", str(pki.ca), f"localhost:{port}", "hi"])
        assert sent.stdout == b"hi\n", sent.stderr
        refused = run([*SK, "send", urls[0], "hi"])
        assert refused.returncode == 1 and b"does not verify" in refused.stderr
        assert run([*SK, "send", "--insecure", urls[0], "anyway"]).stdout == b"anyway\n"
    usage = run([*SK, "send", "--insecure", "127.0.0.1:9", "x"])
    assert usage.returncode == 2 and b"need --tls" in usage.stderr


def test_sighup_reloads_the_certificate_for_new_connections(pki: Pki, tmp_path: Path) -> None:
    cert = tmp_path / "live.pem"
    cert.write_bytes(pki.server.read_bytes())
    with cli_server("echo", "--codec", "lines", "-l", "tls://127.0.0.1:0", "--tls-cert", str(cert)) as (
        proc,
        urls,
    ):
        with sk.connect(urls[0], codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as before:
            assert before.request(b"first") == b"first"
            cert.write_bytes(pki.self_signed.read_bytes())  # renewed (by a CA this client does not trust)
            proc.send_signal(signal.SIGHUP)
            assert proc.stderr is not None
            assert "reloaded the TLS certificate" in proc.stderr.readline()
            with pytest.raises(sk.ConnectError, match="does not verify"):
                sk.connect(urls[0], tls=trusting(pki), timeout=WAIT)
            assert before.request(b"kept") == b"kept"  # the open connection is untouched


@pytest.mark.parametrize("engine", ["threads", "epoll"])
def test_whoami_behind_a_proxy_header_then_tls(engine: str, pki: Pki) -> None:
    """TLS passed through a TCP balancer: the PROXY header first, in clear, then the handshake."""
    from socketkit.services import load_service

    whoami = load_service("whoami")
    url = "tls://127.0.0.1:0?proxy=v1"
    ctx = server_context(str(pki.server))
    with sk.Server(url, whoami.handler, codec=sk.Lines(), engine=engine, tls=ctx).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as raw:
            raw.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n")
            with trusting(pki).wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"who\n")
                reply = tls.recv(1000).decode()
    assert reply.startswith("client: tls://203.0.113.7:56324; local: tcp://127.0.0.1:")
    assert "proxy: v1 PROXY" in reply and "tls: TLSv1." in reply and "sni: localhost" in reply


@pytest.mark.parametrize("engine", ENGINES)
def test_over_tls_bad_input_gets_its_error_reply_and_stop_drains(engine: str, pki: Pki) -> None:
    """The connection rules hold over TLS: an oversize line gets its reason (encrypted), the
    server keeps serving, and stop() lets a request in flight finish."""
    limits = sk.Limits(max_message_size=1024)
    ctx = server_context(str(pki.server))
    with sk.Server(
        "tls://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine, tls=ctx, limits=limits
    ).start() as s:
        with sk.connect(s.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as big:
            big.send(b"x" * 2048)
            assert big.recv() == b"error: line longer than 1024 bytes"
            with pytest.raises((sk.ClosedError, sk.BrokenError)):
                big.recv()
        with sk.connect(s.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as client:
            assert client.request(b"still here") == b"still here"
            client.sock.sendall(b"last words\n")  # in flight when stop() comes
            s.stop()
            assert client.recv() == b"last words"
        assert s.stats.errors == {"limit": 1}


def test_tls_stream_half_close_keeps_an_answer_that_came_first(pki: Pki) -> None:
    """Two records arrive in one read, then the client half-closes: both still come out
    (OpenSSL's shutdown would otherwise read, and drop, the second one)."""
    from socketkit.tls import TlsStream

    ctx = server_context(str(pki.server))
    client_sock, server_sock = socket.socketpair()
    server = TlsLayer(ctx)
    done = threading.Event()

    def serve() -> None:  # the server side, sans-IO over the other end of the pair
        while not done.is_set():
            data = server_sock.recv(65536)
            if not data:
                return
            if server.feed(data) == b"go\n":
                server_sock.sendall(server.take_output() + server.wrap(b"one\n") + server.wrap(b"two\n"))
                done.set()
                return
            server_sock.sendall(server.take_output())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        stream = TlsStream(client_sock, trusting(pki), "localhost")
        stream.sendall(b"go\n")
        thread.join(WAIT)
        first = stream.recv(65536)
        assert stream.pending()  # the second record waits in memory, not in the socket
        stream.end_sending()
        assert first + stream.recv(65536) == b"one\ntwo\n"
    finally:
        done.set()
        client_sock.close()
        server_sock.close()
        thread.join(WAIT)


# -- a hostile TLS peer ends its own connection only -------------------------------------------------


def _raw_twin(sock: socket.socket) -> socket.socket:
    """A plain socket on the same connection as a TLS socket: bytes below TLS."""
    return socket.socket(fileno=os.dup(sock.fileno()))


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(WAIT)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    return received


@pytest.mark.parametrize("engine", ENGINES)
def test_a_forged_record_ends_only_its_own_connection(
    engine: str, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that fails its MAC after the handshake: that connection gets the alert and
    closes (its error reply cannot go through a failed session), logged with the peer and
    counted; the server and its other clients go on."""
    caplog.set_level(logging.WARNING, logger="socketkit")
    ctx = server_context(str(pki.server))
    with sk.Server("tls://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine, tls=ctx).start() as server:
        with contextlib.ExitStack() as stack:
            bystander = None
            if engine in CONCURRENT:  # (iterative serves one connection at a time)
                bystander = stack.enter_context(
                    sk.connect(server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT)
                )
                assert bystander.request(b"before") == b"before"
            with sk.connect(server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as attacker:
                assert attacker.request(b"hello") == b"hello"
                peer_port = attacker.sock.getsockname()[1]
                with _raw_twin(attacker.sock) as raw:
                    raw.sendall(FORGED_RECORD)
                    assert b"error" not in _read_until_closed(raw)  # no plaintext after the failure
            wait_until(lambda: server.stats.errors.get("protocol") == 1, what="the TLS error counted")
            assert server.running
            if bystander is not None:
                assert bystander.request(b"after") == b"after"
        with sk.connect(server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as newcomer:
            assert newcomer.request(b"new") == b"new"
    lines = [r.getMessage() for r in caplog.records]
    assert any("TLS error" in line and f":{peer_port}" in line for line in lines), lines
    assert not any(r.levelno >= logging.CRITICAL for r in caplog.records), lines


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_asking_to_renegotiate_ends_only_its_own_connection(engine: str, pki: Pki) -> None:
    """openssl s_client's R (TLS 1.2 renegotiation) once killed the reactor engines."""
    ctx = server_context(str(pki.server))
    with sk.Server("tls://127.0.0.1:0", echo, codec=sk.Lines(), engine=engine, tls=ctx).start() as server:
        host, port = server.addresses[0][:2]
        s_client = subprocess.Popen(
            [tool("openssl"), "s_client", "-tls1_2", "-CAfile", str(pki.ca), "-connect", f"{host}:{port}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert s_client.stdin is not None and s_client.stdout is not None
        try:
            s_client.stdin.write(b"hello\n")
            s_client.stdin.flush()
            while (line := s_client.stdout.readline()) != b"hello\n":
                assert line, "s_client ended before its line came back"
            s_client.stdin.write(b"R\n")  # "R" at the start of a line: renegotiate
            s_client.stdin.flush()
            wait_until(lambda: server.stats.connections_open == 0, what="the connection to end")
            assert server.running
            with sk.connect(server.url, codec=sk.Lines(), tls=trusting(pki), timeout=WAIT) as client:
                assert client.request(b"still serving") == b"still serving"
        finally:
            s_client.kill()
            s_client.communicate(timeout=WAIT)
