"""Endpoint URLs: parsing, binding, unix socket files, dual-stack."""

from __future__ import annotations

import os
import socket
import threading

import pytest

import socketkit as sk
from socketkit import endpoints
from socketkit.endpoints import DEFAULT_BACKLOG, bind, parse


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path"),
    [
        ("tcp://127.0.0.1:8888", "tcp", "127.0.0.1", 8888, ""),
        ("tcp://[::1]:0", "tcp", "::1", 0, ""),
        ("tcp://*:80", "tcp", "", 80, ""),
        ("TCP://localhost:65535", "tcp", "localhost", 65535, ""),
        ("udp://127.0.0.1:9999", "udp", "127.0.0.1", 9999, ""),
        ("unix:///run/app.sock", "unix", "", 0, "/run/app.sock"),
        ("unix://@abstract-name", "unix", "", 0, "\0abstract-name"),
        ("unixgram:///tmp/dg.sock", "unixgram", "", 0, "/tmp/dg.sock"),
    ],
)
def test_parse_good_urls(url: str, scheme: str, host: str, port: int, path: str) -> None:
    endpoint = parse(url)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.path) == (scheme, host, port, path)
    assert endpoint.backlog == DEFAULT_BACKLOG
    assert parse(endpoint.url) == endpoint  # the URL round-trips


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("tcp://127.0.0.1", "no port"),
        ("tcp://127.0.0.1:65536", "0 to 65535"),
        ("tcp://127.0.0.1:-1", "0 to 65535"),
        ("tcp://127.0.0.1:http", "0 to 65535"),
        ("ftp://127.0.0.1:21", "unknown scheme"),
        ("tcp://:8888", "no host .* tcp://127.0.0.1:8888 .* tcp://\\*:8888"),
        (":8888", "no host"),
        ("localhost", "no port"),
        ("unix://relative/path.sock", "absolute"),
        ("unix:relative.sock", "port"),
        ("unix://@", "empty abstract"),
        ("tcp://127.0.0.1:80/path", "unexpected path"),
        ("tcp://user@127.0.0.1:80", "user info"),
        ("tcp://127.0.0.1:80?colour=red", "unknown option"),
        ("tcp://127.0.0.1:80?backlog=0", "backlog"),
    ],
)
def test_parse_bad_urls_name_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(url)


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("8888", "did you mean tcp://127.0.0.1:8888"),  # a bare port
        ("tcp:/127.0.0.1:8888", "did you mean tcp://127.0.0.1:8888"),  # one slash
        ("tcp:127.0.0.1:8888", "did you mean tcp://127.0.0.1:8888"),  # none
        ("tcp://[::1:8888", r"unclosed '\[' .* write tcp://\[::1\]:8888"),
    ],
)
def test_a_near_miss_gets_what_to_write(url: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=suggestion) as raised:
        parse(url)
    assert "Invalid IPv6 URL" not in str(raised.value)


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:8888", "tcp://127.0.0.1:8888"),
        ("[::1]:8888", "tcp://[::1]:8888"),
        ("*:8888", "tcp://*:8888"),
        (("127.0.0.1", 8888), "tcp://127.0.0.1:8888"),
        (("", 8888), "tcp://*:8888"),  # socket.bind's "" is every interface
        (("::1", 8888, 0, 0), "tcp://[::1]:8888"),
        ("/run/app.sock", "unix:///run/app.sock"),
        ("@name", "unix://@name"),
    ],
)
def test_the_same_shorthands_everywhere(address: str | tuple[str, int], url: str) -> None:
    assert parse(address) == parse(url)
    datagram = parse(address, "udp")
    assert datagram.scheme == ("unixgram" if datagram.is_unix else "udp")


