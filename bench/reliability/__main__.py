"""python -m bench.reliability [--full] [--only NAMES] [--markdown FILE]: run the suite.

Each case prints one line as it ends; then a table (Markdown, as docs/RELIABILITY.md
holds it). The exit status is 1 if any case failed, so CI can run the quick form.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "src"))

from .cases import FULL, QUICK, plan
from .harness import Result


def _pki(directory: Path) -> tuple[Path, Path]:
    """(server certificate and key, CA) for localhost, from trustme."""
    import trustme  # noqa: PLC0415 - a dev dependency, needed only here

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "server.pem")
    )
    return directory / "server.pem", directory / "ca.pem"


def table(results: list[Result], size: str) -> str:
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    lines = [
        f"Run {datetime.date.today().isoformat()}, `{size}` form, on {machine}:",
        "",
        "| case | thrown at it | figure | passes when | result |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        verdict = f"skipped: {r.skipped}" if r.skipped else "pass" if r.passed else "**FAIL**"
        lines.append(f"| {r.case} | {r.size} | {r.figure} | {r.criterion} | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full sizes (minutes), not the quick form")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated words, one of which a case's name holds (slowloris, epoll, ...)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    options = parser.parse_args()
    size = FULL if options.full else QUICK
    wanted = [word.strip() for word in options.only.split(",") if word.strip()]
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        certificate, ca = _pki(Path(directory))
        for name, case in plan(size, certificate, ca):
            if wanted and not any(word in name for word in wanted):
                continue
            try:
                result = case()
            except Exception as exc:
                result = Result(name, "", f"{type(exc).__name__}: {exc}", False, "it runs")
            results.append(result)
            if result.skipped:
                print(f"skip  {result.case}: {result.skipped}", flush=True)
                continue
            verdict = "pass" if result.passed else "FAIL"
            print(f"{verdict:4}  {result.case}: {result.figure}  ({result.seconds:.1f} s)", flush=True)
    text = table(results, size.name)
    print()
    print(text)
    skipped = [r for r in results if r.skipped]
    print(
        f"{sum(r.passed for r in results)} of {len(results)} passed, {len(skipped)} skipped, "
        f"in {time.monotonic() - started:.0f} s"
    )
    if options.markdown is not None:
        options.markdown.write_text(text)
    # A missing peer program skips its case here; where the peers are required (CI), it fails.
    required = os.environ.get("SOCKETKIT_REQUIRE_PEERS") == "1"
    return 0 if all(r.passed or (r.skipped and not required) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
