"""socketkit.compat.socketserver: the standard library's documented behaviour, checked the
same way against both modules where they agree, and the documented differences."""

from __future__ import annotations

import inspect
import io
import os
import socket
import socketserver as stdlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import wait_until
from socketkit.compat import socketserver as compat
from socketkit.limits import Limits

WAIT = 10.0
BOTH = pytest.mark.parametrize("module", [stdlib, compat], ids=["stdlib", "compat"])


def serve_in_thread(server: Any, poll_interval: float = 0.5) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    thread.start()
    return thread


def stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    thread.join(WAIT)
    assert not thread.is_alive()
    server.server_close()


def exchange(address: Any, data: bytes, family: int = socket.AF_INET) -> bytes:
    """Send ``data``, end our side, and read until the server closes. A server that closes
    without reading what we sent (a refused request) resets the connection: that ends the
    reading too."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(address)
        received = b""
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError:
            raise
        except OSError:  # reset: the server is done with us
            pass
        return received


# -- the same API ----------------------------------------------------------------------------


def test_every_public_name_of_the_standard_module_is_there() -> None:
    for name in stdlib.__all__:
        assert name in compat.__all__, name
        ours, theirs = getattr(compat, name), getattr(stdlib, name)
        public = {attr for attr in dir(theirs) if not attr.startswith("_")}
        missing = {attr for attr in public if not hasattr(ours, attr)}
        assert not missing, f"{name} lacks {missing}"
        for attr in public:
            mine, original = getattr(ours, attr), getattr(theirs, attr)
            if callable(original) and not isinstance(original, type):
                assert (
                    inspect.signature(mine).parameters.keys() == inspect.signature(original).parameters.keys()
                ), f"{name}.{attr}"
    assert issubclass(compat.ThreadingTCPServer, compat.ThreadingMixIn)
    assert issubclass(compat.ForkingUnixStreamServer, compat.ForkingMixIn)
    assert issubclass(compat.ThreadingUnixDatagramServer, compat.UnixDatagramServer)


def test_the_documented_class_attributes_keep_their_defaults() -> None:
    for name in ("TCPServer", "UDPServer", "ThreadingMixIn", "ForkingMixIn", "StreamRequestHandler"):
        ours, theirs = getattr(compat, name), getattr(stdlib, name)
        for attr in (
            "address_family", "socket_type", "request_queue_size", "allow_reuse_address",
            "allow_reuse_port", "max_packet_size", "daemon_threads", "block_on_close",
            "max_children", "active_children", "rbufsize", "wbufsize", "disable_nagle_algorithm",
        ):  # fmt: skip
            if hasattr(theirs, attr):
                assert getattr(ours, attr) == getattr(theirs, attr), f"{name}.{attr}"
    assert compat.ForkingMixIn.timeout == stdlib.ForkingMixIn.timeout == 300
    assert compat.BaseServer.timeout is None
    # the documented difference: handlers wait for a silent client for a while, not forever
    assert stdlib.StreamRequestHandler.timeout is None
    assert compat.StreamRequestHandler.timeout == compat.BaseRequestHandler.timeout == Limits().idle_timeout


# -- the examples of the Python documentation, run against both modules -------------------------


@BOTH
def test_doc_example_tcp_server(module: ModuleType) -> None:
    class MyTCPHandler(module.BaseRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            self.data = self.request.recv(1024).strip()
            self.request.sendall(self.data.upper())

    with module.TCPServer(("localhost", 0), MyTCPHandler) as server:
        thread = serve_in_thread(server)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(WAIT)
            sock.connect(server.server_address)
            sock.sendall(bytes("hello world" + "\n", "utf-8"))
            received = str(sock.recv(1024), "utf-8")
        assert received == "HELLO WORLD"
        server.shutdown()
        thread.join(WAIT)


@BOTH
def test_doc_example_stream_request_handler(module: ModuleType) -> None:
    class MyTCPHandler(module.StreamRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            self.data = self.rfile.readline().strip()
            self.wfile.write(self.data.upper())

    with module.TCPServer(("127.0.0.1", 0), MyTCPHandler) as server:
        thread = serve_in_thread(server)
        assert exchange(server.server_address, b"hello world\n") == b"HELLO WORLD"
        server.shutdown()
        thread.join(WAIT)


@BOTH
def test_doc_example_udp_server(module: ModuleType) -> None:
    class MyUDPHandler(module.BaseRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            data = self.request[0].strip()
            sock = self.request[1]
            sock.sendto(data.upper(), self.client_address)

    with module.UDPServer(("127.0.0.1", 0), MyUDPHandler) as server:
        thread = serve_in_thread(server)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(WAIT)
            sock.sendto(b"hello datagram\n", server.server_address)
            assert sock.recv(1024) == b"HELLO DATAGRAM"
        server.shutdown()
        thread.join(WAIT)


@BOTH
def test_doc_example_asynchronous_mixins(module: ModuleType) -> None:
    class ThreadedTCPRequestHandler(module.BaseRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            data = str(self.request.recv(1024), "ascii")
            cur_thread = threading.current_thread()
            response = bytes(f"{cur_thread.name}: {data}", "ascii")
            self.request.sendall(response)

    class ThreadedTCPServer(module.ThreadingMixIn, module.TCPServer):  # type: ignore[name-defined,misc]
        pass

    def client(ip: str, port: int, message: str) -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(WAIT)
            sock.connect((ip, port))
            sock.sendall(bytes(message, "ascii"))
            return str(sock.recv(1024), "ascii")

    server = ThreadedTCPServer(("127.0.0.1", 0), ThreadedTCPRequestHandler)
    with server:
        ip, port = server.server_address
        server_thread = threading.Thread(target=server.serve_forever)
        server_thread.daemon = True
        server_thread.start()
        replies = [client(ip, port, f"Hello World {n}") for n in (1, 2, 3)]
        server.shutdown()
        server_thread.join(WAIT)
    for n, reply in enumerate(replies, 1):
        name, _, text = reply.partition(": ")
        assert text == f"Hello World {n}" and name != server_thread.name  # each on a thread of its own


# -- hooks: called at the documented points, in the same order as the standard library ----------


def recording(module: ModuleType, base: str) -> tuple[type, list[str]]:
    """A server class of ``module`` whose hooks record their calls, and the record."""
    calls: list[str] = []
    parent = getattr(module, base)

    class Recording(parent):  # type: ignore[misc,valid-type]
        timeout = 0.05

        def server_bind(self) -> None:
            calls.append("server_bind")
            super().server_bind()

        def server_activate(self) -> None:
            calls.append("server_activate")
            super().server_activate()

        def verify_request(self, request: Any, client_address: Any) -> bool:
            calls.append("verify_request")
            peer = request[0] if isinstance(request, tuple) else request.recv(16, socket.MSG_PEEK)
            return not peer.startswith(b"refuse")

        def process_request(self, request: Any, client_address: Any) -> None:
            calls.append("process_request")
            super().process_request(request, client_address)

        def finish_request(self, request: Any, client_address: Any) -> None:
            calls.append("finish_request")
            super().finish_request(request, client_address)

        def shutdown_request(self, request: Any) -> None:
            calls.append("shutdown_request")
            super().shutdown_request(request)

        def close_request(self, request: Any) -> None:
            calls.append("close_request")
            super().close_request(request)

        def handle_error(self, request: Any, client_address: Any) -> None:
            calls.append(f"handle_error {sys.exc_info()[0].__name__}")  # type: ignore[union-attr]

        def handle_timeout(self) -> None:
            calls.append("handle_timeout")

        def server_close(self) -> None:
            calls.append("server_close")
            super().server_close()

    return Recording, calls


def handler_class(module: ModuleType, calls: list[str], base: str = "StreamRequestHandler") -> type:
    class Handler(getattr(module, base)):  # type: ignore[misc]
        def setup(self) -> None:
            calls.append("setup")
            super().setup()

        def handle(self) -> None:
            calls.append("handle")
            line = self.rfile.readline()
            if line.startswith(b"fail"):
                raise ValueError("the handler failed")
            self.wfile.write(line.upper())

        def finish(self) -> None:
            calls.append("finish")
            super().finish()

    return Handler


def test_hooks_run_in_the_standard_librarys_order() -> None:
    records = {}
    for module in (stdlib, compat):
        server_class, calls = recording(module, "TCPServer")
        with server_class(("127.0.0.1", 0), handler_class(module, calls)) as server:
            for data in (b"hello\n", b"refuse\n", b"fail\n"):
                with socket.create_connection(server.server_address, timeout=WAIT) as sock:
                    sock.sendall(data)
                    server.handle_request()
                    reply = sock.recv(100)
                calls.append(f"reply {reply!r}")
            server.handle_request()  # nobody comes within server.timeout
        records[module.__name__] = calls
    assert records["socketkit.compat.socketserver"] == records["socketserver"]
    assert records["socketserver"][:4] == [
        "server_bind",
        "server_activate",
        "verify_request",
        "process_request",
    ]
    assert "handle_error ValueError" in records["socketserver"] and records["socketserver"][-2:] == [
        "handle_timeout",
        "server_close",
    ]


def test_threading_hooks_match_too() -> None:
    records = {}
    for module in (stdlib, compat):
        server_class, calls = recording(module, "ThreadingTCPServer")
        with server_class(("127.0.0.1", 0), handler_class(module, calls)) as server:
            thread = serve_in_thread(server, poll_interval=0.01)
            for data in (b"hello\n", b"refuse\n", b"fail\n"):
                exchange(server.server_address, data)
                wait_until(lambda c=calls: c[-1] == "close_request", what="the request to be closed")
            server.shutdown()
            thread.join(WAIT)
        records[module.__name__] = calls
    assert records["socketkit.compat.socketserver"] == records["socketserver"]


@BOTH
def test_bind_and_activate_false_leaves_binding_to_the_caller(module: ModuleType) -> None:
    server = module.TCPServer(("127.0.0.1", 0), module.BaseRequestHandler, bind_and_activate=False)
    try:
        server.allow_reuse_address = True
        server.allow_reuse_port = True
        server.server_bind()
        server.server_activate()
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        assert server.server_address[1] != 0 and server.fileno() == server.socket.fileno()
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    finally:
        server.server_close()
    assert server.socket.fileno() == -1


@BOTH
def test_a_failed_bind_closes_the_socket(module: ModuleType) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        made: list[socket.socket] = []

        class Server(module.TCPServer):  # type: ignore[name-defined,misc]
            def server_close(self) -> None:
                made.append(self.socket)
                super().server_close()

        with pytest.raises(OSError):
            Server(taken.getsockname(), module.BaseRequestHandler)
        assert made and made[0].fileno() == -1


@BOTH
def test_stream_files_buffering(module: ModuleType) -> None:
    """wfile writes go out at once by default (the client reads them while the handler still
    runs); with wbufsize they are buffered and flushed by finish()."""
    seen = threading.Event()

    class Unbuffered(module.StreamRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            self.wfile.write(b"early\n")
            assert seen.wait(WAIT)
            self.wfile.write(b"late\n")

    class Buffered(module.StreamRequestHandler):  # type: ignore[name-defined,misc]
        wbufsize = 65536

        def handle(self) -> None:
            assert self.wfile.write(b"held\n") == 5
            assert self.rfile.read() == b"all of it"

    with module.ThreadingTCPServer(("127.0.0.1", 0), Unbuffered) as server:
        thread = serve_in_thread(server)
        with socket.create_connection(server.server_address, timeout=WAIT) as sock:
            assert sock.recv(100) == b"early\n"
            seen.set()
            assert sock.recv(100) == b"late\n"
        stop(server, thread)
    with module.TCPServer(("127.0.0.1", 0), Buffered) as server:
        thread = serve_in_thread(server)
        assert exchange(server.server_address, b"all of it") == b"held\n"
        server.shutdown()
        thread.join(WAIT)


@BOTH
def test_datagram_request_handler_files(module: ModuleType) -> None:
    class Reverse(module.DatagramRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            self.wfile.write(self.rfile.read()[::-1])

    with module.ThreadingUDPServer(("127.0.0.1", 0), Reverse) as server:
        thread = serve_in_thread(server)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(WAIT)
            sock.sendto(b"stressed", server.server_address)
            assert sock.recv(100) == b"desserts"
        stop(server, thread)


@BOTH
def test_unix_stream_and_datagram_servers(module: ModuleType, short_tmp: str) -> None:
    class Upper(module.StreamRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    class Echo(module.DatagramRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            self.wfile.write(self.rfile.read())

    path = os.path.join(short_tmp, "stream.sock")
    with module.ThreadingUnixStreamServer(path, Upper) as server:
        thread = serve_in_thread(server)
        assert exchange(path, b"local\n", socket.AF_UNIX) == b"LOCAL\n"
        stop(server, thread)
    here, there = os.path.join(short_tmp, "client.sock"), os.path.join(short_tmp, "dgram.sock")
    with module.UnixDatagramServer(there, Echo) as server:
        thread = serve_in_thread(server)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(here)
            sock.settimeout(WAIT)
            sock.sendto(b"datagram", there)
            assert sock.recv(100) == b"datagram"
        stop(server, thread)


# -- the documented differences ------------------------------------------------------------------


def test_shutdown_returns_without_waiting_out_poll_interval() -> None:
    """serve_forever(poll_interval=600): the standard library's shutdown() would wait up to ten
    minutes for the loop to look at its flag; ours wakes the loop."""
    server = compat.TCPServer(("127.0.0.1", 0), compat.BaseRequestHandler)
    ticks: list[int] = []
    server.service_actions = lambda: ticks.append(1)  # type: ignore[method-assign]
    thread = serve_in_thread(server, poll_interval=600)
    assert exchange(server.server_address, b"") == b""  # the loop is serving
    done = threading.Thread(target=server.shutdown, daemon=True)
    done.start()
    done.join(WAIT)
    assert not done.is_alive(), "shutdown() waited for poll_interval"
    thread.join(WAIT)
    assert ticks  # service_actions still ran after each wake-up
    # the loop can run again after a shutdown, as in the standard library
    thread = serve_in_thread(server, poll_interval=600)
    assert exchange(server.server_address, b"") == b""
    server.shutdown()
    thread.join(WAIT)
    assert not thread.is_alive()
    server.server_close()


def test_threads_are_bounded_and_the_rest_wait_in_the_backlog() -> None:
    release = threading.Event()
    lock = threading.Lock()
    running, most, served = 0, 0, 0

    class Slow(compat.BaseRequestHandler):
        def handle(self) -> None:
            nonlocal running, most, served
            with lock:
                running += 1
                most = max(most, running)
            release.wait(WAIT)
            self.request.sendall(b"done")
            with lock:
                running -= 1
                served += 1

    class Server(compat.ThreadingTCPServer):
        max_threads = 2
        request_queue_size = 16

    with Server(("127.0.0.1", 0), Slow) as server:
        thread = serve_in_thread(server)
        clients = [socket.create_connection(server.server_address, timeout=WAIT) for _ in range(6)]
        wait_until(lambda: running == 2, what="two handlers to run")
        assert server._selector is not None
        listening = server._selector.get_map()  # a live view of what the loop waits on
        wait_until(lambda: server not in listening, what="the loop to stop accepting at max_threads")
        assert running == 2
        release.set()
        for client in clients:
            with client:
                assert client.recv(10) == b"done"
        wait_until(lambda: served == 6, what="every request to be handled")
        stop(server, thread)
    assert most == 2
    assert not server._workers().joinable  # finished threads are not kept


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs TCP_INFO (Linux) to know a client's rate")
def test_at_max_threads_clients_that_trickle_are_shed_for_a_newcomer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Slowloris against a bounded server: every thread held by a client that sends a byte
    now and then. A newcomer waiting in the backlog has the trickling clients shed (their
    input ended), so it is served, not left waiting as long as they trickle."""

    class Echo(compat.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    class Server(compat.ThreadingTCPServer):
        max_threads = 3
        shed_after = 0.3  # (the default waits longer before judging a client's rate)
        request_queue_size = 16

    with Server(("127.0.0.1", 0), Echo) as server:
        thread = serve_in_thread(server, poll_interval=0.1)
        trickling = [socket.create_connection(server.server_address, timeout=WAIT) for _ in range(3)]
        for sock in trickling:
            sock.sendall(b"x")  # a byte of a line whose rest comes a byte at a time
        wait_until(lambda: server._workers().running == 3, what="every thread taken")
        with socket.create_connection(server.server_address, timeout=WAIT) as newcomer:
            newcomer.sendall(b"hello\n")
            assert newcomer.makefile("rb").readline() == b"hello\n"
        for sock in trickling:
            with sock:
                assert (
                    sock.makefile("rb").read() == b"x"
                )  # its input ended: the handler's reply, then the end
        stop(server, thread)
    assert "shed" in capsys.readouterr().err


def test_server_close_joins_only_live_threads() -> None:
    class Quick(compat.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"ok")

    with compat.ThreadingTCPServer(("127.0.0.1", 0), Quick) as server:
        thread = serve_in_thread(server)
        for _ in range(50):
            assert exchange(server.server_address, b"") == b"ok"
        wait_until(lambda: server._workers().running == 0, what="the threads to end")
        assert not server._workers().joinable
        stop(server, thread)


@BOTH
@pytest.mark.parametrize("attribute", ["daemon_threads", "block_on_close"])
def test_server_close_leaves_threads_it_is_told_not_to_join(module: ModuleType, attribute: str) -> None:
    release, started = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []

    class Held(module.BaseRequestHandler):  # type: ignore[name-defined,misc]
        def handle(self) -> None:
            threads.append(threading.current_thread())
            started.set()
            release.wait(WAIT)

    class Server(module.ThreadingTCPServer):  # type: ignore[name-defined,misc]
        pass

    setattr(Server, attribute, attribute == "daemon_threads")  # daemon threads, or no blocking close
    server = Server(("127.0.0.1", 0), Held)
    thread = serve_in_thread(server)
    with socket.create_connection(server.server_address, timeout=WAIT):
        assert started.wait(WAIT)
        server.shutdown()
        thread.join(WAIT)
        server.server_close()  # returns with the handler still running
        assert threads[0].is_alive() and threads[0].daemon == (attribute == "daemon_threads")
        release.set()
    threads[0].join(WAIT)


def test_forking_udp_answers_from_a_child() -> None:
    class Pid(compat.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"%d" % os.getpid())

    with compat.ForkingUDPServer(("127.0.0.1", 0), Pid) as server:
        thread = serve_in_thread(server)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(WAIT)
            sock.sendto(b"who", server.server_address)
            assert int(sock.recv(100)) != os.getpid()
        wait_until(lambda: not server.active_children, what="the child to be reaped")
        stop(server, thread)


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of the processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append((int(entry.name), fields[0]))
    return found


def test_forking_reaps_every_child_at_once() -> None:
    class Upper(compat.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    with compat.ForkingTCPServer(("127.0.0.1", 0), Upper) as server:
        thread = serve_in_thread(server, poll_interval=600)  # no help from a periodic collect
        for n in range(12):
            assert exchange(server.server_address, b"child %d\n" % n) == b"CHILD %d\n" % n
        wait_until(lambda: not server.active_children, what="every child to be reaped")
        assert not [pid for pid, state in children_of(os.getpid()) if state == "Z"]
        stop(server, thread)


def test_forking_stops_accepting_at_max_children_and_serves_the_rest_after() -> None:
    class Upper(compat.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    class Server(compat.ForkingTCPServer):
        max_children = 2
        request_queue_size = 16

    with Server(("127.0.0.1", 0), Upper) as server:
        thread = serve_in_thread(server)
        clients = [socket.create_connection(server.server_address, timeout=WAIT) for _ in range(5)]
        for n, client in enumerate(clients):
            client.sendall(b"late %d\n" % n)
        for n, client in enumerate(clients):
            with client:
                assert client.recv(100) == b"LATE %d\n" % n
        wait_until(lambda: not server.active_children, what="every child to be reaped")
        stop(server, thread)


def test_a_silent_client_times_out_with_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    class Patient(compat.StreamRequestHandler):
        timeout = 0.2

        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

    class Endless(compat.StreamRequestHandler):
        timeout = None

        def handle(self) -> None:
            self.wfile.write(repr(self.connection.gettimeout()).encode())

    with compat.ThreadingTCPServer(("127.0.0.1", 0), Patient) as server:
        thread = serve_in_thread(server)
        with socket.create_connection(server.server_address, timeout=WAIT) as silent:
            assert silent.recv(10) == b""  # the handler gave up on us and closed
        assert exchange(server.server_address, b"still serving\n") == b"still serving\n"
        stop(server, thread)
    err = capfd.readouterr().err
    assert "timed out" in err and "Traceback" not in err
    with compat.TCPServer(("127.0.0.1", 0), Endless) as server:
        thread = serve_in_thread(server)
        assert exchange(server.server_address, b"") == b"None"
        server.shutdown()
        thread.join(WAIT)


def test_handle_error_still_prints_the_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    class Broken(compat.BaseRequestHandler):
        def handle(self) -> None:
            raise RuntimeError("on purpose")

    with compat.TCPServer(("127.0.0.1", 0), Broken) as server:
        with socket.create_connection(server.server_address, timeout=WAIT):
            server.handle_request()
    err = capfd.readouterr().err
    assert "Exception occurred during processing of request from" in err
    assert "RuntimeError: on purpose" in err


def test_a_program_runs_unchanged_with_one_import_swapped(tmp_path: Path) -> None:
    """The doc's TCP example as a program: the same output with either import."""
    program = """
import socket, threading
import socketserver

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())

with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.create_connection(server.server_address) as sock:
        sock.sendall(b"swapped\\n")
        print(sock.recv(100).decode().strip())
    server.shutdown()
"""
    outputs = []
    for line in ("import socketserver", "from socketkit.compat import socketserver"):
        script = tmp_path / "program.py"
        script.write_text(program.replace("import socketserver", line, 1))
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs == ["SWAPPED\n", "SWAPPED\n"]


def test_the_shutdown_benchmark_runs() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "bench/socketserver_shutdown.py", "--runs", "1", "--poll-interval", "0.05"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "| socketserver |" in result.stdout and "| socketkit.compat.socketserver |" in result.stdout


def test_writer_reports_bytes_like_the_standard_one() -> None:
    left, right = socket.socketpair()
    with left, right:
        writer = compat._SocketWriter(left)
        assert writer.writable() and writer.fileno() == left.fileno()
        assert writer.write(memoryview(b"abcd")[1:]) == 3
        assert right.recv(10) == b"bcd"
        assert isinstance(writer, io.BufferedIOBase)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    wait_until(lambda: threading.active_count() <= before, what="handler threads to end")
