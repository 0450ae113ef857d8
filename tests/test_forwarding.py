"""The relay (socketkit.forwarding, ``socketkit relay``): both ways with backpressure, half-close,
TLS termination and origination, unix on either side, PROXY headers HAProxy reads, an
unreachable target, a graceful stop; with curl and socat as clients."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import socketkit as sk
from conftest import echo, wait_until
from socketkit.datagram_forwarding import DatagramForwarder
from socketkit.forwarding import Forwarder, relay_server
from socketkit.sessionlog import SessionLog
from socketkit.tls import client_context, server_context
from test_cli import SK, WAIT, cli_server, tool
from test_haproxy import free_port

ENGINES = pytest.mark.parametrize("engine", ["asyncio", "uvloop"])


@contextlib.contextmanager
def relaying(target: str, listen: str = "tcp://127.0.0.1:0", **options: Any) -> Iterator[sk.Server]:
    with relay_server(listen, target, **options).start() as server:
        yield server


def forwarder_of(server: sk.Server) -> Forwarder:
    handler = server.handler.target
    assert isinstance(handler, Forwarder)
    return handler


@ENGINES
def test_many_clients_at_once_each_get_their_own_answers(engine: str) -> None:
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as target:
        with relaying(target.url, engine=engine) as relay:
            clients = [sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) for _ in range(20)]
            for n, client in enumerate(clients):
                client.send(b"client %d" % n)
            assert [client.recv() for client in clients] == [b"client %d" % n for n in range(20)]
            for client in clients:
                client.close()
            forwarder = forwarder_of(relay)
            wait_until(lambda: relay.stats.connections_open == 0, what="the relayed connections to end")
            assert forwarder.relayed == 20 and forwarder.failed == 0
            assert (
                forwarder.bytes_up == forwarder.bytes_down == sum(len(b"client %d\n" % n) for n in range(20))
            )


@ENGINES
def test_a_half_close_reaches_the_target_and_its_answer_comes_back(engine: str) -> None:
    """`echo ... | nc relay`: the client's end is passed on; the target answers everything
    it was sent, then closes, and so does the relay."""
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as target:
        with relaying(target.url, engine=engine) as relay:
            with socket.create_connection(relay.addresses[0][:2], timeout=WAIT) as sock:
                sock.sendall(b"".join(b"line %d\n" % n for n in range(100)))
                sock.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
            assert received == b"".join(b"line %d\n" % n for n in range(100))


@ENGINES
def test_megabytes_both_ways_through_small_buffers(engine: str) -> None:
    """8 MiB up and echoed back while still uploading: the relay holds little of it at a
    time (backpressure both ways) and every byte arrives in order."""
    size = 8 << 20
    payload = os.urandom(size)
    limits = sk.Limits(write_buffer_high=64 << 10, write_buffer_low=16 << 10)
    with sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Raw()).start() as target:
        with relaying(target.url, engine=engine, limits=limits) as relay:
            with socket.create_connection(relay.addresses[0][:2], timeout=WAIT) as sock:
                received = bytearray()

                def read() -> None:
                    while len(received) < size and (chunk := sock.recv(1 << 16)):
                        received.extend(chunk)

                reader = threading.Thread(target=read)
                reader.start()
                sock.sendall(payload)
                reader.join(WAIT * 4)
            assert bytes(received) == payload


@ENGINES
def test_tls_termination_and_origination(engine: str, test_pki: tuple[str, str]) -> None:
    ca, cert = test_pki
    with sk.Server("tls://127.0.0.1:0", echo, codec=sk.Lines(), tls=server_context(cert)).start() as target:
        # the client speaks TLS to the relay, the relay speaks TLS (verified) to the target
        with relaying(
            target.url,
            "tls://127.0.0.1:0",
            engine=engine,
            tls=client_context(ca),
            listen_tls=server_context(cert),
        ) as relay:
            with sk.connect(relay.url, codec=sk.Lines(), tls=client_context(ca), timeout=WAIT) as client:
                assert client.request(b"secret both ways") == b"secret both ways"
        # a target whose certificate the relay does not trust: the client is closed, the
        # relay says why, and counts it
        with relaying(target.url, engine=engine) as relay:
            with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                with pytest.raises(sk.ClosedError):
                    client.request(b"anyone?")
            assert forwarder_of(relay).failed == 1


@ENGINES
def test_unix_on_either_side(engine: str, short_tmp: str) -> None:
    with sk.Server(f"unix://{short_tmp}/target.sock", echo, codec=sk.Lines()).start() as target:
        with relaying(target.url, f"unix://{short_tmp}/relay.sock", engine=engine) as relay:
            with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"over unix") == b"over unix"

    def whoami(message: bytes, conn: sk.Connection) -> bytes:
        return f"{conn.peer[0]}".encode()

    # a unix client has no address to pass on: the header says LOCAL (v2), and the target
    # keeps the socket's own peer, the relay
    with sk.Server("tcp://127.0.0.1:0?proxy=v2", whoami, codec=sk.Lines()).start() as target:
        with relaying(
            target.url, f"unix://{short_tmp}/relay2.sock", engine=engine, proxy_protocol="v2"
        ) as relay:
            with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"who?") == b"127.0.0.1"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_proxy_header_names_the_relays_client(version: str) -> None:
    def whoami(message: bytes, conn: sk.Connection) -> bytes:
        return f"{conn.peer[0]}:{conn.peer[1]}".encode()

    with sk.Server(f"tcp://127.0.0.1:0?proxy={version}", whoami, codec=sk.Lines()).start() as target:
        with relaying(target.url, proxy_protocol=version) as relay:
            with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                me = client.sock.getsockname()
                assert client.request(b"who am I?") == f"{me[0]}:{me[1]}".encode()


def test_an_unreachable_target_closes_the_client_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="socketkit"), relaying(f"tcp://127.0.0.1:{free}") as relay:
        with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert list(client) == []
            me = client.sock.getsockname()[1]
        wait_until(lambda: forwarder_of(relay).failed == 1, what="the failure to be counted")
    said = [r.getMessage() for r in caplog.records if "relay to" in r.getMessage()]
    assert said and f":{me}: relay to tcp://127.0.0.1:{free} failed: connection refused" in said[0]


def test_a_stop_lets_an_answer_in_flight_come_back() -> None:
    """The relay is stopped while the target still works on a request: the target's write
    side is shut, its answer comes back, then both close, within the grace period."""
    working = threading.Event()
    release = threading.Event()

    @sk.blocking
    def slow(message: bytes, conn: sk.Connection) -> bytes:
        working.set()
        release.wait(WAIT)
        return b"done: " + message

    with sk.Server("tcp://127.0.0.1:0", slow, codec=sk.Lines(), engine="pool").start() as target:
        relay = relay_server("tcp://127.0.0.1:0", target.url, limits=sk.Limits(grace=WAIT)).start()
        with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
            client.send(b"job")
            assert working.wait(WAIT)
            stopper = threading.Thread(target=relay.stop)
            stopper.start()
            wait_until(lambda: not relay.addresses or relay.stats.connections_open == 1, what="the stop")
            release.set()
            assert client.recv() == b"done: job"
            stopper.join(WAIT)
            assert not stopper.is_alive()


def test_bad_arguments_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="a stream relay's target is tcp://, tls:// or unix://"):
        Forwarder("udp://127.0.0.1:53")
    with pytest.raises(ValueError, match="proxy_protocol must be v1 or v2"):
        Forwarder("tcp://127.0.0.1:80", proxy_protocol="v3")
    with pytest.raises(ValueError, match="is for a listener"):
        Forwarder("tcp://127.0.0.1:80?backlog=4")
    with pytest.raises(TypeError, match="async handlers are awaited on engine='asyncio' or 'uvloop'"):
        relay_server("tcp://127.0.0.1:0", "tcp://127.0.0.1:80", engine="epoll")


@contextlib.contextmanager
def cli_relay(*args: str) -> Iterator[str]:
    """`socketkit relay ARGS`; yields the URL it serves on. Stopped with SIGINT."""
    proc = subprocess.Popen([*SK, "relay", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"serving (\S+) \(engine", line)
        assert match, line
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert re.search(r"stopped; relayed \d+ (connection|client)\(s\)", err), err


def test_curl_and_socat_through_the_cli_relay() -> None:
    with cli_server("hello", "-l", "tcp://127.0.0.1:0") as (_, urls):
        with cli_relay("127.0.0.1:0", urls[0]) as relay:
            host_port = relay.split("://", 1)[1]
            out = subprocess.run(
                [tool("curl"), "-sS", f"http://{host_port}/", f"http://{host_port}/again"],
                capture_output=True,
                text=True,
                timeout=WAIT,
                check=True,
            )
            assert out.stdout == "Hello, world!\nHello, world!\n"
            request = (
                b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"  # socat half-closes after it; the answer comes back
            )
            out2 = subprocess.run(
                [tool("socat"), "-t", "5", "-", f"TCP:{host_port}"],
                input=request,
                capture_output=True,
                timeout=WAIT,
                check=True,
            )
            assert out2.stdout.startswith(b"HTTP/1.1 200 OK") and out2.stdout.endswith(b"Hello, world!\n")


def test_haproxy_reads_the_proxy_header_the_relay_sends(tmp_path: Any) -> None:
    """HAProxy (accept-proxy) answers with the source address it read from the relay's
    PROXY v2 header: the relay's client, not the relay."""
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"
        f"frontend front\n  bind 127.0.0.1:{port} accept-proxy\n"
        '  http-request return status 200 content-type text/plain lf-string "from %[src]:%[src_port]\\n"\n'
    )
    proc = subprocess.Popen(
        [tool("haproxy"), "-db", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with relaying(f"tcp://127.0.0.1:{port}", proxy_protocol="v2") as relay:
            wait_until(lambda: _answers(port), what="haproxy to listen")
            with socket.create_connection(relay.addresses[0][:2], timeout=WAIT) as sock:
                me = sock.getsockname()[1]
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply
            assert reply.endswith(b"from 127.0.0.1:%d\n" % me), reply
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_cli_usage_errors_are_one_line_exit_2() -> None:
    for args, said in [
        (["tls://127.0.0.1:0", "127.0.0.1:80"], "needs a certificate: add --tls-cert FILE"),
        (["udp://127.0.0.1:0", "127.0.0.1:80"], "takes datagrams, TARGET tcp://127.0.0.1:80 does not"),
        (["127.0.0.1:0", "udp://127.0.0.1:53"], "takes streams, TARGET udp://127.0.0.1:53 does not"),
        (["udp://127.0.0.1:0", "udp://127.0.0.1:53", "--proxy-protocol", "v1"], "for stream relays"),
        (["udp://127.0.0.1:0", "udp://239.1.2.3:5000"], "one peer, not a group"),
        (["127.0.0.1:0", "127.0.0.1:80", "-o", "a.log", "-x", "b.log"], "exclude each other"),
        (["127.0.0.1:0", "127.0.0.1:80", "--tls-ca", "x.pem"], "need --tls or a tls:// TARGET"),
    ]:
        result = subprocess.run(
            [*SK, "relay", *args], capture_output=True, text=True, timeout=WAIT, check=False
        )
        assert result.returncode == 2, result.stderr
        assert said in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_the_session_log_heads_each_chunk_with_its_client(tmp_path: Any) -> None:
    """relay -x: one file for every client, each chunk headed by the client it crossed for
    and its direction (up to the target, down to the client), with offsets of its own."""
    path = tmp_path / "relay.hex"
    with open(path, "wb") as file, sk.Server("tcp://127.0.0.1:0", echo, codec=sk.Lines()).start() as target:
        with relaying(target.url, log=SessionLog(file, hex_dump=True)) as relay:
            with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as a:
                with sk.connect(relay.url, codec=sk.Lines(), timeout=WAIT) as b:
                    assert a.request(b"from a") == b"from a"
                    assert b.request(b"from b, longer") == b"from b, longer"
                    names = [f"tcp://127.0.0.1:{c.sock.getsockname()[1]}" for c in (a, b)]
    text = path.read_text()
    for name, line in zip(names, [b"from a\n", b"from b, longer\n"], strict=True):
        for arrow, verb in [(">", "up"), ("<", "down")]:
            header = f"{name} {verb} {len(line)} byte(s), from 0 to {len(line) - 1}"
            assert re.search(f"^{arrow} \\S+ \\S+ {re.escape(header)}$", text, re.M), text
    assert "66 72 6F 6D 20 61 0A" in text  # "from a\n", as hex


def datagram_forwarder_of(server: sk.Server) -> DatagramForwarder:
    handler = server.handler.target
    assert isinstance(handler, DatagramForwarder)
    return handler


def whose(message: bytes, conn: sk.Connection) -> bytes:
    """The target's answer names the address the datagram came from: the client's route."""
    return message + b" via " + str(conn.peer).encode()


@contextlib.contextmanager
def datagram_relaying(target: str, listen: str = "udp://127.0.0.1:0", **options: Any) -> Iterator[sk.Server]:
    with relaying(target, listen, **options) as relay:
        try:
            yield relay
        finally:
            relay.stop()
            datagram_forwarder_of(relay).close()


@ENGINES
def test_datagrams_each_client_gets_its_own_answers_from_a_route_of_its_own(engine: str) -> None:
    with sk.Server("udp://127.0.0.1:0", whose, codec=sk.Lines()).start() as target:
        with datagram_relaying(target.url, engine=engine) as relay:
            clients = [sk.DatagramClient(relay.url, codec=sk.Lines(), timeout=WAIT) for _ in range(3)]
            answers = [
                [client.request(b"%d.%d" % (n, k)) for k in range(3)] for n, client in enumerate(clients)
            ]
            routes = set()
            for n, said in enumerate(answers):
                assert [a.split(b" via ")[0] for a in said] == [b"%d.%d" % (n, k) for k in range(3)]
                assert len({a.split(b" via ")[1] for a in said}) == 1  # one route per client...
                routes.add(said[0].split(b" via ")[1])
            assert len(routes) == 3  # ...its own
            forwarder = datagram_forwarder_of(relay)
            assert forwarder.relayed == forwarder.routes == 3 and forwarder.failed == 0
            assert forwarder.bytes_up == sum(len(b"0.0\n") for _ in range(9))
            for client in clients:
                client.close()


def test_unixgram_on_either_side(short_tmp: str) -> None:
    with sk.Server(f"unixgram://{short_tmp}/target.sock", echo, codec=sk.Lines()).start() as target:
        with datagram_relaying(target.url, f"unixgram://{short_tmp}/relay.sock") as relay:
            with sk.DatagramClient(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(b"over unixgram") == b"over unixgram"


def test_an_idle_route_is_closed_and_the_next_datagram_opens_another() -> None:
    with sk.Server("udp://127.0.0.1:0", whose, codec=sk.Lines()).start() as target:
        with datagram_relaying(target.url, limits=sk.Limits(idle_timeout=0.2)) as relay:
            forwarder = datagram_forwarder_of(relay)
            with sk.DatagramClient(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                first = client.request(b"one")
                wait_until(lambda: forwarder.routes == 0, what="the idle route to close")
                second = client.request(b"two")
            assert first.split(b" via ")[1] != second.split(b" via ")[1]
            assert forwarder.relayed == 2


def test_clients_past_max_connections_are_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sk.Server("udp://127.0.0.1:0", echo, codec=sk.Lines()).start() as target:
        with caplog.at_level(logging.WARNING, logger="socketkit"):
            with datagram_relaying(target.url, limits=sk.Limits(max_connections=1)) as relay:
                forwarder = datagram_forwarder_of(relay)
                with sk.DatagramClient(relay.url, codec=sk.Lines(), timeout=WAIT) as first:
                    assert first.request(b"first") == b"first"
                    with sk.DatagramClient(relay.url, codec=sk.Lines(), timeout=WAIT) as second:
                        second.send(b"second")
                        wait_until(lambda: forwarder.failed == 1, what="the drop to be counted")
                    assert first.request(b"still served") == b"still served"
    assert any("1 clients relayed at once (max_routes)" in r.getMessage() for r in caplog.records)


def test_a_target_that_refuses_ends_the_route_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with caplog.at_level(logging.INFO, logger="socketkit"):
        with datagram_relaying(f"udp://127.0.0.1:{free}") as relay:
            forwarder = datagram_forwarder_of(relay)
            with sk.DatagramClient(relay.url, codec=sk.Lines(), timeout=WAIT) as client:
                client.send(b"anyone?")
                wait_until(lambda: forwarder.failed == 1 and forwarder.routes == 0, what="the refusal")
    said = [r.getMessage() for r in caplog.records if "relay to" in r.getMessage()]
    assert said and f"relay to udp://127.0.0.1:{free} failed: Connection refused" in said[0], said


def test_datagram_relays_refuse_what_they_cannot_keep() -> None:
    for listen, target, options, said in [
        ("udp://127.0.0.1:0", "tcp://127.0.0.1:80", {}, "a stream has no datagram boundaries"),
        ("tcp://127.0.0.1:0", "udp://127.0.0.1:53", {}, "a stream has no datagram boundaries"),
        (["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], "udp://127.0.0.1:53", {}, "on streams or on datagrams"),
        ("udp://127.0.0.1:0", "udp://127.0.0.1:53", {"proxy_protocol": "v1"}, "for a stream relay"),
        (
            "udp://127.0.0.1:0",
            "udp://255.255.255.255:53?broadcast=1",
            {},
            "one peer, not a group or broadcast",
        ),
        ("udp://127.0.0.1:0", "udp://127.0.0.1:53", {"engine": "epoll"}, "use engine='asyncio' or 'uvloop'"),
        ("udp://127.0.0.1:0", "udp://127.0.0.1:53", {"workers": 2}, "leave by different routes"),
    ]:
        with pytest.raises(ValueError, match=re.escape(said)):
            relay_server(listen, target, **options)


def test_socat_through_the_cli_datagram_relay_with_a_hexdump(tmp_path: Any) -> None:
    path = tmp_path / "relay.hex"
    with cli_server("echo", "-l", "udp://127.0.0.1:0") as (_, urls):
        with cli_relay("udp://127.0.0.1:0", urls[0], "-x", str(path)) as relay:
            out = subprocess.run(
                [tool("socat"), "-t", "5", "-T", "5", "-", f"UDP:{relay.split('://', 1)[1]}"],
                input=b"ping over udp\n",
                capture_output=True,
                timeout=WAIT,
                check=True,
            )
            assert out.stdout == b"ping over udp\n"
    text = path.read_text()
    assert re.search(r"^> .* udp://127\.0\.0\.1:\d+ up 14 byte\(s\), from 0 to 13$", text, re.M), text
    assert re.search(r"^< .* udp://127\.0\.0\.1:\d+ down 14 byte\(s\), from 0 to 13$", text, re.M), text
