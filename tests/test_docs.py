"""The documentation site builds strictly, and every program and command on its pages runs.

The pages write no code of their own: a Python block includes a file that a test here (or
tests/test_examples.py) runs, a README section is included whole (tests/test_readme.py runs
its blocks), and a shell block is a "# terminal 1 / # terminal 2" session run here as written
(ports mapped to free ones). The Chinese pages keep step with the English ones.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import socketkit as sk

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
#: each English page and its Chinese translation
TRANSLATED = [("getting-started.md", "zh/getting-started.md"), ("tutorial.md", "zh/tutorial.md")]
#: where the programs a page includes live (run from there, as a reader would)
PROGRAMS = {"getting-started": DOCS / "getting-started", "tutorial": DOCS / "tutorial"}
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
WAIT = 20.0
CLIENT_SAYS = "hello\nhow are you?\nbye\n"


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_site_builds_strictly_with_every_public_name_in_the_reference(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=dict(ENV, NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    public = [name for name in sk.__all__ if not name.startswith("__")]
    missing = [name for name in public if f'id="socketkit.{name}"' not in reference]
    assert missing == []
    for name in ("netinfo.host_info", "netinfo.service_info", "tls.server_context"):
        assert f'id="socketkit.{name}"' in reference, name


#: pages whose shell commands another check runs: .ci/run runs the reliability suite
RUN_ELSEWHERE = {"RELIABILITY.md"}


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if page.name not in RUN_ELSEWHERE],
    ids=lambda page: page.relative_to(DOCS).as_posix(),
)
def test_a_pages_code_is_a_program_the_tests_run(page: Path) -> None:
    text = page.read_text()
    for block in blocks(text, "python"):
        included = re.fullmatch(r'--8<-- "([^"]+)"\n', block)
        assert included, f"{page.name}: a Python block must include a file the tests run:\n{block}"
        path = included.group(1)
        assert path.startswith(("tutorial/", "getting-started/", "examples/")), path
    for block in blocks(text, "sh"):
        assert "# terminal 1" in block and "# terminal 2" in block, f"{page.name}: not run:\n{block}"


@pytest.mark.parametrize(("english", "chinese"), TRANSLATED)
def test_the_chinese_pages_keep_step_with_the_english(english: str, chinese: str) -> None:
    """Same sections (by level), the same programs in the same order, the same commands."""
    en, zh = (DOCS / english).read_text(), (DOCS / chinese).read_text()

    def shape(text: str) -> tuple[list[str], list[str], list[str]]:
        levels = [line.split(" ")[0] for line in text.splitlines() if re.match(r"#+ ", line)]
        return levels, re.findall(r'--8<-- "[^"]+"', text), blocks(text, "sh")

    assert shape(en) == shape(zh)
    assert len(re.findall(r"^\|", en, re.M)) == len(re.findall(r"^\|", zh, re.M))  # table rows


@pytest.mark.parametrize("step", sorted(PROGRAMS["tutorial"].glob("step*.py")), ids=lambda p: p.stem)
def test_every_tutorial_step_serves_the_client(step: Path) -> None:
    with serving([sys.executable, step.name, "0"], PROGRAMS["tutorial"]) as (server, port):
        asked = run_client([sys.executable, "client.py", str(port)], PROGRAMS["tutorial"])
        assert asked.stdout == CLIENT_SAYS, asked
        if step.name.startswith("step1"):
            assert server.wait(timeout=WAIT) == 0  # it serves one client, then exits
    assert server.returncode == 0


#: what each client line of a page's shell sessions prints (its whole stdout)
EXPECTED = {
    "python client.py": CLIENT_SAYS,
    "python shout_client.py": "HELLO\nSOCKET\nWORLD\n",
    '"make this loud"': "MAKE THIS LOUD\n",
    '"one more line"': "one more line\n",
    "send tcp://127.0.0.1:7007 hello": "HELLO\n",
}
SESSIONS = [
    (page, block) for page in PAGES for block in blocks(page.read_text(), "sh") if "# terminal 1" in block
]


@pytest.mark.parametrize(
    ("page", "block"),
    SESSIONS,
    ids=[f"{page.relative_to(DOCS).as_posix()}-{index}" for index, (page, _) in enumerate(SESSIONS)],
)
def test_a_pages_shell_session_runs_as_written(page: Path, block: str) -> None:
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    server_line, clients = lines[lines.index("# terminal 1") + 1], lines[lines.index("# terminal 2") + 1 :]
    documented = re.search(r"(?:127\.0\.0\.1:|\s)(\d{4,5})\b", server_line)
    assert documented, server_line
    folder = next(folder for name, folder in PROGRAMS.items() if f"{name}/" in page.read_text())
    command = ["bash", "-c", "exec " + server_line.replace(documented.group(1), "0")]
    with serving(command, folder) as (_, port):
        for line in clients:
            asked = run_client(["bash", "-c", line.replace(documented.group(1), str(port))], folder)
            expected = [said for key, said in EXPECTED.items() if key in line]
            assert expected, f"no expected output for {line!r} in tests/test_docs.py"
            assert asked.stdout == expected[0], (line, asked)


def run_client(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    asked = subprocess.run(
        command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert asked.returncode == 0, asked
    return asked


class serving:
    """A page's server, started as the page says (port 0), until it said where it listens;
    stopped with Ctrl-C (SIGINT) at the end, as a reader would."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def __enter__(self) -> tuple[subprocess.Popen[str], int]:
        assert self.process.stdout is not None
        said = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()  # it prints (or logs) where it listens first
            said.append(line)
            found = re.search(r"127\.0\.0\.1:(\d+)", line)
            if found:
                return self.process, int(found.group(1))
            if not line:
                break
        self.process.kill()
        raise AssertionError(f"the server never said where it listens: {''.join(said)!r}")

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
