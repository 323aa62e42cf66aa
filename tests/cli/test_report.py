"""Benchmark output: the table, the JSON document, JSON-lines records, the figure, the pick."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bench_helpers import write_listchannels
from rich.console import Console

from barq.bench.metrics import BenchRow, PaymentRecord
from barq.bench.report import (
    bench_json,
    bench_table,
    best_strategy,
    rows_to_json,
    write_json,
    write_records,
)
from barq.errors import BarqError


def row(
    strategy: str,
    amount_sat: int,
    rate: float | None,
    *,
    fee_ratio: float | None = 1.0,
    rounds: float | None = 1.0,
) -> BenchRow:
    return BenchRow(
        strategy=strategy,
        amount_sat=amount_sat,
        payments=10,
        feasible=0 if rate is None else 8,
        succeeded=8,
        succeeded_feasible=8,
        success_rate=0.8,
        success_rate_feasible=rate,
        attempts_p50=1.0,
        attempts_p90=2.0,
        rounds_p50=rounds,
        rounds_max=2,
        fee_msat_p50=10.0,
        fee_ratio_p50=fee_ratio,
        fee_ratio_total=fee_ratio,
        sim_time_s_p50=0.5,
        compute_ms_p50=1.0,
        compute_ms_p95=2.0,
    )


def record(**changes: Any) -> PaymentRecord:
    rec = PaymentRecord(
        strategy="a",
        amount_msat=1_000_000,
        source="s",
        destination="t",
        feasible=True,
        max_flow_msat=5,
        oracle_fee_msat=1,
        succeeded=True,
        attempts=1,
        rounds=1,
        fee_msat=1,
        sim_time_s=0.1,
        compute_s=0.01,
    )
    return msgspec.structs.replace(rec, **changes)


def test_best_strategy_by_success_then_rounds_then_fee_ratio() -> None:
    rows = [
        row("a", 1000, 1.0),
        row("a", 10_000, 0.5),
        row("b", 1000, 0.9, fee_ratio=1.3),
        row("b", 10_000, 0.9, fee_ratio=1.3),
        row("c", 1000, 1.0, fee_ratio=1.5),
        row("c", 10_000, 0.8, fee_ratio=1.5),
        row("d", 1000, 1.0, fee_ratio=1.1),
        row("d", 10_000, 0.8, fee_ratio=1.1),
    ]
    assert best_strategy(rows) == "d"  # b, c, d tie at 0.9 mean success and rounds; d is cheapest
    slow_d = [
        *rows[:6],
        row("d", 1000, 1.0, fee_ratio=1.1, rounds=3.0),
        row("d", 10_000, 0.8, fee_ratio=1.1),
    ]
    assert best_strategy(slow_d) == "b"  # fewer rounds beat lower fees
    assert best_strategy([row("a", 1000, None)]) is None


def test_json_rows_and_records(tmp_path: Path) -> None:
    rows = [row("a", 1000, 1.0, fee_ratio=math.inf)]
    out = tmp_path / "deep" / "dir" / "b.json"
    write_json(bench_json(rows, {"seed": 1}), out)
    doc = json.loads(out.read_text())
    assert doc["meta"] == {"seed": 1}
    data = doc["rows"]
    assert data == rows_to_json(rows)
    assert data[0]["fee_ratio_p50"] is None  # JSON has no infinity
    assert data[0]["strategy"] == "a" and data[0]["amount_sat"] == 1000
    rec = record()
    lines = tmp_path / "r.jsonl"
    write_records([rec, rec], lines)
    got = [msgspec.json.decode(x, type=PaymentRecord) for x in lines.read_bytes().splitlines()]
    assert got == [rec, rec]


def test_unwritable_output_is_a_barq_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BarqError, match="cannot"):
        write_json(bench_json([row("a", 1, 1.0)], {}), blocker / "sub" / "b.json")


def test_table_has_one_line_per_row() -> None:
    t = bench_table([row("a", 1000, 1.0), row("b", 1000, 0.5)], title="x")
    assert t.row_count == 2


def render(table: Any, width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True).print(table)
    return buf.getvalue()


def test_the_table_fits_100_columns_without_cutting_a_cell() -> None:
    """Issue 16 item 2: realistic extremes (a 20-letter name, 10 BTC, 1000 payments)."""
    worst = msgspec.structs.replace(
        row("a-twenty-letter-name", 1_000_000_000, 1.0),
        payments=1000,
        feasible=1000,
        succeeded_feasible=999,
        success_rate_feasible=0.999,
        attempts_p50=1234.5,
        rounds_p50=16.5,
        fee_ratio_p50=416_667.17,
        fee_ratio_total=5432.1,
        sim_time_s_p50=61.23,
        compute_ms_p50=45_008.2,
    )
    out = render(bench_table([worst, row("mincostflow", 1000, 1.0)], title="t"), 100)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100 and "…" not in out
    cells = next(line for line in lines if "a-twenty-letter-name" in line).split()
    assert cells == [
        "a-twenty-letter-name",
        "1,000,000,000",
        "999/1000",
        "99.9",
        "1,234",
        "16.5",
        "4.2e5",
        "5,432",
        "61.23",
        "45,008",
    ]


def test_wide_shows_every_field() -> None:
    out = render(bench_table([row("a", 1000, 1.0)], wide=True), 200)
    for header in ("p90", "p95", "max", "fee msat", "pay-", "feas-"):
        assert header in out
    narrow = render(bench_table([row("a", 1000, 1.0)]), 100)
    assert "p95" not in narrow


def test_graph_content_hash_ignores_the_file_format(tmp_path: Path) -> None:
    from barq.bench.meta import differences, graph_sha256
    from barq.graph import load_graph
    from barq.graph.synthetic import builtin_network

    g = builtin_network(1)[0]
    again = load_graph(write_listchannels(g, tmp_path / "g.json"))
    assert graph_sha256(again) == graph_sha256(g)
    assert graph_sha256(builtin_network(2)[0]) != graph_sha256(g)
    a = {"graph": {"content_sha256": "x"}, "config": {"seed": 1}, "wall_s": 3.0}
    b = {"graph": {"content_sha256": "x"}, "config": {"seed": 2}, "wall_s": 9.0}
    assert differences(a, a | {"wall_s": 1.0}) == []
    assert differences(a, b) == ["config.seed"]


def test_wilson_interval() -> None:
    from barq.bench.plot import wilson_interval

    lo, hi = wilson_interval(40, 40)
    assert hi == 1.0 and 0.91 < lo < 0.92  # 40/40 is not proof of 100 %
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_figure_in_every_format(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the figure needs the plot extra (barq[plot])")
    from barq.bench.plot import write_figure

    rec = record(fee_msat=0)
    rows = [row("a", 1000, 1.0), row("a", 10_000_000, 0.5), row("b", 1000, None)]
    paths = [tmp_path / "f.png", tmp_path / "f.svg", tmp_path / "f.pdf"]
    write_figure(rows, [rec], paths, caption="seed 1")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:2000]
    assert paths[2].read_bytes()[:5] == b"%PDF-"
