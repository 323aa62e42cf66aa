"""``probabilistic`` and ``singlepath``: the most probable single path, fees as tie-break."""

from __future__ import annotations

import math

import pytest
from strategy_helpers import SAT, Net, check_contract, req, route_edges, uninformed, with_liquidity

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.routing import success_probability
from barq.strategies.probabilistic import ProbabilisticStrategy
from barq.strategies.singlepath import SinglePathStrategy


def two_paths(fee_1: int = 0, fee_2: int = 0) -> tuple[Net, dict[str, str]]:
    """0 -> 1 -> 3 over small channels, 0 -> 2 -> 3 over big ones (equal fees by default)."""
    net = Net()
    ch = {
        "01": net.channel(0, 1, 10_000),
        "02": net.channel(0, 2, 10_000),
        "13": net.channel(1, 3, 1_500, base=fee_1),
        "23": net.channel(2, 3, 8_000, base=fee_2),
    }
    return net, ch


def test_picks_most_probable_path_and_reports_probability() -> None:
    net, ch = two_paths()
    g = net.graph()
    ctx = uninformed(g)
    r = req(0, 3, 1000 * SAT)
    routes = ProbabilisticStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert [h.channel for h in routes[0].hops] == [ch["02"], ch["23"]]
    expected = 1.0
    for h, e in zip(routes[0].hops, route_edges(g, routes[0]), strict=True):
        expected *= success_probability(h.amount_msat, int(ctx.min_msat[e]), int(ctx.max_msat[e]))
    assert routes[0].probability == pytest.approx(expected)


def test_known_liquidity_beats_bigger_uncertain_channel() -> None:
    net, ch = two_paths()
    g = net.graph()
    # we know 1 -> 3 holds at least 1,200 sat: certain; 2 -> 3 is a coin toss
    ctx = with_liquidity(uninformed(g), g, {(ch["13"], 1): (1_200 * SAT, 1_500 * SAT)})
    routes = ProbabilisticStrategy().find_routes(req(0, 3, 1000 * SAT), ctx)
    assert [h.channel for h in routes[0].hops] == [ch["01"], ch["13"]]
    assert routes[0].probability == pytest.approx(success_probability(1000 * SAT, 0, 10_000 * SAT))


def test_small_fee_does_not_outweigh_probability_but_big_fee_does() -> None:
    amount = 1000 * SAT
    net, ch = two_paths(fee_2=2_000)  # 2 sat more for P 0.875 instead of 0.33
    routes = ProbabilisticStrategy().find_routes(req(0, 3, amount), uninformed(net.graph()))
    assert routes[0].hops[0].channel == ch["02"]
    net, ch = two_paths(fee_2=5_000_000)  # 5,000 sat more: not worth it
    routes = ProbabilisticStrategy().find_routes(
        req(0, 3, amount, maxfee_msat=10**7), uninformed(net.graph())
    )
    assert routes[0].hops[0].channel == ch["01"]


def test_fee_budget_makes_it_fall_back_to_cheaper_path() -> None:
    net, ch = two_paths(fee_2=2_000)
    g = net.graph()
    r = req(0, 3, 1000 * SAT, maxfee_msat=1_000)
    routes = ProbabilisticStrategy().find_routes(r, uninformed(g))
    check_contract(r, uninformed(g), routes)
    assert routes[0].hops[0].channel == ch["01"]
    net, _ = two_paths(fee_1=1_500, fee_2=2_000)
    with pytest.raises(RouteTooExpensive):
        ProbabilisticStrategy().find_routes(r, uninformed(net.graph()))


def test_penalty_scales_with_amount() -> None:
    s = ProbabilisticStrategy()
    assert s.params.penalty_msat(0) == s.params.penalty_base_msat
    assert s.params.penalty_msat(100_000_000) == pytest.approx(1_000 + 200_000)
    assert math.isclose(s.params.penalty_msat(2 * 10**8) - s.params.penalty_msat(10**8), 200_000)


def test_amount_above_every_max_is_not_found() -> None:
    net, _ = two_paths()
    with pytest.raises(RouteNotFound):
        ProbabilisticStrategy().find_routes(req(0, 3, 9_000 * SAT), uninformed(net.graph()))


def test_singlepath_is_probabilistic_without_splitting() -> None:
    net, _ = two_paths()
    g = net.graph()
    r = req(0, 3, 1000 * SAT, maxparts=8)
    a = SinglePathStrategy().find_routes(r, uninformed(g))
    b = ProbabilisticStrategy().find_routes(r, uninformed(g))
    assert a == b and len(a) == 1
    assert SinglePathStrategy.min_part_msat is None and not SinglePathStrategy.splits


def test_overflow_from_downstream_fees_retries_with_a_cheaper_downstream() -> None:
    # our only channel holds exactly the amount; the probable way on charges a fee that
    # would push our hop over it, the free (less probable) way fits exactly
    net = Net()
    a = net.channel(0, 1, 10_000)
    net.channel(1, 2, 50_000, base=1000)
    net.channel(2, 4, 50_000)
    free = net.channel(1, 3, 2_000)
    net.channel(3, 4, 2_000)
    g = net.graph()
    amount = 1_000 * SAT
    ctx = with_liquidity(uninformed(g), g, {(a, 0): (amount, amount)})
    r = req(0, 4, amount, maxfee_msat=5_000)
    routes = ProbabilisticStrategy().find_routes(r, ctx)
    check_contract(r, ctx, routes)
    assert routes[0].hops[1].channel == free and routes[0].fee_msat == 0
