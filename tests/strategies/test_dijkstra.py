"""``dijkstra``: cheapest path by fee + CLTV risk, with exact verification."""

from __future__ import annotations

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
from barq.strategies.dijkstra import DijkstraStrategy


def diamond(
    *,
    fee_13: tuple[int, int] = (1000, 100),
    fee_23: tuple[int, int] = (2000, 500),
    cltv_13: int = 40,
    cltv_23: int = 40,
    cap: int = 10_000,
    htlc_max_13: int | None = None,
) -> tuple[Net, dict[str, str]]:
    """0 -> 1 -> 3 (cheap) and 0 -> 2 -> 3 (dear); node 0 pays; capacities in sat."""
    net = Net()
    ch = {
        "01": net.channel(0, 1, cap),
        "02": net.channel(0, 2, cap),
        "13": net.channel(
            1, 3, cap, base=fee_13[0], ppm=fee_13[1], cltv=cltv_13, htlc_max=htlc_max_13
        ),
        "23": net.channel(2, 3, cap, base=fee_23[0], ppm=fee_23[1], cltv=cltv_23),
    }
    return net, ch


def channels(routes: list) -> list[str]:  # type: ignore[type-arg]
    return [h.channel for h in routes[0].hops]


def test_picks_cheapest_path() -> None:
    net, ch = diamond()
    g = net.graph()
    r = req(0, 3, 1000 * SAT)
    routes = DijkstraStrategy().find_routes(r, uninformed(g))
    check_contract(r, uninformed(g), routes)
    assert channels(routes) == [ch["01"], ch["13"]]
    assert routes[0].fee_msat == 1000 + 1000 * SAT * 100 // 1_000_000
    assert routes[0].delay == 40 + r.final_cltv
    assert routes[0].probability is not None and 0 < routes[0].probability < 1
    # and the other way round
    net, ch = diamond(fee_13=(2000, 500), fee_23=(1000, 100))
    g = net.graph()
    assert channels(DijkstraStrategy().find_routes(r, uninformed(g))) == [ch["02"], ch["23"]]


def test_cltv_risk_breaks_fee_ties() -> None:
    net, ch = diamond(fee_13=(1000, 100), fee_23=(1000, 100), cltv_13=144, cltv_23=18)
    g = net.graph()
    routes = DijkstraStrategy().find_routes(req(0, 3, 5000 * SAT), uninformed(g))
    assert channels(routes) == [ch["02"], ch["23"]]


def test_htlc_max_and_liquidity_and_exclusions_divert() -> None:
    net, ch = diamond()
    g = net.graph()
    r = req(0, 3, 1000 * SAT)
    ctx = with_liquidity(uninformed(g), g, {(ch["13"], 1): (0, 999 * SAT)})
    routes = DijkstraStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert channels(routes) == [ch["02"], ch["23"]]
    for r2 in (
        req(0, 3, 1000 * SAT, exclude_channels=frozenset({sd(g, ch["13"], 1)})),
        req(0, 3, 1000 * SAT, exclude_nodes=frozenset({N[1]})),
    ):
        routes = DijkstraStrategy().find_routes(r2, uninformed(g))
        check_contract(r2, uninformed(g), routes)
        assert channels(routes) == [ch["02"], ch["23"]]
    net, ch = diamond(htlc_max_13=500 * SAT)
    g = net.graph()
    assert channels(DijkstraStrategy().find_routes(r, uninformed(g))) == [ch["02"], ch["23"]]


def test_exact_amount_with_fees_is_verified() -> None:
    # our channel to 1 holds exactly the amount, but the route through 1 must carry
    # amount + fee on it: the mask (request amount) passes, the exact check must divert
    net, ch = diamond()
    g = net.graph()
    amount = 1000 * SAT
    ctx = with_liquidity(
        uninformed(g), g, {(ch["01"], 0): (amount, amount), (ch["02"], 0): (5000 * SAT, 5000 * SAT)}
    )
    r = req(0, 3, amount)
    routes = DijkstraStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert channels(routes) == [ch["02"], ch["23"]]
    # with no alternative: RouteNotFound, not a route that breaks liquidity
    ctx = with_liquidity(ctx, g, {(ch["02"], 0): (0, 0)})
    with pytest.raises(RouteNotFound, match="exact"):
        DijkstraStrategy().find_routes(r, ctx)


