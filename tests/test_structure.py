"""The shape DESIGN §1-2 asks for, kept by tests: engines in family folders, the stop
sequence written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketkit.engines import ENGINES, FAMILIES, engine_class
from socketkit.engines.base import Engine

SRC = Path(__file__).parent.parent / "src" / "socketkit"


@pytest.mark.parametrize("name", [name for name in ENGINES if name != "prefork"])
def test_every_engine_stops_by_the_one_sequence(name: str) -> None:
    """Each engine gives primitives (stop accepting, take the backlog, end idle, cut all);
    the order of the steps and the grace cut's report are the base's, unchanged."""
    cls = engine_class(name)
    for step in ("begin_stop", "cut_at_grace"):
        assert getattr(cls, step) is getattr(Engine, step), f"{cls.__name__} rewrites {step}"


def test_the_grace_cut_is_reported_from_one_place() -> None:
    places = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if "grace period over: cutting" in path.read_text()
    ]
    assert places == ["engines/base.py"]


def test_every_engine_lives_in_its_familys_folder() -> None:
    assert set(FAMILIES) == set(ENGINES)
    for name, target in ENGINES.items():
        module = target.partition(":")[0]
        folder = (
            "socketkit.supervisor"
            if FAMILIES[name] == "supervisor"
            else f"socketkit.engines.{FAMILIES[name]}"
        )
        assert module.startswith(folder + "."), (name, module)
