"""``direct``: one hop over our own channel with the destination."""

from __future__ import annotations

import pytest
from strategy_helpers import SAT, N, Net, check_contract, req, row, sd, uninformed, with_liquidity

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.strategies.direct import DirectStrategy


def _net() -> tuple[Net, list[str]]:
    net = Net()
    chans = [
        net.channel(0, 1, 1000, base=1000, ppm=1000),
        net.channel(0, 1, 2000),
        net.channel(0, 2, 5000),
        net.channel(2, 1, 5000),
    ]
    return net, chans


def test_picks_channel_with_most_spendable_that_fits() -> None:
    net, (small, big, _, _) = _net()
    g = net.graph()
    ctx = with_liquidity(
        uninformed(g), g, {(small, 0): (900 * SAT, 900 * SAT), (big, 0): (300 * SAT, 300 * SAT)}
    )
    r = req(0, 1, 200 * SAT)
    routes = DirectStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert len(routes) == 1 and len(routes[0].hops) == 1
    assert routes[0].hops[0].channel == small
    assert routes[0].fee_msat == 0 and routes[0].delay == r.final_cltv
    assert routes[0].probability == 1.0
    # now 400 vs 300 sat spendable: 350 sat fits only the first, 300 sat both
    ctx = with_liquidity(ctx, g, {(small, 0): (400 * SAT, 400 * SAT)})
    routes = DirectStrategy().find_routes(req(0, 1, 350 * SAT), ctx)
    assert routes[0].hops[0].channel == small
    routes = DirectStrategy().find_routes(req(0, 1, 300 * SAT), ctx)
    assert routes[0].hops[0].channel == small  # largest min among those that fit


def test_not_enough_spendable() -> None:
    net, (small, big, _, _) = _net()
    g = net.graph()
    ctx = with_liquidity(
        uninformed(g), g, {(small, 0): (100 * SAT, 100 * SAT), (big, 0): (300 * SAT, 300 * SAT)}
    )
    with pytest.raises(RouteNotFound, match="no direct channel with enough spendable"):
        DirectStrategy().find_routes(req(0, 1, 301 * SAT), ctx)


def test_no_direct_channel() -> None:
    net, _ = _net()
    net.channel(1, 3, 1000)
    g = net.graph()
    with pytest.raises(RouteNotFound, match="no usable direct channel"):
        DirectStrategy().find_routes(req(0, 3, 1000), uninformed(g))


def test_exclusions_and_destination_excluded() -> None:
    net, (small, big, _, _) = _net()
    g = net.graph()
    ctx = uninformed(g)
    r = req(0, 1, 10 * SAT, exclude_channels=frozenset({sd(g, big, 0)}))
    routes = DirectStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert routes[0].hops[0].channel == small
    r = req(0, 1, 10 * SAT, exclude_channels=frozenset({sd(g, big, 0), sd(g, small, 0)}))
    with pytest.raises(RouteNotFound):
        DirectStrategy().find_routes(r, ctx)
    with pytest.raises(RouteNotFound, match="excluded"):
        DirectStrategy().find_routes(req(0, 1, 10 * SAT, exclude_nodes=frozenset({N[1]})), ctx)


def test_unusable_channel_is_skipped() -> None:
    net, (small, big, _, _) = _net()
    g = net.graph()
    ctx = uninformed(g)
    ctx.usable[row(g, big, 0)] = False
    routes = DirectStrategy().find_routes(req(0, 1, 10 * SAT), ctx)
    assert routes[0].hops[0].channel == small


def test_final_cltv_above_maxdelay() -> None:
    net, _ = _net()
    g = net.graph()
    with pytest.raises(RouteTooExpensive):
        DirectStrategy().find_routes(req(0, 1, 1000, final_cltv=50, maxdelay=40), uninformed(g))
