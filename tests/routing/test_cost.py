"""The cost model: one formula per term, and CostParams combining them."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
from strategy_helpers import SAT, N, Net, req, uninformed

from barq.errors import RouteNotFound
from barq.routing import (
    BLOCKS_PER_YEAR,
    CostParams,
    PathStrategy,
    RoutingContext,
    edge_fees_msat,
    fee_costs,
    find_path,
    neg_log_success,
    prorated_fee_ppm,
    prorated_fee_rate,
    risk_costs,
)


def net3() -> tuple[Net, RoutingContext]:
    net = Net()
    net.channel(0, 1, 1000, base=1000, ppm=100, cltv=40)
    net.channel(1, 2, 1000, base=2000, ppm=500, cltv=144)
    return net, uninformed(net.graph())


def test_zero_penalty_prices_fee_and_risk_only() -> None:
    _, ctx = net3()
    p = CostParams(penalty_ppm=0, penalty_base_msat=0)
    assert not p.prices_probability
    a = 600 * SAT  # above some channels' max: no probability term, so nothing is inf
    got = p.edge_costs(ctx, N[0], a)
    want = fee_costs(ctx.graph, N[0], a) + risk_costs(ctx.graph, N[0], a, 10)
    assert np.array_equal(got, want) and np.all(np.isfinite(got))


def test_penalty_prices_minus_log_p_and_forbids_impossible_edges() -> None:
    _, ctx = net3()
    p = CostParams(riskfactor=1.0, penalty_ppm=2000, penalty_base_msat=1000)
    a = 500 * SAT
    nlp = neg_log_success(ctx, a)
    want = (
        fee_costs(ctx.graph, N[0], a)
        + risk_costs(ctx.graph, N[0], a, 1.0)
        + (1000 + a * 2000 / 1e6) * nlp
    )
    assert np.allclose(p.edge_costs(ctx, N[0], a), want)
    assert np.all(np.isinf(p.edge_costs(ctx, N[0], 2000 * SAT)))  # more than any channel


def test_fees_are_free_on_our_own_channels() -> None:
    _, ctx = net3()
    g = ctx.graph
    ours = g.src == g.node_index[N[0]]
    assert np.all(fee_costs(g, N[0], 10**6)[ours] == 0)
    rows = np.arange(g.num_edges, dtype=np.int64)
    flows = np.full(g.num_edges, 10**6, dtype=np.int64)
    exact = edge_fees_msat(g, rows, flows, g.node_index[N[0]])
    theirs = ~ours
    want = int(np.sum((g.fee_base_msat + flows * g.fee_ppm // 10**6)[theirs]))
    assert exact == want


def test_prorated_rates_agree_in_floats_and_integers() -> None:
    _, ctx = net3()
    g = ctx.graph
    rows = np.arange(g.num_edges, dtype=np.int64)
    amount = 250_000
    rate = prorated_fee_rate(g, rows, amount)
    as_int = prorated_fee_ppm(g, rows, amount, scale=1000)
    assert np.allclose(rate * 1e6 * 1000, as_int, atol=1)


def test_risk_is_clns_riskfactor() -> None:
    _, ctx = net3()
    g = ctx.graph
    risk = risk_costs(g, N[0], 10**8, 10)
    e = int(np.flatnonzero(g.src != g.node_index[N[0]])[0])
    assert risk[e] == pytest.approx(10**8 * int(g.cltv_delta[e]) * 0.1 / BLOCKS_PER_YEAR)


def test_cost_params_are_frozen_and_strict() -> None:
    p = CostParams()
    with pytest.raises(AttributeError):
        p.riskfactor = 1.0  # type: ignore[misc]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"riskfactr": 1.0}, CostParams)
    assert msgspec.convert({"riskfactor": 2}, CostParams).riskfactor == 2.0


def test_a_passed_deadline_stops_the_path_search() -> None:
    _, ctx = net3()
    late = RoutingContext(
        graph=ctx.graph,
        min_msat=ctx.min_msat,
        max_msat=ctx.max_msat,
        usable=ctx.usable,
        inflight_msat=ctx.inflight_msat,
        deadline=time.monotonic() - 1,
    )
    r = req(0, 2, 100 * SAT, maxfee_msat=10**6)
    with pytest.raises(RouteNotFound) as ei:
        find_path(PathStrategy(), r, late, r.amount_msat, r.maxfee_msat)
    assert ei.value.data["deadline_passed"] is True
    route, _ = find_path(PathStrategy(), r, ctx, r.amount_msat, r.maxfee_msat)
    assert route.amount_msat == 100 * SAT
