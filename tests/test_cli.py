"""The socketkit command, driven for real: subprocesses, and peers no one here
wrote (curl, wrk, ncat, socat). Every server is on port 0; its URL is read from
its startup line."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import socketkit as sk
from conftest import peer_tool
from socketkit.cli import main

SK = [sys.executable, "-m", "socketkit"]
WAIT = 15


tool = peer_tool  # (the name the tests here and elsewhere use)


@contextmanager
def cli_server(*args: str, cwd: Path | None = None) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`socketkit serve ARGS` on free ports; yields (process, its URLs). Stops it with SIGINT."""
    proc = subprocess.Popen(
        [*SK, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"serving (.+?) \(engine", line)
        assert match, f"no startup line: {line!r}{proc.stderr.read() if proc.poll() is not None else ''}"
        yield proc, match.group(1).split(", ")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def host_port(url: str) -> tuple[str, str]:
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return host, port


def ncat_udp(host: str, port: str, line: bytes) -> bytes:
    """One datagram through ncat -u, and the first line back. ncat leaves when its
    stdin ends, so stdin stays open until the reply has arrived."""
    proc = subprocess.Popen([tool("ncat"), "-u", host, port], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line)
        proc.stdin.flush()
        return proc.stdout.readline()
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT)


def http(url: str) -> str:
    return url.replace("tcp://", "http://", 1) + "/"


def run(
    args: list[str], stdin: str | bytes | None = None, timeout: float = WAIT
) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(args, input=data, capture_output=True, timeout=timeout, check=False)


