"""``barq sim`` and ``barq bench`` end to end on the built-in network (real engine)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

import barq.cli._commands as commands
from barq.bench.metrics import PaymentRecord, summarize
from barq.bench.runner import BenchConfig, run_bench
from barq.bench.sim import PaymentProgress, SimConfig, run_sim, sim_json
from barq.bench.simview import LineDisplay
from barq.cli import main
from barq.graph.synthetic import builtin_network
from barq.strategies import register_strategy
from barq.strategies.dijkstra import DijkstraStrategy

pytestmark = pytest.mark.usefixtures("engine")

ROW_FIELDS = {
    "strategy",
    "amount_sat",
    "payments",
    "feasible",
    "succeeded",
    "success_rate",
    "success_rate_feasible",
    "attempts_p50",
    "attempts_p90",
    "rounds_p50",
    "fee_msat_p50",
    "fee_ratio_p50",
    "sim_time_s_p50",
    "compute_ms_p50",
    "compute_ms_p95",
}


def same_but_wall_clock(records: Sequence[PaymentRecord]) -> list[PaymentRecord]:
    """The records without ``compute_s`` (wall-clock time spent in strategies)."""
    return [msgspec.structs.replace(r, compute_s=0.0) for r in records]


def test_sim_no_live_runs_three_payments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--no-live", "--payments", "3", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "pay#1 started" in out and "pay#3" in out
    assert "part 1:" in out  # part events are printed
    assert "payments succeeded" in out
    # the summary table shows every payment once, each complete or failed
    assert out.count("complete") + out.count("failed") >= 3


def test_sim_json_is_byte_identical_with_and_without_the_live_view(tmp_path: Path) -> None:
    """Issue 16 item 5: the display does not change what is simulated."""
    base = ["sim", "--payments", "6", "--seed", "3"]
    plain, live, other = tmp_path / "plain.json", tmp_path / "live.json", tmp_path / "other.json"
    assert main([*base, "--no-live", "--json", str(plain)]) == 0
    assert main([*base, "--live", "--speed", "40", "--json", str(live)]) == 0
    assert plain.read_bytes() == live.read_bytes()
    doc = json.loads(plain.read_text())
    assert len(doc["payments"]) == 6 and doc["events"]
    assert doc["meta"]["config"]["seed"] == 3
    assert "compute_s" not in json.dumps(doc)  # nothing measured on the wall clock
    assert main(["sim", "--payments", "6", "--seed", "4", "--no-live", "--json", str(other)]) == 0
    assert other.read_bytes() != plain.read_bytes()  # the seed matters, so the test can fail


class SlowDisplay(LineDisplay):
    """A display that takes wall time on every event (as a slow terminal would)."""

    def event(self, t: float, line: str | None, state: PaymentProgress) -> None:
        time.sleep(0.002)
        state.status = "tampered"  # a copy: the simulation must not see it


def test_a_slow_display_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    graph, keys = builtin_network(1)
    cfg = SimConfig(payments=5, seed=7)
    info = {"source": "built-in network"}
    quick = run_sim(graph, cfg, LineDisplay(Console()), keys=keys)
    slow = run_sim(graph, cfg, SlowDisplay(Console()), keys=keys)
    assert sim_json(quick, cfg, info) == sim_json(slow, cfg, info)
    assert all(p.status != "tampered" for p in slow.payments)


def test_bench_writes_a_self_describing_json_and_the_figure(
    small_graph_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="the figure needs the plot extra (barq[plot])")
    out = tmp_path / "out"
    argv = [
        "bench",
        "--graph",
        str(small_graph_file),
        "--strategies",
        "dijkstra,mincostflow",
        "--amounts-sat",
        "20000,800000",
        "--payments",
        "3",
        "--seed",
        "3",
        "--json",
        str(out / "bench.json"),
        "--plot",
        str(out / "bench.png"),
        "--plot",
        str(out / "bench.pdf"),
        "--plot",
        str(out / "bench.svg"),
        "--records",
        str(tmp_path / "r.jsonl"),
    ]
    assert main(argv) == 0
    doc = json.loads((out / "bench.json").read_text())
    rows = doc["rows"]
    assert {(r["strategy"], r["amount_sat"]) for r in rows} == {
        ("dijkstra", 20_000),
        ("dijkstra", 800_000),
        ("mincostflow", 20_000),
        ("mincostflow", 800_000),
    }
    for r in rows:
        assert set(r) >= ROW_FIELDS
        assert r["payments"] == 3
        assert 0 <= r["succeeded"] <= r["payments"] and 0 <= r["feasible"] <= 3
    # fairness: both strategies saw the same payments, so the same feasibility
    assert len({(r["amount_sat"], r["feasible"]) for r in rows}) == 2
    meta = doc["meta"]
    assert meta["barq"]["version"] and "commit" in meta["barq"]
    g = meta["graph"]
    assert g["file"] == "builtin.json"
    assert g["sha256"] == hashlib.sha256(small_graph_file.read_bytes()).hexdigest()
    assert (g["nodes"], g["channels"], g["half_channels"]) == (40, 86, 172)
    assert meta["config"]["seed"] == 3 and meta["config"]["payments"] == 3
    assert meta["config"]["amounts_msat"] == [20_000_000, 800_000_000]
    assert meta["engine"]["maxparts"] == 64 and meta["engine"]["retry_for_s"] == 60.0
    assert set(meta["strategies"]) == {"dijkstra", "mincostflow"}
    assert meta["python"]["version"] and meta["platform"]["machine"]
    assert meta["started_at"].endswith("+00:00") and meta["wall_s"] > 0
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "bench.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (out / "bench.svg").read_bytes()[:2000]
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 12  # 2 x 2 x 3
    printed = capsys.readouterr().out
    assert "best strategy" in printed and "mincostflow" in printed


class Knobs(msgspec.Struct, frozen=True):
    alpha: float = 0.25
    hops: int = 7


class KnobbedStrategy(DijkstraStrategy):
    name: ClassVar[str] = "knobbed"
    description: ClassVar[str] = "dijkstra with a params Struct"
    params = Knobs()


def test_bench_json_carries_each_strategys_parameters(tmp_path: Path) -> None:
    register_strategy("knobbed", KnobbedStrategy)
    out = tmp_path / "b.json"
    argv = ["bench", "--strategies", "knobbed", "--amounts-sat", "5000", "--payments", "1"]
    assert main([*argv, "--jobs", "1", "--json", str(out)]) == 0
    s = json.loads(out.read_text())["meta"]["strategies"]["knobbed"]
    assert s["parameters"] == {"alpha": 0.25, "hops": 7}
    assert s["class"].endswith(":KnobbedStrategy") and s["splits"] is False


def test_piped_bench_output_is_plain_and_fits_100_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bench", "--strategies", "dijkstra,presplit", "--amounts-sat", "9000,3000000"]
    assert main([*argv, "--payments", "2", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 100
    header = next(line for line in out.splitlines() if line.strip().startswith("amount"))
    assert header.split() == [
        "amount",
        "ok/",
        "ok/feas",
        "att",
        "rnd",
        "fee÷orc",
        "fee÷orc",
        "sim",
        "s",
        "cpu",
        "ms",
    ]


def test_progress_lines_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(commands, "HEARTBEAT_S", 0.0)
    argv = ["bench", "--strategies", "dijkstra", "--amounts-sat", "9000", "--payments", "3"]
    assert main([*argv, "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "barq bench: paying 1/3" in err and "eta" in err


def test_bench_is_deterministic_and_concurrency_pays_everything() -> None:
    graph, keys = builtin_network(1)
    cfg = BenchConfig(strategies=("mincostflow",), amounts_msat=(50_000_000,), payments=4, seed=5)
    first = run_bench(graph, cfg, keys=keys)
    again = run_bench(graph, cfg, keys=keys)
    assert same_but_wall_clock(first) == same_but_wall_clock(again)
    conc = run_bench(
        graph,
        BenchConfig(
            strategies=("mincostflow",),
            amounts_msat=(5_000_000,),
            payments=4,
            concurrency=4,
            seed=5,
        ),
        keys=keys,
    )
    assert len(conc) == 4 and len({r.source for r in conc}) == 1
    rows = summarize(conc)
    assert rows[0].payments == 4
    assert all(r.error is None or "crashed" not in r.error for r in conc)


def test_jobs_and_dask_give_the_same_results_as_one_process() -> None:
    """Issue 16 item 11: --jobs 1, --jobs 2 and a dask cluster: equal records."""
    graph, keys = builtin_network(1)
    cfg = BenchConfig(
        strategies=("mincostflow", "dijkstra"),
        amounts_msat=(3_000_000, 400_000_000),
        payments=3,
        seed=11,
        feasible_only=True,
    )
    serial = run_bench(graph, cfg, keys=keys, jobs=1)
    assert len(serial) == 12 and any(r.succeeded for r in serial)
    events: list[tuple[str, int, int]] = []
    two = run_bench(graph, cfg, keys=keys, jobs=2, progress=lambda *a: events.append(a))
    assert same_but_wall_clock(two) == same_but_wall_clock(serial)
    assert events[-1] == ("pay", 12, 12)
    distributed: Any = pytest.importorskip("distributed", reason="dask extra not installed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        on_dask = run_bench(graph, cfg, keys=keys, dask=cluster.scheduler_address)
    assert same_but_wall_clock(on_dask) == same_but_wall_clock(serial)


def test_warm_keeps_one_payer_per_amount() -> None:
    graph, keys = builtin_network(1)
    cfg = BenchConfig(
        strategies=("probabilistic", "dijkstra"),
        amounts_msat=(30_000_000,),
        payments=4,
        warm=True,
        seed=2,
    )
    recs = run_bench(graph, cfg, keys=keys)
    assert len(recs) == 8
    assert len({r.source for r in recs}) == 1
    assert [r.destination for r in recs if r.strategy == "dijkstra"] == [
        r.destination for r in recs if r.strategy == "probabilistic"
    ]
    assert sum(r.succeeded for r in recs) >= 4


def test_strategies_lists_parameters_on_each_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import barq.strategies

    entries: list[dict[str, Any]] = [
        {
            "name": "knobbed",
            "description": "dijkstra with knobs",
            "splits": False,
            "origin": "registered",
            "parameters": {"alpha": 0.25, "hops": 7},
        },
        {"name": "plain", "description": "no knobs", "splits": True, "origin": "builtin"},
    ]
    monkeypatch.setattr(barq.strategies, "available_strategies", lambda: entries)
    assert main(["strategies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    knobbed = next(line for line in lines if "knobbed" in line)
    assert "alpha=0.25, hops=7" in knobbed and "dijkstra with knobs" in knobbed
    plain = next(line for line in lines if "plain" in line)
    assert "no knobs" in plain and " - " in plain


def test_strategies_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for s in ("dijkstra", "presplit", "singlepath", "mincostflow"):
        assert s in out


def test_graph_export_writes_what_networkx_reads_back(
    small_graph_file: Path, tmp_path: Path
) -> None:
    import networkx as nx

    out = tmp_path / "g.graphml"
    assert main(["graph", str(small_graph_file), "--export", str(out)]) == 0
    g = nx.read_graphml(out)
    assert g.number_of_nodes() == 40 and g.number_of_edges() > 0
    _, _, data = next(iter(g.edges(data=True)))
    assert {"fee_ppm", "capacity_msat"} <= set(data)
