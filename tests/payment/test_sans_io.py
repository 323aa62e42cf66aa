"""``barq.payment`` is sans-IO: it imports nothing that awaits, talks or stores (issue 11)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import barq.payment

FILES = sorted(Path(barq.payment.__file__).parent.glob("*.py"))
#: what the lifecycle core may import of Barq
ALLOWED_BARQ = ("barq.model", "barq.errors", "barq.limits", "barq.payment")
#: third-party modules it may use (data types only)
ALLOWED_OTHERS = {"msgspec"}


def _imports(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_payment_imports_only_data_and_rules(path: Path) -> None:
    bad = []
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top == "barq":
            ok = any(module == m or module.startswith(m + ".") for m in ALLOWED_BARQ)
        else:
            ok = top in sys.stdlib_module_names or top in ALLOWED_OTHERS
            ok = ok and top not in {"asyncio", "socket", "sqlite3", "threading", "subprocess"}
        if not ok:
            bad.append(f"{path.name}:{line} imports {module}")
    assert not bad, "barq.payment must stay sans-IO: " + "; ".join(bad)
