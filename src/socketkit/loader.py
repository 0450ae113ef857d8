"""Load a user's handler from "module:attr", as uvicorn loads "app:obj".

The current directory is put on ``sys.path`` first, so ``socketkit serve
myapp:handle`` finds ``myapp.py`` where the user runs it; a path to a file
(``./chat.py:room``, ``/srv/app/chat.py:room``) is loaded from that file, its
directory put on ``sys.path`` so it imports its neighbours. Every failure is a
:class:`ValueError` whose message says what to fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from .handlers import Handler, adapt

__all__ = ["is_file_spec", "load_handler"]


def load_handler(spec: str) -> Handler:
    """Import ``module:attr`` (attr may be dotted) and check it is a handler.

    Raises:
        ValueError: a malformed spec, a failed import, a missing attribute, or
            an object that is not a handler.
    """
    module_name, colon, attr_path = spec.partition(":")
    if not colon or not module_name or not attr_path:
        raise ValueError(f"{spec!r} is neither a built-in service nor module:attr (e.g. myapp:handle)")
    if is_file_spec(spec):
        module = _load_file(module_name, spec)
    else:
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import {module_name!r} for {spec}: {exc}") from exc
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr_path!r} (from {spec})") from None
    try:
        return adapt(target)
    except TypeError as exc:
        raise ValueError(f"{spec} is not a handler: {exc}") from exc


def _load_file(path: str, spec: str) -> Any:
    """The module in the Python file at ``path``, run afresh each time (so SIGHUP's reload
    reads the file again), and known in ``sys.modules`` by that path, which is also its
    ``__name__``: a file named ``json.py`` never stands in for the standard library's."""
    if not os.path.isfile(path):
        raise ValueError(f"no file {path!r} for {spec}: name a Python file, or write module:attr")
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # its neighbours import as they would beside it
    file_spec = importlib.util.spec_from_file_location(path, path)
    if file_spec is None or file_spec.loader is None:
        raise ValueError(f"cannot load {path!r} for {spec}: not a Python file")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[path] = module
    try:
        file_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[path]
        raise ValueError(f"cannot load {path!r} for {spec}: {type(exc).__name__}: {exc}") from exc
    return module


def is_file_spec(spec: str) -> bool:
    """Whether ``spec`` names a file (``./chat.py:room``), not a module (``chat:room``)."""
    module_name = spec.partition(":")[0]
    return module_name.endswith(".py") or os.sep in module_name
