"""``mincostflow``: the whole amount as a min-cost flow, decomposed into routes."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import numpy as np
import pytest
from strategy_helpers import (
    SAT,
    N,
    Net,
    check_contract,
    req,
    route_edges,
    row,
    sd,
    uninformed,
    with_liquidity,
)

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.routing import FlowNetwork, RoutingContext, decompose_flow
from barq.strategies.mincostflow import MinCostFlowParams, MinCostFlowStrategy


def parallel(
    n: int, cap_sat: int, *, own_sat: int | None = None, ppm: int = 0, cltv: int = 40
) -> tuple[Net, list[str], list[str]]:
    """``n`` disjoint paths 0 -> k -> 50; our first hops hold ``own_sat`` (exact)."""
    net = Net()
    firsts, seconds = [], []
    for k in range(1, n + 1):
        firsts.append(net.channel(0, k, cap_sat))
        seconds.append(net.channel(k, 50, cap_sat, base=0, ppm=ppm * k, cltv=cltv))
    return net, firsts, seconds


def own(ctx: RoutingContext, net: Net, firsts: list[str], sat: int) -> RoutingContext:
    g = ctx.graph
    return with_liquidity(ctx, g, {(a, 0): (sat * SAT, sat * SAT) for a in firsts})


def test_splits_when_no_single_path_fits() -> None:
    net, firsts, _ = parallel(3, 10_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    r = req(0, 50, 18_000 * SAT, maxparts=8, maxfee_msat=1000)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 3  # spreading lowers each channel's share: all three are used
    assert all(rt.probability is not None and 0 < rt.probability < 1 for rt in routes)
    # -ln P is linearised in pieces cut at 50 % / 80 % / 95 % of [min, max]: every path
    # fills its cheap first half before any goes past it, none reaches the steep last piece
    assert all(5_000 * SAT - 20 * SAT <= rt.amount_msat <= 8_000 * SAT for rt in routes)


def test_exact_sum_with_odd_amount() -> None:
    net, firsts, _ = parallel(4, 10_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    for amount in (12_345_679, 1, 999, 20_000_001):
        r = req(0, 50, amount, maxparts=4, maxfee_msat=1000)
        check_contract(r, ctx, MinCostFlowStrategy().find_routes(r, ctx))


def test_infeasible_reports_max_flow() -> None:
    net, firsts, _ = parallel(3, 7_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 7_000)
    with pytest.raises(RouteNotFound, match="max flow") as ei:
        MinCostFlowStrategy().find_routes(req(0, 50, 30_000 * SAT, maxparts=8), ctx)
    assert 0 < ei.value.data["max_flow_msat"] <= 21_000 * SAT


def test_unreachable_and_excluded_destination() -> None:
    net, _, _ = parallel(2, 7_000)
    net.channel(60, 61, 1000)
    g = net.graph()
    with pytest.raises(RouteNotFound, match="unreachable"):
        MinCostFlowStrategy().find_routes(req(0, 61, 1000 * SAT, maxparts=4), uninformed(g))
    with pytest.raises(RouteNotFound, match="excluded"):
        MinCostFlowStrategy().find_routes(
            req(0, 50, 1000 * SAT, maxparts=4, exclude_nodes=frozenset({N[50]})), uninformed(g)
        )


def test_certain_liquidity_is_preferred() -> None:
    net, firsts, seconds = parallel(3, 10_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    ctx = with_liquidity(ctx, g, {(seconds[1], 2): (9_000 * SAT, 10_000 * SAT)})
    r = req(0, 50, 8_000 * SAT, maxparts=8, maxfee_msat=1000)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 1 and routes[0].hops[1].channel == seconds[1]
    assert routes[0].probability == pytest.approx(1.0)


def test_maxparts_is_respected() -> None:
    net, firsts, _ = parallel(6, 10_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    r = req(0, 50, 15_000 * SAT, maxparts=6, maxfee_msat=1000)
    wide = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, wide)
    assert len(wide) > 2
    r = req(0, 50, 15_000 * SAT, maxparts=2, maxfee_msat=1000)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 2


def test_maxparts_one_is_a_single_probable_path() -> None:
    net, firsts, _ = parallel(3, 10_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    r = req(0, 50, 5_000 * SAT, maxparts=1, maxfee_msat=1000)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 1


def test_fees_are_weighed_and_budget_enforced() -> None:
    # path k charges k*100 ppm: with a generous budget probability spreads the flow,
    # with a tight one mu grows until the cheap paths carry (nearly) everything
    net, firsts, _ = parallel(3, 10_000, ppm=100)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    amount = 12_000 * SAT  # first halves of paths 1 and 2, then path 3 (before 2nd pieces)
    loose = MinCostFlowStrategy().find_routes(
        req(0, 50, amount, maxparts=8, maxfee_msat=10_000_000), ctx
    )
    assert len(loose) == 3
    loose_fee = sum(rt.fee_msat for rt in loose)
    budget = loose_fee * 3 // 4
    r = req(0, 50, amount, maxparts=8, maxfee_msat=budget)
    tight = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, tight)
    assert sum(rt.fee_msat for rt in tight) < loose_fee
    with pytest.raises(RouteTooExpensive) as ei:
        MinCostFlowStrategy().find_routes(req(0, 50, amount, maxparts=8, maxfee_msat=100), ctx)
    assert ei.value.data["cheapest_fee_msat"] > 100


def test_exclusions_unusable_and_delay_are_honoured() -> None:
    net, firsts, seconds = parallel(4, 10_000)
    slow = net.channel(0, 60, 50_000)
    net.channel(60, 50, 50_000, cltv=3000)
    g = net.graph()
    ctx = own(uninformed(g), net, [*firsts, slow], 50_000)
    ctx.usable[row(g, seconds[3], 4)] = False
    r = req(
        0,
        50,
        20_000 * SAT,
        maxparts=8,
        maxfee_msat=1000,
        exclude_channels=frozenset({sd(g, seconds[0], 1)}),
        exclude_nodes=frozenset({N[2]}),
    )
    # only path 3 (10k) and the slow one remain; the slow one is beyond maxdelay: the
    # amount could flow but not within maxdelay -> 206, not 205
    with pytest.raises(RouteTooExpensive, match="maxdelay"):
        MinCostFlowStrategy().find_routes(r, ctx)
    r = req(
        0,
        50,
        65_000 * SAT,
        maxparts=8,
        maxfee_msat=1000,
        exclude_channels=frozenset({sd(g, seconds[0], 1)}),
        exclude_nodes=frozenset({N[2]}),
    )
    with pytest.raises(RouteNotFound):  # more than even the slow path could add
        MinCostFlowStrategy().find_routes(r, ctx)
    r = req(
        0,
        50,
        9_000 * SAT,
        maxparts=8,
        maxfee_msat=1000,
        exclude_channels=frozenset({sd(g, seconds[0], 1)}),
        exclude_nodes=frozenset({N[2]}),
    )
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert Counter(h.channel for rt in routes for h in rt.hops[1:]) == {seconds[2]: 1}


def test_parallel_channels_and_zero_fees() -> None:
    net = Net()
    a = net.channel(0, 1, 10_000)
    b1 = net.channel(1, 2, 6_000)
    b2 = net.channel(1, 2, 6_000)
    net.channel(2, 3, 20_000)
    g = net.graph()
    ctx = with_liquidity(uninformed(g), g, {(a, 0): (10_000 * SAT, 10_000 * SAT)})
    r = req(0, 3, 8_000 * SAT, maxparts=4, maxfee_msat=0)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert {rt.hops[1].channel for rt in routes} == {b1, b2}
    assert all(len(route_edges(g, rt)) == 3 for rt in routes)


def test_maxparts_keeps_the_widest_paths_when_the_largest_flows_cannot_merge() -> None:
    net = Net()
    a = net.channel(0, 1, 20_000)
    b = net.channel(0, 1, 2_000)
    c1, c2 = net.channel(0, 3, 30_000), net.channel(3, 1, 20_000)
    d1, d2 = net.channel(0, 2, 30_000), net.channel(2, 1, 17_000)
    g = net.graph()
    ctx = with_liquidity(
        uninformed(g),
        g,
        {
            (a, 0): (20_000 * SAT, 20_000 * SAT),
            (b, 0): (2_000 * SAT, 2_000 * SAT),
            (c1, 0): (30_000 * SAT, 30_000 * SAT),
            (d1, 0): (30_000 * SAT, 30_000 * SAT),
            (c2, 3): (5_000 * SAT, 9_000 * SAT),
            (d2, 2): (0, 17_000 * SAT),
        },
    )
    # the flow: a 20k + c 5k + b 2k certain, 3k more over d (the flattest uncertainty);
    # a + c can hold only 29k, a + d (the widest) can take all 30k
    wide = MinCostFlowStrategy().find_routes(req(0, 1, 30_000 * SAT, maxparts=4), ctx)
    assert len(wide) == 4
    r = req(0, 1, 30_000 * SAT, maxparts=2)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert sorted((rt.hops[0].channel, rt.amount_msat) for rt in routes) == sorted(
        [(a, 20_000 * SAT), (d1, 10_000 * SAT)]
    )


def test_channel_exactly_as_big_as_the_amount_is_usable() -> None:
    # the steepest piece of -ln P ends at max itself: a channel can be filled when it
    # is the only way (P tiny but not zero)
    net = Net()
    a = net.channel(0, 1, 5_000)
    net.channel(1, 2, 1_000)
    g = net.graph()
    ctx = with_liquidity(uninformed(g), g, {(a, 0): (5_000 * SAT, 5_000 * SAT)})
    r = req(0, 2, 1_000 * SAT, maxparts=4)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 1 and routes[0].probability == pytest.approx(1 / (1_000 * SAT + 1))


def test_fees_pushing_a_hop_over_its_liquidity_are_repaired() -> None:
    # 0 -> 1 -> 2: node 1 charges 1 %; our channel holds exactly amount + fee: the flow
    # (in msat before fees) fits anything, the exact routes must still fit our channel
    net = Net()
    a = net.channel(0, 1, 20_000)
    b = net.channel(0, 1, 20_000)
    net.channel(1, 2, 50_000, ppm=10_000)
    g = net.graph()
    amount = 10_000 * SAT
    ctx = with_liquidity(
        uninformed(g), g, {(a, 0): (amount, amount), (b, 0): (amount // 10, amount // 10)}
    )
    r = req(0, 2, amount, maxparts=4, maxfee_msat=amount // 50)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert {rt.hops[0].channel for rt in routes} == {a, b}


def test_decomposition_follows_largest_flows_and_cancels_cycles() -> None:
    # 0 -> 1 -> 2 -> 3 with a 1 -> 2 -> 1 cycle the walk runs into (ties: lowest arc)
    p = FlowNetwork(
        edges=np.arange(4),
        node_of=np.arange(4),
        tails=np.array([0, 1, 2, 2]),
        heads=np.array([1, 2, 1, 3]),
        num_nodes=4,
        s=0,
        t=3,
    )
    assert decompose_flow(p, np.array([1, 2, 1, 1])) == [([0, 1, 3], 1)]
    # two routes out of the source, the larger first
    p = FlowNetwork(
        edges=np.arange(6),
        node_of=np.arange(5),
        tails=np.array([0, 0, 1, 2, 1, 3]),
        heads=np.array([1, 2, 3, 3, 2, 4]),
        num_nodes=5,
        s=0,
        t=4,
    )
    paths = decompose_flow(p, np.array([3, 1, 2, 2, 1, 4]))
    assert sorted(u for _, u in paths) == [1, 1, 2] and paths[0] == ([0, 2, 5], 2)


def test_several_parts_share_a_channel_capped_by_htlc_max() -> None:
    # the only way: 0 -> 1 -> 2; 1 -> 2 is big but takes at most 10,000 sat per HTLC and
    # node 1 charges 1 % (hop amounts before it carry the fee: parts must leave room)
    net = Net()
    a = net.channel(0, 1, 100_000, htlc_max=10_100 * SAT)
    b = net.channel(1, 2, 100_000, ppm=10_000, htlc_max=10_000 * SAT)
    g = net.graph()
    ctx = with_liquidity(uninformed(g), g, {(a, 0): (100_000 * SAT, 100_000 * SAT)})
    r = req(0, 2, 25_000 * SAT, maxparts=4, maxfee_msat=1_000 * SAT)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 3
    assert {tuple(h.channel for h in rt.hops) for rt in routes} == {(a, b)}
    assert all(rt.hops[0].amount_msat <= 10_100 * SAT for rt in routes)
    # parts as big as the limits allow: 10,000 sat reach node 2 with 10,100 sat on a
    r = req(0, 2, 20_000 * SAT, maxparts=4, maxfee_msat=1_000 * SAT)
    routes = MinCostFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert sorted(rt.hops[0].amount_msat for rt in routes) == [10_100 * SAT] * 2
    # 3 parts are needed: 2 are not enough
    with pytest.raises(RouteNotFound):
        MinCostFlowStrategy().find_routes(
            req(0, 2, 25_000 * SAT, maxparts=2, maxfee_msat=1_000 * SAT), ctx
        )


def test_a_near_certain_single_path_is_taken_without_solving_the_flow() -> None:
    """A small amount on big channels: probabilistic's path is >= 99 % likely, so it is the
    answer (one part); with the shortcut off the flow answers, also with one path here."""
    net, firsts, _ = parallel(3, 10_000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    r = req(0, 50, 10 * SAT, maxparts=8, maxfee_msat=1000)

    no_shortcut = MinCostFlowStrategy(MinCostFlowParams(single_path_probability=1.0))

    solved: list[int] = []

    class Spy(MinCostFlowStrategy):
        def _find_routes(self, request, ctx, htlcs_per_channel):  # type: ignore[no-untyped-def]
            solved.append(htlcs_per_channel)
            return super()._find_routes(request, ctx, htlcs_per_channel)

    [route] = Spy().find_routes(r, ctx)
    assert solved == [] and route.probability is not None and route.probability >= 0.99
    check_contract(r, ctx, [route])
    # a big amount is below the threshold: the flow is solved and splits it
    big = req(0, 50, 18_000 * SAT, maxparts=8, maxfee_msat=1000)
    assert len(Spy().find_routes(big, ctx)) == 3 and solved == [1]
    assert len(no_shortcut.find_routes(r, ctx)) >= 1


def test_cheapflow_pays_less_fee_than_mincostflow_for_less_probability() -> None:
    """Path k charges k*1000 ppm. mincostflow spreads 12,000 sat over all three paths for
    probability; cheapflow, weighing fees 10x more, keeps more on the cheap paths."""
    from barq.strategies.cheapflow import CheapFlowStrategy

    net, firsts, _ = parallel(3, 10_000, ppm=1000)
    g = net.graph()
    ctx = own(uninformed(g), net, firsts, 10_000)
    r = req(0, 50, 12_000 * SAT, maxparts=8, maxfee_msat=10_000_000)
    reliable = MinCostFlowStrategy().find_routes(r, ctx)
    cheap = CheapFlowStrategy().find_routes(r, ctx)
    check_contract(r, ctx, cheap)
    assert sum(x.fee_msat for x in cheap) < sum(x.fee_msat for x in reliable)
    p_cheap = np.prod([x.probability or 0.0 for x in cheap])
    p_reliable = np.prod([x.probability or 0.0 for x in reliable])
    assert p_cheap < p_reliable


def test_mincostflow_built_with_cheapflow_params_answers_as_cheapflow() -> None:
    """Parameters are data: mincostflow given cheapflow's numbers is cheapflow."""
    from barq.strategies.cheapflow import CHEAPFLOW_PARAMS, CheapFlowStrategy

    net, firsts, _ = parallel(3, 10_000, ppm=1000)
    ctx = own(uninformed(net.graph()), net, firsts, 10_000)
    r = req(0, 50, 12_000 * SAT, maxparts=8, maxfee_msat=10_000_000)
    default = MinCostFlowStrategy().find_routes(r, ctx)
    tuned = MinCostFlowStrategy(CHEAPFLOW_PARAMS).find_routes(r, ctx)
    assert tuned == CheapFlowStrategy().find_routes(r, ctx)
    assert sum(x.fee_msat for x in tuned) < sum(x.fee_msat for x in default)


def test_a_passed_deadline_stops_the_flow() -> None:
    net, firsts, _ = parallel(3, 10_000)
    ctx = own(uninformed(net.graph()), net, firsts, 10_000)
    late = dataclasses.replace(ctx, deadline=time.monotonic() - 1.0)
    r = req(0, 50, 12_000 * SAT, maxparts=8, maxfee_msat=10_000_000)
    with pytest.raises(RouteNotFound) as ei:
        MinCostFlowStrategy().find_routes(r, late)
    assert ei.value.data.get("deadline_passed") is True
    assert MinCostFlowStrategy().find_routes(r, dataclasses.replace(ctx, deadline=None))
