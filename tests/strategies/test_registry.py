"""The six built-in strategies load by name and carry their class attributes."""

from __future__ import annotations

import pytest

from barq.errors import UnknownStrategy
from barq.routing import Strategy
from barq.strategies import available_strategies, get_strategy

BUILTINS = {
    "direct": ("DirectStrategy", False),
    "dijkstra": ("DijkstraStrategy", False),
    "probabilistic": ("ProbabilisticStrategy", False),
    "mincostflow": ("MinCostFlowStrategy", True),
    "singlepath": ("SinglePathStrategy", False),
    "presplit": ("PresplitStrategy", True),
}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_loads_with_attributes(name: str) -> None:
    s = get_strategy(name)
    cls_name, splits = BUILTINS[name]
    assert type(s).__name__ == cls_name
    assert isinstance(s, Strategy)
    assert s.name == name
    assert s.description and "\n" not in s.description
    assert s.splits is splits
    assert s.min_part_msat is None or (isinstance(s.min_part_msat, int) and s.min_part_msat > 0)
    assert isinstance(s.halve_on_failure, bool)


def test_baseline_attributes() -> None:
    single = get_strategy("singlepath")
    assert single.min_part_msat is None and not single.splits
    pre = get_strategy("presplit")
    assert pre.halve_on_failure and pre.min_part_msat == 100_000


def test_unknown_strategy_raises() -> None:
    with pytest.raises(UnknownStrategy) as ei:
        get_strategy("no-such-strategy")
    assert "no-such-strategy" in ei.value.message


def test_available_lists_all_builtins() -> None:
    rows = {r["name"]: r for r in available_strategies()}
    for name, (_, splits) in BUILTINS.items():
        assert rows[name]["splits"] is splits
        assert "failed to load" not in str(rows[name]["description"])
