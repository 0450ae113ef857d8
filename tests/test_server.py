"""Server API: construction errors, lifecycle, signals, and import hygiene."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import socketkit as sk
from conftest import echo
from socketkit.services import load_service


def test_unknown_engine_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown engine 'gevent': choose one of iterative, threads"):
        sk.Server("tcp://127.0.0.1:0", echo, engine="gevent")


@pytest.mark.parametrize("handler", [42, "echo", None])
def test_non_handlers_are_refused(handler: object) -> None:
    with pytest.raises(TypeError, match="handler must be"):
        sk.Server("tcp://127.0.0.1:0", handler)


def test_a_one_argument_function_is_pointed_at_blocking() -> None:
    def handle(conn: sk.Connection) -> None:
        pass

    with pytest.raises(TypeError, match=r"@socketkit\.blocking"):
        sk.Server("tcp://127.0.0.1:0", handle)


def test_a_class_that_is_not_a_protocol_is_refused() -> None:
    class NotAProtocol:
        pass

    with pytest.raises(TypeError, match=r"must subclass socketkit\.Protocol"):
        sk.Server("tcp://127.0.0.1:0", NotAProtocol)


def test_bad_codec_and_limits_are_refused() -> None:
    with pytest.raises(TypeError, match="codec"):
        sk.Server("tcp://127.0.0.1:0", echo, codec="lines")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idle_timeout"):
        sk.Limits(idle_timeout=0)
    with pytest.raises(ValueError, match="write_buffer_low"):
        sk.Limits(write_buffer_high=10, write_buffer_low=20)
    with pytest.raises(ValueError, match="max_connections"):
        sk.Limits(max_connections=0)
    with pytest.raises(ValueError, match="stall_warning"):
        sk.Limits(stall_warning=float("inf"))


def test_every_limit_has_a_finite_default() -> None:
    limits = sk.Limits()
    for name, value in vars(limits).items():
        assert 0 < value < float("inf") or (name == "grace" and value >= 0), name


def test_stop_before_start_and_twice() -> None:
    server = sk.Server("tcp://127.0.0.1:0", echo)
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        server.start()


def test_a_server_runs_once() -> None:
    server = sk.Server("tcp://127.0.0.1:0", echo).start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    finally:
        server.stop()
    server.stop()  # after stop: harmless


def test_context_manager_starts_and_stops() -> None:
    with sk.Server("tcp://127.0.0.1:0", echo) as server:
        assert server.running
        with sk.connect(server.url, timeout=5) as client:
            assert client.request(b"ctx") == b"ctx"
    assert not server.running


def test_serving_several_endpoints_at_once(short_tmp: str) -> None:
    urls = ["tcp://127.0.0.1:0", "tcp://[::1]:0", f"unix://{short_tmp}/multi.sock", "udp://127.0.0.1:0"]
    with sk.Server(urls, echo, codec=sk.Lines()).start() as server:
        assert len(server.addresses) == 4
        for url in server.urls[:3]:
            with sk.connect(url, codec=sk.Lines(), timeout=5) as client:
                assert client.request(url.encode()) == url.encode()
        with sk.DatagramClient(server.urls[3], codec=sk.Lines(), timeout=5) as dgram:
            assert dgram.request(b"udp") == b"udp"


def test_import_socketkit_uses_only_the_standard_library() -> None:
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import socketkit
        new = {name.split(".")[0] for name in set(sys.modules) - before}
        print(sorted(new - set(sys.stdlib_module_names) - {"socketkit"}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


SERVE_SCRIPT = textwrap.dedent(
    """
    import logging, sys, threading
    import socketkit as sk
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    release = threading.Event()
    lock = threading.Lock()

    def say(line):  # one whole line at a time: print() writes its parts apart, and two
        with lock:  # threads say things here (the announcer, and the main thread at exit)
            sys.stdout.write(line + "\\n")
            sys.stdout.flush()

    def handler(message, conn):
        if message == b"slow":
            say("IN-FLIGHT")
            release.wait(float(sys.argv[2]))
        return b"done " + message

    server = sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines(), engine=sys.argv[1],
                       limits=sk.Limits(grace=30, stall_warning=60))  # (its one log line: the stop's)
    def announce():
        if server.wait_started(10):
            say(server.url)
    threading.Thread(target=announce, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("FORCED")
        sys.exit(130)
    say(f"EXITED {server.stats.connections_open}")
    """
)


def start_serving(engine: str, hold: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, engine, str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("tcp://"), proc.stderr.read() if proc.stderr else url
    return proc, url


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_drains_then_exits(engine: str, signum: int) -> None:
    proc, url = start_serving(engine, hold=0.0)
    try:
        with sk.connect(url, codec=sk.Lines(), timeout=10) as client:
            assert client.request(b"hi") == b"done hi"
            proc.send_signal(signum)
            with pytest.raises(sk.ClosedError):
                client.recv()  # the idle connection is closed by the drain
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "EXITED 0" in out
    assert "stopping" in err


def test_second_sigint_forces_whatever_the_handler_does(engine: str) -> None:
    """The handler is stuck for 60 s: the second Ctrl-C ends the process at once, naming what it cut."""
    proc, url = start_serving(engine, hold=60.0)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        with sk.connect(url, codec=sk.Lines(), timeout=10) as client:
            client.send(b"slow")
            assert proc.stdout.readline().strip() == "IN-FLIGHT"
            proc.send_signal(signal.SIGINT)
            for line in proc.stderr:  # wait until the first signal was handled
                if "stopping" in line:
                    break
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)  # far less than the handler's 60 s
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = err.splitlines()  # (what came after the first signal's "stopping" line)
    assert len(lines) == 1, err  # one line: no "grace period over" too, no "ignored"/"destroyed"
    assert "forcing shutdown, cutting 1 connection(s): tcp://127.0.0.1:" in lines[0]
    assert "FORCED" in out


def test_sigterm_as_soon_as_the_server_says_it_serves_drains(engine: str) -> None:
    """A supervisor stops the server the moment its log says "serving": a drain, never a kill."""
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_SCRIPT, engine, "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "serving tcp://" in line:
                    proc.send_signal(signal.SIGTERM)
                    break
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "stopping" in err and "EXITED 0" in out


def test_stop_from_another_thread_while_serving_forever() -> None:
    server = sk.Server("tcp://127.0.0.1:0", echo)
    runner = threading.Thread(target=server.serve_forever)
    runner.start()
    try:
        assert server.wait_started(10)
        with sk.connect(server.url, timeout=5) as client:
            assert client.request(b"x") == b"x"
    finally:
        server.stop()
        runner.join(10)
    assert not runner.is_alive()


THREAD_SIGNAL_SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading
    import socketkit as sk

    server = sk.Server("tcp://127.0.0.1:0", lambda m, c: m, engine=sys.argv[1])

    def signal_from_another_thread():
        server.wait_started(10)
        # The kernel may pick any thread for a process signal; force the worst case.
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=signal_from_another_thread).start()
    server.serve_forever()
    print("EXITED", flush=True)
    """
)


