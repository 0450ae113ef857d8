"""conn.sendfile: a file's bytes after what was sent before, on every engine and transport
(through TLS too), with a part of a file, a file object, the kernel's sendfile for blocking
handlers, and what is refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

import socketkit as sk
from conftest import THREADED

WAIT = 10.0
SIZE = 3 * 1024 * 1024 + 17  # past write_buffer_high many times over, and not a round number


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("sendfile") / "big.bin"
    path.write_bytes(data)
    return path, data


def read_all(url: str, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes."""
    with sk.connect(url, timeout=WAIT) as client:  # (raw: the bytes as they come)
        client.send(request)
        return b"".join(client)


def test_files_go_in_order_with_what_was_sent_on_every_engine_and_transport(
    engine: str, stream_url: str, big_file: tuple[Path, bytes]
) -> None:
    path, data = big_file

    class Server(sk.Protocol):
        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            conn.send(b"header")
            conn.sendfile(path)
            conn.sendfile(path, offset=10, count=100)
            conn.send(b"trailer")
            conn.close()  # flushes the files first

    with sk.Server(stream_url, Server(), codec=sk.Lines(), engine=engine).start() as server:
        received = read_all(server.url, b"get\n")
    assert received == b"header\n" + data + data[10:110] + b"trailer\n"


@pytest.mark.parametrize("engine", ["asyncio", "uvloop"])
def test_an_async_handler_sends_a_file_object(engine: str, big_file: tuple[Path, bytes]) -> None:
    path, data = big_file

    async def handler(message: bytes, conn: sk.Connection) -> None:
        with path.open("rb") as file:
            conn.sendfile(file, offset=SIZE - 1000)
            conn.close()

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=engine).start() as server:
        assert read_all(server.url, b"tail\n") == data[-1000:]


@pytest.mark.parametrize("engine", [name for name in THREADED if name != "pool"])
def test_a_blocking_handler_has_the_kernel_send_it(engine: str, big_file: tuple[Path, bytes]) -> None:
    path, data = big_file
    returned: list[int] = []

    @sk.blocking
    def handler(conn: sk.Connection) -> None:
        for message in conn:
            conn.send(b"size " + str(SIZE).encode())
            conn.sendfile(str(path))
            returned.append(conn.bytes_out)  # (sent by the time it returns)
            conn.send(b"done " + message)

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=engine).start() as server:
        with socket.create_connection(server.addresses[0][:2], timeout=WAIT) as sock:
            sock.sendall(b"one\n")
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(1 << 20):
                received += chunk
    header = b"size %d\n" % SIZE
    assert received == header + data + b"done one\n"
    assert returned == [len(header) + SIZE]


def test_on_a_pool_thread_it_says_what_to_do_instead(big_file: tuple[Path, bytes]) -> None:
    path, _ = big_file

    @sk.blocking
    def handler(message: bytes, conn: sk.Connection) -> bytes:
        try:
            conn.sendfile(path)
        except RuntimeError as exc:
            return str(exc).encode()
        return b"sent"

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine="pool").start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert b"a handler on a pool thread sends the file's bytes with conn.send" in client.request(b"x")


def test_a_missing_file_is_the_handlers_error_and_nothing_is_sent(tmp_path: Path) -> None:
    said: list[str] = []

    def handler(message: bytes, conn: sk.Connection) -> bytes:
        try:
            conn.sendfile(tmp_path / "missing.bin")
        except FileNotFoundError as exc:
            said.append(str(exc))
            return b"no such file"
        return b"sent"

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines()).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"x") == b"no such file"
    assert said and "missing.bin" in said[0]


def test_datagrams_and_bad_ranges_are_refused(big_file: tuple[Path, bytes]) -> None:
    path, _ = big_file
    said: list[str] = []

    def datagram(message: bytes, conn: sk.Connection) -> Any:
        try:
            conn.sendfile(path)
        except TypeError as exc:
            said.append(str(exc))
        return message

    def stream(message: bytes, conn: sk.Connection) -> Any:
        try:
            conn.sendfile(path, offset=-1)
        except ValueError as exc:
            said.append(str(exc))
        return message

    with sk.Server("udp://127.0.0.1:0", datagram, codec=sk.Lines()).start() as server:
        with sk.DatagramClient(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"x") == b"x"
    with sk.Server("tcp://127.0.0.1:0", stream, codec=sk.Lines()).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"y") == b"y"
    assert said == [
        "a datagram carries one message: sendfile is for streams",
        "sendfile: offset and count must not be negative",
    ]


def test_a_file_is_read_as_the_peer_takes_it_not_all_at_once(
    engine: str, big_file: tuple[Path, bytes]
) -> None:
    """However big the file, what the connection holds of it is about one write_buffer_high."""
    path, data = big_file
    limits = sk.Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024)
    held: list[int] = []

    class Server(sk.Protocol):
        def on_message(self, conn: sk.Connection, message: bytes) -> None:
            conn.sendfile(path)
            held.append(conn.write_buffer_size)
            conn.close()

    with sk.Server(
        "tcp://127.0.0.1:0", Server(), codec=sk.Lines(), engine=engine, limits=limits
    ).start() as server:
        assert read_all(server.url, b"get\n") == data
    assert held and held[0] <= limits.write_buffer_high
