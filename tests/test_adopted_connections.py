"""Serving a socket that is already a connection: a ``socketpair()`` end, a connection the
caller accepted, or what systemd passes with ``Accept=yes`` (inetd style), on every engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

import socketkit as sk
from conftest import THREADED, echo, wait_until
from test_cli import WAIT, tool
from test_haproxy import free_port

SK = [sys.executable, "-m", "socketkit"]


def read_lines(sock: socket.socket, count: int) -> bytes:
    sock.settimeout(WAIT)
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed after {data!r}"
        data += chunk
    return data


def serve_in_thread(server: sk.Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.wait_started(WAIT)
    return thread


def test_a_socketpair_end_is_served_and_the_server_ends_with_it(engine: str) -> None:
    ours, theirs = socket.socketpair()
    seen: list[tuple[object, object]] = []

    def upper(message: bytes, conn: sk.Connection) -> bytes:
        seen.append((conn.peer, conn.local))
        return message.upper()

    server = sk.Server(ours, upper, codec=sk.Lines(), engine=engine)
    assert server.endpoints[0].connected
    assert server.url == "unix://(unnamed)"
    thread = serve_in_thread(server)
    with theirs:
        theirs.sendall(b"one\ntwo\n")
        assert read_lines(theirs, 2) == b"ONE\nTWO\n"
        theirs.shutdown(socket.SHUT_WR)
        assert theirs.recv(100) == b""  # our end of stream: the server closes its end
    thread.join(WAIT)
    assert not thread.is_alive(), "serve_forever() did not return once its only connection closed"
    assert not server.running
    assert server.stats.connections_total == 1
    assert len(seen) == 2


def test_an_accepted_connection_keeps_its_peer_and_leaves_the_listener_alone(
    engine: str, short_tmp: str
) -> None:
    path = f"{short_tmp}/app.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    tcp_listener = socket.create_server(("127.0.0.1", 0))
    with listener, tcp_listener:
        local = socket.create_connection(tcp_listener.getsockname(), timeout=WAIT)
        client_address = local.getsockname()
        unix = socket.socket(socket.AF_UNIX)
        unix.connect(path)
        accepted_tcp, _ = tcp_listener.accept()
        accepted_unix, _ = listener.accept()
        accepted_tcp.settimeout(3.0)  # the caller's timeout does not carry over: it is served blocking
        peers: list[object] = []

        def who(message: bytes, conn: sk.Connection) -> bytes:
            peers.append(conn.peer)
            return message

        server = sk.Server([accepted_tcp, accepted_unix], who, codec=sk.Lines(), engine=engine)
        assert [e.scheme for e in server.endpoints] == ["tcp", "unix"]
        thread = serve_in_thread(server)
        for client in (local, unix):
            with client:
                client.sendall(b"hi\n")
                assert read_lines(client, 1) == b"hi\n"
                client.shutdown(socket.SHUT_WR)
                assert client.recv(10) == b""
        thread.join(WAIT)
        assert not thread.is_alive()
        assert client_address in peers
        assert os.path.exists(path), "closing an adopted connection removed its listener's socket file"


def test_a_connection_served_beside_a_listener_does_not_end_the_server(engine: str) -> None:
    ours, theirs = socket.socketpair()
    with sk.Server([ours, "tcp://127.0.0.1:0"], echo, codec=sk.Lines(), engine=engine).start() as server:
        with theirs:
            theirs.sendall(b"paired\n")
            assert read_lines(theirs, 1) == b"paired\n"
            theirs.shutdown(socket.SHUT_WR)
            assert theirs.recv(10) == b""
        wait_until(lambda: server.stats.connections_open == 0, what="the adopted connection to close")
        assert server.running
        with sk.connect(server.urls[1], codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"still here") == b"still here"


def test_stop_drains_an_adopted_connection(engine: str) -> None:
    ours, theirs = socket.socketpair()
    server = sk.Server(ours, echo, codec=sk.Lines(), engine=engine)
    thread = serve_in_thread(server)
    with theirs:
        theirs.sendall(b"before stop\n")
        assert read_lines(theirs, 1) == b"before stop\n"
        server.stop(grace=WAIT)
        assert theirs.recv(10) == b""  # an idle connection ends at stop
    thread.join(WAIT)
    assert not thread.is_alive()


@pytest.mark.parametrize("engine", THREADED)
def test_a_blocking_handler_owns_an_adopted_connection(engine: str) -> None:
    ours, theirs = socket.socketpair()

    @sk.blocking
    def greet(conn: sk.Connection) -> None:
        name = conn.recv()
        conn.send(b"hello " + name)

    server = sk.Server(ours, greet, codec=sk.Lines(), engine=engine)
    thread = serve_in_thread(server)
    with theirs:
        theirs.sendall(b"pair\n")
        assert read_lines(theirs, 1) == b"hello pair\n"
        assert theirs.recv(10) == b""  # the handler returned: the connection closed
    thread.join(WAIT)
    assert not thread.is_alive()


def test_an_adopted_connection_over_the_per_ip_limit_is_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        clients = [socket.create_connection(listener.getsockname(), timeout=WAIT) for _ in range(2)]
        accepted = [listener.accept()[0] for _ in clients]
        limits = sk.Limits(max_connections_per_ip=1)
        server = sk.Server(accepted, echo, codec=sk.Lines(), limits=limits)
        thread = serve_in_thread(server)
        try:
            clients[1].settimeout(WAIT)
            assert clients[1].recv(10) == b""  # the second from 127.0.0.1 is refused
            clients[0].sendall(b"first\n")
            assert read_lines(clients[0], 1) == b"first\n"
            assert server.stats.connections_rejected == 1
        finally:
            for client in clients:
                client.close()
        thread.join(WAIT)
        assert not thread.is_alive()


def test_a_bare_unbound_socket_is_refused_clearly() -> None:
    with socket.socket(socket.AF_UNIX) as bare, pytest.raises(ValueError, match="neither bound"):
        sk.Server(bare, echo)


def test_systemd_accept_yes_serves_each_connection_in_a_process_of_its_own() -> None:
    """inetd style: systemd-socket-activate --accept passes each connection, and each
    socketkit process serves its one connection and exits."""
    port = free_port()
    proc = subprocess.Popen(
        [
            tool("systemd-socket-activate"),
            "-l",
            f"127.0.0.1:{port}",
            "--accept",
            *SK,
            "serve",
            "echo",
            "--codec",
            "lines",
            "-l",
            "systemd://",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    listening = proc.stderr.readline()
    try:
        assert f"127.0.0.1:{port}" in listening, listening
        for word in (b"first", b"second"):
            with sk.connect(f"tcp://127.0.0.1:{port}", codec=sk.Lines(), timeout=WAIT) as client:
                assert client.request(word) == word
                client.shutdown_write()
                with pytest.raises(sk.ClosedError):  # served, and that process ended the connection
                    client.recv()
        # The client sees the close before the process that served it says its last line:
        # read until both have said it, before the stop could cut the second one short.
        said = ""
        while said.count("stopped; served 1 connection(s)") < 2 and (line := proc.stderr.readline()):
            said += line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=WAIT)
    err = said + rest
    assert err.count("(one connection, from tcp://127.0.0.1:") == 2, listening + err
    assert err.count("stopped; served 1 connection(s)") == 2, err  # each process ended by itself
