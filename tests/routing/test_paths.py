"""The path toolkit: masks, the scipy pitfalls, vectorised cost helpers."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_helpers import SAT, N, Net, req, row, sd, uninformed

from barq import routing
from barq.errors import InvalidParams, RouteNotFound
from barq.routing import (
    fee_costs,
    risk_costs,
    success_probabilities,
    success_probability,
)


def test_zero_weight_edges_are_kept() -> None:
    # every fee 0: scipy would drop explicit zeros and see no edge at all
    net = Net()
    a = net.channel(0, 1, 1000)
    b = net.channel(1, 2, 1000)
    g = net.graph()
    w = routing.weighted(routing.topology(g), np.zeros(g.num_edges))
    path = routing.shortest_path(w, 0, 2)
    assert path == [row(g, a, 0), row(g, b, 1)]


def test_parallel_edges_keep_the_cheapest_not_the_sum() -> None:
    net = Net()
    x = net.channel(0, 1, 1000)
    y = net.channel(0, 1, 1000)
    z = net.channel(0, 2, 1000)
    t = net.channel(2, 1, 1000)
    g = net.graph()
    cost = np.full(g.num_edges, 100.0)
    cost[row(g, x, 0)] = 60.0
    cost[row(g, y, 0)] = 5.0
    cost[row(g, z, 0)] = 4.0
    cost[row(g, t, 2)] = 4.0
    w = routing.weighted(routing.topology(g), cost)
    # summed duplicates would make 0->1 cost 65 and route through node 2 (8)
    assert routing.shortest_path(w, 0, 1) == [row(g, y, 0)]
    assert w.edge_between(0, 1) == row(g, y, 0)
    cost[row(g, y, 0)] = np.inf
    w = routing.weighted(routing.topology(g), cost)
    assert routing.shortest_path(w, 0, 1) == [row(g, z, 0), row(g, t, 2)]


def test_unreachable_gives_none() -> None:
    net = Net()
    net.channel(0, 1, 1000)
    net.channel(2, 3, 1000)
    g = net.graph()
    w = routing.weighted(routing.topology(g), np.ones(g.num_edges))
    assert routing.shortest_path(w, 0, 3) is None


def test_topology_is_cached_per_graph() -> None:
    net = Net()
    net.channel(0, 1, 1000)
    g = net.graph()
    assert routing.topology(g) is routing.topology(g)
    assert routing.topology(net.graph()) is not routing.topology(g)


def test_topology_is_shared_by_graphs_of_the_same_shape() -> None:
    """A graph with the same endpoints (e.g. our balances overlaid) reuses the arrays;
    one more channel, or one endpoint moved, does not."""
    net = Net()
    net.channel(0, 1, 1000)
    net.channel(1, 2, 1000)
    g = net.graph()
    other = net.graph()
    t, u = routing.topology(g), routing.topology(other)
    assert u.graph is other and u.single_rows is t.single_rows
    net.channel(0, 2, 1000)
    assert routing.topology(net.graph()).single_rows is not t.single_rows


def test_allowed_edges_masks() -> None:
    net = Net()
    a = net.channel(0, 1, 1000, htlc_min=5000, htlc_max=600 * SAT)
    b = net.channel(1, 2, 1000)
    c = net.channel(0, 3, 1000, enabled=False)
    g = net.graph()
    ctx = uninformed(g)
    m = routing.allowed_edges(req(0, 2, 1000), ctx, 1000)
    assert not m[row(g, a, 0)]  # below htlc_min
    assert m[row(g, b, 1)]
    assert not m[row(g, c, 0)]  # disabled
    m = routing.allowed_edges(req(0, 2, 700 * SAT), ctx, 700 * SAT)
    assert not m[row(g, a, 0)]  # above htlc_max
    m = routing.allowed_edges(
        req(0, 2, 10_000, exclude_channels=frozenset({sd(g, b, 1)})), ctx, 10_000
    )
    assert m[row(g, a, 0)] and not m[row(g, b, 1)] and m[row(g, b, 2)]
    m = routing.allowed_edges(req(0, 2, 10_000, exclude_nodes=frozenset({N[1], N[0]})), ctx, 10_000)
    # node 1 cut out both ways; the source itself is never excluded
    assert not m[row(g, a, 0)] and not m[row(g, b, 1)] and not m[row(g, a, 1)]
    assert not m[row(g, c, 0)] and not m[row(g, c, 3)]  # disabled both ways


def test_endpoints_errors() -> None:
    net = Net()
    net.channel(0, 1, 1000)
    g = net.graph()
    with pytest.raises(RouteNotFound, match="excluded"):
        routing.endpoints(req(0, 1, 1000, exclude_nodes=frozenset({N[1]})), g)
    with pytest.raises(RouteNotFound, match="not in the graph"):
        routing.endpoints(req(0, 9, 1000), g)
    with pytest.raises(RouteNotFound, match="same node"):
        routing.endpoints(req(0, 0, 1000), g)
    with pytest.raises(InvalidParams):
        routing.endpoints(req(0, 1, 0), g)


def test_success_probabilities_match_scalar() -> None:
    lo = np.array([0, 100, 100, 0, 50], dtype=np.int64)
    hi = np.array([1000, 100, 200, 0, 60], dtype=np.int64)
    for a in (0, 1, 50, 100, 101, 150, 200, 201, 1000, 1001):
        vec = success_probabilities(a, lo, hi)
        for i in range(len(lo)):
            assert vec[i] == pytest.approx(success_probability(a, int(lo[i]), int(hi[i])))


def test_fee_and_risk_costs_skip_the_source() -> None:
    net = Net()
    a = net.channel(0, 1, 1000, base=1000, ppm=100, cltv=40)
    g = net.graph()
    fees = fee_costs(g, N[0], 1_000_000)
    assert fees[row(g, a, 0)] == 0.0
    assert fees[row(g, a, 1)] == pytest.approx(1000 + 100)
    risk = risk_costs(g, N[0], 1_000_000)
    assert risk[row(g, a, 0)] == 0.0
    assert risk[row(g, a, 1)] == pytest.approx(1_000_000 * 40 * 10 / 100 / 52_596)


def test_reserve_subtracts_used_liquidity() -> None:
    net = Net()
    a = net.channel(0, 1, 1000)
    g = net.graph()
    ctx = uninformed(g)
    used = np.zeros(g.num_edges, dtype=np.int64)
    used[row(g, a, 0)] = 400 * SAT
    r = routing.reserve(ctx, used)
    assert r.max_msat[row(g, a, 0)] == 600 * SAT
    assert r.max_msat[row(g, a, 1)] == 1000 * SAT
    assert r.inflight_msat[row(g, a, 0)] == 400 * SAT
