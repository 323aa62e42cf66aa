"""Benchmark oracles on tiny hand-built graphs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from barq.bench.oracle import (
    max_flow_msat,
    min_cost_fee,
    oracle,
    oracle_capacity_msat,
)
from barq.errors import BarqError
from barq.graph import Graph

SAT = 1000


def diamond(
    *, xt_htlc_max_sat: int = 100_000, xt_enabled: bool = True, yt_htlc_min_msat: int = 0
) -> tuple[Graph, np.ndarray]:  # type: ignore[type-arg]
    """s->x (5k sat), s->y (3k), x->t (4k), y->t (10k), x->y (2k): max flow 8k sat.

    Fees: x->t 1000 msat + 100 ppm, y->t 0 + 1000 ppm, x->y free; edges from s are
    ours (charged nothing by the oracle even though they have a policy).
    """
    nodes = ["s", "x", "y", "t"]
    #          s->x    s->y    x->t    y->t    x->y
    src = [0, 0, 1, 2, 1]
    dst = [1, 2, 3, 3, 2]
    liq_sat = [5000, 3000, 4000, 10_000, 2000]
    g = Graph(
        nodes=nodes,
        scid=["1x1x0", "2x1x0", "3x1x0", "4x1x0", "5x1x0"],
        direction=[0, 0, 0, 0, 0],
        src=src,
        dst=dst,
        capacity_msat=[100_000 * SAT] * 5,
        fee_base_msat=[7777, 7777, 1000, 0, 0],
        fee_ppm=[5000, 5000, 100, 1000, 0],
        cltv_delta=[40] * 5,
        htlc_min_msat=[0, 0, 0, yt_htlc_min_msat, 0],
        htlc_max_msat=[
            100_000 * SAT,
            100_000 * SAT,
            xt_htlc_max_sat * SAT,
            100_000 * SAT,
            100_000 * SAT,
        ],
        enabled=[True, True, xt_enabled, True, True],
    )
    return g, np.asarray(liq_sat, dtype=np.int64) * SAT


def test_max_flow_is_the_min_cut() -> None:
    g, liq = diamond()
    cap = oracle_capacity_msat(g, liq, amount_msat=1, maxparts=16)
    assert max_flow_msat(g, cap, "s", "t") == 8000 * SAT
    # the other way round nothing flows (half-channels are directed)
    assert max_flow_msat(g, cap, "t", "s") == 0


def test_htlc_max_times_maxparts_caps_a_half_channel() -> None:
    g, liq = diamond(xt_htlc_max_sat=1000)
    cap = oracle_capacity_msat(g, liq, amount_msat=1, maxparts=2)
    assert cap[2] == 2000 * SAT
    assert max_flow_msat(g, cap, "s", "t") == 7000 * SAT
    cap1 = oracle_capacity_msat(g, liq, amount_msat=1, maxparts=1)
    assert max_flow_msat(g, cap1, "s", "t") == 6000 * SAT


def test_disabled_and_htlc_min_above_amount_are_unusable() -> None:
    g, liq = diamond(xt_enabled=False)
    cap = oracle_capacity_msat(g, liq, amount_msat=1, maxparts=16)
    assert max_flow_msat(g, cap, "s", "t") == 5000 * SAT  # s->y 3k + s->x->y 2k
    g2, liq2 = diamond(yt_htlc_min_msat=10 * SAT)
    small = oracle_capacity_msat(g2, liq2, amount_msat=5 * SAT, maxparts=16)
    assert max_flow_msat(g2, small, "s", "t") == 4000 * SAT  # only x->t is left
    big = oracle_capacity_msat(g2, liq2, amount_msat=10 * SAT, maxparts=16)
    assert max_flow_msat(g2, big, "s", "t") == 8000 * SAT


def test_min_cost_single_path_fee_is_exact() -> None:
    g, liq = diamond()
    cap = oracle_capacity_msat(g, liq, amount_msat=3000 * SAT, maxparts=16)
    mc = min_cost_fee(g, cap, "s", "t", 3000 * SAT)
    assert mc is not None
    # all over x->t: 1000 + 3e6 * 100 / 1e6; the payer's own s->x is free
    assert mc.fee_msat == 1300
    assert mc.fee_lower_bound_msat <= mc.fee_msat
    assert mc.fee_lower_bound_msat >= 1299


def test_min_cost_splits_when_the_cheap_path_is_full() -> None:
    g, liq = diamond()
    cap = oracle_capacity_msat(g, liq, amount_msat=6000 * SAT, maxparts=16)
    mc = min_cost_fee(g, cap, "s", "t", 6000 * SAT)
    assert mc is not None
    # x->t full (4k: 1000 + 400), the other 2k over y->t (1000 ppm: 2000)
    assert mc.fee_msat == 3400


def test_min_cost_infeasible_is_none() -> None:
    g, liq = diamond()
    cap = oracle_capacity_msat(g, liq, amount_msat=9000 * SAT, maxparts=16)
    assert min_cost_fee(g, cap, "s", "t", 9000 * SAT) is None


def test_oracle_combines_both() -> None:
    g, liq = diamond()
    ok = oracle(g, liq, "s", "t", 3000 * SAT, maxparts=16)
    assert ok.feasible and ok.max_flow_msat == 8000 * SAT and ok.fee_msat == 1300
    no = oracle(g, liq, "s", "t", 8001 * SAT, maxparts=16)
    assert not no.feasible and no.fee_msat is None


def test_bad_input_is_a_barq_error() -> None:
    g, liq = diamond()
    with pytest.raises(BarqError, match="one entry per half-channel"):
        oracle_capacity_msat(g, liq[:3], amount_msat=1, maxparts=1)
    cap = oracle_capacity_msat(g, liq, amount_msat=1, maxparts=1)
    with pytest.raises(BarqError, match="not in the graph"):
        max_flow_msat(g, cap, "s", "nobody")


def test_oracle_fee_takes_the_cheaper_single_path_when_base_fees_bite() -> None:
    """s->a->t: base 1000 msat, room for all; s->b->t: 100 ppm, room for half.

    The prorated solver fills b first (50 msat) and prorates a's base over the
    rest (500 msat): lower bound 550. Charging a's base in full makes that flow
    cost 1050, but the single path over a costs 1000: the oracle fee.
    """
    amount = 1000 * SAT
    g = Graph(
        nodes=["s", "a", "b", "t"],
        scid=["1x1x0", "2x1x0", "3x1x0", "4x1x0"],
        direction=[0, 0, 0, 0],
        src=[0, 0, 1, 2],
        dst=[1, 2, 3, 3],
        capacity_msat=[10 * amount] * 4,
        fee_base_msat=[0, 0, 1000, 0],
        fee_ppm=[0, 0, 0, 100],
        cltv_delta=[40] * 4,
        htlc_min_msat=[0] * 4,
        htlc_max_msat=[10 * amount] * 4,
        enabled=[True] * 4,
    )
    liq = np.asarray([amount, amount, amount, amount // 2], dtype=np.int64)
    cap = oracle_capacity_msat(g, liq, amount_msat=amount, maxparts=16)
    mc = min_cost_fee(g, cap, "s", "t", amount)
    assert mc is not None
    assert mc.fee_lower_bound_msat == 550
    assert mc.fee_msat == 1000


def test_fee_budget_below_the_lower_bound_is_infeasible() -> None:
    g, liq = diamond()
    # 3000 sat: the cheapest flow costs 1300 msat (lower bound >= 1299)
    assert oracle(g, liq, "s", "t", 3000 * SAT, maxparts=16, maxfee_msat=1300).feasible
    over = oracle(g, liq, "s", "t", 3000 * SAT, maxparts=16, maxfee_msat=1000)
    assert not over.feasible and over.over_budget and over.max_flow_msat == 8000 * SAT
