"""The strategy interface: a routing question in, routes out.

A strategy is pure and synchronous (no I/O, no awaits), in the style of
renepay's ``mcf.c``: it maps *graph + liquidity knowledge + request* to
routes. The router actor calls it (in a worker thread when it is heavy) and
nothing else does. Write a new one by reading ``dijkstra.py``: subclass
:class:`PathStrategy` and implement :meth:`PathStrategy.edge_costs`, or
implement :class:`Strategy` directly when you split the amount yourself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from barq.errors import RouteNotFound
from barq.graph import Graph
from barq.model import Hop, Route, RouteInput, fee_msat

__all__ = [
    "RoutingContext",
    "Strategy",
    "build_route",
    "success_probability",
]


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What a strategy may look at for one request (a read-only snapshot).

    Attributes:
        graph: the payment's graph: gossip + our own channels (exact
            balances) + the invoice's route hints.
        min_msat: per half-channel, liquidity *surely* available now (known
            lower bound minus what is already in flight over it), int64.
        max_msat: per half-channel, liquidity *possibly* available now
            (known upper bound minus in flight), int64; ``min <= max``.
        usable: per half-channel, False when disabled by gossip, excluded by
            the caller, or disabled by the estimator after a permanent failure.
        inflight_msat: per half-channel, what our own parts in flight hold.

    ``max_msat == 0`` means "certainly nothing can pass". For our own
    channels ``min_msat == max_msat == spendable_msat`` (minus in flight).
    """

    graph: Graph
    min_msat: npt.NDArray[np.int64]
    max_msat: npt.NDArray[np.int64]
    usable: npt.NDArray[np.bool_]
    inflight_msat: npt.NDArray[np.int64]

    @classmethod
    def uninformed(cls, graph: Graph) -> RoutingContext:
        """Knowledge from gossip alone: liquidity somewhere in ``[0, capacity]``."""
        n = graph.num_edges
        return cls(
            graph=graph,
            min_msat=np.zeros(n, dtype=np.int64),
            max_msat=graph.capacity_msat.copy(),
            usable=graph.enabled.copy(),
            inflight_msat=np.zeros(n, dtype=np.int64),
        )


@runtime_checkable
class Strategy(Protocol):
    """A routing strategy.

    Class attributes:
        name: registry key (``strategy=NAME`` in ``barqpay``).
        description: one line for ``barqstrategies``.
        splits: True when :meth:`find_routes` may return several routes that
            together deliver ``request.amount_msat`` (the supervisor then asks
            it for the whole remaining amount); False when it always returns
            one route (the supervisor splits adaptively by halving).
        min_part_msat: adaptive splitting floor: when no route is found for
            an amount, the supervisor halves it while the halves stay at or
            above this (``None``: never split, e.g. ``singlepath``).
        halve_on_failure: when a part fails for liquidity, retry its amount
            as two halves (CLN ``pay``'s presplit behaviour) instead of asking
            for the whole amount again.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    splits: ClassVar[bool]
    min_part_msat: ClassVar[int | None]
    halve_on_failure: ClassVar[bool]

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """Routes from ``request.source`` to ``request.destination``.

        Contract: the routes' ``amount_msat`` add up to exactly
        ``request.amount_msat``; there are at most ``request.maxparts``; their
        fees add up to at most ``request.maxfee_msat``; each route's ``delay``
        is at most ``request.maxdelay``; each hop respects the channel's
        ``htlc_min``/``htlc_max``; excluded or unusable half-channels are not used.

        Raises:
            barq.errors.RouteNotFound: no routes fit (205).
            barq.errors.RouteTooExpensive: routes exist but cost more than
                ``maxfee_msat`` or exceed ``maxdelay`` (206).
        """
        ...


def build_route(
    graph: Graph, edges: Sequence[int], amount_msat: int, final_cltv: int,
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
        hops.append(Hop(id=graph.nodes[int(graph.dst[e])], channel=graph.scid[e],
                        direction=int(graph.direction[e]), amount_msat=amount, delay=delay))
        # the node at the start of edge e (unless it is us) charges for forwarding over e
        if i > 0:
            amount += fee_msat(amount, int(graph.fee_base_msat[e]), int(graph.fee_ppm[e]))
            delay += int(graph.cltv_delta[e])
    hops.reverse()
    return Route(hops=tuple(hops), probability=probability)


def success_probability(amount_msat: int, min_msat: int, max_msat: int) -> float:
    """P(a half-channel with liquidity uniform in ``[min, max]`` can forward ``amount``)."""
    if amount_msat <= min_msat:
        return 1.0
    if amount_msat > max_msat:
        return 0.0
    return (max_msat + 1 - amount_msat) / (max_msat + 1 - min_msat)
