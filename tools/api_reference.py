"""Write docs/api.md: the public API, from the docstrings (run: python tools/api_reference.py).

Why generated: a reference written by hand drifts from the code; this one is
made from what ``socketkit`` exports, and a test fails when docs/api.md is not
what this script writes now.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import socketkit  # noqa: E402
from socketkit import netinfo, tls  # noqa: E402
from socketkit.compat import socketserver as compat_socketserver  # noqa: E402

OUT = ROOT / "docs" / "api.md"


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _summary(obj: Any) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(_doc(obj).split("\n\n")[0].split())


def _members(cls: type) -> list[str]:
    lines = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (_doc(member) or isinstance(member, property)):
            continue
        if isinstance(member, property):
            lines.append(f"- `{name}` (property): {_summary(member)}")
        elif callable(member):
            lines.append(f"- `{name}{_signature(member)}`: {_summary(member)}")
    return lines


def _entry(name: str, obj: Any, prefix: str = "socketkit") -> list[str]:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        lines = [f"### `{prefix}.{name}`", "", f"exception, a {obj.__mro__[1].__name__}", "", _doc(obj)]
    elif inspect.isclass(obj):
        lines = [f"### `{prefix}.{name}`", "", f"class `{name}{_signature(obj)}`", "", _doc(obj)]
        members = _members(obj)
        if members:
            lines += ["", *members]
    elif callable(obj):
        lines = [f"### `{prefix}.{name}{_signature(obj)}`", "", _doc(obj)]
    else:
        lines = [f"### `{prefix}.{name}`", "", f"`{obj!r}`"]
    return [*lines, ""]


def reference() -> str:
    lines = [
        "# socketkit API reference",
        "",
        "Generated from the docstrings by `tools/api_reference.py`; do not edit by hand.",
        "",
        "## socketkit",
        "",
    ]
    for name in sorted(socketkit.__all__, key=str.lower):
        if name != "__version__":
            lines += _entry(name, getattr(socketkit, name))
    lines += ["## socketkit.tls (contexts for `Server(tls=...)` and `connect(tls=...)`)", ""]
    for name in tls.__all__:
        lines += _entry(name, getattr(tls, name), "socketkit.tls")
    lines += ["## socketkit.netinfo (the look-ups behind `socketkit info`)", ""]
    for name in netinfo.__all__:
        lines += _entry(name, getattr(netinfo, name), "socketkit.netinfo")
    lines += [
        "## socketkit.compat.socketserver (the standard library's socketserver, drop-in)",
        "",
        inspect.cleandoc(compat_socketserver.__doc__ or ""),
        "",
    ]
    for name in sorted(compat_socketserver.__all__):
        lines += _entry(name, getattr(compat_socketserver, name), "socketkit.compat.socketserver")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(reference())
    print(f"wrote {OUT.relative_to(ROOT)}")
