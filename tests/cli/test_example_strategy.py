"""The example third-party strategy: found through the entry-point mechanism, scored by bench.

Nothing is installed: the example's ``src`` goes on ``sys.path`` and the
registry's ``entry_points`` is replaced by one that returns the entry point
declared in the example's own ``pyproject.toml``.
"""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path
from typing import Any

import pytest

import barq.strategies.registry as registry
from barq.cli import main
from barq.errors import UnknownStrategy
from barq.strategies import available_strategies, get_strategy

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "barq-example-strategy" / "src"
PYPROJECT = EXAMPLE_SRC.parent / "pyproject.toml"


def declared_entry_points() -> list[EntryPoint]:
    meta = tomllib.loads(PYPROJECT.read_text())
    group = meta["project"]["entry-points"]["barq.strategies"]
    return [EntryPoint(name=k, value=v, group="barq.strategies") for k, v in group.items()]


@pytest.fixture
def example_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    eps = declared_entry_points()

    def fake_entry_points(**kw: Any) -> EntryPoints:
        assert kw == {"group": "barq.strategies"}
        return EntryPoints(eps)

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)


def test_pyproject_declares_the_strategy() -> None:
    eps = declared_entry_points()
    assert [(e.name, e.value) for e in eps] == [
        ("fewhops", "barq_example_strategy:FewHopsStrategy")
    ]


def test_not_found_without_the_entry_point() -> None:
    with pytest.raises(UnknownStrategy):
        get_strategy("fewhops")


@pytest.mark.usefixtures("example_installed")
def test_found_through_the_entry_point() -> None:
    s = get_strategy("fewhops")
    assert s.name == "fewhops" and not s.splits
    row = next(r for r in available_strategies() if r["name"] == "fewhops")
    assert str(row["origin"]).startswith("entry point barq_example_strategy:")


@pytest.mark.usefixtures("example_installed", "engine")
def test_bench_scores_the_example(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    rc = main(
        [
            "bench",
            "--strategies",
            "fewhops,dijkstra",
            "--amounts-sat",
            "30000",
            "--payments",
            "3",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"fewhops", "dijkstra"}
    assert rows["fewhops"]["payments"] == 3
    assert rows["fewhops"]["succeeded"] >= 1  # it really routes


def test_the_docs_show_the_example_and_it_uses_only_the_public_toolkit() -> None:
    """docs/strategies.md's listing is the example's code (imports and class), and the
    example imports nothing of Barq but barq.routing and barq.model."""
    source = (EXAMPLE_SRC / "barq_example_strategy" / "__init__.py").read_text()
    docs = (EXAMPLE_SRC.parents[2] / "docs" / "strategies.md").read_text()
    listing = docs.split("## A worked example", 1)[1].split("```python\n", 1)[1].split("```")[0]
    for block in listing.strip().split("\n\n\n"):
        assert block.strip() in source, block
    barq_imports = {line.split()[1] for line in source.splitlines() if line.startswith("from barq")}
    assert barq_imports == {"barq.model", "barq.routing"}
    assert len(source.splitlines()) < 40  # one short file
