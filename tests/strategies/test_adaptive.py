"""``adaptive`` (the default): cheapest weight first, more probability weight after failures."""

from __future__ import annotations

import dataclasses

import msgspec
import numpy as np
import pytest
from strategy_helpers import SAT, N, Net, check_contract, req, route_edges, row, uninformed

from barq.actors._router_book import RouterBook
from barq.actors.messages import KnowledgeSnapshot
from barq.errors import RouteNotFound
from barq.model.payment import EngineConfig
from barq.plugin.options import OPTIONS, PluginConfig
from barq.routing import RoutingContext
from barq.strategies import get_strategy, strategy_parameters
from barq.strategies.adaptive import (
    ADAPTIVE_PARAMS,
    AdaptiveParams,
    AdaptiveStrategy,
    learnt_failures,
    learnt_mask,
    learnt_probability,
)
from barq.strategies.mincostflow import MinCostFlowParams, MinCostFlowStrategy
from barq.strategies.registry import DEFAULT_STRATEGY
from barq.testing import local_channels


def test_adaptive_is_the_default_everywhere_and_the_others_stay_selectable() -> None:
    assert DEFAULT_STRATEGY == "adaptive"
    assert EngineConfig().default_strategy == DEFAULT_STRATEGY
    assert PluginConfig(lightning_dir="", rpc_file="", network="", db_path="").strategy == (
        DEFAULT_STRATEGY
    )
    assert dict((o[0], o[1]) for o in OPTIONS)["barq-strategy"] == DEFAULT_STRATEGY
    assert isinstance(get_strategy(DEFAULT_STRATEGY), AdaptiveStrategy)
    for name in ("mincostflow", "cheapflow"):
        assert get_strategy(name).name == name


def test_parameters_are_one_frozen_struct_listed_by_name() -> None:
    s = get_strategy("adaptive")
    assert s.params == ADAPTIVE_PARAMS
    listed = strategy_parameters(s)
    assert listed["penalty_ppm"] == 20.0 and listed["growth"] == 10.0
    assert listed["steps"] == 3 and listed["failures_per_step"] == 20
    with pytest.raises(AttributeError):
        ADAPTIVE_PARAMS.steps = 1  # type: ignore[misc]


def _two_paths() -> tuple[Net, str, str]:
    """0 -> 1 -> 9 cheap and small; 0 -> 2 -> 9 dear and big; an unrelated 3 - 4."""
    net = Net()
    net.channel(0, 1, 1_000_000)
    cheap = net.channel(1, 9, 120_000, ppm=0)
    net.channel(0, 2, 1_000_000)
    net.channel(2, 9, 2_000_000, ppm=300)
    unrelated = net.channel(3, 4, 1_000_000)
    return net, cheap, unrelated


def _learnt(ctx: RoutingContext, rows: list[int]) -> RoutingContext:
    hi = ctx.max_msat.copy()
    for e in rows:
        hi[e] //= 2  # a failure told the estimator it holds less than its capacity
    return RoutingContext(
        graph=ctx.graph,
        min_msat=ctx.min_msat,
        max_msat=hi,
        usable=ctx.usable,
        inflight_msat=ctx.inflight_msat,
    )


def _rung(params: AdaptiveParams, k: int) -> MinCostFlowStrategy:
    fields = MinCostFlowParams.__struct_fields__
    flow = {k: v for k, v in msgspec.structs.asdict(params).items() if k in fields}
    flow["penalty_ppm"] = params.penalty_ppm * params.growth**k
    return MinCostFlowStrategy(MinCostFlowParams(**flow))


def test_weight_grows_only_after_failures() -> None:
    net, cheap, unrelated = _two_paths()
    g = net.graph()
    params = AdaptiveParams(penalty_ppm=20.0, riskfactor=1.0, failures_per_step=1)
    s = AdaptiveStrategy(params)
    r = req(0, 9, 100_000 * SAT, maxparts=4, maxfee_msat=100_000 * SAT)
    cold = uninformed(g)
    assert learnt_failures(cold) == 0
    first = s.find_routes(r, cold)
    check_contract(r, cold, first)
    assert first == _rung(params, 0).find_routes(r, cold)
    assert all(row(g, cheap, 1) in route_edges(g, x) for x in first)  # fees rule: cheap path

    warm = _learnt(cold, [row(g, unrelated, 3)])
    assert learnt_failures(warm) == 1
    later = s.find_routes(r, warm)
    check_contract(r, warm, later)
    assert later == _rung(params, 1).find_routes(r, warm)
    assert sum(x.fee_msat for x in later) > sum(x.fee_msat for x in first)


