"""The built-in services, through the library, on several engines."""

from __future__ import annotations

import email.utils
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import socketkit as sk
from conftest import CONCURRENT, until_they_meet, wait_until
from socketkit.services import SERVICES, load_service
from socketkit.services.chargen import LINE_LENGTH, PRINTABLE
from socketkit.services.clock import EPOCH_OFFSET

WAIT = 10.0
ENGINES = ["threads", "epoll", "iterative"]


def serve(name: str, engine: str, datagrams: bool = False) -> sk.Server:
    service = load_service(name)
    urls = ["tcp://127.0.0.1:0"] + (["udp://127.0.0.1:0"] if datagrams else [])
    return sk.Server(urls, service.handler, codec=service.codec, engine=engine).start()


def read_all(url: str) -> bytes:
    """Everything the server sends until it closes."""
    with sk.connect(url, timeout=WAIT) as client:
        return b"".join(client)


def test_every_registered_service_loads() -> None:
    for name in SERVICES:
        assert load_service(name).name


@pytest.mark.parametrize("engine", ENGINES)
def test_echo_and_discard(engine: str) -> None:
    with serve("echo", engine, datagrams=True) as server:
        with sk.connect(server.url, timeout=WAIT) as client:
            assert client.request(b"echo me") == b"echo me"
        with sk.DatagramClient(server.urls[1], timeout=WAIT) as client:
            assert client.request(b"udp echo") == b"udp echo"
    with serve("discard", engine) as server:
        with sk.connect(server.url, timeout=WAIT) as client:
            client.send(b"into the void")
            client.shutdown_write()
            assert list(client) == []
        assert server.stats.bytes_in == 13 and server.stats.bytes_out == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_daytime_time_and_qotd_send_once_then_close(engine: str) -> None:
    with serve("daytime", engine, datagrams=True) as server:
        text = read_all(server.url)
        assert text.endswith(b"\r\n")
        parsed = email.utils.parsedate_to_datetime(text.decode().strip())
        assert abs(parsed.timestamp() - time.time()) < 60
        with sk.DatagramClient(server.urls[1], timeout=WAIT) as client:
            assert client.request(b"").endswith(b"GMT\r\n")
    with serve("time", engine, datagrams=True) as server:
        raw = read_all(server.url)
        assert len(raw) == 4
        assert abs(int.from_bytes(raw, "big") - EPOCH_OFFSET - time.time()) < 60
    with serve("qotd", engine) as server:
        quote = read_all(server.url)
        assert 0 < len(quote) < 512 and quote.endswith(b"\r\n")
        assert read_all(server.url) != quote  # the next client gets the next quote


@pytest.mark.parametrize("engine", ["threads", "epoll", "select", "iterative"])
def test_chargen_streams_the_pattern_until_the_client_closes(engine: str) -> None:
    with serve("chargen", engine, datagrams=True) as server:
        with sk.connect(server.url, timeout=WAIT) as client:
            data = b""
            while len(data) < 500_000:
                data += client.recv()
        lines = data.split(b"\r\n")[:-1]
        for n, line in enumerate(lines[:300]):
            start = n % len(PRINTABLE)
            assert line == (PRINTABLE * 2)[start : start + LINE_LENGTH]
        with sk.DatagramClient(server.urls[1], timeout=WAIT) as dgram:
            first, second = dgram.request(b"x"), dgram.request(b"x")
            assert first.startswith(b' !"#') and second.startswith(b'!"#$')
    assert server.stats.errors.get("handler") is None


@pytest.mark.parametrize("engine", ["threads", "epoll"])
def test_chargen_is_paced_by_a_slow_reader(engine: str) -> None:
    """A client that stops reading stops the stream: the server's memory does not grow."""
    limits = sk.Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024)
    service = load_service("chargen")
    with sk.Server("tcp://127.0.0.1:0", service.handler, engine=engine, limits=limits).start() as server:
        host, port = server.addresses[0]
        with socket.create_connection((host, port), timeout=WAIT) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.recv(100)
            sent_before = -1
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:  # wait until the server is blocked by us
                sent = server.stats.bytes_out
                if sent == sent_before:
                    break
                sent_before = sent
                threading.Event().wait(0.2)
            # Paced: what left the server fits in the kernel's buffers plus our one mark.
            # An unpaced producer would have pushed gigabytes by now.
            bound = _max_socket_buffer("tcp_wmem") + _max_socket_buffer("tcp_rmem") + 64 * 1024 + 32 * 1024
            assert server.stats.bytes_out < bound


def _max_socket_buffer(name: str) -> int:
    with open(f"/proc/sys/net/ipv4/{name}") as f:
        return int(f.read().split()[2])