# -- errors: one line, exit 2 for usage, 1 for runtime ---------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "nosuchservice"], "neither a built-in service nor module:attr"),
        (["serve", "nosuchservice"], "the services: echo, discard"),
        (["serve", "ecoh"], "did you mean echo?"),
        (["serve", "echo", "-l", "8888"], "did you mean tcp://127.0.0.1:8888"),
        (["serve", "echo", "-l", "tcp://127.0.0.1"], "no port"),
        (["serve", "echo", "-l", "tcp://127.0.0.1:99999"], "0 to 65535"),
        (["send", "tcp://127.0.0.1:9?backlog=5", "hi"], "?backlog= is for a listener"),
        (["connect", "tcp://127.0.0.1:9?reuseport=1"], "?reuseport= is for a listener"),
        (["serve", "echo", "--engine", "gevent"], "'gevent' is not one of"),
        (["serve", "echo", "--codec", "xml"], "'xml' is not one of"),
        (["serve", "hello", "--codec", "json"], "fixed wire format"),
        (["serve", "hello", "-l", "udp://127.0.0.1:0"], "does not serve datagrams"),
        (["serve", "echo", "--max-connections", "0"], "0 is not in the range"),
        (["serve", "nomodule_here_xyz:handler"], "cannot import 'nomodule_here_xyz'"),
        (["serve", "json:loads"], "not a handler"),
        (["serve"], "Missing argument"),
        (["connect", "ftp://x:1"], "unknown scheme"),
        (["connect", "127.0.0.1:1", "--send-only", "--recv-only"], "exclude each other"),
        (["send", "127.0.0.1:1", "{bad", "--codec", "json"], "must be JSON"),
        (["send", "127.0.0.1:1", "two\nlines"], "cannot be sent with --codec lines"),
        (["probe", "127.0.0.1", "80,x"], "bad port"),
        (["probe", "127.0.0.1", "0-5"], "1 to 65535"),
        (["probe", "no-such-host.invalid", "80"], "cannot resolve host"),
        (["info", "--service", "no-such-service"], "no service"),
        (["listen", "tcp://127.0.0.1:0", "--broker", "--exec", "cat"], "--broker"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("socketkit: error: ") and needle in err[0], err[0]


def test_runtime_errors_are_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        port = s.getsockname()[1]
        assert main(["connect", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"socketkit: error: connection refused: tcp://127.0.0.1:{port} (is a server listening?)"
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: m).start() as taken:
        assert main(["serve", "echo", "-l", taken.url]) == 1
        assert "address already in use" in capsys.readouterr().err.lower()


def test_debug_shows_the_traceback() -> None:
    result = run([*SK, "--debug", "serve", "nosuchservice"])
    assert result.returncode != 0
    assert b"Traceback" in result.stderr


def test_debug_after_the_subcommand_is_the_same_flag() -> None:
    """Added to the end of the line that failed, as a user does: the error's traceback, not
    click's complaint about an unknown option."""
    result = run([*SK, "serve", "nosuchservice", "--debug"])
    assert result.returncode != 0
    assert b"neither a built-in service" in result.stderr and b"No such option" not in result.stderr


def test_every_command_has_help() -> None:
    for command in ("serve", "connect", "listen", "send", "probe", "info"):
        result = run([*SK, command, "--help"])
        assert result.returncode == 0 and b"Usage: socketkit " + command.encode() in result.stdout
    assert b"only when given" in run([*SK, "listen", "--help"]).stdout.lower().replace(b"\n", b" ").replace(
        b"  ", b" "
    )


# -- serve: built-in services against real peers -----------------------------------------------


def test_serve_hello_with_curl() -> None:
    curl = tool("curl")
    with cli_server("hello", "-l", "tcp://127.0.0.1:0") as (proc, urls):
        url = http(urls[0])
        get = run([curl, "-si", url])
        assert get.returncode == 0
        assert get.stdout.startswith(b"HTTP/1.1 200 OK") and get.stdout.endswith(b"Hello, world!\n")
        head = run([curl, "-sI", url])
        assert b"Content-Length: 14" in head.stdout and b"Hello" not in head.stdout
        close = run([curl, "-si", "-H", "Connection: close", url])
        assert b"Connection: close" in close.stdout
        post = run([curl, "-si", "-X", "POST", "-d", "x=1", url])
        assert post.stdout.startswith(b"HTTP/1.1 405")
        # two requests on one connection (keep-alive)
        both = run([curl, "-sv", url, url])
        assert both.stdout == b"Hello, world!\nHello, world!\n"
        assert b"Re-using existing connection" in both.stderr or b"Reusing existing" in both.stderr
        with socket.create_connection(host_port(urls[0]), timeout=WAIT) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\n")
            data = b""
            while chunk := raw.recv(65536):
                data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 2 and b"HTTP/1.1 400 Bad Request" in data
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
    assert "stopping" in err and "socketkit: stopped; served" in err


def test_serve_hello_under_wrk() -> None:
    wrk = tool("wrk")
    with cli_server("hello", "-l", "tcp://127.0.0.1:0") as (_, urls):
        result = run([wrk, "-t1", "-c10", "-d1s", http(urls[0])], timeout=30)
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert re.search(r"Requests/sec:\s+\d", out), out
    assert "Non-2xx" not in out and "Socket errors" not in out, out


@pytest.mark.parametrize("engine", ["epoll", "threads"])
def test_serve_echo_tcp_and_udp_with_ncat_and_socat(engine: str) -> None:
    ncat, socat = tool("ncat"), tool("socat")
    with cli_server("echo", "-l", "tcp://127.0.0.1:0", "-l", "udp://127.0.0.1:0", "--engine", engine) as (
        _,
        urls,
    ):
        host, tcp_port = host_port(urls[0])
        _, udp_port = host_port(urls[1])
        assert run([ncat, host, tcp_port], "hello ncat\n").stdout == b"hello ncat\n"
        assert run([socat, "-", f"TCP:{host}:{tcp_port}"], "hello socat\n").stdout == b"hello socat\n"
        assert ncat_udp(host, udp_port, b"udp ncat\n") == b"udp ncat\n"
        assert run([socat, "-t1", "-", f"UDP:{host}:{udp_port}"], "udp socat\n").stdout == b"udp socat\n"


def test_serve_discard_daytime_time_chargen_with_ncat() -> None:
    ncat = tool("ncat")
    with cli_server("discard", "-l", "tcp://127.0.0.1:0") as (proc, urls):
        host, port = host_port(urls[0])
        assert run([ncat, host, port], "gone\n").stdout == b""
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert "served 1 connection(s)" in err
    with cli_server("daytime", "-l", "tcp://127.0.0.1:0", "-l", "udp://127.0.0.1:0") as (_, urls):
        host, port = host_port(urls[0])
        assert run([ncat, "--recv-only", host, port]).stdout.endswith(b" GMT\r\n")
        _, udp_port = host_port(urls[1])
        assert ncat_udp(host, udp_port, b"?\n").endswith(b" GMT\r\n")
    with cli_server("time", "-l", "tcp://127.0.0.1:0") as (_, urls):
        assert len(run([ncat, "--recv-only", *host_port(urls[0])]).stdout) == 4
    with cli_server("chargen", "-l", "tcp://127.0.0.1:0") as (_, urls):
        host, port = host_port(urls[0])
        head = subprocess.run(
            f"{ncat} --recv-only {host} {port} | head -c 740",
            shell=True,
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        assert head.stdout.startswith(b' !"#$%&') and len(head.stdout) == 740
        assert head.stdout.split(b"\r\n")[1].startswith(b'!"#$%&')


def test_serve_broker_with_two_ncat_clients() -> None:
    ncat = tool("ncat")
    with cli_server("broker", "-l", "tcp://127.0.0.1:0") as (_, urls):
        host, port = host_port(urls[0])
        receiver = subprocess.Popen([ncat, host, port], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            # The receiver is a member once something it sends reaches another client.
            with sk.connect(urls[0], codec=sk.Lines(), timeout=WAIT) as probe_client:
                assert receiver.stdin is not None and receiver.stdout is not None
                receiver.stdin.write(b"receiver here\n")
                receiver.stdin.flush()
                assert probe_client.recv() == b"receiver here"
                sender = run([ncat, host, port], "hello everyone\n")
                assert sender.returncode == 0
                assert receiver.stdout.readline() == b"hello everyone\n"
                assert probe_client.recv() == b"hello everyone"
        finally:
            receiver.kill()
            receiver.wait()


def test_serve_a_users_handler(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text(
        "import socketkit as sk\n"
        "def shout(message, conn):\n"
        "    return message.upper()\n"
        "class Greeter(sk.Protocol):\n"
        "    def on_connect(self, conn):\n"
        "        conn.send(b'hi')\n"
        "def page(request, conn):\n"
        "    return sk.HttpResponse(200, b'you asked for ' + request.target)\n"
    )
    with cli_server("myhandlers:shout", "--codec", "lines", "-l", "tcp://127.0.0.1:0", cwd=tmp_path) as (
        _,
        urls,
    ):
        with sk.connect(urls[0], codec=sk.Lines(), timeout=WAIT) as client:
            assert client.request(b"quiet") == b"QUIET"
    with cli_server("myhandlers:Greeter", "--codec", "lines", "-l", "tcp://127.0.0.1:0", cwd=tmp_path) as (
        _,
        urls,
    ):
        with sk.connect(urls[0], codec=sk.Lines(), timeout=WAIT) as client:
            assert client.recv() == b"hi"
    with cli_server("myhandlers:page", "--codec", "http", "-l", "tcp://127.0.0.1:0", cwd=tmp_path) as (
        _,
        urls,
    ):
        page = run([tool("curl"), "-s", http(urls[0]) + "docs"])
        assert page.stdout == b"you asked for /docs"
    result = subprocess.run(
        [*SK, "serve", "myhandlers:missing"], cwd=tmp_path, capture_output=True, timeout=WAIT, check=False
    )
    assert result.returncode == 2 and b"has no attribute 'missing'" in result.stderr


def test_serve_json_logs_and_stats_panel() -> None:
    with cli_server("echo", "--log-format", "json", "-l", "tcp://127.0.0.1:0") as (proc, urls):
        with sk.connect(urls[0], timeout=WAIT) as client:
            assert client.request(b"x") == b"x"
    with cli_server("echo", "--stats", "--codec", "lines", "-l", "tcp://127.0.0.1:0") as (proc, urls):
        with sk.connect(urls[0], codec=sk.Lines(), timeout=WAIT) as client:
            for _ in range(10):
                assert client.request(b"x") == b"x"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert "requests/s" in err and "connections total" in err


def test_the_stats_panel_keeps_the_log_lines_clock() -> None:
    """--stats draws its log with rich: its lines carry the time as the plain ones do, not a
    locale's date (a US date switched in when the panel was on)."""
    proc = subprocess.Popen(
        [*SK, "serve", "echo", "--stats", "-l", "tcp://127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the serving line: the first, so its time is shown
    finally:
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=WAIT)
    assert re.match(r"\d\d:\d\d:\d\d INFO +serving ", first), first
    assert not re.search(r"\d+/\d+/\d+", first + rest), first + rest  # (rich shows a repeated time blank)


def test_stats_panel_shows_each_endpoint_when_there_are_several() -> None:
    from rich.console import Console

    from socketkit.cli.stats_panel import StatsPanel
    from socketkit.stats import Stats

    server = sk.Server(["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], lambda message, conn: message)
    console = Console(width=200, record=True)
    before = Stats(listeners={"tcp://127.0.0.1:1": Stats(), "udp://127.0.0.1:2": Stats()})
    now = Stats(
        connections_open=3,
        messages_in=30,
        listeners={
            "tcp://127.0.0.1:1": Stats(connections_open=3, messages_in=20),
            "udp://127.0.0.1:2": Stats(messages_in=10),
        },
    )
    console.print(StatsPanel(server, console).render(now, before, 2.0))
    text = console.export_text()
    assert "tcp://127.0.0.1:1" in text and "3 open, 10.0 requests/s" in text
    assert "udp://127.0.0.1:2" in text and "0 open, 5.0 requests/s" in text
    console.print(StatsPanel(server, console).render(Stats(), Stats(), 1.0))
    assert "open, " not in console.export_text()  # one endpoint (or none yet): no breakdown


def test_json_log_lines_parse() -> None:
    proc = subprocess.Popen(
        [*SK, "serve", "echo", "--log-format", "json", "-l", "tcp://127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        entry = json.loads(proc.stderr.readline())
        assert entry["level"] == "info" and entry["message"].startswith("serving tcp://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)
    assert proc.returncode == 0


def test_second_ctrl_c_exits_130_and_names_what_it_cut(tmp_path: Path) -> None:
    (tmp_path / "stuck.py").write_text(
        "import sys, time\n"
        "def handle(message, conn):\n"
        "    print('IN-FLIGHT', flush=True)\n"
        "    time.sleep(60)\n"
        "    return message\n"
    )
    proc = subprocess.Popen(
        [*SK, "serve", "stuck:handle", "-l", "tcp://127.0.0.1:0", "--engine", "threads"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        serving = proc.stderr.readline()
        match = re.search(r"serving (tcp://127\.0\.0\.1:\d+)", serving)
        assert match, serving
        with sk.connect(match.group(1), timeout=WAIT) as client:
            client.send(b"work")
            assert proc.stdout.readline().strip() == "IN-FLIGHT"
            proc.send_signal(signal.SIGINT)
            for line in proc.stderr:
                if "stopping" in line:
                    break
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=WAIT)  # far less than the handler's 60 s
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "forcing shutdown, cutting 1 connection(s): tcp://127.0.0.1:" in err
    assert "socketkit: interrupted" in err


# -- client commands ------------------------------------------------------------------------------


def test_connect_relays_stdin_and_the_reply() -> None:
    with sk.Server(["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], lambda m, c: m).start() as server:
        assert run([*SK, "connect", server.url], "hello\nworld\n").stdout == b"hello\nworld\n"
        crlf = run([*SK, "connect", "-C", server.url], "line\n")
        assert crlf.stdout == b"line\r\n"
        host, port = host_port(server.urls[1])
        assert run([*SK, "connect", "-u", "-w", "1", f"{host}:{port}"], "datagram\n").stdout == b"datagram\n"
        assert run([*SK, "connect", "--send-only", server.url], "ignored reply\n").returncode == 0


def test_connect_recv_only_reads_until_the_server_closes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = subprocess.Popen(
            [*SK, "connect", "--recv-only", f"127.0.0.1:{port}"], stdout=subprocess.PIPE
        )
        listener.settimeout(WAIT)
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"from the server\n")
        out, _ = client.communicate(timeout=WAIT)
    assert out == b"from the server\n" and client.returncode == 0


@contextmanager
def cli_listener(*args: str, url: str = "tcp://127.0.0.1:0") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    proc = subprocess.Popen(
        [*SK, "listen", url, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        said = ""
        while not (match := re.search(r"listening on (\S+)", said)):
            line = proc.stderr.readline().decode()
            assert line, said
            said += line
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


def test_listen_relays_one_client() -> None:
    with cli_listener() as (proc, url):
        assert proc.stdin is not None and proc.stdout is not None
        with sk.connect(url, codec=sk.Lines(), timeout=WAIT) as client:
            proc.stdin.write(b"to the client\n")
            proc.stdin.flush()
            assert client.recv() == b"to the client"
            client.send(b"to the listener")
            assert proc.stdout.readline() == b"to the listener\n"
        assert proc.wait(WAIT) == 0


def test_listen_exec_attaches_a_process_to_each_client() -> None:
    ncat = tool("ncat")
    with cli_listener("-k", "--exec", "tr a-z A-Z") as (_, url):
        host, port = host_port(url)
        for word in ("first", "second"):
            assert run([ncat, host, port], f"{word}\n").stdout == f"{word.upper()}\n".encode()


def test_send_one_message() -> None:
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: m[::-1], codec=sk.Lines()).start() as lines:
        assert run([*SK, "send", lines.url, "abc"]).stdout == b"cba\n"
        assert run([*SK, "send", lines.url, "-"], "from stdin\n").stdout == b"nidts morf\n"
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: {"got": m}, codec=sk.Json()).start() as js:
        out = run([*SK, "send", js.url, '{"a": [1, 2]}', "--codec", "json"]).stdout.decode()
        assert json.loads(out) == {"got": {"a": [1, 2]}}
        assert '\n  "got"' in out  # pretty-printed
    with sk.Server("udp://127.0.0.1:0", lambda m, c: m.upper(), codec=sk.Lines()).start() as udp:
        assert run([*SK, "send", udp.url, "datagram"]).stdout == b"DATAGRAM\n"


def test_probe_reports_each_port_and_exits_0_only_if_all_are_open() -> None:
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: m).start() as server:
        open_port = server.addresses[0][1]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        mixed = run([*SK, "probe", "127.0.0.1", f"{open_port},{closed_port}"])
        assert mixed.returncode == 1
        assert f"127.0.0.1:{open_port} open".encode() in mixed.stdout
        assert f"127.0.0.1:{closed_port} closed".encode() in mixed.stdout
        assert run([*SK, "probe", "127.0.0.1", str(open_port)]).returncode == 0


def test_info() -> None:
    result = run([*SK, "info", "localhost", "--json", "--service", "http"])
    assert result.returncode == 0
    details = json.loads(result.stdout)
    assert details["hostname"] == socket.gethostname()
    assert any(a["address"] in ("127.0.0.1", "::1") for a in details["addresses"])
    assert {"name": "http", "port": 80, "protocol": "tcp"} in details["services"]
    assert any(i["name"] == "lo" for i in details["interfaces"])
    table = run([*SK, "info", "--service", "22"])
    assert table.returncode == 0 and b"ssh" in table.stdout


def test_cli_runner_in_process() -> None:
    """The same commands through click's CliRunner (no subprocess)."""
    from click.testing import CliRunner

    from socketkit.cli import cli

    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0 and "socketkit, version" in version.output
    details = runner.invoke(cli, ["info", "127.0.0.1", "--json"])
    assert details.exit_code == 0 and json.loads(details.output)["addresses"][0]["address"] == "127.0.0.1"
    with sk.Server("tcp://127.0.0.1:0", lambda m, c: m + b"!", codec=sk.Lines()).start() as server:
        sent = runner.invoke(cli, ["send", server.url, "hey"])
        assert sent.exit_code == 0 and sent.output == "hey!\n"
        probed = runner.invoke(cli, ["probe", "127.0.0.1", str(server.addresses[0][1])])
        assert probed.exit_code == 0 and probed.output.endswith(" open\n")


def test_listen_udp_answers_the_last_sender() -> None:
    proc = subprocess.Popen(
        [*SK, "listen", "-u", "127.0.0.1:0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None and proc.stdin is not None
        url = re.search(r"listening on (\S+)", proc.stderr.readline().decode())
        assert url and url.group(1).startswith("udp://")
        with sk.DatagramClient(url.group(1), timeout=WAIT) as client:
            client.send(b"ping\n")
            assert proc.stdout.readline() == b"ping\n"
            proc.stdin.write(b"pong\n")
            proc.stdin.flush()
            assert client.recv() == b"pong\n"
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT)


def test_udp_chargen_and_discard_with_socat() -> None:
    socat = tool("socat")
    with cli_server("chargen", "-l", "udp://127.0.0.1:0") as (_, urls):
        host, port = host_port(urls[0])
        line = run([socat, "-t1", "-", f"UDP:{host}:{port}"], "x\n").stdout
        assert line.startswith(b' !"#$%') and line.endswith(b"\r\n") and len(line) == 74
    with cli_server("discard", "-l", "udp://127.0.0.1:0") as (proc, urls):
        host, port = host_port(urls[0])
        assert run([socat, "-t0.5", "-", f"UDP:{host}:{port}"], "nothing back\n").stdout == b""
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert "1 message(s) in, 0 out" in err


def test_connect_logs_the_session_raw_or_as_hex(tmp_path: Path) -> None:
    """ncat's -o (the bytes as they passed) and -x (hex; here each chunk says its direction)."""
    with cli_server("echo", "--codec", "lines", "-l", "tcp://127.0.0.1:0") as (_, urls):
        raw, hexed = tmp_path / "session.bin", tmp_path / "session.hex"
        said = run([*SK, "connect", urls[0], "-o", str(raw)], "ping\n")
        assert said.returncode == 0 and said.stdout == b"ping\n", said
        assert raw.read_bytes() == b"ping\nping\n"  # sent, then received
        said = run([*SK, "connect", urls[0], "-x", str(hexed)], "hello, hex dump!\n")
        assert said.returncode == 0, said
    lines = hexed.read_text().splitlines()
    assert lines[0].startswith("> ") and lines[0].endswith(" sent 17 byte(s), from 0 to 16")
    assert lines[1] == "[0000]   68 65 6C 6C 6F 2C 20 68   65 78 20 64 75 6D 70 21   hello, hex dump!"
    assert lines[2] == "[0010]   0A" + " " * 47 + "   ."
    assert lines[3].startswith("< ") and lines[3].endswith(" received 17 byte(s), from 0 to 16")


@pytest.mark.parametrize(
    "args",
    [
        ["connect", "127.0.0.1:9", "-o", "a", "-x", "b"],
        ["listen", "127.0.0.1:0", "--broker", "-o", "a"],
    ],
)
def test_session_log_options_that_cannot_apply_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run([*SK, *args], capture_output=True, timeout=WAIT, check=False, cwd=tmp_path)
    assert result.returncode == 2, result
    assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr


def test_listen_over_tls_relays_a_verified_client(test_pki: tuple[str, str]) -> None:
    """As ``ncat --ssl -l``: the listener presents its certificate; socketkit's client, which
    verifies it against the CA, and then ncat --ssl, talk to it."""
    ca, cert = test_pki
    with cli_listener("--tls-cert", cert, url="tls://127.0.0.1:0") as (proc, url):
        assert url.startswith("tls://") and proc.stdin is not None and proc.stdout is not None
        said = run([*SK, "connect", "--tls-ca", ca, url], "over tls\n")
        assert said.returncode == 0, said
        assert proc.stdout.readline() == b"over tls\n"
        assert proc.wait(WAIT) == 0
    ncat = tool("ncat")
    with cli_listener("--tls-cert", cert, url="tls://127.0.0.1:0") as (proc, url):
        assert proc.stdout is not None
        port = url.rsplit(":", 1)[1]
        # (by name: ncat checks the certificate's DNS names, not its IP addresses)
        said = run([ncat, "--ssl", "--ssl-trustfile", ca, "--ssl-verify", "localhost", port], "from ncat\n")
        assert said.returncode == 0, said
        assert proc.stdout.readline() == b"from ncat\n"


def test_listen_over_tls_names_a_failed_handshake(test_pki: tuple[str, str]) -> None:
    _, cert = test_pki
    with cli_listener("--tls-cert", cert, url="tls://127.0.0.1:0") as (proc, url):
        refused = run([*SK, "connect", url], "hi\n")  # verifies against the system's CAs: fails
        assert refused.returncode == 1, refused
        proc.wait(WAIT)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert proc.returncode == 1
    assert "TLS handshake with tls://127.0.0.1:" in err and "failed" in err, err


@contextmanager
def throwaway_listener(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """``listen`` with TLS and no certificate: (process, URL, the fingerprint it printed)."""
    proc = subprocess.Popen(
        [*SK, "listen", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
        fingerprint = re.search(
            r"throwaway self-signed certificate.*SHA-256 fingerprint: ([0-9A-F:]{95})$", first
        )
        assert fingerprint, first
        second = proc.stderr.readline().decode()
        listening = re.search(r"listening on (\S+)", second)
        assert listening, second
        yield proc, listening.group(1), fingerprint.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


@pytest.mark.parametrize("args", [["--tls", "127.0.0.1:0"], ["tls://127.0.0.1:0"]])
def test_listen_tls_without_a_certificate_makes_a_throwaway_one(args: list[str]) -> None:
    """As ``ncat --ssl -l``: a self-signed certificate made on the spot, whose printed
    SHA-256 fingerprint is the one a client sees; the listener relays that client."""
    with throwaway_listener(*args) as (proc, url, fingerprint):
        assert proc.stdout is not None
        port = int(url.rsplit(":", 1)[1])
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                seen = hashlib.sha256(der).hexdigest().upper()
                assert ":".join(seen[i : i + 2] for i in range(0, 64, 2)) == fingerprint
                tls.sendall(b"checked by fingerprint\n")
                assert proc.stdout.readline() == b"checked by fingerprint\n"
                assert proc.stdin is not None
                proc.stdin.write(b"and back\n")
                proc.stdin.flush()
                assert tls.recv(100) == b"and back\n"
        assert proc.wait(WAIT) == 0


def test_ncat_ssl_talks_to_a_throwaway_listener() -> None:
    ncat = tool("ncat")
    with throwaway_listener("--tls", "127.0.0.1:0") as (proc, url, _):
        assert proc.stdout is not None
        said = run([ncat, "--ssl", "127.0.0.1", url.rsplit(":", 1)[1]], "from ncat\n")
        assert said.returncode == 0, said
        assert proc.stdout.readline() == b"from ncat\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["tcp://127.0.0.1:0", "--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["tcp://127.0.0.1:0", "--tls-cert", "missing.pem"], "not found: missing.pem"),
        (["-u", "127.0.0.1:0", "--tls-cert", "c.pem"], "TLS over datagrams is not available"),
        (["127.0.0.1:0", "--tls-cert", "c.pem", "--exec", "cat"], "cannot speak TLS"),
    ],
)
def test_listen_tls_mistakes_are_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [*SK, "listen", *args], capture_output=True, timeout=WAIT, check=False, cwd=tmp_path
    )
    assert result.returncode == 2, result
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
