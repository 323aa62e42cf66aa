"""Benchmark metrics: percentiles, rounds, fee ratio and the per-row summary."""

from __future__ import annotations

import math

import pytest

from barq.bench.metrics import PaymentRecord, fee_ratio, percentile, rounds, summarize
from barq.model import Hop, Route
from barq.model.payment import PartState, PartView

ROUTE = Route(
    hops=(Hop(id="02" + "11" * 32, channel="1x1x0", direction=0, amount_msat=1000, delay=18),)
)


def part(
    partid: int, start: float, end: float | None, state: PartState = PartState.FAILED
) -> PartView:
    return PartView(
        partid=partid,
        groupid=1,
        amount_msat=1000,
        amount_sent_msat=1000,
        fee_msat=0,
        route=ROUTE,
        state=state,
        started_at=start,
        finished_at=end,
    )


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 50) is None
    assert percentile([7], 90) == 7
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == pytest.approx(9.1)
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3
    assert percentile([1.0, math.inf], 50) == math.inf
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_rounds_counts_the_longest_sequential_chain() -> None:
    assert rounds([]) == 0
    # three parts at once, all succeed: one round
    assert rounds([part(i, 0.0, 1.0, PartState.SUCCEEDED) for i in range(3)]) == 1
    # a fails at 1.0; b starts at 1.0 (retry), fails at 2.0; c starts at 2.5; d in parallel with a
    ps = [
        part(1, 0.0, 1.0),
        part(2, 1.0, 2.0),
        part(3, 2.5, 3.0, PartState.SUCCEEDED),
        part(4, 0.0, 3.0, PartState.SUCCEEDED),
    ]
    assert rounds(ps) == 3
    # a part still in flight cannot be followed; planned parts never count
    assert rounds([part(1, 0.0, None, PartState.INFLIGHT), part(2, 5.0, 6.0)]) == 1
    assert rounds([part(1, 0.0, 1.0), part(2, 2.0, None, PartState.PLANNED)]) == 1


def test_fee_ratio_edge_cases() -> None:
    assert fee_ratio(110, 100) == pytest.approx(1.1)
    assert fee_ratio(0, 0) == 1.0
    assert fee_ratio(5, 0) == math.inf


def rec(
    strategy: str,
    amount_msat: int,
    *,
    feasible: bool,
    ok: bool,
    fee: int = 10,
    oracle_fee: int | None = 10,
    attempts: int = 1,
    compute_s: float = 0.001,
) -> PaymentRecord:
    return PaymentRecord(
        strategy=strategy,
        amount_msat=amount_msat,
        source="s",
        destination="t",
        feasible=feasible,
        max_flow_msat=0,
        oracle_fee_msat=oracle_fee,
        succeeded=ok,
        attempts=attempts,
        rounds=attempts,
        fee_msat=fee,
        sim_time_s=1.0,
        compute_s=compute_s,
    )


def test_summarize_rates_over_all_and_over_feasible() -> None:
    rs = [
        rec("a", 1_000_000, feasible=True, ok=True, fee=20, attempts=1),
        rec("a", 1_000_000, feasible=True, ok=False, oracle_fee=None, attempts=4),
        rec("a", 1_000_000, feasible=False, ok=False, oracle_fee=None, attempts=6),
        rec("a", 1_000_000, feasible=True, ok=True, fee=10, attempts=3),
        rec("b", 1_000_000, feasible=True, ok=True),
        rec("a", 1000, feasible=True, ok=True),
    ]
    rows = summarize(rs)
    assert [(r.strategy, r.amount_sat) for r in rows] == [("a", 1), ("a", 1000), ("b", 1000)]
    a = rows[1]
    assert (a.payments, a.feasible, a.succeeded, a.succeeded_feasible) == (4, 3, 2, 2)
    assert a.success_rate == 0.5
    assert a.success_rate_feasible == pytest.approx(2 / 3)
    assert a.attempts_p50 == 2.0  # over succeeded payments: 1 and 3
    assert a.fee_ratio_p50 == pytest.approx(1.5)  # ratios 2.0 and 1.0
    assert a.fee_ratio_total == pytest.approx(1.5)  # 30 / 20
    assert a.compute_ms_p50 == pytest.approx(1.0)


def test_summarize_drops_infinite_ratio_medians() -> None:
    rows = summarize([rec("a", 1000, feasible=True, ok=True, fee=5, oracle_fee=0)])
    assert rows[0].fee_ratio_p50 is None and rows[0].fee_ratio_total is None
    none_feasible = summarize([rec("a", 1000, feasible=False, ok=False)])
    assert none_feasible[0].success_rate_feasible is None
