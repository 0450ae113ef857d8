"""Loading a user's handler by name: a module on the path, or a Python file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from socketkit.loader import is_file_spec, load_handler


def test_a_file_path_is_loaded_from_that_file(tmp_path: Path) -> None:
    """``socketkit serve ./chat.py:room`` works as ``chat:room`` does from its directory, and
    the file is read again on each load (SIGHUP), its neighbours importable."""
    (tmp_path / "helpers.py").write_text("SUFFIX = b'!'\n")
    app = tmp_path / "chat.py"
    app.write_text("from helpers import SUFFIX\ndef handle(m, c):\n    return m + SUFFIX\n")
    spec = f"{app}:handle"
    assert is_file_spec(spec) and not is_file_spec("chat:handle")
    assert load_handler(spec).target(b"hi", None) == b"hi!"
    app.write_text("def handle(m, c):\n    return m.upper()\n")
    assert load_handler(spec).target(b"hi", None) == b"HI"  # read anew, not a stale module


def test_a_file_named_like_a_standard_module_does_not_replace_it(tmp_path: Path) -> None:
    app = tmp_path / "json.py"
    app.write_text("def handle(m, c):\n    return m\n")
    load_handler(f"{app}:handle")
    assert sys.modules["json"] is json and json.dumps([1]) == "[1]"


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no file .* name a Python file"):
        load_handler(f"{tmp_path / 'nope.py'}:handle")
