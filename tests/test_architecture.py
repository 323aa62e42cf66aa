"""The import directions of docs/architecture.md, enforced.

Each room (a package or top-level module under ``src/barq``) may import only the rooms
listed for it in :data:`ALLOWED`; a few rooms are narrowed further to named modules
(:data:`ONLY_MODULES`). A failure names the file, the line and the offending import.
Imports inside ``if TYPE_CHECKING:`` count too: a type is a dependency as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "barq"

#: room -> the rooms it may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "errors": frozenset(),
    "limits": frozenset({"errors"}),
    "invoice": frozenset({"model", "errors"}),
    "graph": frozenset({"model", "errors"}),
    "routing": frozenset({"graph", "model", "errors"}),
    "strategies": frozenset({"routing", "model", "errors"}),
    "onion": frozenset({"model", "errors"}),
    "payment": frozenset({"model", "errors", "limits"}),
    "node": frozenset({"model", "errors", "graph", "invoice", "limits"}),
    "sim": frozenset({"model", "errors", "graph", "invoice", "node", "limits", "onion"}),
    "store": frozenset({"model", "errors", "payment", "limits"}),
    "actors": frozenset(
        {"payment", "routing", "strategies", "node", "graph", "model", "errors", "limits", "onion"}
    ),
    "plugin": frozenset({"actors", "payment", "store", "node", "model", "errors", "limits", "lab"}),
    "testing": frozenset({"sim", "node", "graph", "model", "errors", "invoice", "limits"}),
    "lab": frozenset(
        {"store", "payment", "routing", "strategies", "model", "errors", "limits", "graph"}
    ),
    "bench": frozenset(
        {
            "actors",
            "sim",
            "graph",
            "routing",
            "strategies",
            "model",
            "errors",
            "limits",
            "invoice",
            "node",
            "testing",
            "__init__",
        }
    ),
    "cli": frozenset(
        {
            "bench",
            "lab",
            "sim",
            "graph",
            "routing",
            "strategies",
            "store",
            "model",
            "errors",
            "limits",
            "__init__",
        }
    ),
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}

#: rooms that may reach into another room only through the named modules.
ONLY_MODULES: dict[tuple[str, str], frozenset[str]] = {
    # the plugin talks to the engine through its facade and the message types it persists
    ("plugin", "actors"): frozenset({"barq.actors.runtime", "barq.actors.messages"}),
    # the plugin builds the real node and passes it on; it never calls node internals
    ("plugin", "node"): frozenset({"barq.node.base", "barq.node.lightningd"}),
    # strategies see the public toolkit only, never its private modules
    ("strategies", "routing"): frozenset({"barq.routing"}),
}


def _room(path: Path, root: Path) -> str:
    return path.relative_to(root).parts[0].removesuffix(".py")


def _module_path(module: str, *, package: bool = False) -> Path:
    rel = Path(*module.split(".")[1:])
    return SRC / rel / "__init__.py" if package else SRC / rel.with_suffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:  # ``from barq.actors import runtime`` imports a module
                sub = f"{node.module}.{a.name}"
                is_module = _module_path(sub).exists() or _module_path(sub, package=True).exists()
                out.append((node.lineno, sub if is_module else node.module))
    return [(line, m) for line, m in out if m == "barq" or m.startswith("barq.")]


def violations(root: Path = SRC) -> list[str]:
    """Every import under ``root`` that breaks :data:`ALLOWED` or :data:`ONLY_MODULES`."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        room = _room(path, root)
        allowed = ALLOWED.get(room)
        where = path.relative_to(root.parent)
        if allowed is None:
            found.append(f"{where}: room {room!r} is not in docs/architecture.md's table")
            continue
        for line, module in _imports(path):
            target = "__init__" if module == "barq" else module.split(".")[1]
            if target == room:
                continue
            if target not in allowed:
                found.append(f"{where}:{line}: {room} must not import {module}")
                continue
            only = ONLY_MODULES.get((room, target))
            if only is not None and module not in only:
                found.append(
                    f"{where}:{line}: {room} may import {target} only as "
                    f"{', '.join(sorted(only))}, not {module}"
                )
    return found


def test_import_directions() -> None:
    bad = violations()
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_the_check_catches_a_bad_import(tmp_path: Path) -> None:
    root = tmp_path / "barq"
    (root / "strategies").mkdir(parents=True)
    (root / "payment").mkdir()
    (root / "strategies" / "greedy.py").write_text("from barq.routing._paths import topology\n")
    (root / "payment" / "book.py").write_text("import barq.plugin.host\n")
    bad = violations(root)
    assert any("strategies may import routing only as barq.routing" in b for b in bad)
    assert any("payment must not import barq.plugin.host" in b for b in bad)


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_only_point_at_known_rooms(room: str) -> None:
    assert ALLOWED[room] <= set(ALLOWED), room
