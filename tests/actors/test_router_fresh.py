"""Every payment sees a fresh graph; "no route" only after one forced refresh (issue 12 item 1),
and in askrene's words when no route can exist at all (item 4)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
from actor_helpers import diamond
from test_router import _actors

from barq.actors._mailbox import ask
from barq.actors.messages import (
    ClosePayment,
    FindRoutes,
    FindRoutesReply,
    NoRoutes,
    OpenPayment,
    PaymentOpened,
    RoutesFound,
)
from barq.errors import RouteNotFound
from barq.graph import Graph
from barq.model import NodeId, RouteInput
from barq.payment.wording import gave_up
from barq.routing import NO_CONNECTION, explain_no_route
from barq.testing import ScriptedNode


def _disabled_into(g: Graph, node: NodeId) -> Graph:
    """``g`` with every half-channel into ``node`` disabled (gossip said so)."""
    halves = [h for h in g.half_channels() if h.destination == node]
    return g.with_half_channels(msgspec.structs.replace(h, enabled=False) for h in halves)


def _find(h: str, req: RouteInput) -> Any:
    return lambda r: FindRoutes(payment_hash=h, strategy="dijkstra", request=req, reply=r)


async def _open(rt: Any, h: str, dest: NodeId) -> PaymentOpened:
    opened: PaymentOpened = await ask(
        rt, lambda r: OpenPayment(payment_hash=h, destination=dest, route_hints=(), reply=r)
    )
    return opened


@pytest.mark.trio
async def test_each_payment_reads_the_gossip_appended_since_the_last(autojump_clock: Any) -> None:
    """A channel gossip announced after the router started is used by the next payment
    (before: only reloaded when the payee was unknown or the graph 60 s old)."""
    d = diamond()
    node = ScriptedNode(graph=_disabled_into(d.graph, d.dest), our_id=d.us)
    req = RouteInput(source=d.us, destination=d.dest, amount_msat=5_000_000)
    with trio.fail_after(30):
        async with _actors(node) as (rt, _est):
            assert (await _open(rt, "h1", d.dest)).destination_known
            ans: FindRoutesReply = await ask(rt, _find("h1", req))
            assert isinstance(ans, NoRoutes)
            await rt.send(ClosePayment(payment_hash="h1"))
            calls = node.calls["gossip_graph"]
            node.graph = d.graph  # the channels into the payee came up (new gossip)
            await _open(rt, "h2", d.dest)
            assert node.calls["gossip_graph"] == calls + 1  # read at every payment
            ans = await ask(rt, _find("h2", req))
            assert isinstance(ans, RoutesFound)


@pytest.mark.trio
async def test_no_route_forces_one_refresh_and_a_new_plan(autojump_clock: Any) -> None:
    d = diamond()
    node = ScriptedNode(graph=_disabled_into(d.graph, d.dest), our_id=d.us)
    req = RouteInput(source=d.us, destination=d.dest, amount_msat=5_000_000)
    with trio.fail_after(30):
        async with _actors(node) as (rt, _est):
            await _open(rt, "h", d.dest)
            node.graph = d.graph  # gossip arrived between the open and the request
            ans: FindRoutesReply = await ask(rt, _find("h", req))
            assert isinstance(ans, RoutesFound)
            # nothing changes any more: no route, and only one forced refresh per payment
            node.graph = _disabled_into(d.graph, d.dest)
            await _open(rt, "g", d.dest)
            calls = node.calls["gossip_graph"]
            for _ in range(3):
                ans = await ask(rt, _find("g", req))
                assert isinstance(ans, NoRoutes)
            assert node.calls["gossip_graph"] == calls + 1


@pytest.mark.trio
async def test_no_route_at_all_is_said_in_askrene_words(autojump_clock: Any) -> None:
    d = diamond()
    node = ScriptedNode(graph=_disabled_into(d.graph, d.dest), our_id=d.us)
    req = RouteInput(source=d.us, destination=d.dest, amount_msat=5_000_000)
    with trio.fail_after(30):
        async with _actors(node) as (rt, _est):
            await _open(rt, "h", d.dest)
            ans: FindRoutesReply = await ask(rt, _find("h", req))
    assert isinstance(ans, NoRoutes) and ans.code == 205
    assert ans.message == (
        "We could not find a usable set of paths. All 3 channels to the destination are disabled."
    )
    err = gave_up(
        RouteNotFound(f"no route: {ans.message}", data=ans.data),
        (),
        attempts=0,
        amount_msat=5_000_000,
        unassigned_msat=5_000_000,
    )
    assert err.message == f"Failed: {ans.message}"  # xpay: "Failed: " + askrene's sentence


def test_explain_no_connection_and_disabled_source() -> None:
    d = diamond()
    g = d.graph
    s, t = g.node_index[d.us], g.node_index[d.dest]
    assert explain_no_route(g, s, t) is None  # a path exists: liquidity is the reason
    y, z = NodeId("02" + "11" * 32), NodeId("03" + "22" * 32)
    island = msgspec.structs.replace(next(iter(g.half_channels())), scid="900x1x0")
    two = [
        msgspec.structs.replace(island, source=y, destination=z, direction=0),
        msgspec.structs.replace(island, source=z, destination=y, direction=1),
    ]
    apart = g.with_half_channels(two)  # the payee's only channel is with a stranger
    assert explain_no_route(apart, s, apart.node_index[z]) == NO_CONNECTION
    assert NO_CONNECTION == "There is no connection between source and destination at all"
    off = g.with_half_channels(
        msgspec.structs.replace(h, enabled=False) for h in g.half_channels() if h.source == d.us
    )
    assert explain_no_route(off, s, t) == (
        "We could not find a usable set of paths. All 3 channels to the source are disabled."
    )
