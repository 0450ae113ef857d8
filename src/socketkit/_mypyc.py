"""Hints for the optional mypyc build of the hot path (``tools/build_native.py``).

At run time this is a no-op: the library imports only the standard library,
compiled or not. mypyc reads the hints when it compiles: a compiled class that
other (interpreted) classes subclass must say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["mypyc_attr"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:

    def mypyc_attr(*_args: Any, **_flags: Any) -> Callable[[_T], _T]:
        return lambda cls: cls
