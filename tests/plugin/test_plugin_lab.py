"""The strategy lab through the plugin on the simulated network: experiments, auto."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_driver import PluginDriver
from sim_world import SimWorld

from barq.invoice import decode
from barq.lab.experiments import assign, parse_experiments

PAYEE = 25


@pytest.fixture
def sim() -> Iterator[SimWorld]:
    w = SimWorld()
    try:
        yield w
    finally:
        w.close()


def _start(sim: SimWorld, tmp_path: Path, options: dict[str, Any]) -> PluginDriver:
    d = PluginDriver(node_factory=sim.node_factory)
    assert d.init(tmp_path, options) is None
    assert d.wait_engine()["engine"]["state"] == "running"
    return d


SPECS = ["a=dijkstra:50", "b=mincostflow:riskfactor=2:50"]


def test_two_experiments_count_each_payment_once(sim: SimWorld, tmp_path: Path) -> None:
    d = _start(sim, tmp_path, {"barq-experiment": SPECS})
    try:
        exps = parse_experiments(SPECS)
        results = [d.call("barqpay", [sim.invoice(PAYEE, 1_000_000 + i)]) for i in range(10)]
        for r in results:
            e = assign(r["payment_hash"], exps)
            assert e is not None and r["experiment"] == e.name and r["strategy"] == e.key
            assert r["strategy_reason"].startswith(f"experiment {e.name} (50 % of payments)")
        explicit = d.call(
            "barqpay", {"invstring": sim.invoice(PAYEE, 999_000), "strategy": "dijkstra"}
        )
        assert "experiment" not in explicit and explicit["strategy"] == "dijkstra"
        again = d.call("barqpay", [sim.invoice(PAYEE, 1_000_000)])  # a new hash
        assert again["experiment"] in ("a", "b")
        rep = d.call("barqexperiments")
        rows = {r["name"]: r for r in rep["experiments"]}
        want = Counter(r["experiment"] for r in [*results, again])
        assert {n: rows[n]["payments"] for n in ("a", "b")} == {"a": want["a"], "b": want["b"]}
        assert rows["default"]["payments"] == 0 and rows["default"]["percent"] == 0
        assert rows["b"]["parameters"] == {"riskfactor": 2} and rows["b"]["percent"] == 50
        assert rows["a"]["succeeded"] == want["a"] and rows["a"]["success_ci95"][1] == 1.0
        assert sum(b["payments"] for b in rep["buckets"]) == 11
        none = d.call("barqexperiments", {"since": 4_000_000_000})
        assert all(r["payments"] == 0 for r in none["experiments"])
        err = d.error("barqexperiments", {"since": "yesterday"})
        assert err.code == -32602 and "since: must be UNIX seconds" in err.message
    finally:
        d.close()


def test_auto_pays_and_names_a_real_strategy(sim: SimWorld, tmp_path: Path) -> None:
    d = _start(sim, tmp_path, {"barq-auto-strategies": "dijkstra,mincostflow"})
    try:
        r = d.call("barqpay", {"invstring": sim.invoice(PAYEE, 2_000_000), "strategy": "auto"})
        assert r["status"] == "complete" and r["strategy"] in ("dijkstra", "mincostflow")
        assert r["experiment"] == "auto" and r["strategy_reason"]
        plain = d.call("barqpay", [sim.invoice(PAYEE, 2_000_001)])  # no lab: untouched
        assert "strategy_reason" not in plain and plain["strategy"] == "adaptive"
    finally:
        d.close()
    d = _start(sim, tmp_path, {"barq-strategy": "auto"})
    try:
        r = d.call("barqpay", [sim.invoice(PAYEE, 2_000_002)])
        assert r["experiment"] == "auto" and r["strategy"] == "adaptive"
        assert "default adaptive until <10k sat has 20 payments (has 1)" in r[
            "strategy_reason"
        ] or ("exploring" in r["strategy_reason"])
    finally:
        d.close()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"barq-experiment": ["a=nosuch:10"]}, "unknown strategy 'nosuch'"),
        ({"barq-experiment": ["a=dijkstra:60", "b=cheapflow:50"]}, "more than 100"),
        ({"barq-experiment": ["a=dijkstra:10", "a=cheapflow:5"]}, "used twice"),
        ({"barq-experiment": ["a=mincostflow:risk=2:5"]}, "has no parameter risk"),
        ({"barq-auto-strategies": "dijkstra,auto"}, "'auto' cannot choose itself"),
        ({"barq-auto-strategies": "teleport"}, "barq-auto-strategies: unknown strategy"),
    ],
)
def test_bad_lab_options_stop_the_plugin_at_start(
    sim: SimWorld, tmp_path: Path, options: dict[str, Any], needle: str
) -> None:
    d = PluginDriver(node_factory=sim.node_factory)
    try:
        result = d.init(tmp_path, options)
        assert needle in result["disable"]
    finally:
        d.close()


ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SRC = ROOT / "examples" / "barq-example-strategy" / "src"


def test_the_lab_walkthrough(
    sim: SimWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/lab.md: the example strategy (its listing is the file), found through its entry
    point, scored by bench, run live as an experiment with a parameter override."""
    import json
    import tomllib
    from importlib.metadata import EntryPoint, EntryPoints

    import barq.strategies.registry as registry
    from barq.cli import main

    docs = (ROOT / "docs" / "lab.md").read_text()
    source = (EXAMPLE_SRC / "barq_example_strategy" / "__init__.py").read_text()
    listing = docs.split("```python\n", 1)[1].split("```")[0]
    for block in listing.strip().split("\n\n\n"):
        assert block.strip() in source, block
    meta = tomllib.loads((EXAMPLE_SRC.parent / "pyproject.toml").read_text())
    eps = [
        EntryPoint(name=k, value=v, group="barq.strategies")
        for k, v in meta["project"]["entry-points"]["barq.strategies"].items()
    ]
    assert f'fewhops = "{eps[0].value}"' in docs
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.setattr(registry, "entry_points", lambda **kw: EntryPoints(eps))

    out = tmp_path / "bench.json"
    argv = ["bench", "--strategies", "fewhops,mincostflow", "--amounts-sat", "30000"]
    assert main([*argv, "--payments", "2", "--jobs", "1", "--json", str(out)]) == 0
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["fewhops"]["payments"] == 2

    specs = ["few=fewhops:riskfactor=5:30", "cheap=cheapflow:40"]
    assert all(f"barq-experiment={s}" in docs for s in specs)
    d = _start(sim, tmp_path, {"barq-experiment": specs})
    try:
        exps = parse_experiments(specs)
        invoices = (sim.invoice(PAYEE, 3_000_000 + i) for i in range(200))
        few = next(inv for inv in invoices if _experiment_of(inv, exps) == "few")
        r = d.call("barqpay", [few])
        assert r["experiment"] == "few" and r["strategy"] == "fewhops:riskfactor=5"
        assert r["status"] == "complete"
        rows = {x["name"]: x for x in d.call("barqexperiments")["experiments"]}
        assert rows["few"]["payments"] == 1 and rows["few"]["parameters"] == {"riskfactor": 5}
    finally:
        d.close()


def _experiment_of(invstring: str, exps: Any) -> str:
    e = assign(decode(invstring).payment_hash, exps)
    return e.name if e else "default"
