"""The native build: when the suite runs against it, the hot modules really are compiled.

``make test`` runs the suite twice: on the pure-Python source, and with
``PYTHONPATH=build/native`` and ``SOCKETKIT_NATIVE=1`` on the native wheel
(mypyc), which ``tools/build_native.py`` builds and installs there. This test
tells the two runs apart, so a build that silently fell back to Python cannot
pass as compiled.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from build_native import NATIVE_MODULES


def test_hot_modules_are_compiled_exactly_when_the_native_build_is_tested() -> None:
    expect_native = os.environ.get("SOCKETKIT_NATIVE") == "1"
    for path in NATIVE_MODULES:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        compiled = str(module.__file__).endswith(".so")
        assert compiled == expect_native, f"{module.__name__} from {module.__file__}"


@pytest.mark.skipif(os.environ.get("SOCKETKIT_NATIVE") != "1", reason="the pure run has no wheel installed")
def test_the_native_run_tests_the_installed_native_wheel() -> None:
    import socketkit

    site = Path(socketkit.__file__).resolve().parent.parent
    (wheel_file,) = site.glob("socketkit-*.dist-info/WHEEL")
    fields = wheel_file.read_text()
    assert "Root-Is-Purelib: false" in fields
    assert f"Tag: cp{sys.version_info.major}{sys.version_info.minor}-" in fields


def test_interpreted_subclasses_of_compiled_classes_work() -> None:
    import socketkit as sk
    from socketkit.engines.base import DatagramConnection
    from socketkit.stats import Counters

    class Mine(Counters):
        pass

    counters = Mine()
    counters.bytes_in += 3
    assert counters.bytes_in == 3
    assert issubclass(DatagramConnection, sk.Connection)
