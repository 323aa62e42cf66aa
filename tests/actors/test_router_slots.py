"""HTLC slots: never more parts toward a payee than its channels take at once (issue 12 item 7)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from test_router import _actors

from barq.actors._htlc_slots import CROWD, CROWD_SHARE, DEFAULT_HTLC_SLOTS, MAX_HTLC_SLOTS
from barq.actors._mailbox import ask
from barq.actors._router_book import RouterBook
from barq.actors.messages import (
    FindRoutes,
    FindRoutesReply,
    KnowledgeSnapshot,
    NoRoutes,
    OpenPayment,
    PartOutcome,
    RoutesFound,
)
from barq.graph import Graph
from barq.model import (
    FailCode,
    HalfChannel,
    Hop,
    NodeId,
    Route,
    RouteFailure,
    RouteInput,
    Scid,
    direction_of,
    scid_dir,
)
from barq.model.payment import PartState
from barq.testing import ScriptedNode, local_channels

US, A, B, P = (NodeId(f"02{i:02x}" + "ab" * 31) for i in range(4))
SAT = 1000


def _pair(scid: str, x: NodeId, y: NodeId, *, htlc_max_sat: int) -> list[HalfChannel]:
    def half(src: NodeId, dst: NodeId) -> HalfChannel:
        return HalfChannel(
            scid=Scid(scid),
            direction=direction_of(src, dst),
            source=src,
            destination=dst,
            capacity_msat=10_000_000 * SAT,
            fee_base_msat=0,
            fee_ppm=1,
            cltv_delta=6,
            htlc_min_msat=1,
            htlc_max_msat=htlc_max_sat * SAT,
        )

    return [half(x, y), half(y, x)]


def _net(payee_channels: int) -> Graph:
    """Us -> A, us -> B (big), A -> P and B -> P ... with htlc_max 10,000 sat into the payee."""
    halves = _pair("1x1x0", US, A, htlc_max_sat=10**7) + _pair("2x1x0", US, B, htlc_max_sat=10**7)
    mids = [A, B]
    for k in range(payee_channels):
        halves += _pair(f"{10 + k}x1x0", mids[k % 2], P, htlc_max_sat=10_000)
    return Graph.from_half_channels(halves)


def _behind_x() -> Graph:
    """Us -> A -> X, us -> B -> X (big), X -> P: the payee's one channel takes at most
    10,000 sat per HTLC."""
    big = 10**7
    links = [
        (US, A, "1x1x0", big),
        (US, B, "2x1x0", big),
        (A, X, "3x1x0", big),
        (B, X, "4x1x0", big),
        (X, P, "5x1x0", 10_000),
    ]
    return Graph.from_half_channels(
        [_half(x, y, scid, htlc_max_sat=hmax, cap_sat=big) for x, y, scid, hmax in links]
    )


def _last_hop_route(g: Graph, amount: int) -> Route:
    d_first, d_last = direction_of(US, A), direction_of(A, P)
    return Route(
        hops=(
            Hop(id=A, channel=Scid("1x1x0"), direction=d_first, amount_msat=amount + 1, delay=12),
            Hop(id=P, channel=Scid("10x1x0"), direction=d_last, amount_msat=amount, delay=6),
        )
    )


def test_room_counts_free_slots_into_the_payee_and_learns_a_crowded_last_hop() -> None:
    g = _net(1)
    book = RouterBook(our_id=US, gossip=g, channels=local_channels(g, US))
    assert book.slots.room(book.graph, US, P) == DEFAULT_HTLC_SLOTS
    held = [book.reserve("h", book.graph, _last_hop_route(g, 1000 * SAT)) for _ in range(12)]
    assert book.slots.room(book.graph, US, P) == DEFAULT_HTLC_SLOTS - 12
    failure = RouteFailure(failcode=FailCode.TEMPORARY_CHANNEL_FAILURE, erring_index=1)
    book.release(
        held[0].reservation, PartOutcome(state=PartState.FAILED, sent=True, failure=failure)
    )
    last = scid_dir(Scid("10x1x0"), direction_of(A, P))
    assert book.slots.limit(last) == 11  # 12 parts were there: it takes at most 11
    assert book.slots.room(book.graph, US, P) == 0  # 11 still held
    # a lone part failing there is liquidity, not crowding: nothing learnt
    fresh = RouterBook(our_id=US, gossip=g, channels=local_channels(g, US))
    p = fresh.reserve("h", fresh.graph, _last_hop_route(g, 1000 * SAT))
    fresh.release(p.reservation, PartOutcome(state=PartState.FAILED, sent=True, failure=failure))
    assert fresh.slots.limit(last) == DEFAULT_HTLC_SLOTS
    assert CROWD > 1


def _request(amount_sat: int) -> RouteInput:
    return RouteInput(
        source=US,
        destination=P,
        amount_msat=amount_sat * SAT,
        maxparts=64,
        maxfee_msat=10**7,
    )


async def _plan(g: Graph, amount_sat: int, strategy: str = "mincostflow") -> FindRoutesReply:
    node = ScriptedNode(graph=g, our_id=US)
    async with _actors(node) as (rt, _est):
        await ask(
            rt, lambda r: OpenPayment(payment_hash="h", destination=P, route_hints=(), reply=r)
        )
        ans: FindRoutesReply = await ask(
            rt,
            lambda r: FindRoutes(
                payment_hash="h", strategy=strategy, request=_request(amount_sat), reply=r
            ),
        )
    return ans


@pytest.mark.trio
@pytest.mark.parametrize("strategy", ["mincostflow", "adaptive"])
async def test_a_payee_whose_one_channel_needs_more_than_the_assumed_slots_gets_them(
    autojump_clock: Any, strategy: str
) -> None:
    """400,000 sat over one channel whose htlc_max is 10,000 sat needs 40 HTLCs: more than
    the 30 assumed. Nothing was learnt about that channel, so the router plans again with
    MAX_HTLC_SLOTS (as xpay, which assumes no limit, would send them; mainnet bench seed 4
    payment 23: 47 parts, 0 attempts before). Before: NoRoutes."""
    with trio.fail_after(60):
        ans = await _plan(_behind_x(), 400_000, strategy=strategy)
    assert isinstance(ans, RoutesFound), ans
    assert 40 <= len(ans.routes) <= MAX_HTLC_SLOTS
    assert sum(p.route.amount_msat for p in ans.routes) == 400_000 * SAT
    # each of our channels keeps the assumed 30: the peer's limit is not in listpeerchannels
    assert max(_over(ans.routes, "1x1x0"), _over(ans.routes, "2x1x0")) <= DEFAULT_HTLC_SLOTS


@pytest.mark.trio
async def test_our_own_channel_keeps_the_assumed_slots(autojump_clock: Any) -> None:
    """The same 40 parts, all over our one channel to A: not lifted (a CLN peer takes 30,
    and a refusal at our own first hop teaches no limit), so no route."""
    with trio.fail_after(60):
        ans = await _plan(_net(1), 400_000)
    assert isinstance(ans, NoRoutes), f"{len(ans.routes)} routes planned"


@pytest.mark.trio
async def test_the_payment_keeps_the_lifted_limit_and_a_learnt_limit_stays(
    autojump_clock: Any,
) -> None:
    """The rest of a lifted payment is planned lifted too (its 40 parts already fill the
    30 assumed slots); a limit learnt from a crowded failure is never lifted."""
    node = ScriptedNode(graph=_behind_x(), our_id=US)
    with trio.fail_after(60):
        async with _actors(node) as (rt, _est):
            await ask(
                rt,
                lambda r: OpenPayment(payment_hash="h", destination=P, route_hints=(), reply=r),
            )
            for amount_sat in (400_000, 50_000):
                ans: FindRoutesReply = await ask(
                    rt,
                    lambda r, a=amount_sat: FindRoutes(
                        payment_hash="h", strategy="mincostflow", request=_request(a), reply=r
                    ),
                )
                assert isinstance(ans, RoutesFound), (amount_sat, ans)
    g = _net(1)
    book = RouterBook(our_id=US, gossip=g, channels=local_channels(g, US))
    last = scid_dir(Scid("10x1x0"), direction_of(A, P))
    ours = scid_dir(Scid("1x1x0"), direction_of(US, A))
    assert book.slots.limit(last, lifted=True) == MAX_HTLC_SLOTS
    assert book.slots.limit(ours, lifted=True) == DEFAULT_HTLC_SLOTS  # the peer's is unknown
    held = [book.reserve("h", book.graph, _last_hop_route(g, 1000 * SAT)) for _ in range(12)]
    failure = RouteFailure(failcode=FailCode.TEMPORARY_CHANNEL_FAILURE, erring_index=1)
    book.release(
        held[0].reservation, PartOutcome(state=PartState.FAILED, sent=True, failure=failure)
    )
    assert book.slots.limit(last, lifted=True) == 11
    assert book.slots.room(book.graph, US, P, lifted=True) == 0  # 11 still held


@pytest.mark.trio
async def test_two_payee_channels_take_the_40_parts(autojump_clock: Any) -> None:
    with trio.fail_after(60):
        ans = await _plan(_net(2), 400_000)
    assert isinstance(ans, RoutesFound), ans
    assert 40 <= len(ans.routes) <= 2 * DEFAULT_HTLC_SLOTS


# -- every half-channel's slots, not only those into the payee -----------------------------

X, Y = (NodeId(f"02{i:02x}" + "cd" * 31) for i in range(2))


def _half(src: NodeId, dst: NodeId, scid: str, *, htlc_max_sat: int, cap_sat: int) -> HalfChannel:
    return HalfChannel(
        scid=Scid(scid),
        direction=direction_of(src, dst),
        source=src,
        destination=dst,
        capacity_msat=cap_sat * SAT,
        fee_base_msat=0,
        fee_ppm=1,
        cltv_delta=6,
        htlc_min_msat=1,
        htlc_max_msat=htlc_max_sat * SAT,
    )


def _middle_net() -> Graph:
    """Us -> A -> X -> Y -> P, every part over X -> Y at most 10,000 sat; and us -> B -> P,
    which holds 30,000 sat (one direction each)."""
    big = 10**7
    links = [
        (US, A, "1x1x0", big, big),
        (US, B, "2x1x0", big, big),
        (A, X, "3x1x0", big, big),
        (X, Y, "4x1x0", 10_000, big),
        (Y, P, "5x1x0", big, big),
        (B, P, "6x1x0", big, 30_000),
    ]
    return Graph.from_half_channels(
        [_half(x, y, scid, htlc_max_sat=hmax, cap_sat=cap) for x, y, scid, hmax, cap in links]
    )


def _over(routes: Any, scid: str) -> int:
    return sum(1 for p in routes for h in p.route.hops if h.channel == scid)


@pytest.mark.trio
async def test_a_middle_channel_gets_no_more_parts_than_its_free_slots(
    autojump_clock: Any,
) -> None:
    """Another payment holds 25 parts over X -> Y (30 slots): the next plan of 75,000 sat,
    of which us -> B -> P holds at most 30,000, puts at most 5 parts on X -> Y. Before:
    the plan took X -> Y for more than its 5 free slots (which refuse the rest)."""
    g = _middle_net()
    node = ScriptedNode(graph=g, our_id=US)
    with trio.fail_after(60):
        async with _actors(node) as (rt, _est):
            for h, dest in (("other", Y), ("h", P)):
                await ask(
                    rt,
                    lambda r, h=h, dest=dest: OpenPayment(
                        payment_hash=h, destination=dest, route_hints=(), reply=r
                    ),
                )
            other: FindRoutesReply = await ask(
                rt,
                lambda r: FindRoutes(
                    payment_hash="other",
                    strategy="mincostflow",
                    request=RouteInput(
                        source=US,
                        destination=Y,
                        amount_msat=250_000 * SAT,
                        maxparts=64,
                        maxfee_msat=10**7,
                    ),
                    reply=r,
                ),
            )
            assert isinstance(other, RoutesFound), other
            held = _over(other.routes, "4x1x0")
            assert held == 25
            ans: FindRoutesReply = await ask(
                rt,
                lambda r: FindRoutes(
                    payment_hash="h",
                    strategy="mincostflow",
                    request=_request(75_000),
                    reply=r,
                ),
            )
    assert isinstance(ans, RoutesFound), ans
    assert sum(p.route.amount_msat for p in ans.routes) == 75_000 * SAT
    assert _over(ans.routes, "4x1x0") <= DEFAULT_HTLC_SLOTS - held, [
        [h.channel for h in p.route.hops] for p in ans.routes
    ]


def test_overfilled_counts_the_new_parts_beyond_the_free_slots() -> None:
    g = _net(1)
    book = RouterBook(our_id=US, gossip=g, channels=local_channels(g, US))
    route = _last_hop_route(g, 1000 * SAT)
    for _ in range(DEFAULT_HTLC_SLOTS - 2):
        book.reserve("other", book.graph, route)
    assert book.slots.overfilled([route, route]) == 0
    assert book.slots.overfilled([route] * 5) == 3
    # what the context lets a plan send over the last hop: 2 free slots x 10,000 sat
    ctx = book.context(book.graph, KnowledgeSnapshot(taken_at=1.0), P)
    e = book.graph.edge(Scid("10x1x0"), direction_of(A, P))
    assert e is not None and int(ctx.max_msat[e]) == 2 * 10_000 * SAT


def test_a_last_hop_failure_that_liquidity_explains_learns_no_slot_limit() -> None:
    """Our parts on the payee's last hop hold more than CROWD_SHARE of its capacity: a
    temporary_channel_failure there is liquidity (the estimator's lesson), not "full".
    Read as full, the half-channel lost every slot while the parts held at the payee
    waited for the rest (mainnet bench: 10^7 sat payments timed out with the rest routable)."""
    g = _net(1)
    book = RouterBook(our_id=US, gossip=g, channels=local_channels(g, US))
    last = scid_dir(Scid("10x1x0"), direction_of(A, P))
    cap = int(g.capacity_msat[g.edge(Scid("10x1x0"), direction_of(A, P))])
    part = int(cap * CROWD_SHARE) // CROWD + 1  # CROWD parts hold just over the share
    held = [book.reserve("h", book.graph, _last_hop_route(g, part)) for _ in range(CROWD)]
    failure = RouteFailure(failcode=FailCode.TEMPORARY_CHANNEL_FAILURE, erring_index=1)
    book.release(
        held[0].reservation, PartOutcome(state=PartState.FAILED, sent=True, failure=failure)
    )
    assert book.slots.limit(last) == DEFAULT_HTLC_SLOTS
    assert book.slots.room(book.graph, US, P) == DEFAULT_HTLC_SLOTS - (CROWD - 1)
    # the same count of small parts: crowding
    small = RouterBook(our_id=US, gossip=g, channels=local_channels(g, US))
    few = [small.reserve("h", small.graph, _last_hop_route(g, 1000 * SAT)) for _ in range(CROWD)]
    small.release(
        few[0].reservation, PartOutcome(state=PartState.FAILED, sent=True, failure=failure)
    )
    assert small.slots.limit(last) == CROWD - 1


def test_the_lift_is_tried_only_where_the_assumed_slots_bind() -> None:
    """No re-plan where 483 slots change nothing (a strategy's own "no route" is not
    asked twice): every htlc_max carries the capacity in 30 parts and the room is wide."""
    wide = Graph.from_half_channels(
        [_half(x, y, s, htlc_max_sat=10**6, cap_sat=10**6) for x, y, s in ((US, A, "1x1x0"),)]
        + [_half(A, P, "2x1x0", htlc_max_sat=10**6, cap_sat=10**6)]
    )
    book = RouterBook(our_id=US, gossip=wide, channels=local_channels(wide, US))
    assert not book.slots.lift_changes(book.graph, _request(1000))
    narrow = RouterBook(our_id=US, gossip=_behind_x(), channels=local_channels(_behind_x(), US))
    assert narrow.slots.lift_changes(narrow.graph, _request(1000))
