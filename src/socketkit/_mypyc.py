"""Hints for the optional mypyc build of the hot path (``tools/build_native.py``).

At run time this is a no-op: the library imports only the standard library,
compiled or not. mypyc reads the hints when it compiles: a compiled class that
other (interpreted) classes subclass must say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["let_signal_handlers_run", "mypyc_attr"]

_T = TypeVar("_T")

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:

    def mypyc_attr(*_args: Any, **_flags: Any) -> Callable[[_T], _T]:
        return lambda cls: cls


def let_signal_handlers_run() -> None:
    """Give pending Python signal handlers their turn; call it when the wake-up fd fires.

    CPython runs a Python signal handler in the main thread between bytecodes.
    A loop compiled by mypyc runs none, so a signal that another thread
    received (it only wrote to the wake-up fd) would wait for the next
    interpreted call. Entering this function, never compiled, is that call.
    """
