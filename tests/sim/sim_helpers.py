"""Helpers of the simulated-network tests: networks, routes, invoices, one part end to end."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from barq.errors import PartFailed
from barq.graph import Graph
from barq.graph.synthetic import ChannelSpec, network_from_channels
from barq.model import Invoice, Route
from barq.routing import build_route
from barq.sim import SimulatedNetwork, SimulatedNode

EPOCH = 1_700_000_000
SAT = 1000
# Under the autojump MockClock, fail_after counts simulated seconds (a deadlock jumps to it).
SIM_BUDGET_S = 600


def rows_of_path(g: Graph, path: Sequence[int]) -> list[int]:
    """Graph rows along node indexes ``path`` (the first channel found per pair)."""
    out = []
    for a, b in itertools.pairwise(path):
        es = [e for e in g.out_edges(g.nodes[a]) if int(g.dst[e]) == b]
        assert es, f"no channel {a}->{b}"
        out.append(es[0])
    return out


def route_of(g: Graph, path: Sequence[int], amount_msat: int, final_cltv: int = 18) -> Route:
    return build_route(g, rows_of_path(g, path), amount_msat, final_cltv)


def with_hop(route: Route, i: int, **changes: Any) -> Route:
    hops = list(route.hops)
    hops[i] = msgspec.structs.replace(hops[i], **changes)
    return Route(hops=tuple(hops))


@asynccontextmanager
async def opened(
    graph: Graph, keys: dict[str, bytes] | None = None, **kw: Any
) -> AsyncIterator[SimulatedNetwork]:
    kw.setdefault("liquidity", "half")
    kw.setdefault("epoch_s", EPOCH)
    async with SimulatedNetwork.open(graph, keys=keys, **kw) as net:
        yield net


async def invoice(
    net: SimulatedNetwork, payer: SimulatedNode, payee: str, amount_msat: int | None, **kw: Any
) -> Invoice:
    return await payer.decode_invoice(net.create_invoice(payee, amount_msat, **kw))


async def send_and_wait(
    node: SimulatedNode,
    route: Route,
    inv: Invoice,
    *,
    partid: int = 0,
    groupid: int = 1,
    total_msat: int | None = None,
    secret: str | None = "",
) -> Any:
    """The part's final PartStatus, or the PartFailed it raised."""
    total = total_msat if total_msat is not None else (inv.amount_msat or route.amount_msat)
    try:
        await node.sendpay(
            route,
            inv.payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total,
            payment_secret=inv.payment_secret if secret == "" else secret,
        )
        return await node.waitsendpay(inv.payment_hash, partid=partid, groupid=groupid)
    except PartFailed as e:
        return e


def diamond() -> tuple[Graph, dict[str, bytes]]:
    """0 -> 1 -> 3 and 0 -> 2 -> 3, every channel 1M sat."""
    chans = [
        ChannelSpec(a=0, b=1, capacity_sat=1_000_000),
        ChannelSpec(a=1, b=3, capacity_sat=1_000_000),
        ChannelSpec(a=0, b=2, capacity_sat=1_000_000),
        ChannelSpec(a=2, b=3, capacity_sat=1_000_000),
    ]
    return network_from_channels(4, chans, seed=7)