def test_server_and_client_take_a_tuple_and_host_port() -> None:
    with sk.Server(("127.0.0.1", 0), lambda m, c: m).start() as server:
        host, port = server.addresses[0][:2]
        with sk.connect(f"{host}:{port}", timeout=5) as client:
            assert client.request(b"tuple") == b"tuple"
    with sk.Server(("127.0.0.1", 0), lambda m, c: m, codec=sk.Lines()) as server:
        assert server.endpoints[0].scheme == "tcp"
    with pytest.raises(ValueError, match="socket address"):
        parse(("127.0.0.1", "80"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("tcp://*:0", "(every interface, IPv4 and IPv6)"),
        ("tcp://[::]:0", "(every interface, IPv6 only)"),
        ("tcp://0.0.0.0:0", "(every IPv4 interface)"),
        ("tcp://127.0.0.1:0", ""),
    ],
)
def test_the_log_says_which_wildcard_is_dual_stack(url: str, described: str) -> None:
    listener = bind(parse(url))
    try:
        assert listener.described == f"{listener.url} {described}".strip()
    finally:
        listener.close()


def test_a_unix_permission_error_names_the_directory_not_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from socketkit import endpoints

    def refused(endpoint: object) -> socket.socket:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(endpoints, "_bind_unix", refused)
    with pytest.raises(sk.BindError, match="pick a directory you can write to") as info:
        bind(parse("unix:///root/app.sock"))
    assert "port" not in str(info.value)


def test_backlog_option() -> None:
    assert parse("tcp://127.0.0.1:0?backlog=16").backlog == 16


def test_listeners_get_reuseaddr_and_a_resolved_url() -> None:
    listener = bind(parse("tcp://127.0.0.1:0"))
    try:
        assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert listener.url.startswith("tcp://127.0.0.1:") and not listener.url.endswith(":0")
    finally:
        listener.close()


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "tcp://[::1]:0", "tcp://*:0"])
def test_accepted_tcp_connections_have_nodelay(url: str) -> None:
    """Nagle off for every accepted connection: inherited from the listener, or set at accept."""
    listener = bind(parse(url))
    try:
        host = "::1" if "::" in listener.url or "*" in url else "127.0.0.1"
        with socket.create_connection((host, listener.url.rsplit(":", 1)[1]), timeout=5):
            sock, addr = listener.accept()
            with sock:
                if listener.set_nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Engine.accept does
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert sock.gettimeout() is None  # accepted sockets start in blocking mode
                assert addr[0] in ("127.0.0.1", "::1")
                if "*" not in url:
                    assert listener.accepted_local == sock.getsockname()
    finally:
        listener.close()


def test_accepted_sockets_block_even_under_a_default_timeout() -> None:
    """Engines rely on it: a Python timeout would cost a poll() before every recv."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)
    try:
        listener = bind(parse("tcp://127.0.0.1:0"))
        try:
            with socket.create_connection(("127.0.0.1", listener.url.rsplit(":", 1)[1])):
                listener.sock.setblocking(True)
                sock, _ = listener.accept()
                with sock:
                    assert sock.gettimeout() is None
        finally:
            listener.close()
    finally:
        socket.setdefaulttimeout(previous)


def test_connections_from_one_host_share_its_address_string(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten thousand idle connections from one client hold one copy of its address; the
    strings kept for that are bounded (new hosts past the bound start the set afresh)."""
    monkeypatch.setattr(endpoints, "_PEER_HOSTS_KEPT", 2)
    listener = bind(parse("tcp://127.0.0.1:0"))
    port = int(listener.url.rsplit(":", 1)[1])
    clients: list[socket.socket] = []
    accepted: list[socket.socket] = []
    hosts: list[str] = []
    try:
        for source in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.3"):
            clients.append(
                socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
            )
            sock, addr = listener.accept()
            accepted.append(sock)
            hosts.append(addr[0])
        assert hosts == ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.3"]
        assert hosts[0] is hosts[1] and hosts[3] is hosts[4]
        assert len(listener._peer_hosts) <= 2
    finally:
        for each in clients + accepted:
            each.close()
        listener.close()


