"""The public surface of ``barq.routing`` and who may import what (trio's test_exports habit)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import barq.routing
import barq.strategies

SRC = Path(barq.routing.__file__).resolve().parents[1]


def test_all_is_sorted_unique_and_importable() -> None:
    names = barq.routing.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))  # ruff RUF022 order
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(barq.routing, name), name


def test_every_public_name_of_the_private_modules_is_exported() -> None:
    exported = set(barq.routing.__all__)
    for mod in pkgutil.iter_modules(barq.routing.__path__):
        assert mod.name.startswith("_"), f"barq.routing.{mod.name} should be private"
        m = importlib.import_module(f"barq.routing.{mod.name}")
        missing = set(getattr(m, "__all__", ())) - exported
        assert not missing, f"barq.routing.{mod.name} exports {sorted(missing)} privately only"


def test_names_report_barq_routing_as_their_home() -> None:
    for name in ("RoutingContext", "PathStrategy", "find_path", "build_route", "min_cost_flow"):
        assert getattr(barq.routing, name).__module__ == "barq.routing"


def _barq_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "barq" or m.startswith("barq.")}


def test_strategies_import_only_the_public_toolkit() -> None:
    allowed = {"barq.routing", "barq.model", "barq.errors"}
    for path in sorted((SRC / "strategies").glob("*.py")):
        for mod in _barq_imports(path):
            ok = mod in allowed or mod.startswith("barq.strategies.")
            assert ok, f"{path.name} imports {mod} (strategies use barq.routing only)"


def test_routing_imports_only_graph_model_errors() -> None:
    for path in sorted((SRC / "routing").glob("*.py")):
        for mod in _barq_imports(path):
            ok = mod.startswith(("barq.routing", "barq.graph", "barq.model", "barq.errors"))
            assert ok, f"routing/{path.name} imports {mod}"


def test_strategies_package_keeps_the_registry_surface() -> None:
    assert {"Strategy", "available_strategies", "get_strategy", "register_strategy"} <= set(
        barq.strategies.__all__
    )
