"""The single-path search behind :class:`~barq.routing.PathStrategy` (and ``presplit``'s parts).

1. mask the edges that can carry the amount (:func:`allowed_edges`,
   :func:`delay_allowed`) and ask for the caller's ``edge_costs``;
2. Dijkstra; build the exact route; if a hop breaks htlc limits or
   liquidity with its real amount (which includes downstream fees), ban
   that edge and search again; when bans leave no path, lift them once and
   search with fees dominating (a cheaper downstream may let the edge fit);
3. if the route is over ``maxfee_msat`` (or ``maxdelay``), add the fee
   (CLTV) to the cost with a growing weight (:data:`BUDGET_WEIGHTS`) and
   search again; when even the heaviest weighting does not fit, raise
   :class:`RouteTooExpensive`.

When nothing is found, :func:`_explain` says why in one place: over budget,
CLTV only, unreachable, not enough capacity, or exact checks failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import numpy as np
import numpy.typing as npt

from barq.errors import InvalidParams, RouteNotFound, RouteTooExpensive
from barq.model import Route, RouteInput
from barq.routing._context import RoutingContext
from barq.routing._cost import delay_block_weight, fee_costs, route_probability
from barq.routing._masks import allowed_edges, delay_allowed, endpoints
from barq.routing._route import HopProblem, build_route, check_hops
from barq.routing._topology import Topology, shortest_path, topology, weighted

__all__ = ["EdgeCostModel", "find_path"]

F64 = npt.NDArray[np.float64]

#: Search attempts of :func:`find_path` (bans after exact checks + budget re-weighting).
MAX_ATTEMPTS = 24
#: Successive weights of the fee (or CLTV) term added when a route is over budget.
BUDGET_WEIGHTS = (1.0, 10.0, 100.0, 1e4, 1e6)


class EdgeCostModel(Protocol):
    """What :func:`find_path` needs of its caller: a name and a cost per half-channel."""

    @property
    def name(self) -> str: ...

    def edge_costs(self, request: RouteInput, ctx: RoutingContext, amount_msat: int) -> F64: ...


@dataclass(slots=True)
class _Search:
    """The state of one :func:`find_path` call between attempts."""

    request: RouteInput
    ctx: RoutingContext
    amount_msat: int
    s: int
    topo: Topology
    base: F64
    fee_step: int = -1
    delay_step: int = -1
    fee_first: bool = False
    unbanned: F64 | None = None
    banned: list[dict[str, Any]] = field(default_factory=list)
    over: list[Route] = field(default_factory=list)
    searched: bool = False
    _fee_term: F64 | None = None
    _delay_term: F64 | None = None

    def cost(self) -> F64:
        """Per-edge weights for this attempt: the base plus the budget terms in force."""
        g = self.ctx.graph
        cost = self.base
        if self.fee_step >= 0:
            if self._fee_term is None:
                self._fee_term = fee_costs(g, self.request.source, self.amount_msat)
            cost = cost + BUDGET_WEIGHTS[self.fee_step] * self._fee_term
        if self.delay_step >= 0:
            if self._delay_term is None:
                # one block weighs at least 1 msat, else CLN's risk of the amount
                blocks = np.where(g.src == self.s, 0.0, g.cltv_delta.astype(np.float64))
                self._delay_term = blocks * delay_block_weight(self.amount_msat)
            cost = cost + BUDGET_WEIGHTS[self.delay_step] * self._delay_term
        return cost

    def lift_bans(self) -> bool:
        """No path left: lift the bans once and let fees dominate. False: give up.

        Edges were banned because downstream fees pushed their exact amount over
        a limit: with a cheaper downstream they may fit.
        """
        if self.unbanned is None or self.fee_first or self.fee_step >= len(BUDGET_WEIGHTS) - 1:
            return False
        self.fee_first = True
        self.base = self.unbanned.copy()
        self.fee_step = len(BUDGET_WEIGHTS) - 1
        return True

    def ban(self, problem: HopProblem) -> None:
        """Never use ``problem.edge`` again in this search (remembered for the explanation)."""
        if self.unbanned is None:
            self.unbanned = self.base.copy()
        self.base[problem.edge] = np.inf
        self.banned.append(
            {
                "channel": self.ctx.graph.scid_dir(problem.edge),
                "reason": problem.reason,
                "amount_msat": problem.amount_msat,
            }
        )

    def weigh_budget(self, route: Route, fee_over: bool, delay_over: bool) -> bool:
        """``route`` is over budget: weigh fees (CLTV) more. False: no heavier weight left."""
        self.over.append(route)
        if fee_over:
            self.fee_step += 1
        if delay_over:
            self.delay_step += 1
        return self.fee_step < len(BUDGET_WEIGHTS) and self.delay_step < len(BUDGET_WEIGHTS)


def find_path(
    strategy: EdgeCostModel,
    request: RouteInput,
    ctx: RoutingContext,
    amount_msat: int,
    maxfee_msat: int,
) -> tuple[Route, list[int]]:
    """The cheapest route by ``strategy.edge_costs`` for ``amount_msat`` under ``maxfee_msat``.

    See the module doc for the steps. Every route returned carries
    ``probability`` (the uniform model with the exact hop amounts).

    Returns:
        The route and its half-channel rows.

    Raises:
        InvalidParams: ``amount_msat`` is not positive, or ``edge_costs`` has the wrong shape.
        RouteNotFound: no path can carry the amount (or ``ctx``'s deadline passed).
        RouteTooExpensive: paths exist but all exceed the fee budget or ``maxdelay``.
    """
    g = ctx.graph
    s, t = endpoints(request, g)
    if amount_msat <= 0:
        raise InvalidParams(f"amount must be positive, got {amount_msat} msat")
    amount_mask = allowed_edges(request, ctx, amount_msat)
    mask = amount_mask & delay_allowed(request, g, s)
    raw = np.asarray(strategy.edge_costs(request, ctx, amount_msat), dtype=np.float64)
    if raw.shape != (g.num_edges,):
        raise ValueError(
            f"{type(strategy).__name__}.edge_costs returned shape {raw.shape}, "
            f"expected ({g.num_edges},)"
        )
    ok = mask & np.isfinite(raw)
    search = _Search(
        request=request,
        ctx=ctx,
        amount_msat=amount_msat,
        s=s,
        topo=topology(g),
        base=np.where(ok, np.maximum(raw, 0.0), np.inf),
    )
    for _ in range(MAX_ATTEMPTS):
        ctx.check_deadline()
        path = shortest_path(weighted(search.topo, search.cost()), s, t)
        if path is None:
            if search.lift_bans():
                continue
            break
        search.searched = True
        route = build_route(g, path, amount_msat, request.final_cltv)
        problem = check_hops(g, ctx, route, path)
        if problem is not None:
            search.ban(problem)
            continue
        fee_over = route.fee_msat > maxfee_msat
        delay_over = route.delay > request.maxdelay
        if not (fee_over or delay_over):
            return Route(hops=route.hops, probability=route_probability(ctx, route, path)), path
        if not search.weigh_budget(route, fee_over, delay_over):
            break
    _explain(strategy, search, amount_mask, t, maxfee_msat)


def _short(node: str) -> str:
    return node[:16] + "…" if len(node) > 16 else node


def _explain(
    strategy: EdgeCostModel,
    search: _Search,
    amount_mask: npt.NDArray[np.bool_],
    t: int,
    maxfee: int,
) -> NoReturn:
    """Why :func:`find_path` found nothing, as the error it raises."""
    request, ctx, amount_msat = search.request, search.ctx, search.amount_msat
    what = f"{amount_msat} msat from {_short(request.source)} to {_short(request.destination)}"
    if search.over:
        cheapest = min(r.fee_msat for r in search.over)
        shortest = min(r.delay for r in search.over)
        raise RouteTooExpensive(
            f"{strategy.name or type(strategy).__name__}: every route for {what} exceeds the "
            f"budget (cheapest fee {cheapest} msat > maxfee {maxfee} msat, or smallest "
            f"delay {shortest} > maxdelay {request.maxdelay})",
            data={
                "cheapest_fee_msat": cheapest,
                "maxfee_msat": maxfee,
                "smallest_delay": shortest,
                "maxdelay": request.maxdelay,
            },
        )
    if search.searched:
        raise RouteNotFound(
            f"no route for {what}: {len(search.banned)} candidate path(s) failed the exact "
            f"htlc/liquidity check",
            data={"amount_msat": amount_msat, "banned": search.banned},
        )
    # Tell "too expensive in CLTV" and "unreachable" apart from "not enough capacity".
    topo, s = search.topo, search.s
    if shortest_path(weighted(topo, np.where(amount_mask, 1.0, np.inf)), s, t) is not None:
        raise RouteTooExpensive(
            f"every path for {what} has a CLTV delay above maxdelay {request.maxdelay}",
            data={"maxdelay": request.maxdelay},
        )
    usable = allowed_edges(request, ctx, None)
    if shortest_path(weighted(topo, np.where(usable, 1.0, np.inf)), s, t) is None:
        raise RouteNotFound(
            f"no route for {what}: destination unreachable over usable channels",
            data={"amount_msat": amount_msat},
        )
    raise RouteNotFound(
        f"no route for {what}: no path whose channels can all carry the amount "
        f"(htlc limits or liquidity)",
        data={"amount_msat": amount_msat},
    )