def test_learnt_failures_ignores_own_channels_and_in_flight_parts() -> None:
    net, _, unrelated = _two_paths()
    ctx = uninformed(net.graph())
    e = row(ctx.graph, unrelated, 3)
    inflight = ctx.inflight_msat.copy()
    inflight[e] = 1000
    hi = ctx.max_msat.copy()
    hi[e] -= 1000  # in flight is subtracted from max: not a failure
    busy = RoutingContext(
        graph=ctx.graph,
        min_msat=ctx.min_msat,
        max_msat=hi,
        usable=ctx.usable,
        inflight_msat=inflight,
    )
    assert learnt_failures(busy) == 0
    lo = ctx.min_msat.copy()
    hi = ctx.max_msat.copy()
    lo[e] = hi[e] = 5000  # known exactly (our own channel)
    own = RoutingContext(
        graph=ctx.graph,
        min_msat=lo,
        max_msat=hi,
        usable=ctx.usable,
        inflight_msat=ctx.inflight_msat,
    )
    assert learnt_failures(own) == 0


def test_htlc_slot_caps_of_the_router_are_no_learnt_failures() -> None:
    """The router caps ``max_msat`` at 30 x ``htlc_max`` (free HTLC slots) on every
    half-channel where that binds: no failure was seen, so the ladder stays at its
    cheapest weight. (Counted on ``max_msat`` before, the 1,667 such half-channels of
    the mainnet snapshot put every plan of ``adaptive`` at 2,000 ppm from the start.)"""
    net = Net()
    net.channel(0, 1, 1_000_000)
    net.channel(1, 9, 120_000, ppm=0)
    net.channel(0, 2, 1_000_000)
    net.channel(2, 9, 2_000_000, ppm=300)
    for k in range(3):  # small htlc_max: 30 x htlc_max < capacity
        net.channel(3 + k, 4 + k, 1_000_000, htlc_max=1000 * SAT)
    g = net.graph()
    book = RouterBook(our_id=N[0], gossip=g, channels=local_channels(g, N[0]))
    cold = book.context(book.graph, KnowledgeSnapshot(taken_at=1.0), N[9])
    capped = cold.max_msat < book.graph.capacity_msat
    assert int(capped.sum()) >= 6  # the router did cap them
    assert learnt_failures(cold) == 0
    params = AdaptiveParams(penalty_ppm=20.0, riskfactor=1.0, failures_per_step=1)
    r = req(0, 9, 100_000 * SAT, maxparts=4, maxfee_msat=100_000 * SAT)
    assert AdaptiveStrategy(params).find_routes(r, cold) == _rung(params, 0).find_routes(r, cold)
    # a bound the estimator learnt still counts (half of one capped channel's capacity)
    e = int(np.flatnonzero(capped)[0])
    learnt = KnowledgeSnapshot(
        taken_at=1.0, channels=(book.graph.scid_dir(e),), lo_msat=(0,), hi_msat=(500_000 * SAT,)
    )
    warm = book.context(book.graph, learnt, N[9])
    assert learnt_failures(warm) == 1


