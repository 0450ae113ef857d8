"""Build socketkit's hot path with mypyc, next to the pure-Python package.

    python tools/build_native.py          # -> build/native/socketkit (compiled + pure modules)
    PYTHONPATH=build/native socketkit serve hello

Why a side directory and not the source tree: compiled modules shadow their
``.py`` files on import, so a build inside ``src/`` would silently run stale
code after an edit. Here ``src/`` stays the truth; the build is a copy with the
hot modules compiled, used by putting it first on ``PYTHONPATH``. ``make test``
runs the test suite against it as well, and ``bench/run.py`` measures it beside
the pure-Python engines.

It needs mypy (the ``dev`` extra) and a C compiler with the Python headers.
The compiled modules import only the standard library and mypyc's runtime,
which the build puts beside them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "socketkit"
DEFAULT_OUT = ROOT / "build" / "native"

#: The modules compiled: the reactor's per-event path and what it calls per message.
NATIVE_MODULES = (
    "socketkit/stats.py",
    "socketkit/connection.py",
    "socketkit/codecs/http.py",
    "socketkit/engines/_poller.py",
    "socketkit/engines/reactor.py",
    "socketkit/services/hello.py",
    "socketkit/engines/base.py",
    "socketkit/engines/_threaded.py",
    "socketkit/engines/threads.py",
)


def build(out: Path) -> Path:
    """Copy the package to ``out`` and compile NATIVE_MODULES there; the package path."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(SOURCE, out / "socketkit", ignore=shutil.ignore_patterns("__pycache__"))
    mypyc = [sys.executable, "-m", "mypyc", *NATIVE_MODULES]
    result = subprocess.run(mypyc, cwd=out, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"build_native: mypyc failed (exit {result.returncode}); the output is above")
    shutil.rmtree(out / "build", ignore_errors=True)  # mypyc's C sources and objects
    for module in NATIVE_MODULES:
        stem = out / module
        if not list(stem.parent.glob(stem.stem + ".*.so")):
            raise SystemExit(f"build_native: no compiled module for {module}")
    return out / "socketkit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to build (default build/native)")
    args = parser.parse_args()
    package = build(args.out)
    print(f"built {package} ({len(NATIVE_MODULES)} compiled modules); use PYTHONPATH={args.out}")


if __name__ == "__main__":
    main()