@pytest.mark.parametrize("engine", ["threads", "epoll", "poll"])
def test_broker_relays_lines_to_every_other_client(engine: str) -> None:
    service = load_service("broker")
    broker = service.handler
    with sk.Server("tcp://127.0.0.1:0", broker, codec=service.codec, engine=engine).start() as server:
        clients = [sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) for _ in range(3)]
        try:
            wait_until(lambda: broker.members == 3, what="all three clients to join")
            clients[0].send(b"hello from 0")
            assert clients[1].recv() == b"hello from 0"
            assert clients[2].recv() == b"hello from 0"
            clients[2].send(b"hello from 2")
            assert clients[0].recv() == b"hello from 2"
            assert clients[1].recv() == b"hello from 2"
        finally:
            for client in clients:
                client.close()


@pytest.mark.parametrize("engine", CONCURRENT)
def test_line_and_websocket_members_share_one_broker_each_in_its_own_form(engine: str) -> None:
    broker = load_service("broker").handler
    with (
        sk.Server("tcp://127.0.0.1:0", broker, codec=sk.Lines(), engine=engine).start() as lines_server,
        sk.Server("tcp://127.0.0.1:0", broker, codec=sk.WebSocket(), engine=engine).start() as ws_server,
    ):
        host, port = ws_server.addresses[0][:2]
        with (
            sk.connect(lines_server.url, codec=sk.Lines(), timeout=WAIT) as line,
            sk.connect(f"ws://{host}:{port}/", timeout=WAIT) as ws,
            sk.connect(f"ws://{host}:{port}/", timeout=WAIT) as ws2,
        ):
            wait_until(lambda: broker.members == 3, what="all three to join")
            line.send("from a line, é".encode())
            assert ws.recv() == ws2.recv() == "from a line, é"  # a line is text to a WebSocket
            ws.send("two lines\nin one message")
            assert [line.recv(), line.recv()] == [b"two lines", b"in one message"]
            assert ws2.recv() == "two lines\nin one message"
            ws2.send(b"\x00binary")  # binary stays binary between WebSocket members
            assert ws.recv() == b"\x00binary"
            assert line.recv() == b"\x00binary"
        assert not lines_server.stats.errors and not ws_server.stats.errors


@pytest.mark.parametrize("engine", ["threads", "epoll"])
def test_broker_cuts_off_a_slow_client_without_slowing_the_others(engine: str) -> None:
    limits = sk.Limits(write_buffer_high=32 * 1024, write_buffer_low=8 * 1024)
    service = load_service("broker")
    broker = service.handler
    with sk.Server(
        "tcp://127.0.0.1:0", broker, codec=sk.Lines(), engine=engine, limits=limits
    ).start() as server:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        slow.connect(server.addresses[0])
        with (
            sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as talker,
            sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as listener,
        ):
            wait_until(lambda: broker.members == 3, what="all three clients to join")
            line = b"x" * 32768
            for n in range(640):  # 20 MB: far more than the kernel buffers of the slow client
                talker.send(line)
                assert listener.recv() == line, f"message {n} did not arrive"
            assert server.stats.errors.get("limit") == 1, server.stats.errors
        slow.close()


def test_serve_broker_ws_listen_puts_line_and_websocket_clients_in_one_room() -> None:
    from test_cli import SK

    proc = subprocess.Popen(
        [*SK, "serve", "broker", "-l", "tcp://127.0.0.1:0", "--ws-listen", "tcp://127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        found = [
            re.search(r"serving (\S+) \(engine \w+, codec (\w+)", proc.stderr.readline()) for _ in (1, 2)
        ]
        urls = {match.group(2): match.group(1) for match in found if match}
        assert set(urls) == {"lines", "ws"}, found
        with (
            sk.connect(urls["lines"], codec=sk.Lines(), timeout=WAIT) as line,
            sk.connect(urls["ws"].replace("tcp://", "ws://") + "/", timeout=WAIT) as ws,
        ):
            until_they_meet(line, ws, b"probe", "probe")
            ws.send("hello, line")
            assert line.recv() == b"hello, line"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0 and "stopped; served" in err, err
    for args, said in [
        (
            ["broker", "--codec", "ws", "--ws-listen", "tcp://127.0.0.1:0"],
            "its codec is WebSocket, so use -l",
        ),
        (["broker", "--workers", "2", "--ws-listen", "tcp://127.0.0.1:0"], "leave out --workers"),
    ]:
        out = subprocess.run([*SK, "serve", *args], capture_output=True, text=True, timeout=WAIT, check=False)
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, out.stderr
