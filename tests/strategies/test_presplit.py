"""``presplit``: CLN pay's presplitter as a baseline."""

from __future__ import annotations

from collections import Counter

import pytest
from strategy_helpers import SAT, Net, check_contract, req, uninformed, with_liquidity

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.strategies.presplit import PresplitStrategy, presplit_amounts


def test_presplit_amounts() -> None:
    assert presplit_amounts(25_000_000, 10_000_000, 16) == [8_333_334, 8_333_333, 8_333_333]
    assert presplit_amounts(5_000, 10_000_000, 16) == [5_000]
    assert presplit_amounts(10_000_000, 10_000_000, 16) == [10_000_000]
    big = presplit_amounts(10**10, 10_000_000, 16)  # 1000 parts wanted, 16 allowed
    assert len(big) == 16 and sum(big) == 10**10 and max(big) - min(big) <= 1


def parallel(n: int, cap_sat: int) -> tuple[Net, list[str]]:
    """``n`` disjoint two-hop paths 0 -> k -> 99 of ``cap_sat`` each, fee rising with k."""
    net = Net()
    firsts = []
    for k in range(1, n + 1):
        firsts.append(net.channel(0, k, cap_sat))
        net.channel(k, 50, cap_sat, base=k)
    return net, firsts


def test_parts_spread_over_paths_as_liquidity_is_used() -> None:
    net, firsts = parallel(4, 12_000)
    g = net.graph()
    ctx = uninformed(g)
    for a in firsts:
        ctx = with_liquidity(ctx, g, {(a, 0): (12_000 * SAT, 12_000 * SAT)})
    r = req(0, 50, 40_000 * SAT, maxparts=8, maxfee_msat=100)
    routes = PresplitStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 4  # 40k sat in 10k sat parts
    assert all(rt.amount_msat == 10_000 * SAT for rt in routes)
    # one part per path: each path holds 12k sat, two parts would not fit
    assert Counter(rt.hops[0].channel for rt in routes) == Counter(firsts)


def test_cheapest_first_then_next() -> None:
    net, firsts = parallel(3, 25_000)
    g = net.graph()
    ctx = uninformed(g)
    for a in firsts:
        ctx = with_liquidity(ctx, g, {(a, 0): (25_000 * SAT, 25_000 * SAT)})
    r = req(0, 50, 40_000 * SAT, maxparts=8, maxfee_msat=100)
    routes = PresplitStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    # the cheapest path (fee 1) takes two parts, the next (fee 2) the other two
    assert Counter(rt.hops[0].channel for rt in routes) == {firsts[0]: 2, firsts[1]: 2}


def test_maxparts_makes_bigger_parts_and_failing_parts_are_halved() -> None:
    net, firsts = parallel(4, 7_000)
    g = net.graph()
    ctx = uninformed(g)
    for a in firsts:
        ctx = with_liquidity(ctx, g, {(a, 0): (7_000 * SAT, 7_000 * SAT)})
    # 18k sat: 2 parts of 9k (maxparts 4 allows 2 parts of ~10k); no path holds 9k sat:
    # each is halved into 4.5k parts, one per path
    r = req(0, 50, 18_000 * SAT, maxparts=4, maxfee_msat=100)
    routes = PresplitStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert sorted(rt.amount_msat for rt in routes) == [4_500 * SAT] * 4
    assert Counter(rt.hops[0].channel for rt in routes) == Counter(firsts)
    with pytest.raises(RouteNotFound, match="presplit"):
        PresplitStrategy().find_routes(req(0, 50, 18_000 * SAT, maxparts=3), ctx)


def test_fee_budget_is_shared() -> None:
    net, _ = parallel(2, 30_000)
    g = net.graph()
    r = req(0, 50, 20_000 * SAT, maxparts=4, maxfee_msat=1)
    with pytest.raises(RouteTooExpensive):
        PresplitStrategy().find_routes(r, uninformed(g))
    r = req(0, 50, 20_000 * SAT, maxparts=4, maxfee_msat=2)
    routes = PresplitStrategy().find_routes(r, uninformed(g))
    check_contract(r, uninformed(g), routes)
    assert len(routes) == 2 and sum(rt.fee_msat for rt in routes) == 2
