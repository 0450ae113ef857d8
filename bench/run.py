"""The comparison harness: socketkit's engines against peer frameworks, side by side.

Run from the repository root after ``pip install -e '.[cli,plot,bench]'`` and
``apt-get install wrk``:

    python bench/run.py                   # the standard suite, a few seconds per case
    python bench/run.py --quick           # one second per case, fewer connections (a smoke test)
    python bench/run.py --repeat 3        # each case three times, interleaved; the median run shown

Every server runs pinned to core 0 and every load generator to core 1
(``taskset``). The figure is the server's CPU time per request, user and
system, read from /proc/PID/stat over the run, with requests/s beside it.
One run of a server varies by about 10% on a shared VM (far more for echo at
100 KiB), so ``--repeat`` runs every case several times in rotating order and
reports the median run with the range of all runs.
Cases (issue 4): (a) HTTP hello, keep-alive, 50 connections, wrk; (b) the
same with a new connection per request; (c) echo at 1, 10 and 100 KiB with 10
connections (socketkit bench); (d) RSS per idle connection at 10,000
connections. Results go to bench/results/ as results.json, results.md and
results.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def socketkit(engine: str) -> list[str]:
    return [
        PY,
        "-m",
        "socketkit",
        "serve",
        "{service}",
        "--engine",
        engine,
        "-l",
        "tcp://127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--max-connections",
        "20000",
        "--max-connections-per-ip",
        "20000",
        "--idle-timeout",
        "600",
    ]


SERVERS: dict[str, list[str]] = {
    "socketkit epoll": socketkit("epoll"),
    "socketkit poll": socketkit("poll"),
    "socketkit threads": socketkit("threads"),
    "socketkit pool": socketkit("pool"),
    "socketkit asyncio": socketkit("asyncio"),
    "socketkit uvloop": socketkit("uvloop"),
    "bare selectors": [PY, str(PEERS / "bare_selectors.py"), "{service}", "{port}"],
    "uvloop": [PY, str(PEERS / "asyncio_protocol.py"), "{service}", "{port}", "--uvloop"],
    "asyncio protocol": [PY, str(PEERS / "asyncio_protocol.py"), "{service}", "{port}"],
    "asyncio streams": [PY, str(PEERS / "asyncio_streams.py"), "{service}", "{port}"],
    "socketserver threads": [PY, str(PEERS / "socketserver_threads.py"), "{service}", "{port}"],
    "gevent": [PY, str(PEERS / "gevent_server.py"), "{service}", "{port}"],
    "twisted epoll": [PY, str(PEERS / "twisted_server.py"), "{service}", "{port}"],
    "trio": [PY, str(PEERS / "trio_server.py"), "{service}", "{port}"],
}

CASES = {
    "a": "HTTP hello, keep-alive, 50 connections (wrk)",
    "b": "HTTP hello, a new connection per request, 50 connections (wrk)",
    "c1k": "echo 1 KiB, 10 connections (socketkit bench)",
    "c10k": "echo 10 KiB, 10 connections (socketkit bench)",
    "c100k": "echo 100 KiB, 10 connections (socketkit bench)",
    "d": "RSS per idle connection",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime (fields 14 and 15 of the file)


def rss_kb(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


class Running:
    """A server started pinned to core 0, stopped on exit."""

    def __init__(self, name: str, service: str, template: list[str] | None = None) -> None:
        self.port = free_port()
        template = SERVERS[name] if template is None else template  # (another harness's server)
        command = [part.format(service=service, port=self.port) for part in template]
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *command],
            cwd=PEERS,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while True:  # a harness, not a test: poll until the port answers
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"{name} did not start: {err[-500:]}") from None
                time.sleep(0.05)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Stop a server as Ctrl-C does (it drains), and kill it if it has not ended in 10 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load(command: list[str], server: Running) -> tuple[int, float, dict[str, Any], dict[str, Any]]:
    """Run a load pinned to core 1; (requests, seconds, cpu, extra)."""
    user0, sys0 = cpu_ticks(server.proc.pid)
    started = time.monotonic()
    finished = subprocess.run(
        ["taskset", "-c", "1", *command], capture_output=True, text=True, timeout=600, check=False
    )
    out = finished.stdout
    seconds = time.monotonic() - started
    user1, sys1 = cpu_ticks(server.proc.pid)
    cpu = {"user_s": (user1 - user0) / TICKS, "sys_s": (sys1 - sys0) / TICKS}
    if command[0] == "wrk":
        match = re.search(r"(\d+) requests in", out)
        requests = int(match.group(1)) if match else 0
        errors = re.search(r"Socket errors: (.*)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        extra = {
            "errors": (errors.group(1) if errors else "") + (f" non-2xx {non2xx.group(1)}" if non2xx else "")
        }
    else:
        report = json.loads(out)
        requests = report["end"]["requests"]
        extra = {"errors": report["end"]["errors"], "latency_ms": report["end"]["latency_ms"]}
    if not requests:
        raise RuntimeError(f"the load completed no request: {(finished.stderr or out).strip()[-300:]}")
    return requests, seconds, cpu, extra


def run_case(case: str, name: str, duration: float, connections: int) -> dict[str, Any]:
    service = "hello" if case in ("a", "b") else "echo"
    with Running(name, service) as server:
        url = f"http://127.0.0.1:{server.port}/"
        seconds = f"-d{max(1, round(duration))}s"  # wrk takes whole seconds
        if case == "a":
            command = ["wrk", "-t1", f"-c{connections}", seconds, url]
        elif case == "b":
            command = ["wrk", "-t1", f"-c{connections}", seconds, "-H", "Connection: close", url]
        else:
            size = {"c1k": 1024, "c10k": 10240, "c100k": 102400}[case]
            command = [
                PY,
                "-m",
                "socketkit",
                "bench",
                f"tcp://127.0.0.1:{server.port}",
                "-c",
                "10",
                "-d",
                str(duration),
                "--size",
                str(size),
                "--codec",
                "length",
                "--json",
            ]
        requests, seconds, cpu, extra = load(command, server)
    per = 1e6 / requests if requests else 0.0
    return {
        "requests": requests,
        "requests_per_second": requests / seconds if seconds else 0.0,
        "user_us": cpu["user_s"] * per,
        "sys_us": cpu["sys_s"] * per,
        **extra,
    }


def run_rss(name: str, count: int) -> dict[str, Any]:
    with Running(name, "echo") as server:
        base_fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        before = rss_kb(server.proc.pid)
        clients = []
        try:
            for _ in range(count):
                clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            deadline = time.monotonic() + 60
            # the readiness probe's connection may still be counted in base_fds: allow for it
            while len(os.listdir(f"/proc/{server.proc.pid}/fd")) < base_fds + count - 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{name} accepted only "
                        f"{len(os.listdir(f'/proc/{server.proc.pid}/fd')) - base_fds} connections"
                    )
                time.sleep(0.1)
            time.sleep(0.5)  # let per-connection allocations settle before reading RSS
            after = rss_kb(server.proc.pid)
        finally:
            for client in clients:
                client.close()
    return {"connections": count, "rss_kb_per_connection": (after - before) / count}


def total_us(row: dict[str, Any]) -> float:
    return float(row["user_us"] + row["sys_us"])


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median CPU per request, with the spread of all runs beside it."""
    if len(runs) == 1:
        return runs[0]
    done = sorted((run for run in runs if "failed" not in run), key=total_us)
    if not done:
        return runs[-1]
    row = dict(done[(len(done) - 1) // 2])  # the lower median of an even count: still a real run
    row["runs"] = len(done)
    row["total_us_range"] = [total_us(done[0]), total_us(done[-1])]
    return row


def table(results: dict[str, dict[str, Any]], case: str) -> list[str]:
    rows = results[case]
    if case == "d":
        lines = ["| server | RSS per idle connection |", "|---|---|"]
        for name, row in rows.items():
            lines.append(
                f"| {name} | {row['rss_kb_per_connection']:.2f} KB |"
                if "rss_kb_per_connection" in row
                else f"| {name} | {row.get('failed', '')} |"
            )
        return lines
    uv = rows.get("uvloop", {})
    base = uv.get("user_us", 0) + uv.get("sys_us", 0)
    spread = any("total_us_range" in row for row in rows.values())
    lines = [
        "| server | requests/s | user µs/req | sys µs/req | total µs/req | vs uvloop |"
        + (" total, all runs |" if spread else ""),
        "|---|---|---|---|---|---|" + ("---|" if spread else ""),
    ]
    for name, row in rows.items():
        if "failed" in row:
            lines.append(f"| {name} | failed: {row['failed']} | | | | |" + (" |" if spread else ""))
            continue
        total = total_us(row)
        ratio = f"{total / base:.2f}x" if base else ""
        low, high = row.get("total_us_range", (total, total))
        lines.append(
            f"| {name} | {row['requests_per_second']:,.0f} | {row['user_us']:.2f} | {row['sys_us']:.2f} "
            f"| {total:.2f} | {ratio} |"
            + (f" {low:.2f} to {high:.2f} ({row.get('runs', 1)}) |" if spread else "")
        )
    return lines


def chart(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only when charting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cases = [c for c in ("a", "b", "c1k", "c10k", "c100k") if c in results]
    figure, axes = plt.subplots(len(cases) + ("d" in results), 1, figsize=(10, 3.2 * (len(cases) + 1)))
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    for ax, case in zip(axes, cases, strict=False):
        rows = {n: r for n, r in results[case].items() if "user_us" in r}
        names = list(rows)
        ax.barh(names, [rows[n]["user_us"] for n in names], label="user")
        ax.barh(
            names,
            [rows[n]["sys_us"] for n in names],
            left=[rows[n]["user_us"] for n in names],
            label="system",
        )
        ax.set_title(f"({case}) {CASES[case]}: server CPU µs per request")
        ax.invert_yaxis()
        ax.legend(loc="lower right")
    if "d" in results:
        rows = {n: r for n, r in results["d"].items() if "rss_kb_per_connection" in r}
        axes[-1].barh(list(rows), [r["rss_kb_per_connection"] for r in rows.values()])
        axes[-1].set_title("(d) RSS per idle connection, KB")
        axes[-1].invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (default 5)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated server names")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ",".join(CASES))
    parser.add_argument("--rss-connections", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="1 s per case, 10 wrk connections, 500 for RSS")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per server and load case, interleaved; the table shows the median run (default 1)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args()
    servers = [s.strip() for s in options.servers.split(",") if s.strip()]
    cases = [c.strip() for c in options.cases.split(",") if c.strip()]
    unknown = [s for s in servers if s not in SERVERS] + [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown server or case: {', '.join(unknown)}")
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    duration = 1.0 if options.quick else options.duration
    connections = 10 if options.quick else 50
    rss_count = 500 if options.quick else options.rss_connections
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        rounds = 1 if case == "d" else options.repeat  # memory per connection does not drift
        for round_ in range(rounds):
            # Interleaved, each round starting one server later: a drift of the machine
            # (another tenant, thermal state) spreads over every server, not one.
            shift = round_ % len(servers)
            for name in servers[shift:] + servers[:shift]:
                try:
                    row = (
                        run_rss(name, rss_count)
                        if case == "d"
                        else run_case(case, name, duration, connections)
                    )
                except Exception as exc:  # one peer failing must not lose the others' figures
                    row = {"failed": str(exc)[:200]}
                runs[name].append(row)
                print(f"({case}) {name}: {row}", file=sys.stderr, flush=True)
        results[case] = {name: median_run(runs[name]) for name in servers}
    options.out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()} Linux, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    meta = {
        "date": stamp,
        "machine": machine,
        "duration": duration,
        "connections": connections,
        "repeat": options.repeat,
    }
    (options.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"Measured {stamp} on {machine}; server pinned to core 0, load to core 1; {duration:g} s per case"
        + (f", the median of {options.repeat} interleaved runs." if options.repeat > 1 else "."),
        "",
    ]
    for case in cases:
        lines += [f"**({case}) {CASES[case]}**", "", *table(results, case), ""]
    (options.out / "results.md").write_text("\n".join(lines))
    chart(results, options.out / "results.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