def test_a_signal_delivered_to_another_thread_still_stops_serve_forever(engine: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", THREAD_SIGNAL_SCRIPT, engine],
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert "EXITED" in result.stdout


def test_reactor_is_the_best_poller_this_system_has() -> None:
    """The conformance suite skips ``reactor`` where it is another name's engine: it must be."""
    import select

    from socketkit.engines.loop.poller import poller_class

    best = "epoll" if hasattr(select, "epoll") else "poll" if hasattr(select, "poll") else "select"
    assert poller_class("auto").name == best
    assert sk.Server("tcp://127.0.0.1:0", lambda m, c: m, engine="reactor").engine_name == "reactor"


def test_a_handler_says_what_it_needs_and_every_server_keeps_it() -> None:
    """serves_datagrams and one_process, on a user's Protocol as on a built-in service: the
    server refuses what would break it, with the fix, before serving."""

    class Room(sk.Protocol):
        serves_datagrams = False
        one_process = True

    with pytest.raises(ValueError, match=r"does not serve datagrams: use a tcp:// or unix:// URL"):
        sk.Server(["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], Room())
    with pytest.raises(ValueError, match="clients meet in one process's memory"):
        sk.Server("tcp://127.0.0.1:0", Room(), workers=2)
    sk.Server("tcp://127.0.0.1:0", Room())  # one process, connections: fine
    broker = load_service("broker").handler
    with pytest.raises(
        ValueError, match=r"serve it with one worker, or give it a backend .*--backend redis://"
    ):
        sk.Server("tcp://127.0.0.1:0", broker, workers=2)  # the service says what else works


def test_the_serving_line_says_whether_a_protocol_is_shared(caplog: pytest.LogCaptureFixture) -> None:
    """A Protocol class gets an instance per connection, an instance is shared by all: which
    one the server got decides whether a chat works, so the serving line says it."""

    class Chat(sk.Protocol):
        pass

    lines = []
    for handler in (Chat, Chat(), sk.blocking(echo)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="socketkit"):
            with sk.Server("tcp://127.0.0.1:0", handler, engine="pool").start():
                pass
        lines += [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving ")]
    assert f"handler {Chat.__qualname__}, a Protocol class: an instance per connection)" in lines[0]
    assert f"handler {Chat.__qualname__}, one Protocol instance shared by every connection)" in lines[1]
    assert "handler echo, @blocking: its calls on threads)" in lines[2]


def test_far_more_workers_than_cores_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """--workers 1000 on 2 cores is almost surely a mistake: it runs, and the log says so."""
    from socketkit.plan import usable_cores

    many = 4 * usable_cores() + 1
    with caplog.at_level(logging.WARNING, logger="socketkit"):
        sk.Server("tcp://127.0.0.1:0", lambda m, c: m, workers=many)
        sk.Server("tcp://127.0.0.1:0", lambda m, c: m, workers=usable_cores())
    warnings = [r.getMessage() for r in caplog.records if "worker processes on" in r.getMessage()]
    assert warnings == [
        f"{many} worker processes on {usable_cores()} core(s): past 4 a core they add "
        "memory and context switches, not throughput; workers='auto' runs one a core"
    ]


def test_recv_in_a_handler_that_is_given_its_messages_says_which_handler_may_call_it() -> None:
    def handler(message: bytes, conn: sk.Connection) -> bytes:
        try:
            conn.recv()
        except TypeError as exc:
            return str(exc).encode()
        return b"no error"

    with sk.Server("tcp://127.0.0.1:0", handler, codec=sk.Lines()).start() as server:
        with sk.connect(server.url, codec=sk.Lines(), timeout=10) as client:
            said = client.request(b"hi").decode()
    assert "@socketkit.blocking fn(conn)" in said and "pool" in said, said
