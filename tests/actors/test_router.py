"""The router: contexts (bounds - reservations, exact local balances), updates, hints, actor."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import msgspec
import numpy as np
import pytest
import trio
from actor_helpers import CONFIG, Diamond, diamond

from barq.actors._mailbox import ask
from barq.actors.estimator import LiquidityKnowledge, liquidity_estimator
from barq.actors.messages import (
    EstimatorMsg,
    FindRoutes,
    FindRoutesReply,
    GraphRefreshed,
    KnowledgeSnapshot,
    NoRoutes,
    OpenPayment,
    PartOutcome,
    PaymentOpened,
    RefreshGraph,
    ReleaseRoute,
    RouterMsg,
    RoutesFound,
)
from barq.actors.router import RouterBook, router
from barq.model import ChannelUpdate, FailCode, Hop, Route, RouteFailure, RouteHintHop, RouteInput
from barq.model.payment import EngineConfig, PartState
from barq.strategies import register_strategy
from barq.strategies.dijkstra import DijkstraStrategy
from barq.testing import ScriptedNode, local_channels

EMPTY = KnowledgeSnapshot(taken_at=0.0)
FAILED = PartOutcome(state=PartState.FAILED, sent=True)
SUCCEEDED = PartOutcome(state=PartState.SUCCEEDED, sent=True)


def book(d: Diamond, spendable: int = 400_000_000) -> RouterBook:
    return RouterBook(
        our_id=d.us,
        gossip=d.graph,
        channels=local_channels(d.graph, d.us, spendable_msat=spendable),
    )


def route_via(d: Diamond, mid: str, last_scid: str, first_scid: str, amount: int) -> Route:
    return Route(
        hops=(
            Hop(
                id=mid,
                channel=first_scid,
                direction=int(d.sd(first_scid, d.us)[-1]),
                amount_msat=amount + 1000,
                delay=58,
            ),
            Hop(
                id=d.dest,
                channel=last_scid,
                direction=int(d.sd(last_scid, mid)[-1]),
                amount_msat=amount,
                delay=18,
            ),
        )
    )


def row(b: RouterBook, sd: str) -> int:
    e = b.graph.edge_by_scid_dir(sd)
    assert e is not None
    return e


def test_context_uses_snapshot_bounds_clamped_and_exact_local_balances() -> None:
    d = diamond()
    b = book(d)
    snap = KnowledgeSnapshot(
        taken_at=0.0,
        channels=(d.sd("103x1x0", d.a), "999x1x1/0"),
        lo_msat=(10_000, 1),
        hi_msat=(10**15, 5),
    )
    ctx = b.context(b.graph, snap)
    e = row(b, d.sd("103x1x0", d.a))
    assert ctx.min_msat[e] == 10_000 and ctx.max_msat[e] == d.graph.capacity_msat[0]
    first = row(b, d.sd("101x1x0", d.us))
    assert ctx.min_msat[first] == ctx.max_msat[first] == 400_000_000
    other = row(b, d.sd("104x1x0", d.b))
    assert ctx.min_msat[other] == 0 and ctx.max_msat[other] == d.graph.capacity_msat[other]
    assert bool(np.all(ctx.min_msat <= ctx.max_msat))


def test_reservations_are_subtracted_until_released() -> None:
    d = diamond()
    b = book(d)
    r = route_via(d, d.a, "103x1x0", "101x1x0", 50_000_000)
    planned = b.reserve("h1", b.graph, r)
    assert planned.capacities_msat == (10**9, 10**9)
    ctx = b.context(b.graph, EMPTY)
    mid = row(b, d.sd("103x1x0", d.a))
    first = row(b, d.sd("101x1x0", d.us))
    assert ctx.max_msat[mid] == 10**9 - 50_000_000 and ctx.inflight_msat[mid] == 50_000_000
    assert ctx.max_msat[first] == 400_000_000 - 50_001_000  # our balance, minus the part
    b.release(planned.reservation, FAILED)
    ctx = b.context(b.graph, EMPTY)
    assert ctx.max_msat[mid] == 10**9 and ctx.max_msat[first] == 400_000_000
    assert b.reservations == 0 and b.reserved == {}
    b.release(planned.reservation, FAILED)  # twice: ignored
    assert b.local_available(d.sd("101x1x0", d.us)) == 400_000_000


def test_success_keeps_local_balance_spent_until_refresh() -> None:
    d = diamond()
    b = book(d)
    p = b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    b.release(p.reservation, SUCCEEDED)
    assert b.local_available(d.sd("101x1x0", d.us)) == 400_000_000 - 1_001_000
    # a refresh (listpeerchannels already shows the HTLC gone) resets the delta
    b.set_channels(local_channels(d.graph, d.us, spendable_msat=398_998_999))
    assert b.local_available(d.sd("101x1x0", d.us)) == 398_998_999


def test_part_in_flight_across_a_refresh_comes_back_when_it_fails() -> None:
    d = diamond()
    b = book(d)
    p = b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    b.set_channels(local_channels(d.graph, d.us, spendable_msat=400_000_000 - 1_001_000))
    assert b.local_available(d.sd("101x1x0", d.us)) == 400_000_000 - 1_001_000
    b.release(p.reservation, FAILED)
    assert b.local_available(d.sd("101x1x0", d.us)) == 400_000_000


def test_close_drops_leftover_reservations() -> None:
    d = diamond()
    b = book(d)
    b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    b.reserve("other", b.graph, route_via(d, d.b, "104x1x0", "102x1x0", 1_000_000))
    assert b.close("h") == 1
    assert set(b.reserved) == {d.sd("104x1x0", d.b)}


def test_disabled_channels_and_nodes_but_never_the_destination() -> None:
    d = diamond()
    b = book(d)
    snap = KnowledgeSnapshot(
        taken_at=0.0,
        disabled_channels=frozenset({d.sd("104x1x0", d.b)}),
        disabled_nodes=frozenset({d.a, d.dest}),
    )
    ctx = b.context(b.graph, snap, d.dest)
    assert not ctx.usable[row(b, d.sd("104x1x0", d.b))]
    assert not ctx.usable[row(b, d.sd("103x1x0", d.a))]  # node a is off
    assert not ctx.usable[row(b, d.sd("101x1x0", d.us))]  # ... both ways
    assert ctx.usable[row(b, d.sd("106x1x0", d.c))]  # into the destination: still fine


def test_channel_update_changes_policy_from_then_on() -> None:
    d = diamond()
    b = book(d)
    sd = d.sd("103x1x0", d.a)
    scid, direction = sd.split("/")
    outcome = PartOutcome(
        state=PartState.FAILED,
        sent=True,
        failure=RouteFailure(
            failcode=int(FailCode.FEE_INSUFFICIENT),
            erring_index=1,
            channel_update=ChannelUpdate(
                scid=scid,
                direction=int(direction),
                fee_base_msat=7777,
                fee_ppm=55,
                cltv_delta=99,
                htlc_min_msat=3,
                timestamp=10,
            ),
        ),
    )
    p = b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    assert b.release(p.reservation, outcome) is False  # not local: no refresh needed
    h = b.graph.half_channel(row(b, sd))
    assert (h.fee_base_msat, h.fee_ppm, h.cltv_delta, h.htlc_min_msat) == (7777, 55, 99, 3)
    older = msgspec.structs.replace(
        outcome.failure.channel_update,  # type: ignore[union-attr]
        fee_base_msat=1,
        timestamp=5,
    )
    b.apply_update(older)
    assert b.graph.half_channel(row(b, sd)).fee_base_msat == 7777


def test_same_gossip_again_keeps_the_graph_and_applied_updates() -> None:
    """Reloading an unchanged gossip store gives the same Graph object: nothing is rebuilt
    and the channel_update learnt from a failure stays (gossip does not have it yet)."""
    d = diamond()
    b = book(d)
    sd = d.sd("103x1x0", d.a)
    scid, direction = sd.split("/")
    b.apply_update(
        ChannelUpdate(
            scid=scid,
            direction=int(direction),
            fee_base_msat=7777,
            fee_ppm=55,
            cltv_delta=99,
            htlc_min_msat=3,
            timestamp=10,
        )
    )
    g = b.graph
    b.set_gossip(d.graph)  # the very object it started with
    assert b.graph is g and b.graph.half_channel(row(b, sd)).fee_base_msat == 7777
    from barq.graph import Graph

    fresh = Graph.from_half_channels(list(d.graph.half_channels()))  # a new load, same rows
    b.set_gossip(fresh)
    assert b.graph is not g and b.graph.half_channel(row(b, sd)).fee_base_msat == 7777
    # gossip changed that half-channel's row: gossip's policy is the newer one now
    e = fresh.edge(scid, int(direction))
    assert e is not None
    newer = msgspec.structs.replace(fresh.half_channel(e), fee_base_msat=4242)
    b.set_gossip(fresh.with_half_channels([newer]))
    assert b.graph.half_channel(row(b, sd)).fee_base_msat == 4242


def test_failure_at_our_first_hop_asks_for_a_refresh() -> None:
    d = diamond()
    b = book(d)
    p = b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    out = PartOutcome(
        state=PartState.FAILED,
        sent=False,
        failure=RouteFailure(failcode=int(FailCode.TEMPORARY_CHANNEL_FAILURE), erring_index=0),
    )
    assert b.release(p.reservation, out) is True


def test_route_hints_overlay_is_cached_per_invoice() -> None:
    d = diamond(private_last=True)
    gossip = d.graph  # 106x1x0 is private here but Graph keeps it; build gossip without it
    keep = [h for h in gossip.half_channels() if h.scid != "106x1x0"]
    from barq.graph import Graph

    pub = Graph.from_half_channels(keep)
    b = RouterBook(our_id=d.us, gossip=pub, channels=local_channels(d.graph, d.us))
    hints = (
        (RouteHintHop(node_id=d.c, scid="106x1x0", fee_base_msat=1, fee_ppm=1, cltv_delta=9),),
    )
    g1 = b.payment_graph(d.dest, hints)
    assert g1.edge_by_scid_dir(d.sd("106x1x0", d.c)) is not None
    assert b.payment_graph(d.dest, hints) is g1
    assert b.payment_graph(d.dest, ()) is b.graph


# -- the actor ----------------------------------------------------------------------------


class Crash:
    name = "crash"
    description = "always raises"
    splits = False
    min_part_msat = None
    halve_on_failure = False

    def find_routes(self, request: RouteInput, ctx: Any) -> list[Route]:
        raise ZeroDivisionError("boom")


register_strategy("crash-test", Crash)


@pytest.mark.trio
async def test_router_actor_finds_reserves_and_releases(autojump_clock: Any) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us)
    with trio.fail_after(30):
        async with _actors(node) as (rt, _est):
            opened: PaymentOpened = await ask(
                rt,
                lambda r: OpenPayment(
                    payment_hash="h", destination=d.dest, route_hints=(), reply=r
                ),
            )
            assert opened.destination_known and opened.our_id == d.us
            assert node.calls["list_peer_channels"] == 2  # start + open
            req = RouteInput(
                source=d.us, destination=d.dest, amount_msat=5_000_000, maxfee_msat=10_000_000
            )
            ans: FindRoutesReply = await ask(
                rt,
                lambda r: FindRoutes(payment_hash="h", strategy="dijkstra", request=req, reply=r),
            )
            assert isinstance(ans, RoutesFound) and len(ans.routes) == 1
            planned = ans.routes[0]
            assert [h.channel for h in planned.route.hops] == ["101x1x0", "103x1x0"]
            # a second request sees the first reservation: capacity is 1e9, ask for 996e6
            big = msgspec.structs.replace(req, amount_msat=996_000_000)
            ans2: FindRoutesReply = await ask(
                rt,
                lambda r: FindRoutes(payment_hash="h", strategy="dijkstra", request=big, reply=r),
            )
            assert isinstance(ans2, RoutesFound)
            assert [h.channel for h in ans2.routes[0].route.hops] != ["101x1x0", "103x1x0"]
            for p in (planned, ans2.routes[0]):
                await rt.send(ReleaseRoute(reservation=p.reservation, outcome=FAILED))
            ans3: FindRoutesReply = await ask(
                rt,
                lambda r: FindRoutes(payment_hash="h", strategy="dijkstra", request=big, reply=r),
            )
            assert isinstance(ans3, RoutesFound)
            assert [h.channel for h in ans3.routes[0].route.hops] == ["101x1x0", "103x1x0"]


@pytest.mark.trio
async def test_router_actor_reports_strategy_problems(autojump_clock: Any) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us)
    req = RouteInput(source=d.us, destination=d.dest, amount_msat=5_000_000)
    with trio.fail_after(30):
        async with _actors(node) as (rt, _est):
            for name, code, words in (
                ("nope", -32602, "unknown strategy"),
                ("crash-test", 209, "crashed"),
                ("direct", 205, "no usable direct channel"),
            ):
                ans: FindRoutesReply = await ask(
                    rt,
                    lambda r, n=name: FindRoutes(  # type: ignore[misc]
                        payment_hash="h", strategy=n, request=req, reply=r
                    ),
                )
                assert isinstance(ans, NoRoutes)
                assert ans.code == code and words in ans.message
            g: GraphRefreshed = await ask(rt, lambda r: RefreshGraph(reply=r))
            assert g.error is None and g.half_channels == d.graph.num_edges


@pytest.mark.trio
async def test_reservation_released_when_the_requester_went_away(autojump_clock: Any) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us)
    req = RouteInput(source=d.us, destination=d.dest, amount_msat=999_000_000, maxfee_msat=10**7)
    with trio.fail_after(30):
        async with _actors(node) as (rt, _est):
            tx, rx = anyio.create_memory_object_stream[FindRoutesReply](0)
            rx.close()  # the requester is gone before the answer
            await rt.send(FindRoutes(payment_hash="h", strategy="dijkstra", request=req, reply=tx))
            ans: FindRoutesReply = await ask(
                rt,
                lambda r: FindRoutes(payment_hash="h", strategy="dijkstra", request=req, reply=r),
            )
            assert isinstance(ans, RoutesFound)  # the same sats are free again
            assert [h.channel for h in ans.routes[0].route.hops] == ["101x1x0", "103x1x0"]


class _actors:
    """Router + estimator for a test, torn down on exit."""

    def __init__(self, node: ScriptedNode, config: EngineConfig = CONFIG) -> None:
        self.node = node
        self.config = config

    async def __aenter__(self) -> tuple[Any, Any]:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        est_tx, est_rx = anyio.create_memory_object_stream[EstimatorMsg](8)
        rt_tx, rt_rx = anyio.create_memory_object_stream[RouterMsg](8)
        k = LiquidityKnowledge(half_life_s=3600, clock=lambda: 1.7e9)
        await self._tg.start(_est, est_rx, k)
        await self._tg.start(_router, rt_rx, est_tx.clone(), self.node, self.config)
        self._streams = (rt_tx, est_tx)
        return rt_tx, est_tx

    async def __aexit__(self, *exc: object) -> None:
        for s in self._streams:
            s.close()
        await self._tg.__aexit__(*exc)  # type: ignore[arg-type]


async def _est(rx: Any, k: LiquidityKnowledge, *, task_status: Any) -> None:
    await liquidity_estimator(inbox=rx, knowledge=k, task_status=task_status)


async def _router(
    rx: Any, est: Any, node: ScriptedNode, config: EngineConfig, *, task_status: Any
) -> None:
    await router(inbox=rx, estimator=est, node=node, config=config, task_status=task_status)


# -- solves off the loop, with a deadline ---------------------------------------------------


def test_conflicts_name_what_a_later_reservation_took() -> None:
    d = diamond()
    b = book(d, spendable=10**9)
    ctx = b.context(b.graph, EMPTY, d.dest)
    mine = route_via(d, d.a, "103x1x0", "101x1x0", 600_000_000)
    assert b.conflicts(ctx, EMPTY, d.dest, [mine]) == []
    b.reserve("other", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 600_000_000))
    assert set(b.conflicts(ctx, EMPTY, d.dest, [mine])) == {
        d.sd("101x1x0", d.us),
        d.sd("103x1x0", d.a),
    }
    # a route elsewhere, or small enough for what is left, does not conflict
    other = route_via(d, d.b, "104x1x0", "102x1x0", 600_000_000)
    small = route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000)
    assert b.conflicts(ctx, EMPTY, d.dest, [other, small]) == []


class _Gated(DijkstraStrategy):
    """``dijkstra`` that waits (in its worker thread) until its gate opens."""

    name = "gated"

    def __init__(self, gate: threading.Event, started: threading.Event) -> None:
        super().__init__()
        self.gate = gate
        self.started = started

    def find_routes(self, request: RouteInput, ctx: Any) -> list[Route]:
        self.started.set()
        self.gate.wait(20)
        return super().find_routes(request, ctx)


def _gated(name: str) -> tuple[threading.Event, threading.Event]:
    gate, started = threading.Event(), threading.Event()
    register_strategy(name, lambda: _Gated(gate, started))
    return gate, started


THREADED = msgspec.structs.replace(CONFIG, strategies_in_thread=True, route_timeout_s=20.0)


async def _find(rt: Any, payment: str, strategy: str, amount: int) -> FindRoutesReply:
    d_req = RouteInput(
        source=DIAMOND.us, destination=DIAMOND.dest, amount_msat=amount, maxfee_msat=10**7
    )
    answer: FindRoutesReply = await ask(
        rt,
        lambda r: FindRoutes(payment_hash=payment, strategy=strategy, request=d_req, reply=r),
    )
    return answer


DIAMOND = diamond()


async def _while_another_solves(
    name: str, slow_amount: int, fast_amount: int
) -> tuple[FindRoutesReply, FindRoutesReply, bool]:
    """Payment 1 asks strategy ``name`` (blocked in its thread); payment 2 asks ``dijkstra``.

    Returns payment 2's answer, payment 1's (once its gate opened after payment 2 was
    answered) and whether payment 2 was answered while payment 1's solve still ran.
    """
    gate, started = _gated(name)
    node = ScriptedNode(graph=DIAMOND.graph, our_id=DIAMOND.us)
    first: list[FindRoutesReply] = []
    with trio.fail_after(20):
        async with _actors(node, THREADED) as (rt, _est), trio.open_nursery() as n:

            async def slow() -> None:
                first.append(await _find(rt, "p1", name, slow_amount))

            n.start_soon(slow)
            await trio.to_thread.run_sync(started.wait, 10)
            fast = await _find(rt, "p2", "dijkstra", fast_amount)
            meanwhile = not first and not gate.is_set()
            gate.set()
    return fast, first[0], meanwhile


@pytest.mark.trio
async def test_a_long_solve_does_not_hold_up_another_payment() -> None:
    """Payment 1's strategy blocks in its thread; payment 2's request is answered meanwhile,
    and payment 1 still gets its routes once its solve ends."""
    fast, slow, meanwhile = await _while_another_solves("gated-slow", 5_000_000, 5_000_000)
    assert meanwhile and isinstance(fast, RoutesFound) and isinstance(slow, RoutesFound)


@pytest.mark.trio
async def test_concurrent_solves_never_reserve_the_same_liquidity() -> None:
    """Both payments want 600k sat of 1M sat channels. Payment 1 plans over the cheapest
    path, then payment 2 reserves that path while payment 1's solve still runs: payment 1's
    routes conflict when it completes, so it plans again and takes another path."""
    fast, slow, meanwhile = await _while_another_solves("gated-conflict", 600_000_000, 600_000_000)
    assert meanwhile and isinstance(fast, RoutesFound) and isinstance(slow, RoutesFound)
    fast_path = [h.channel for h in fast.routes[0].route.hops]
    slow_path = [h.channel for h in slow.routes[0].route.hops]
    assert fast_path == ["101x1x0", "103x1x0"]
    assert slow_path != fast_path and not set(slow_path) & set(fast_path)


@pytest.mark.trio
async def test_a_solve_past_its_deadline_is_answered_no_route_in_time() -> None:
    gate, started = _gated("gated-late")
    node = ScriptedNode(graph=DIAMOND.graph, our_id=DIAMOND.us)
    cfg = msgspec.structs.replace(THREADED, route_timeout_s=0.3)
    try:
        with trio.fail_after(20):
            async with _actors(node, cfg) as (rt, _est):
                ans = await _find(rt, "p1", "gated-late", 5_000_000)
                assert isinstance(ans, NoRoutes) and ans.code == 205
                assert "within 0.3 s" in ans.message and ans.data["timeout_s"] == 0.3
                assert started.is_set() and not gate.is_set()  # it really was still running
                # nothing was reserved for it: the same sats are free for the next request
                again = await _find(rt, "p2", "dijkstra", 999_000_000)
                assert isinstance(again, RoutesFound)
                assert [h.channel for h in again.routes[0].route.hops] == ["101x1x0", "103x1x0"]
    finally:
        gate.set()


def test_second_part_on_our_channel_counts_the_commitment_fee_of_its_htlc() -> None:
    # listpeerchannels' spendable leaves room for one more HTLC's commitment fee (channels we
    # opened); every part reserved also holds its own HTLC's fee, as askrene reserves it
    d = diamond()
    fee = 1_247_000
    chans = [
        msgspec.structs.replace(c, htlc_fee_msat=fee)
        for c in local_channels(d.graph, d.us, spendable_msat=400_000_000)
    ]
    b = RouterBook(our_id=d.us, gossip=d.graph, channels=chans)
    ours = d.sd("101x1x0", d.us)
    p = b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    assert b.local_available(ours) == 400_000_000 - 1_001_000 - fee
    first = b.graph.edge_by_scid_dir(ours)
    assert b.context(b.graph, EMPTY).max_msat[first] == 400_000_000 - 1_001_000 - fee
    b.release(p.reservation, FAILED)
    assert b.local_available(ours) == 400_000_000
    p = b.reserve("h", b.graph, route_via(d, d.a, "103x1x0", "101x1x0", 1_000_000))
    b.release(p.reservation, SUCCEEDED)  # the amount left, the HTLC (and its fee) is gone
    assert b.local_available(ours) == 400_000_000 - 1_001_000
