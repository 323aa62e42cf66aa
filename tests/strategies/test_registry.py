"""The built-in strategies load by name and carry their class attributes and parameters."""

from __future__ import annotations

import json

import msgspec
import pytest

from barq.errors import UnknownStrategy
from barq.routing import Strategy
from barq.strategies import (
    available_strategies,
    get_strategy,
    register_strategy,
    strategy_parameters,
)

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


def test_parameters_are_listed_with_their_defaults() -> None:
    rows = {r["name"]: r for r in available_strategies()}
    assert rows["mincostflow"]["parameters"] == {
        "riskfactor": 10.0,
        "penalty_ppm": 2000.0,
        "penalty_base_msat": 1000,
        "units": 1000,
        "pivots": [0.0, 0.5, 0.8, 0.95, 1.0],
        "single_path_probability": 0.99,
        "budget_steps": 5,
        "slacks": [1, 2, 3],
        "min_pruned_edges": 1500,
        "max_repairs": 6,
    }
    # cheapflow: the same Struct, its own defaults
    cheap = rows["cheapflow"]["parameters"]
    assert (cheap["penalty_ppm"], cheap["riskfactor"]) == (200.0, 1.0)
    assert rows["dijkstra"]["parameters"] == {
        "riskfactor": 10.0,
        "penalty_ppm": 0.0,
        "penalty_base_msat": 0,
    }
    assert rows["presplit"]["parameters"]["part_msat"] == 10_000_000
    assert rows["direct"]["parameters"] == {}
    for row in rows.values():  # JSON-ready: what barqstrategies prints
        json.dumps(row["parameters"])


def test_a_strategy_without_params_is_listed_without_parameters() -> None:
    class Bare:
        name = "bare-test"
        description = "no params attribute"
        splits = False
        min_part_msat = None
        halve_on_failure = False

        def find_routes(self, request: object, ctx: object) -> list[object]:
            return []

    register_strategy("bare-test", Bare)  # type: ignore[arg-type]
    row = next(r for r in available_strategies() if r["name"] == "bare-test")
    assert row["parameters"] == {} and strategy_parameters(Bare()) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [*sorted(BUILTINS), "cheapflow"])
def test_params_are_one_frozen_struct_and_a_factory_takes_them(name: str) -> None:
    s = get_strategy(name)
    params = s.params
    assert isinstance(params, msgspec.Struct)
    fields = msgspec.structs.fields(params)
    if fields:
        with pytest.raises(AttributeError):
            setattr(params, fields[0].name, 0)  # frozen
    other = type(s)(params)  # type: ignore[call-arg]
    assert other.params is params
