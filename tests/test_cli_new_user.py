"""What a new user trips on, each checked as the user meets it: the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import socketkit as sk
from socketkit.cli import main
from test_cli import SK, WAIT, cli_server, run

NO_MSGSPEC = (
    "import sys; sys.modules['msgspec'] = None; from socketkit.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_send_http_sends_a_request_and_prints_the_response() -> None:
    with cli_server("hello", "-l", "tcp://127.0.0.1:0") as (_, urls):
        result = run([*SK, "send", urls[0], "/", "--codec", "http"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
        assert result.stdout.endswith(b"\r\n\r\nHello, world!\n")
        assert b"\r\nContent-Length: 14\r\n" in result.stdout  # header names as sent, as curl -i shows
        posted = run([*SK, "send", urls[0], "-", "--codec", "http"], "a body")
        assert posted.stdout.startswith(b"HTTP/1.1 405 ")  # hello takes GET and HEAD only


def test_send_raw_ends_a_terminals_line_and_leaves_piped_bytes_as_they_came() -> None:
    import pty

    with cli_server("echo", "--codec", "raw", "-l", "tcp://127.0.0.1:0") as (_, urls):
        piped = run([*SK, "send", urls[0], "hi", "--codec", "raw"])
        assert piped.returncode == 0 and piped.stdout == b"hi", piped
        leader, follower = pty.openpty()
        try:
            shown = subprocess.run(
                [*SK, "send", urls[0], "hi", "--codec", "raw"],
                stdout=follower,
                stderr=subprocess.PIPE,
                timeout=WAIT,
                check=False,
            )
            assert shown.returncode == 0, shown.stderr
            assert os.read(leader, 100) == b"hi\r\n"  # (the terminal shows the newline as CRLF)
        finally:
            os.close(leader)
            os.close(follower)


@pytest.mark.parametrize(
    "command", [["serve", "echo", "--codec", "msgpack"], ["send", "127.0.0.1:9", "1", "--codec", "msgpack"]]
)
def test_msgpack_without_msgspec_is_one_line_and_exit_2(command: list[str]) -> None:
    result = run([sys.executable, "-c", NO_MSGSPEC, *command])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "pip install 'socketkit[msgpack]'" in lines[0], lines


def test_the_uvloop_engine_without_uvloop_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    no_uvloop = NO_MSGSPEC.replace("'msgspec'", "'uvloop'")
    result = run([sys.executable, "-c", no_uvloop, "serve", "echo", "--engine", "uvloop"])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "pip install 'socketkit[uvloop]'" in lines[0], lines
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    with pytest.raises(ValueError, match=r"engine 'uvloop' needs the uvloop package"):
        sk.Server("tcp://127.0.0.1:0", lambda m, c: m, engine="uvloop")

    async def shout(message: bytes, conn: sk.Connection) -> bytes:
        return message.upper()

    assert sk.Server("tcp://127.0.0.1:0", shout).engine_name == "asyncio"  # auto, without uvloop


def test_max_message_size_raises_the_codecs_own_limit() -> None:
    line = b"x" * 200_000  # over the 64 KiB Lines default
    with cli_server(
        "echo", "--codec", "lines", "--max-message-size", "2000000", "-l", "tcp://127.0.0.1:0"
    ) as (
        _,
        urls,
    ):
        with sk.connect(urls[0], codec=sk.Lines(max_length=300_000), timeout=WAIT) as client:
            assert client.request(line) == line
    with cli_server("echo", "--codec", "lines", "-l", "tcp://127.0.0.1:0") as (_, urls):
        with sk.connect(urls[0], codec=sk.Lines(), timeout=WAIT) as client:
            client.sock.sendall(line + b"\n")
            assert client.recv() == b"error: line longer than 65536 bytes"  # the reason, not a reset


def test_serve_listens_on_host_port_and_says_which_wildcard_is_dual_stack() -> None:
    with cli_server("echo", "-l", "127.0.0.1:0") as (_, urls):
        assert urls[0].startswith("tcp://127.0.0.1:")
    proc = subprocess.Popen([*SK, "serve", "echo", "-l", "*:0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "(every interface, IPv4 and IPv6)" in proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=WAIT)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "echo", "-l", "tcp://:8888"], "no host in 'tcp://:8888'"),
        (["serve", "echo", "-l", ":8888"], "or tcp://*:8888 for every interface"),
        (["serve", "asyncmod:handler", "--engine", "epoll"], "async def"),
        (["serve", "echo", "--read-timeout", "0"], "0 is not in the range"),
        (["serve", "echo", "--write-buffer-low", "10", "--write-buffer-high", "5"], "write_buffer_low"),
    ],
)
def test_usage_errors_new_users_meet(
    args: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "asyncmod.py").write_text("async def handler(message, conn):\n    return message\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_async_handlers_are_refused_off_asyncio_when_the_server_is_made() -> None:
    async def handler(message: bytes, conn: sk.Connection) -> bytes:
        return message

    class Proto(sk.Protocol):
        async def on_message(self, conn: sk.Connection, message: bytes) -> None:
            pass

    class Producing(sk.Protocol):
        async def on_drain(self, conn: sk.Connection) -> None:
            pass

    for async_handler in (handler, Proto()):
        with pytest.raises(TypeError, match="async def"):
            sk.Server("tcp://127.0.0.1:0", async_handler, engine="epoll")
        assert sk.Server("tcp://127.0.0.1:0", async_handler).engine_name == "uvloop"  # auto: the best loop
    with pytest.raises(
        TypeError, match=r"Producing\.on_drain is an async def: a reply function and a Protocol's"
    ):
        sk.Server("tcp://127.0.0.1:0", Producing, engine="asyncio")
    with pytest.raises(ValueError, match="datagram-based"):
        sk.Server("udp://127.0.0.1:0", handler)


def test_help_texts() -> None:
    serve = run([*SK, "serve", "--help"]).stdout.decode()
    assert "\n    echo " in serve and "\n    hello " in serve  # one service a line
    assert "[default: 120.0]" in serve and "--read-timeout" in serve and "--write-buffer-high" in serve
    assert "How much to log" in serve
    listen = " ".join(run([*SK, "listen", "--help"]).stdout.decode().split())
    assert "Connect timeout" not in listen and "-w, --wait SECONDS" in listen


def test_info_exits_1_when_the_look_up_fails() -> None:
    result = run([*SK, "info", "no-such-host.invalid", "--json"])
    assert result.returncode == 1
    assert "addresses_error" in json.loads(result.stdout)


def test_probe_writes_ipv6_hosts_in_brackets() -> None:
    with sk.Server("tcp://[::1]:0", lambda m, c: m).start() as server:
        port = server.addresses[0][1]
        result = run([*SK, "probe", "::1", str(port)])
    assert result.stdout == f"[::1]:{port} open\n".encode()


def test_json_logs_end_with_a_json_stopped_line_and_stats_end_on_their_own_line() -> None:
    with cli_server("echo", "--log-format", "json", "-l", "tcp://127.0.0.1:0") as (proc, _):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    last = json.loads(err.strip().splitlines()[-1])
    assert last["message"].startswith("stopped; served 0 connection(s)")
    with cli_server("echo", "--stats", "-l", "tcp://127.0.0.1:0") as (proc, _):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert "\nsocketkit: stopped; served" in err


def test_connect_udp_leaves_once_its_datagrams_are_answered() -> None:
    """echo | socketkit connect -u: the reply arrives, then it exits (not after seconds of quiet)."""
    with sk.Server("udp://127.0.0.1:0", lambda m, c: m.upper(), codec=sk.Lines()).start() as server:
        # A quiet period this long would fail the test's own timeout: it must not be waited for.
        result = run([*SK, "connect", "-u", "-w", "60", server.url], "ping\n", timeout=30)
    assert result.returncode == 0 and result.stdout == b"PING\n"


def test_make_run_installs_only_what_running_needs() -> None:
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    run_rule = makefile.split("\nrun:")[1].split("\n\n")[0]
    assert "dev" not in run_rule and ".[cli]" in makefile


def test_readme_documents_the_public_api_a_user_looks_for() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in (
        "HttpRequest",
        "HttpResponse",
        "HttpClient",
        "host_info",
        "service_info",
        "curl",
        "wrk",
        "ncat",
        "socat",
        "openssl",
    ):
        assert name in readme, name


def test_unix_permission_denied_does_not_talk_about_ports(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = "unix:///sys/socketkit-test.sock"  # even root may not create files in sysfs
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = f"unix://{locked}/s.sock"
    result = run([*SK, "serve", "echo", "-l", target])
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "port" not in err and "pick a directory you can write to" in err, err
