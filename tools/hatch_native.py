"""Hatch build hook: a wheel with the hot path compiled by mypyc.

    HATCH_BUILD_HOOKS_ENABLE=1 pip install .        # or: pip wheel .

Off by default, so a plain ``pip install`` gives the pure-Python wheel that
runs anywhere. When enabled, it compiles ``build_native.NATIVE_MODULES`` in a
scratch copy of the package (the same build ``make native`` makes, so the
wheel holds what the native test run tested) and adds the extension modules
and mypyc's runtime library to the wheel, which is then tagged for this
interpreter and platform. The ``.py`` files stay in the wheel beside their
compiled modules; Python imports the compiled one.

Why not hatch-mypyc: it builds inside the source tree, and a compiled module
left in ``src/`` shadows its ``.py`` in an editable install, so an edit would
silently not run. Here ``src/`` is never written.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_native import build


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "native"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        self._scratch = Path(tempfile.mkdtemp(prefix="socketkit-native-"))
        package = build(self._scratch)
        for library in sorted(self._scratch.glob("*.so")):  # mypyc's runtime, shared by every module
            build_data["force_include"][str(library)] = library.name
        for compiled in sorted(package.rglob("*.so")):
            build_data["force_include"][str(compiled)] = str(compiled.relative_to(self._scratch))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
