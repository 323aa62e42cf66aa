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
from barq.model import Hop, NodeId, Route, RouteInput, fee_msat

__all__ = [
    "BLOCKS_PER_YEAR",
    "DEFAULT_RISKFACTOR",
    "PathStrategy",
    "RoutingContext",
    "Strategy",
    "build_route",
    "fee_costs",
    "neg_log_success",
    "risk_costs",
    "success_probabilities",
    "success_probability",
]

F64 = npt.NDArray[np.float64]

#: Blocks in a year (CLN ``BLOCKS_PER_YEAR``: 365.25 * 144).
BLOCKS_PER_YEAR = 52_596
#: CLN ``getroute``'s default ``riskfactor``: the annual interest rate, in percent, charged
#: on the amount for each block the funds may stay locked (``amount * delay * rf / 100 / year``).
DEFAULT_RISKFACTOR = 10


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


def success_probability(amount_msat: int, min_msat: int, max_msat: int) -> float:
    """P(a half-channel with liquidity uniform in ``[min, max]`` can forward ``amount``)."""
    if amount_msat <= min_msat:
        return 1.0
    if amount_msat > max_msat:
        return 0.0
    return (max_msat + 1 - amount_msat) / (max_msat + 1 - min_msat)


def success_probabilities(
    amount_msat: int | npt.NDArray[np.int64],
    min_msat: npt.NDArray[np.int64],
    max_msat: npt.NDArray[np.int64],
) -> F64:
    """Vectorised :func:`success_probability` (uniform liquidity in ``[min, max]``).

    ``amount_msat`` is one amount for every half-channel or one per half-channel.
    Returns 1 where ``amount <= min``, 0 where ``amount > max``.
    """
    a = np.asarray(amount_msat, dtype=np.float64)
    lo = min_msat.astype(np.float64)
    hi = max_msat.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (hi + 1.0 - a) / (hi + 1.0 - lo)
    p = np.where(a <= lo, 1.0, np.where(a > hi, 0.0, p))
    return np.clip(p, 0.0, 1.0)


def neg_log_success(ctx: RoutingContext, amount_msat: int) -> F64:
    """``-ln P(success)`` of sending ``amount_msat`` over each half-channel (``inf`` if 0)."""
    p = success_probabilities(amount_msat, ctx.min_msat, ctx.max_msat)
    with np.errstate(divide="ignore"):
        out: F64 = -np.log(p)
    return out


def _source_mask(graph: Graph, source: NodeId) -> npt.NDArray[np.bool_]:
    i = graph.node_index.get(source)
    if i is None:
        return np.zeros(graph.num_edges, dtype=np.bool_)
    out: npt.NDArray[np.bool_] = graph.src == i
    return out


def fee_costs(graph: Graph, source: NodeId, amount_msat: int) -> F64:
    """Forwarding fee (msat, float) each half-channel charges for ``amount_msat``.

    Half-channels leaving ``source`` cost nothing: the payer does not pay itself.
    """
    fee = graph.fee_base_msat + amount_msat * graph.fee_ppm.astype(np.float64) / 1e6
    out: F64 = np.where(_source_mask(graph, source), 0.0, fee)
    return out


def risk_costs(
    graph: Graph,
    source: NodeId,
    amount_msat: int,
    riskfactor: float = DEFAULT_RISKFACTOR,
) -> F64:
    """CLN's CLTV risk of each half-channel, in msat: ``amount * cltv_delta * rf / 100 / year``.

    Zero on half-channels leaving ``source`` (their delta is not charged).
    """
    risk = (
        amount_msat * graph.cltv_delta.astype(np.float64) * (riskfactor / 100.0 / BLOCKS_PER_YEAR)
    )
    out: F64 = np.where(_source_mask(graph, source), 0.0, risk)
    return out


class PathStrategy:
    """Base of single-path strategies: subclass it and implement :meth:`edge_costs`.

    The base class owns the path machinery (``barq.strategies._paths``): it
    masks the half-channels that cannot carry the amount (unusable, disabled,
    excluded, htlc limits, ``ctx.max_msat``, CLTV delta beyond ``maxdelay``),
    runs scipy's Dijkstra on ``edge_costs`` (parallel channels: the cheapest
    one per node pair), builds the exact route with :func:`build_route` and
    verifies it (htlc limits and liquidity with the real hop amounts, fee
    budget, ``maxdelay``). A half-channel that fails the exact check is banned
    and the search repeated; a route over budget makes the search weigh fees
    (or CLTV) more, a few times, before giving up with
    :class:`~barq.errors.RouteTooExpensive`.

    Every route returned carries ``probability`` (uniform model on
    ``[ctx.min_msat, ctx.max_msat]`` with the exact hop amounts).

    Subclasses set ``name`` and ``description`` and may change the other
    class attributes (see :class:`Strategy`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    splits: ClassVar[bool] = False
    min_part_msat: ClassVar[int | None] = 1_000_000
    halve_on_failure: ClassVar[bool] = False

    def edge_costs(self, request: RouteInput, ctx: RoutingContext, amount_msat: int) -> F64:
        """Cost (>= 0, any unit consistent across edges) of sending ``amount_msat`` over each
        half-channel; ``inf``/``nan`` forbid an edge.

        Only edges the base class allows are looked at, so this need not repeat
        the masks. Must be vectorised (one float64 array of ``graph.num_edges``).
        """
        raise NotImplementedError

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """One route delivering ``request.amount_msat`` (see :meth:`Strategy.find_routes`)."""
        return [self.find_route(request, ctx)]

    def find_route(
        self,
        request: RouteInput,
        ctx: RoutingContext,
        *,
        amount_msat: int | None = None,
        maxfee_msat: int | None = None,
    ) -> Route:
        """The cheapest route (by :meth:`edge_costs`) for ``amount_msat`` under ``maxfee_msat``.

        Args:
            request: the question (source, destination, exclusions, limits).
            ctx: liquidity knowledge.
            amount_msat: defaults to ``request.amount_msat``.
            maxfee_msat: defaults to ``request.maxfee_msat``.

        Raises:
            RouteNotFound: no path can carry the amount.
            RouteTooExpensive: paths exist but all exceed the fee budget or ``maxdelay``.
        """
        from barq.strategies._paths import find_path

        route, _ = find_path(
            self,
            request,
            ctx,
            request.amount_msat if amount_msat is None else amount_msat,
            request.maxfee_msat if maxfee_msat is None else maxfee_msat,
        )
        return route