def test_too_expensive_versus_not_found() -> None:
    net, _ = diamond()
    g = net.graph()
    with pytest.raises(RouteTooExpensive) as ei:
        DijkstraStrategy().find_routes(req(0, 3, 1000 * SAT, maxfee_msat=1099), uninformed(g))
    assert ei.value.data["cheapest_fee_msat"] == 1100
    # exactly the cheapest fee is fine
    routes = DijkstraStrategy().find_routes(req(0, 3, 1000 * SAT, maxfee_msat=1100), uninformed(g))
    assert routes[0].fee_msat == 1100
    with pytest.raises(RouteNotFound):  # more than any channel holds: not "too expensive"
        DijkstraStrategy().find_routes(req(0, 3, 20_000 * SAT, maxfee_msat=0), uninformed(g))


def test_fee_budget_reweights_toward_fees() -> None:
    # by fee + CLTV risk path 2 wins (path 1's 1000 blocks on 50k sat weigh ~95,000 msat),
    # but its fee (3000) is over the budget: the search must weigh fees more -> path 1
    net, ch = diamond(fee_13=(1000, 0), fee_23=(3000, 0), cltv_13=1000, cltv_23=18, cap=100_000)
    g = net.graph()
    amount = 50_000 * SAT
    unconstrained = DijkstraStrategy().find_routes(
        req(0, 3, amount, maxfee_msat=10**9), uninformed(g)
    )
    assert channels(unconstrained) == [ch["02"], ch["23"]]
    r = req(0, 3, amount, maxfee_msat=2000)
    routes = DijkstraStrategy().find_routes(r, uninformed(g))
    check_contract(r, uninformed(g), routes)
    assert channels(routes) == [ch["01"], ch["13"]]


def test_maxdelay() -> None:
    net, ch = diamond(cltv_13=100, cltv_23=500, fee_23=(5000, 0))
    g = net.graph()
    routes = DijkstraStrategy().find_routes(req(0, 3, 1000 * SAT, maxdelay=200), uninformed(g))
    assert channels(routes) == [ch["01"], ch["13"]]
    r = req(0, 3, 1000 * SAT, maxdelay=200, exclude_channels=frozenset({sd(g, ch["13"], 1)}))
    with pytest.raises(RouteTooExpensive, match="maxdelay"):
        DijkstraStrategy().find_routes(r, uninformed(g))


def test_disconnected_destination() -> None:
    net, _ = diamond()
    net.channel(4, 5, 1000)
    g = net.graph()
    with pytest.raises(RouteNotFound, match="unreachable"):
        DijkstraStrategy().find_routes(req(0, 5, 1000), uninformed(g))
    with pytest.raises(RouteNotFound, match="excluded"):
        DijkstraStrategy().find_routes(
            req(0, 3, 1000, exclude_nodes=frozenset({N[3]})), uninformed(g)
        )


def test_zero_fee_graph_and_parallel_channels() -> None:
    net = Net()
    a = net.channel(0, 1, 1000)
    b1 = net.channel(1, 2, 1000, base=10)
    b2 = net.channel(1, 2, 1000)  # parallel, free
    c = net.channel(2, 3, 1000)
    g = net.graph()
    r = req(0, 3, 100 * SAT, maxfee_msat=0)
    routes = DijkstraStrategy().find_routes(r, uninformed(g))
    check_contract(r, uninformed(g), routes)
    assert channels(routes) == [a, b2, c]
    assert routes[0].fee_msat == 0
    # the free parallel channel is unusable: take the other one (fee 10)
    ctx = uninformed(g)
    ctx.usable[row(g, b2, 1)] = False
    routes = DijkstraStrategy().find_routes(req(0, 3, 100 * SAT, maxfee_msat=10), ctx)
    assert channels(routes) == [a, b1, c]
    assert route_edges(g, routes[0])[1] == row(g, b1, 1)