def test_the_ladder_climbs_on_this_payments_lessons_only() -> None:
    """A node's estimator keeps bounds from earlier payments (hours, decaying): counted as
    failures, a busy node would plan every payment at the top rung. The router gives the
    strategy only the bounds observed since the payment opened (``lessons_since``)."""
    net, _, _ = _two_paths()
    g = net.graph()
    book = RouterBook(our_id=N[0], gossip=g, channels=local_channels(g, N[0]))
    bg = book.graph
    ix = bg.node_index

    def edge(a: int, b: int) -> int:
        return next(
            e for e in range(bg.num_edges) if (bg.src[e], bg.dst[e]) == (ix[N[a]], ix[N[b]])
        )

    cheap, other = edge(1, 9), edge(3, 4)
    half = [int(bg.capacity_msat[e]) // 2 for e in (cheap, other)]
    snap = KnowledgeSnapshot(
        taken_at=10.0,
        channels=(bg.scid_dir(cheap), bg.scid_dir(other)),
        lo_msat=(0, 0),
        hi_msat=tuple(half),
        updated_at=(1.0, 6.0),  # the cheap channel's lesson is older than the payment (5.0)
    )
    every = book.context(bg, snap, N[9])
    own = book.context(bg, snap, N[9], lessons_since=5.0)
    assert learnt_failures(every) == 2
    assert learnt_failures(own) == 1
    assert own.learnt_max_msat is not None and int(own.learnt_max_msat[other]) == half[1]
    assert np.array_equal(own.max_msat, every.max_msat)  # both bounds still price the plan
    params = AdaptiveParams(penalty_ppm=20.0, riskfactor=1.0, failures_per_step=2)
    r = req(0, 9, 50_000 * SAT, maxparts=4, maxfee_msat=10**9)
    cheapest = _rung(params, 0).find_routes(r, own)
    assert AdaptiveStrategy(params).find_routes(r, own) == cheapest
    assert AdaptiveStrategy(params).find_routes(r, every) != _rung(params, 0).find_routes(r, every)


def test_short_network_ends_the_ladder_at_once() -> None:
    net, _, _ = _two_paths()
    ctx = uninformed(net.graph())
    r = req(0, 9, 5_000_000 * SAT, maxparts=4, maxfee_msat=10**9)
    with pytest.raises(RouteNotFound):
        AdaptiveStrategy().find_routes(r, ctx)


def test_a_dear_plan_is_solved_again_on_the_wider_neighbourhood() -> None:
    """The flow is pruned to the hop neighbourhood of the shortest path: a dear 2-hop
    path hides a free 4-hop one (the mainnet bench's 10^5 sat payment that paid
    750 sat over a 10,000 ppm last hop instead of 2.2 sat one hop longer)."""
    net = Net()
    net.channel(0, 1, 1_000_000)
    dear = net.channel(1, 9, 1_000_000, ppm=10_000)
    net.channel(0, 2, 1_000_000)
    net.channel(2, 3, 1_000_000, base=1000, ppm=1)
    net.channel(3, 4, 1_000_000, base=1000, ppm=1)
    net.channel(4, 9, 1_000_000, base=1000, ppm=1)
    g = net.graph()
    ctx = uninformed(g)
    narrow = {"slacks": (1,), "min_pruned_edges": 0}  # the neighbourhood of 2 + 1 hops first
    r = req(0, 9, 100_000 * SAT, maxparts=4, maxfee_msat=10_000 * SAT)
    pruned = MinCostFlowStrategy(MinCostFlowParams(penalty_ppm=20.0, riskfactor=1.0, **narrow))
    assert all(row(g, dear, 1) in route_edges(g, x) for x in pruned.find_routes(r, ctx))
    params = AdaptiveParams(penalty_ppm=20.0, riskfactor=1.0, wide_slacks=(3,), **narrow)
    got = AdaptiveStrategy(params).find_routes(r, ctx)
    check_contract(r, ctx, got)
    assert not any(row(g, dear, 1) in route_edges(g, x) for x in got)
    assert sum(x.fee_msat for x in got) == 3 * (1000 + 100)
    # under widen_over_ppm the narrow plan is kept (no second solve)
    keep = msgspec.structs.replace(params, widen_over_ppm=20_000.0)
    assert all(
        row(g, dear, 1) in route_edges(g, x) for x in AdaptiveStrategy(keep).find_routes(r, ctx)
    )


def test_a_plan_leaning_on_a_failed_channel_climbs_the_ladder() -> None:
    """The 5 % shave loop of the mainnet bench: a part of A failed on a cheap channel
    (its bound is now A - 1); at 20 ppm the remainder's plan sent 95 % of A over it again
    (P = 5 %), failed, and again. Now such a plan is solved one rung up until the
    failed channels are likely enough (``min_learnt_probability``)."""
    net = Net()
    net.channel(0, 1, 10_000_000)
    cheap = net.channel(1, 9, 10_000_000, ppm=2)
    net.channel(0, 2, 10_000_000)
    net.channel(2, 9, 10_000_000, ppm=2000)
    g = net.graph()
    cold = uninformed(g)
    e = row(g, cheap, 1)
    failed = 5_000_000 * SAT
    hi = cold.max_msat.copy()
    hi[e] = failed - 1  # the estimator's lesson of the failed part
    warm = dataclasses.replace(cold, max_msat=hi, learnt_max_msat=hi)
    r = req(0, 9, failed * 95 // 100, maxparts=4, maxfee_msat=10**9)
    params = AdaptiveParams(penalty_ppm=20.0, riskfactor=1.0)
    assert learnt_failures(warm) == 1 < params.failures_per_step  # the count alone: rung 0
    cheapest = _rung(params, 0).find_routes(r, warm)
    assert learnt_probability(warm, learnt_mask(warm), cheapest) < 0.1  # 95 % of A over it
    got = AdaptiveStrategy(params).find_routes(r, warm)
    check_contract(r, warm, got)
    assert learnt_probability(warm, learnt_mask(warm), got) >= params.min_learnt_probability
    on_cheap = sum(h.amount_msat for x in got for h in x.hops if h.channel == cheap)
    assert on_cheap <= failed // 2
    # with the check off (0), the cheapest plan is sent as before
    off = msgspec.structs.replace(params, min_learnt_probability=0.0)
    assert AdaptiveStrategy(off).find_routes(r, warm) == cheapest
