"""The plugin holds no payment rule and no routing: it only asks the engine (issue 11).

"Join a payment in flight", "already paid", "adopt the pending parts" and the
restart reconciliation are decided once, in :mod:`barq.payment`, from what the
engine (:mod:`barq.actors.coordinator`) reads of the node and the store. These
tests read the plugin's source (AST) and fail naming the file, line and what
it must not hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import barq
import barq.plugin

SRC = Path(barq.__file__).parent
PLUGIN_FILES = sorted(Path(barq.plugin.__file__).parent.glob("*.py"))

#: names whose presence in the plugin means a lifecycle rule (or its inputs) lives there
RULE_NAMES = {
    "listsendpays": "reads the node's parts (the engine decides from listsendpays)",
    "waitsendpay": "waits for parts (the engine awaits recovered and adopted parts)",
    "SendpayStatus": "reads sendpay states (a lifecycle rule's input)",
    "PartStatus": "reads sendpay parts (a lifecycle rule's input)",
    "view_from_sendpays": "rebuilds payments from the node (barq.payment.sendpays)",
    "decide_prior": "decides already-paid/adopt/fresh (barq.payment.prior)",
    "plan_recovery": "plans the restart reconciliation (barq.payment.reconcile)",
    "Flight": "joins a payment in flight (barq.payment.flights)",
    "_flights": "joins a payment in flight",
    "_earlier_payment": "finds an earlier payment (already paid)",
    "_reconcile": "reconciles after a restart",
    "_await_recovered": "awaits parts recovered after a restart",
    "_merge_routes": "merges recorded routes into adopted parts",
    "put_payment": "writes payments itself (the engine records through its journal)",
}

#: modules the plugin must not import (routing, strategies, the engine's insides)
FORBIDDEN_IMPORTS = (
    "barq.strategies",
    "barq.routing",
    "barq.graph",
    "barq.actors.router",
    "barq.actors.estimator",
    "barq.actors.supervisor",
    "barq.actors.coordinator",
    "barq.actors.shard",
    "barq.payment.prior",
    "barq.payment.reconcile",
    "barq.payment.flights",
    "barq.payment.sendpays",
    "barq.payment.book",
)


def _names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every name the code defines, reads or calls: identifiers, attributes, defs, imports."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        match node:
            case ast.Name(id=name) | ast.Attribute(attr=name):
                out.append((node.lineno, name))
            case ast.FunctionDef(name=name) | ast.AsyncFunctionDef(name=name):
                out.append((node.lineno, name))
            case ast.ClassDef(name=name):
                out.append((node.lineno, name))
            case ast.ImportFrom():
                out.extend((node.lineno, a.asname or a.name) for a in node.names)
    return out


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return out


def rule_violations(path: Path) -> list[str]:
    """What in ``path`` belongs to the engine, one line each (empty: nothing)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(SRC.parent)
    found = [
        f"{where}:{line} uses `{name}`: it {RULE_NAMES[name]}; that is the engine's, "
        f"the plugin only asks the runtime"
        for line, name in _names(tree)
        if name in RULE_NAMES
    ]
    found += [
        f"{where}:{line} imports `{module}`: the plugin imports the runtime facade, "
        f"barq.payment's types, the store, the model, limits and errors only"
        for line, module in _imports(tree)
        if any(module == m or module.startswith(m + ".") for m in FORBIDDEN_IMPORTS)
    ]
    return found


def test_the_plugin_is_a_package_of_small_files() -> None:
    names = {p.name for p in PLUGIN_FILES}
    assert {"options.py", "params.py", "results.py", "commands.py", "redirect.py", "host.py"} <= (
        names
    )
    for p in PLUGIN_FILES:
        assert len(p.read_text().splitlines()) < 600, f"{p} has 600 lines or more"


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_no_payment_rule_and_no_routing_in_the_plugin(path: Path) -> None:
    problems = rule_violations(path)
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_rule_written_in_the_plugin(tmp_path: Path) -> None:
    """The check itself can fail: the plugin's old ``_earlier_payment`` is caught."""
    bad = SRC / "plugin" / "_probe_for_the_test.py"
    bad.write_text(
        "from barq.model import SendpayStatus\n"
        "from barq.strategies import get_strategy\n"
        "async def _earlier_payment(node, h):\n"
        "    return [p for p in await node.listsendpays(h) if p.status is SendpayStatus.COMPLETE]\n"
    )
    try:
        problems = "\n".join(rule_violations(bad))
    finally:
        bad.unlink()
    for needle in ("`_earlier_payment`", "`listsendpays`", "`SendpayStatus`", "barq.strategies"):
        assert needle in problems


def test_each_lifecycle_rule_is_defined_once() -> None:
    """``def view_from_sendpays`` and friends exist in exactly one file under ``src/barq``."""
    wanted = {"view_from_sendpays", "decide_prior", "plan_recovery", "fold", "classify"}
    homes: dict[str, list[str]] = {name: [] for name in wanted}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in wanted:
                homes[node.name].append(str(path.relative_to(SRC.parent)))
    for name, files in homes.items():
        assert len(files) == 1 and files[0].startswith("barq/payment/"), (name, files)
