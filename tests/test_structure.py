"""The shape DESIGN §1-2 asks for, kept by tests: engines in family folders, the stop
sequence written once."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest

from socketkit.engines import ENGINES, FAMILIES, engine_class
from socketkit.engines.base import Engine

SRC = Path(__file__).parent.parent / "src" / "socketkit"


@pytest.mark.parametrize("name", list(ENGINES))
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
        assert module.startswith(f"socketkit.engines.{FAMILIES[name]}."), (name, module)


def _private_names_defined(tree: ast.Module) -> set[str]:
    """The private names a module defines: functions, classes, attributes it assigns, slots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {name for name in names if name.startswith("_")}


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """``x._name`` where ``_name`` is not this module's own (and ``x`` is not self, cls or a
    standard library module) is a neighbour's internals: what a neighbour needs is public."""
    stdlib = set(sys.stdlib_module_names)
    reaches = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        own = _private_names_defined(tree)
        for node in ast.walk(tree):
            if (
                not isinstance(node, ast.Attribute)
                or not node.attr.startswith("_")
                or node.attr.startswith("__")
            ):
                continue
            base = node.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or base.id in stdlib):
                continue
            if node.attr not in own:
                reaches.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert reaches == []


def test_no_engine_re_edits_the_session() -> None:
    """Engines give the session a transport and feed it events (DESIGN §2): no class outside
    ``session/`` subclasses Session, so what a session method does is read in one place."""
    subclasses = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "session":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).rpartition(".")[2] for base in node.bases}
                if "Session" in bases:
                    subclasses.append(f"{path.relative_to(SRC)}: {node.name}")
    assert subclasses == []


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engines_connections_are_plain_sessions(name: str) -> None:
    """What a handler is given as ``conn`` is a Session itself on every engine, whatever
    transport the engine gives it."""
    from socketkit.session import Session, Transport

    cls = engine_class(name)
    transport = getattr(cls, "connection_class", None)
    if transport is not None:
        assert issubclass(transport, Transport) and not issubclass(transport, Session)
    assert not [sub for sub in Session.__subclasses__() if sub.__module__.startswith("socketkit")]


def test_the_prefork_master_is_a_supervisor_not_an_engine() -> None:
    """DESIGN §2: the master serves nothing itself; what it shares with an engine (listeners,
    a signal-safe stop) is the Runner both are, not the engine template."""
    from socketkit.engines.runner import Runner
    from socketkit.supervisor.prefork import Supervisor

    assert issubclass(Supervisor, Runner) and not issubclass(Supervisor, Engine)
    assert "prefork" not in ENGINES


def test_a_server_its_engine_and_its_workers_are_made_from_one_plan() -> None:
    import socketkit as sk
    from socketkit.supervisor.worker import WorkerPlan

    server = sk.Server("tcp://127.0.0.1:0", lambda m, c: m, codec=sk.Lines(), engine="prefork", workers=2)
    plan = server.plan
    assert (plan.engine_name, plan.workers) == ("reactor", 2)
    assert (server.handler, server.codec, server.limits) == (plan.handler, plan.codec, plan.limits)
    assert {field.name for field in dataclasses.fields(WorkerPlan)} >= {"plan"}
    assert not {"handler", "codec", "limits", "engine_class"} & {
        f.name for f in dataclasses.fields(WorkerPlan)
    }


def test_the_sessions_parts_are_small_and_each_rule_is_in_one_of_them() -> None:
    """DESIGN §2: the session is read in parts of one idea each (none over ~300 lines); the
    parts hold no state of their own, and no part redefines what another defines."""
    from socketkit.session import Session
    from socketkit.session.state import SessionState

    sizes = {path.name: len(path.read_text().splitlines()) for path in (SRC / "session").glob("*.py")}
    assert max(sizes.values()) <= 300, sizes
    parts = [cls for cls in Session.__mro__ if cls.__module__.startswith("socketkit.session.")]
    assert SessionState in parts and len(parts) >= 7
    where: dict[str, list[str]] = {}
    for cls in parts:
        assert cls is SessionState or cls.__dict__.get("__slots__") == (), f"{cls.__name__} holds state"
        for name in cls.__dict__:
            if not (name.startswith("__") and name.endswith("__")):
                where.setdefault(name, []).append(cls.__name__)
    assert {name: classes for name, classes in where.items() if len(classes) > 1} == {}
