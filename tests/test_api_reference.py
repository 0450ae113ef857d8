"""docs/api.md is what tools/api_reference.py makes of the docstrings now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_api_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "tools" / "api_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = (ROOT / "docs" / "api.md").read_text()
    assert module.reference() == written, "docs/api.md is stale: run python tools/api_reference.py"
    for name in ("HttpRequest", "HttpResponse", "HttpClient", "Request", "host_info", "service_info"):
        assert f"`socketkit.{name}" in written or f"`socketkit.netinfo.{name}" in written, name
