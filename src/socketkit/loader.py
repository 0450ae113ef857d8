"""Load a user's handler from "module:attr", as uvicorn loads "app:obj".

The current directory is put on ``sys.path`` first, so ``socketkit serve
myapp:handle`` finds ``myapp.py`` where the user runs it. Every failure is a
:class:`ValueError` whose message says what to fix.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .handlers import Handler, adapt

__all__ = ["load_handler"]


def load_handler(spec: str) -> Handler:
    """Import ``module:attr`` (attr may be dotted) and check it is a handler.

    Raises:
        ValueError: a malformed spec, a failed import, a missing attribute, or
            an object that is not a handler.
    """
    module_name, colon, attr_path = spec.partition(":")
    if not colon or not module_name or not attr_path:
        raise ValueError(f"{spec!r} is neither a built-in service nor module:attr (e.g. myapp:handle)")
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
