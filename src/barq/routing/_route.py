"""Routes from paths: exact hop amounts and delays, per-hop checks, usage within one call."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from barq.errors import RouteNotFound
from barq.graph import Graph
from barq.model import Hop, Route, fee_msat
from barq.routing._context import RoutingContext
from barq.routing._cost import flow_probability

__all__ = [
    "HopProblem",
    "add_route_usage",
    "build_route",
    "build_routes",
    "check_hops",
    "htlc_max_parts",
    "reserve",
]

I64 = npt.NDArray[np.int64]


def build_route(
    graph: Graph,
    edges: Sequence[int],
    amount_msat: int,
    final_cltv: int,
    probability: float | None = None,
) -> Route:
    """Turn a path of half-channel rows into a ``sendpay`` route delivering ``amount_msat``.

    Fees and delays are computed backwards from the destination exactly as
    forwarding nodes will check them (BOLT 7). The first hop is our own
    channel: no fee and no CLTV delta are paid on it.

    Raises:
        RouteNotFound: ``edges`` is empty.
    """
    if not edges:
        raise RouteNotFound("empty path")
    hops: list[Hop] = []
    amount = amount_msat
    delay = final_cltv
    for i in range(len(edges) - 1, -1, -1):
        e = edges[i]
        hops.append(
            Hop(
                id=graph.nodes[int(graph.dst[e])],
                channel=graph.scid[e],
                direction=int(graph.direction[e]),
                amount_msat=amount,
                delay=delay,
            )
        )
        # the node at the start of edge e (unless it is us) charges for forwarding over e
        if i > 0:
            amount += fee_msat(amount, int(graph.fee_base_msat[e]), int(graph.fee_ppm[e]))
            delay += int(graph.cltv_delta[e])
    hops.reverse()
    return Route(hops=tuple(hops), probability=probability)


@dataclass(frozen=True, slots=True)
class HopProblem:
    """A hop of a built route that does not fit its half-channel with the exact amount.

    ``reason`` is ``"htlc_min"``, ``"htlc_max"`` or ``"liquidity"``.
    """

    edge: int
    amount_msat: int
    reason: str
    overshoot_msat: int


def check_hops(
    graph: Graph,
    ctx: RoutingContext,
    route: Route,
    edges: Sequence[int],
    used_msat: I64 | None = None,
) -> HopProblem | None:
    """First hop whose exact amount breaks htlc limits or ``ctx.max_msat`` (minus ``used``)."""
    for hop, e in zip(route.hops, edges, strict=True):
        a = hop.amount_msat
        if a < int(graph.htlc_min_msat[e]):
            return HopProblem(e, a, "htlc_min", int(graph.htlc_min_msat[e]) - a)
        if a > int(graph.htlc_max_msat[e]):
            return HopProblem(e, a, "htlc_max", a - int(graph.htlc_max_msat[e]))
        room = int(ctx.max_msat[e]) - (0 if used_msat is None else int(used_msat[e]))
        if a > room:
            return HopProblem(e, a, "liquidity", a - room)
    return None


def build_routes(
    ctx: RoutingContext, paths: Sequence[tuple[Sequence[int], int]], final_cltv: int
) -> tuple[list[Route], list[HopProblem]]:
    """Exact routes for a set of ``(half-channel rows, amount)`` sent together.

    Every hop is checked against its htlc limits, and what the whole set puts
    on each half-channel (flow plus downstream fees) against ``ctx.max_msat``.
    Each route's ``probability`` is that of the set's total on each of its
    hops (:func:`~barq.routing.flow_probability`).

    Returns:
        ``(routes, [])`` when everything fits, else ``([], problems)``: one
        :class:`HopProblem` per half-channel that does not fit (for
        ``htlc_max``, the largest overshoot; ``amount_msat`` is the hop amount,
        or the set's total for ``liquidity``).
    """
    g = ctx.graph
    built = [build_route(g, edges, amount, final_cltv) for edges, amount in paths]
    total: dict[int, int] = defaultdict(int)
    bad: dict[int, HopProblem] = {}
    for r, (edges, _) in zip(built, paths, strict=True):
        for hop, e in zip(r.hops, edges, strict=True):
            a = hop.amount_msat
            total[e] += a
            if a < int(g.htlc_min_msat[e]):
                bad[e] = HopProblem(e, a, "htlc_min", int(g.htlc_min_msat[e]) - a)
            elif a > int(g.htlc_max_msat[e]):
                over = a - int(g.htlc_max_msat[e])
                if e not in bad or bad[e].overshoot_msat < over:
                    bad[e] = HopProblem(e, a, "htlc_max", over)
    for e, a in total.items():
        if e not in bad and a > int(ctx.max_msat[e]):
            bad[e] = HopProblem(e, a, "liquidity", a - int(ctx.max_msat[e]))
    if bad:
        return [], list(bad.values())
    routes = [
        Route(hops=r.hops, probability=flow_probability(ctx, edges, total))
        for r, (edges, _) in zip(built, paths, strict=True)
    ]
    return routes, []


def htlc_max_parts(
    graph: Graph, edges: Sequence[int], amount_msat: int, final_cltv: int
) -> list[int]:
    """``amount_msat`` over the path ``edges`` cut into equal parts no hop's ``htlc_max`` refuses.

    Hop amounts carry downstream fees, so the part size is shrunk (a few times)
    until every hop fits. Returns ``[amount_msat]`` when the whole amount fits,
    or when no part size helps (the exact checks then report the hop).
    """
    part = amount_msat
    for _ in range(8):  # hop amounts carry downstream fees: shrink until none is over
        r = build_route(graph, edges, part, final_cltv)
        fit = min(
            int(graph.htlc_max_msat[e]) * part // h.amount_msat
            for h, e in zip(r.hops, edges, strict=True)
        )
        if fit >= part or fit <= 0:
            break
        part = min(fit, part - 1)
    if part >= amount_msat or part <= 0:
        return [amount_msat]
    n = -(-amount_msat // part)
    share, extra = divmod(amount_msat, n)
    return [share + (1 if i < extra else 0) for i in range(n)]


def reserve(ctx: RoutingContext, used_msat: I64) -> RoutingContext:
    """``ctx`` with ``used_msat`` (per edge) taken out of both liquidity bounds.

    For a strategy that routes several parts in one call: each part sees what
    the earlier ones use (:func:`add_route_usage`).
    """
    return RoutingContext(
        graph=ctx.graph,
        min_msat=np.maximum(ctx.min_msat - used_msat, 0),
        max_msat=np.maximum(ctx.max_msat - used_msat, 0),
        usable=ctx.usable,
        inflight_msat=ctx.inflight_msat + used_msat,
        deadline=ctx.deadline,
        learnt_max_msat=ctx.learnt_max_msat,
    )


def add_route_usage(used_msat: I64, route: Route, edges: Sequence[int]) -> None:
    """Add each hop's amount of ``route`` to ``used_msat`` (in place)."""
    for hop, e in zip(route.hops, edges, strict=True):
        used_msat[e] += hop.amount_msat
