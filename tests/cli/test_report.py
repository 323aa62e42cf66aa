"""Benchmark output: JSON rows, JSON-lines records, the PNG plot and the best-strategy pick."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest

from barq.bench.metrics import BenchRow, PaymentRecord
from barq.bench.report import (
    bench_table,
    best_strategy,
    rows_to_json,
    write_json,
    write_plot,
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
    write_json(rows, out)
    data = json.loads(out.read_text())
    assert data == rows_to_json(rows)
    assert data[0]["fee_ratio_p50"] is None  # JSON has no infinity
    assert data[0]["strategy"] == "a" and data[0]["amount_sat"] == 1000
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
    lines = tmp_path / "r.jsonl"
    write_records([rec, rec], lines)
    got = [msgspec.json.decode(x, type=PaymentRecord) for x in lines.read_bytes().splitlines()]
    assert got == [rec, rec]


def test_plot_is_a_png(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    write_plot(
        [row("a", 1000, 1.0), row("a", 10_000_000, 0.5), row("b", 1000, None)], out, title="t"
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unwritable_output_is_a_barq_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BarqError, match="cannot"):
        write_json([row("a", 1, 1.0)], blocker / "sub" / "b.json")


def test_table_has_one_line_per_row() -> None:
    t = bench_table([row("a", 1000, 1.0), row("b", 1000, 0.5)], title="x")
    assert t.row_count == 2