def test_all_interfaces_is_dual_stack() -> None:
    if not socket.has_dualstack_ipv6():
        pytest.fail("this machine has no dual-stack IPv6; the test environment must provide it")
    with sk.Server("tcp://*:0", lambda m, c: m).start() as server:
        port = server.addresses[0][1]
        for host in ("127.0.0.1", "[::1]"):
            with sk.connect(f"tcp://{host}:{port}", timeout=5) as client:
                assert client.request(b"v4 and v6") == b"v4 and v6"


def test_ipv6_endpoint() -> None:
    with sk.Server("tcp://[::1]:0", lambda m, c: m).start() as server:
        assert server.url.startswith("tcp://[::1]:")
        with sk.connect(server.url, timeout=5) as client:
            assert client.request(b"six") == b"six"


def test_address_in_use_is_a_clear_bind_error() -> None:
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: m).start() as server:
        with pytest.raises(sk.BindError, match="in use"):
            sk.Server(server.url, lambda m, c: m).start()


def test_stale_unix_socket_is_replaced(short_tmp: str) -> None:
    path = os.path.join(short_tmp, "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays behind, nobody listens
    with sk.Server(f"unix://{path}", lambda m, c: m).start() as server:
        with sk.connect(server.url, timeout=5) as client:
            assert client.request(b"ok") == b"ok"
    assert not os.path.exists(path), "the server removes its socket file when it stops"


def test_live_unix_socket_is_not_replaced(short_tmp: str) -> None:
    path = os.path.join(short_tmp, "live.sock")
    with sk.Server(f"unix://{path}", lambda m, c: m).start():
        with pytest.raises(sk.BindError, match="another process is listening"):
            sk.Server(f"unix://{path}", lambda m, c: m).start()
        assert os.path.exists(path)


def test_a_stopped_server_with_a_full_backlog_is_not_waited_for(short_tmp: str) -> None:
    """A server stopped (SIGSTOP) with its backlog full: the probe of its socket file must not
    block the next server's start-up; the file is its, so the start is refused at once."""
    path = os.path.join(short_tmp, "stopped.sock")
    stopped = socket.socket(socket.AF_UNIX)
    stopped.bind(path)
    stopped.listen(0)  # never accepts: as a stopped process
    queued = []
    try:
        while True:  # fill its backlog
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            queued.append(client)
            try:
                client.connect(path)
            except BlockingIOError:
                break
        outcome: list[BaseException | None] = []

        def start() -> None:
            try:
                sk.Server(f"unix://{path}", lambda m, c: m).start().stop()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the start-up hung on the probe of a full backlog"
        (error,) = outcome
        assert isinstance(error, sk.BindError) and "another process is listening" in str(error)
        assert os.path.exists(path)
    finally:
        for client in queued:
            client.close()
        stopped.close()


def test_a_path_that_is_not_a_socket_is_never_removed(short_tmp: str) -> None:
    path = os.path.join(short_tmp, "precious.txt")
    with open(path, "w") as f:
        f.write("keep me")
    with pytest.raises(sk.BindError, match="not a socket"):
        sk.Server(f"unix://{path}", lambda m, c: m).start()
    with open(path) as f:
        assert f.read() == "keep me"


def test_abstract_unix_socket() -> None:
    name = f"socketkit-test-{os.getpid()}"
    with sk.Server(f"unix://@{name}", lambda m, c: m).start() as server:
        assert server.url == f"unix://@{name}"
        with sk.connect(server.url, timeout=5) as client:
            assert client.request(b"abstract") == b"abstract"


def test_failed_bind_releases_what_was_bound(short_tmp: str) -> None:
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: m).start() as taken:
        path = os.path.join(short_tmp, "first.sock")
        with pytest.raises(sk.BindError):
            sk.Server([f"unix://{path}", taken.url], lambda m, c: m).start()
        assert not os.path.exists(path)
