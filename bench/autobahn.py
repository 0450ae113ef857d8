"""The Autobahn test suite's fuzzing client (``wstest -m fuzzingclient``) against ``socketkit
serve echo --codec ws`` on every engine: the conformance table for WebSocket servers that
the websockets library, autobahn and the rest report.

Why a bench script, not a unit test: the suite is Python 2.7 software (Autobahn 0.10.9 on
an old Twisted), installed in a virtual environment of its own from a Python 2.7 (.ci/run
makes one where the machine has that Python), and its cases take seconds to minutes per
engine, past what the 3-minute test command may spend. The core cases (1-7 framing, pings,
reserved bits, opcodes, fragments, UTF-8, closing; 10 auto-fragmentation) run on every
engine; with ``--deflate-cases`` the compression cases (12, 13) too, on the engines named.

    .venv/bin/python -m bench.autobahn --wstest .autobahn/bin/wstest [--engines epoll,threads]
        [--cases "1.*,2.*"] [--deflate-cases epoll] [--json results.json]

Exit status 1 when any case's behaviour (or its close behaviour) is FAILED.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from socketkit.engines import ENGINES

CORE = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
DEFLATE = ["12.*", "13.*"]
#: what the echo server is given: the suite's largest messages (case 9.1.6 and 10: 16 MiB)
MAX_MESSAGE = 20 * 1024 * 1024


def serve(engine: str) -> tuple[subprocess.Popen[str], str]:
    """``serve echo --codec ws --deflate`` on a free port; (the process, its ws:// URL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "socketkit",
            "serve",
            "echo",
            "--codec",
            "ws",
            "--deflate",
            "--engine",
            engine,
            "--max-message-size",
            str(MAX_MESSAGE),
            "-l",
            "tcp://127.0.0.1:0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"serving tcp://(\S+) \(engine", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
    return proc, f"ws://{match.group(1)}"


def run(wstest: str, engine: str, cases: list[str], outdir: Path) -> dict[str, Any]:
    """One engine through ``cases``: the suite's verdict for each case."""
    proc, url = serve(engine)
    try:
        spec = outdir / f"spec-{engine}.json"
        agent = f"socketkit-{engine}"
        spec.write_text(
            json.dumps(
                {
                    "outdir": str(outdir / "report"),
                    "servers": [{"agent": agent, "url": url}],
                    "cases": cases,
                    "exclude-cases": [],
                    "exclude-agent-cases": {},
                }
            )
        )
        subprocess.run([wstest, "-m", "fuzzingclient", "-s", str(spec)], cwd=outdir, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
    verdicts: dict[str, Any] = json.loads((outdir / "report" / "index.json").read_text())[agent]
    return verdicts


def tally(verdicts: dict[str, Any]) -> dict[str, int]:
    """Cases by the worse of their behaviour and their close behaviour."""
    order = ["OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "WRONG CODE", "FAILED"]
    counts: collections.Counter[str] = collections.Counter()
    for verdict in verdicts.values():
        worst = max(
            verdict["behavior"], verdict["behaviorClose"], key=lambda b: order.index(b) if b in order else 99
        )
        counts[worst] += 1
    return dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wstest", default=".autobahn/bin/wstest", help="the suite's wstest command")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines")
    parser.add_argument("--cases", default=",".join(CORE), help="comma-separated case patterns")
    parser.add_argument("--deflate-cases", default="", metavar="ENGINES",
                        help="also run the compression cases (12, 13) on these engines")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every verdict here")
    args = parser.parse_args()
    wstest = Path(args.wstest).resolve()  # (it runs in a folder of its own: an absolute path)
    if not wstest.exists():
        raise SystemExit(f"{args.wstest} not found: make it with a Python 2.7 (see .ci/run)")
    results: dict[str, Any] = {}
    failed = False
    print(f"{'engine':<10} {'cases':<28} {'run':>4} {'OK':>4} {'info':>5} {'non-strict':>10} {'failed':>6}")
    plan = [(engine, args.cases.split(",")) for engine in args.engines.split(",") if engine]
    plan += [(engine, DEFLATE) for engine in args.deflate_cases.split(",") if engine]
    for engine, cases in plan:
        with tempfile.TemporaryDirectory(prefix="autobahn-") as tmp:
            verdicts = run(str(wstest), engine, cases, Path(tmp))
        counts = tally(verdicts)
        bad = {case: v for case, v in verdicts.items() if "FAILED" in (v["behavior"], v["behaviorClose"])}
        failed = failed or bool(bad)
        results[f"{engine} {','.join(cases)}"] = verdicts
        print(
            f"{engine:<10} {','.join(c.rstrip('.*') for c in cases):<28} {len(verdicts):>4} "
            f"{counts.get('OK', 0):>4} {counts.get('INFORMATIONAL', 0):>5} "
            f"{counts.get('NON-STRICT', 0):>10} {counts.get('FAILED', 0) + counts.get('WRONG CODE', 0):>6}"
        )
        for case, verdict in sorted(bad.items()):
            print(f"    {case}: {verdict['behavior']} / close {verdict['behaviorClose']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
