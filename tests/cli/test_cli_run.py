"""``barq sim`` and ``barq bench`` end to end on the built-in network (real engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from barq.bench.metrics import summarize
from barq.bench.runner import BenchConfig, run_bench
from barq.cli import main
from barq.graph.synthetic import builtin_network

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


def test_sim_no_live_runs_three_payments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--no-live", "--payments", "3", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "pay#1 started" in out and "pay#3" in out
    assert "part 1:" in out  # part events are printed
    assert "payments succeeded" in out
    # the summary table shows every payment once, each complete or failed
    assert out.count("complete") + out.count("failed") >= 3


def test_bench_writes_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "out" / "bench.json"
    out_png = tmp_path / "out" / "bench.png"
    rc = main(
        [
            "bench",
            "--strategies",
            "dijkstra,mincostflow",
            "--amounts-sat",
            "20000,800000",
            "--payments",
            "3",
            "--seed",
            "3",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--records",
            str(tmp_path / "r.jsonl"),
        ]
    )
    assert rc == 0
    rows = json.loads(out_json.read_text())
    assert len(rows) == 4
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
    feas = {(r["amount_sat"], r["feasible"]) for r in rows}
    assert len(feas) == 2
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(records) == 12  # 2 strategies x 2 amounts x 3 payments
    printed = capsys.readouterr().out
    assert "best strategy" in printed and "mincostflow" in printed


def test_bench_is_deterministic_and_concurrency_pays_everything() -> None:
    graph, keys = builtin_network(1)
    cfg = BenchConfig(strategies=("mincostflow",), amounts_msat=(50_000_000,), payments=4, seed=5)
    first = run_bench(graph, cfg, keys=keys)
    again = run_bench(graph, cfg, keys=keys)
    strip = [
        (r.destination, r.feasible, r.succeeded, r.attempts, r.fee_msat, r.sim_time_s)
        for r in first
    ]
    assert strip == [
        (r.destination, r.feasible, r.succeeded, r.attempts, r.fee_msat, r.sim_time_s)
        for r in again
    ]
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
