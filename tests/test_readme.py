"""The README stays true: its Python blocks run, its commands exist."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import peer_tool

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_python_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(index: int) -> None:
    exec(compile(PYTHON_BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})


def test_readme_opens_with_how_to_install_it() -> None:
    """A newcomer reads how to put socketkit in their own project before anything else."""
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands and all(command.startswith("pip install ") for command in commands)
    assert README.index("```sh") < README.index("```python")  # then a first example that runs


def test_readme_gives_the_two_commands_to_work_on_it() -> None:
    blocks = [block for block in re.findall(r"```sh\n(.*?)```", README, re.S) if "make " in block]
    assert blocks, "no block with the make commands"
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines()]
    assert commands == ["make run", "make test"]


def test_readme_shell_commands_name_real_files() -> None:
    for path in re.findall(r"\.venv/bin/python (\S+\.py)", README):
        assert (ROOT / path).is_file(), path


# -- "Try it": every shell line runs as written (ports mapped to free ones) ---------------

SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
TRY_BLOCKS = [block for block in SH_BLOCKS if "socketkit " in block and "make run" not in block]


ENDPOINT = re.compile(r"\b(tcp|udp|tls)://127\.0\.0\.1:(\d+)")


def bound_ports(documented: list[tuple[str, str]], started: str) -> dict[tuple[str, str], str]:
    """(scheme, port in the README) -> the port the server bound, from its "serving"/"listening" line."""
    bound = ENDPOINT.findall(started)
    assert [scheme for scheme, _ in bound] == [scheme for scheme, _ in documented], started
    return {(scheme, old): new for (scheme, old), (_, new) in zip(documented, bound, strict=True)}


def remap(line: str, ports: dict[tuple[str, str], str]) -> str:
    """A client line with the README's port replaced by the one bound for its transport."""
    scheme = "udp" if re.search(r"(^|\s)-u\s|udp://", line) else "tcp"
    if "tls://" in line or "https://" in line:
        scheme = "tls"
    for (transport, old), new in ports.items():
        if transport == scheme:
            line = re.sub(rf"(?<=[: ]){old}\b", new, line)
    return line


def split_block(block: str) -> tuple[list[str], list[str], list[str]]:
    """(the set-up lines before terminal 1, the server lines, one a terminal but the last, in
    order, and the client lines of the last terminal)."""
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    if "# terminal 1" not in lines:
        return [], [], lines
    setup = lines[: lines.index("# terminal 1")]
    starts = [index for index, line in enumerate(lines) if re.fullmatch(r"# terminal \d+", line)]
    servers = [lines[index + 1] for index in starts[:-1]]
    return setup, servers, lines[starts[-1] + 1 :]


#: what each client line in "Try it" prints (a substring of its stdout); None: it prints nothing.
EXPECTED: dict[str, str | None] = {
    "grep -c 'new WebSocket'": "1",
    "curl http": "Hello, world!",
    "curl -I": "200 OK",
    "wrk ": "Requests/sec",
    "socketkit bench": "requests/s",
    "socketkit connect tcp://127.0.0.1:7007": "hello",
    "socketkit connect -u": "hello",
    "socketkit connect ws://": "hello",
    "socat - TCP": "hello",
    "send --codec raw": "ping",
    "probe 127.0.0.1": "open",
    "head -n 3": '!"#$%',
    "send --codec json": '"hello": [',
    "send --codec http": "Hello, world!",
    "make this loud": "MAKE THIS LOUD",
    "ncat 127.0.0.1 7000": None,  # the broker sends it to the other clients, not back
    "hi, listener": None,  # it appears on the listener's stdout
    "info localhost": "http",
    "openssl req": None,  # writes the key and certificate files
    "curl --cacert": "Hello, world!",
    "GET / HTTP/1.0": "Hello, world!",
}


def check_client(line: str, result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, (line, result.stdout, result.stderr)
    matches = [key for key in EXPECTED if key in line]
    assert matches, f"README line {line!r} has no expected output in tests/test_readme.py"
    expected = EXPECTED[matches[0]]
    if expected is None:
        assert result.stdout == b"", (line, result.stdout)
    else:
        assert expected.encode() in result.stdout, (line, result.stdout)


#: the programs a README line may run that are not Python's or socketkit's (skipped if missing)
PEER_TOOLS = {"curl", "haproxy", "ncat", "openssl", "socat", "wrk"}


def need_peers(lines: list[str]) -> None:
    """Skip (fail under CI) unless every peer tool the lines run is installed."""
    for line in lines:
        for command in re.split(r"\||&&|;", line):
            words = command.split()
            if words and words[0] in PEER_TOOLS:
                peer_tool(words[0])


def run_line(line: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("block", TRY_BLOCKS, ids=lambda b: b.split("\n")[1][:40])
def test_try_it_block_runs(block: str, tmp_path: Path) -> None:
    setup, server_lines, client_lines = split_block(block)
    need_peers([*setup, *server_lines, *client_lines])
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cwd = tmp_path if setup else ROOT  # files a block makes go to a directory of its own
    for line in setup:
        check_client(line, run_line(line, env, cwd))
    ports: dict[tuple[str, str], str] = {}
    servers: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for written in server_lines:  # each on free ports; a later one uses the earlier's
            server_line = written
            if server_line.startswith("socketkit serve") and " -l " not in server_line:
                server_line += " -l tcp://127.0.0.1:8888"  # the documented default, made explicit to remap it
            for (_, old), new in ports.items():
                server_line = re.sub(rf"(?<=127\.0\.0\.1:){old}\b", new, server_line)
            documented = [
                (scheme, port) for scheme, port in ENDPOINT.findall(server_line) if port not in ports.values()
            ]
            any_port = server_line
            for _, old in documented:  # port 0: the kernel picks free ones
                any_port = re.sub(rf"(?<=127\.0\.0\.1:){old}\b", "0", any_port)
            server = subprocess.Popen(
                ["bash", "-c", f"exec {any_port}"],
                env=dict(env, COLUMNS="1000"),  # one log line per record, even from rich (--stats)
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            servers.append((server_line, server))
            assert server.stderr is not None
            started = server.stderr.readline()
            assert "serving" in started or "listening on" in started, started
            ports.update(bound_ports(documented, started))
        for line in client_lines:
            check_client(line, run_line(remap(line, ports), env, cwd))
    finally:
        outputs: dict[str, str] = {}
        for server_line, server in reversed(servers):
            # `listen` ends by itself once its client leaves; a server is stopped with Ctrl-C.
            if server.poll() is None and not server_line.startswith("socketkit listen"):
                server.send_signal(signal.SIGINT)
            try:
                outputs[server_line], _ = server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()
                raise
    for server_line, server in servers:
        assert server.returncode == 0, server_line
        if server_line.startswith("socketkit listen"):
            assert "hi, listener" in outputs[server_line]
