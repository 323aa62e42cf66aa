"""Property: on random small graphs every strategy either raises 205/206 or meets the contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategy_helpers import SAT, N, Net, check_contract

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.model import RouteInput
from barq.routing import RoutingContext
from barq.strategies import get_strategy

NAMES = [
    "direct",
    "dijkstra",
    "probabilistic",
    "singlepath",
    "presplit",
    "mincostflow",
    "cheapflow",
]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RoutingContext, RouteInput]:
    n = draw(st.integers(3, 7))
    net = Net()
    # a random spanning tree (so most requests have some path) plus random extra channels
    pairs = [(draw(st.integers(0, i - 1)), i) for i in range(1, n)]
    for _ in range(draw(st.integers(0, 10))):
        a = draw(st.integers(0, n - 1))
        b = (a + draw(st.integers(1, n - 1))) % n
        pairs.append((a, b))
    for a, b in pairs:
        cap = draw(st.sampled_from([50, 1_000, 5_000, 20_000, 100_000]))
        pol: dict[str, Any] = {
            "base": draw(st.sampled_from([0, 0, 1, 1000])),
            "ppm": draw(st.sampled_from([0, 1, 100, 5000])),
            "cltv": draw(st.sampled_from([0, 6, 40, 144, 1000])),
            "htlc_min": draw(st.sampled_from([1, 1, 1000, 100_000])),
            "htlc_max": draw(st.sampled_from([None, cap * SAT // 2])),
            "enabled": draw(st.sampled_from([True] * 7 + [False])),
        }
        net.channel(a, b, cap, **pol)
    g = net.graph()
    e = g.num_edges
    frac_lo = np.array(draw(st.lists(st.floats(0, 1), min_size=e, max_size=e)))
    frac_hi = np.array(draw(st.lists(st.floats(0, 1), min_size=e, max_size=e)))
    lo = (g.capacity_msat * np.minimum(frac_lo, frac_hi)).astype(np.int64)
    hi = (g.capacity_msat * np.maximum(frac_lo, frac_hi)).astype(np.int64)
    src = g.node_index.get(N[0])
    if src is not None:  # our own channels: exact
        own = g.src == src
        lo[own] = hi[own]
    usable = g.enabled & np.array(
        draw(st.lists(st.sampled_from([True] * 7 + [False]), min_size=e, max_size=e)), dtype=bool
    )
    ctx = RoutingContext(
        graph=g, min_msat=lo, max_msat=hi, usable=usable, inflight_msat=np.zeros(e, dtype=np.int64)
    )
    nodes = sorted(g.node_index)
    dest = draw(st.sampled_from([x for x in nodes if x != N[0]] or [N[1]]))
    excl_ch = draw(st.sets(st.sampled_from([g.scid_dir(i) for i in range(e)]), max_size=2))
    excl_nodes = draw(st.sets(st.sampled_from(nodes), max_size=1)) - {dest}
    request = RouteInput(
        source=N[0],
        destination=dest,
        amount_msat=draw(st.sampled_from([1, 999, 50_000, 1_000_000, 3_333_333, 30_000_000])),
        maxfee_msat=draw(st.sampled_from([0, 10, 5_000, 10**7])),
        maxdelay=draw(st.sampled_from([50, 200, 2016])),
        final_cltv=draw(st.sampled_from([9, 18])),
        maxparts=draw(st.integers(1, 5)),
        exclude_channels=frozenset(excl_ch),
        exclude_nodes=frozenset(excl_nodes),
    )
    return ctx, request


@pytest.mark.parametrize("name", NAMES)
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=scenarios())
def test_every_answer_meets_the_contract(
    name: str, case: tuple[RoutingContext, RouteInput]
) -> None:
    ctx, request = case
    strategy = get_strategy(name)
    if request.source not in ctx.graph.node_index:
        with pytest.raises(RouteNotFound):
            strategy.find_routes(request, ctx)
        return
    try:
        routes = strategy.find_routes(request, ctx)
    except (RouteNotFound, RouteTooExpensive):
        return
    check_contract(request, ctx, routes)
    if not strategy.splits:
        assert len(routes) == 1
