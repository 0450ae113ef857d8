"""Build socketkit's hot path with mypyc: the native wheel, installed beside the source.

    python tools/build_native.py          # -> build/native: the native wheel, installed there
    PYTHONPATH=build/native socketkit serve hello

``build()`` compiles NATIVE_MODULES in a copy of the package; the wheel's build
hook (``tools/hatch_native.py``) calls it, so ``HATCH_BUILD_HOOKS_ENABLE=1 pip
install .`` gives users the same compiled modules. This script builds that
wheel and installs it into ``build/native`` (``pip install --target``), so
``make test`` and ``bench/run.py`` run exactly what a user would install.

Why a side directory and not the source tree: compiled modules shadow their
``.py`` files on import, so a build inside ``src/`` would silently run stale
code after an edit. Here ``src/`` stays the truth.

It needs mypy and hatchling (the ``dev`` extra) and a C compiler with the
Python headers. The compiled modules import only the standard library and
mypyc's runtime, which the build puts beside them.
"""

from __future__ import annotations

import argparse
import os
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


def build_wheel(wheels: Path) -> Path:
    """Build the native wheel into ``wheels`` (emptied first) with this interpreter; its path."""
    shutil.rmtree(wheels, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    env = dict(os.environ, HATCH_BUILD_HOOKS_ENABLE="1")
    subprocess.run([*pip, "--wheel-dir", str(wheels), str(ROOT)], env=env, check=True)
    (wheel,) = wheels.glob("socketkit-*.whl")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to install (default build/native)"
    )
    args = parser.parse_args()
    wheel = build_wheel(ROOT / "build" / "wheels")
    shutil.rmtree(args.out, ignore_errors=True)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(args.out)]
    subprocess.run([*install, str(wheel)], check=True)
    print(
        f"built {wheel.name} ({len(NATIVE_MODULES)} compiled modules), installed; use PYTHONPATH={args.out}"
    )


if __name__ == "__main__":
    main()
