"""``mincostflow``: split the whole amount by a min-cost flow (Pickhardt-Richter, renepay/askrene).

Knowledge used: liquidity bounds ``ctx.min_msat``/``ctx.max_msat`` (uniform
model), fees, CLTV deltas and htlc limits. Splits (``splits=True``): one call
returns up to ``request.maxparts`` routes that deliver exactly
``request.amount_msat`` together.

The steps of :meth:`MinCostFlowStrategy.find_routes`:

0. **One sure path?** ``probabilistic`` with the same weights (fee per unit
   of ``-ln P``, riskfactor) finds the best single path; when it is at least
   :attr:`MinCostFlowParams.single_path_probability` (99 %) likely, it is the
   answer: one part pays one set of base fees, and no flow is solved (~5 ms).
1. **Prune.** Edges that may carry flow at all (common masks, CLTV delta,
   ``htlc_min <= amount``, room for one flow unit). Then keep the
   neighbourhood of the shortest hop count ``h`` between source and
   destination: edges ``u -> v`` with ``hops(s, u) + 1 + hops(v, t) <= h + slack``
   (two scipy Dijkstra runs, forward and on the transposed graph); ``slack``
   grows (1, 2, 3, then the whole graph) while the pruned graph is too small
   or the flow does not fit.
2. **Linearise.** Flow is counted in units of ``ceil(amount / units)`` msat.
   Each edge becomes up to five arcs (renepay's ``CHANNEL_PARTS``): the
   certain part ``[0, min]`` costs no probability; the uncertain range
   ``[min, max]`` is cut at the fractions :attr:`MinCostFlowParams.pivots`
   (0, 0.5, 0.8, 0.95, 1) with the chord slopes of ``-ln P`` on each piece
   (:func:`~barq.routing.nlp_pieces`: convex, so a min-cost flow fills them in
   order; the last chord ends at ``-ln P(max) = ln(max - min + 1)``, steep but
   finite, so a channel can still be filled when nothing else exists).
   Every arc also costs ``mu * fee`` (proportional fee, base fee amortised
   over the whole amount, CLTV risk at ``riskfactor``:
   :meth:`~barq.routing.CostParams.flow_cost_per_msat`; zero on our own first
   hop) and one unit of tie-break cost (no zero-cost cycles).
3. **Solve** with OR-Tools ``SimpleMinCostFlow`` (integer capacities/costs).
   No feasible flow on the whole graph: :class:`RouteNotFound` with the
   maximum flow found.
4. **Decompose** the flow greedily into paths (follow the largest remaining
   flow out of each node), round so the amounts add up exactly to the
   request, and keep at most ``maxparts`` paths (the smallest are dropped and
   their amount added to kept paths that have room).
5. **Verify** the exact routes (:func:`~barq.routing.build_routes`): htlc limits and the
   total each half-channel carries (flow plus downstream fees) against
   ``ctx.max_msat``; each violation shrinks that edge's capacity by the
   excess (or closes it, for ``htlc_min``) and the flow is re-solved. Over the fee budget (or
   ``maxdelay``): ``mu`` (or the CLTV weight) is multiplied by 10 and the flow
   re-solved, a few times, then :class:`RouteTooExpensive`.

``mu`` is expressed by :attr:`~barq.routing.CostParams.penalty_ppm`: how many
ppm of the amount paid in fees (plus CLN's CLTV risk) are worth one unit of
``-ln P`` (a factor ``e`` in success probability); the default, 2,000 ppm
(0.2 %), is ``probabilistic``'s ``penalty_ppm``, so both trade fees against
probability alike (the linearised ``-ln P`` overestimates small fractions
of big channels by up to 39 %, the chord of the first piece). ``cheapflow``
is this strategy with 200 ppm and riskfactor 1: the trade-off measured on the
mainnet bench is in README.md ("Default strategy and why").

Each route's ``probability`` is the product over its hops of the
uniform-model probability of the *total* the whole set puts on that
half-channel (conservative where routes share a channel).

Limits: pruning may hide a cheaper but longer flow, so a
:class:`RouteTooExpensive` from the neighbourhood is final; with the amount
solved in ~1,000 units, channels smaller than one unit are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from barq.errors import BarqError, RouteNotFound, RouteTooExpensive
from barq.model import Route, RouteInput
from barq.routing import (
    CostParams,
    FlowNetwork,
    RoutingContext,
    allowed_edges,
    build_routes,
    decompose_flow,
    delay_allowed,
    distances,
    endpoints,
    flow_network,
    htlc_max_parts,
    max_flow,
    min_cost_flow,
    nlp_pieces,
    topology,
    weighted,
)
from barq.strategies.probabilistic import ProbabilisticStrategy

__all__ = ["MinCostFlowParams", "MinCostFlowStrategy"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: integer costs are float costs (units of ``-ln P`` per flow unit) times this
COST_SCALE = 1e6
#: cap on one arc's unit cost (OR-Tools rejects ranges that could overflow)
MAX_ARC_COST = 10**10


class MinCostFlowParams(CostParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The cost weights (:class:`~barq.routing.CostParams`) plus the flow's own numbers.

    Attributes:
        units: flow granularity: the amount is solved in about this many units.
        pivots: where the linear pieces of ``-ln P`` start/end, as fractions of ``[min, max]``.
        single_path_probability: a single ``probabilistic`` path at least this likely
            to succeed is taken as is, without solving the flow (small amounts: one
            part, one set of base fees, ~5 ms); 1.0 turns the shortcut off.
        budget_steps: ``mu`` (or the CLTV weight) steps when over budget: multiply by
            10 this many times.
        slacks: hop slacks tried for pruning before the whole graph.
        min_pruned_edges: a pruned graph with fewer edges than this is widened at once.
        max_repairs: re-solves after exact htlc/liquidity checks fail.
    """

    units: int = 1000
    pivots: tuple[float, ...] = (0.0, 0.5, 0.8, 0.95, 1.0)
    single_path_probability: float = 0.99
    budget_steps: int = 5
    slacks: tuple[int, ...] = (1, 2, 3)
    min_pruned_edges: int = 1500
    max_repairs: int = 6


@dataclass(slots=True)
class _Failure:
    """Why one edge set gave no routes: ``why`` is "infeasible", "maxparts" or "repairs"."""

    max_flow: int  # units
    why: str
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Path:
    edges: list[int]
    amount_msat: int


class MinCostFlowStrategy:
    """Min-cost flow of the whole amount with cost ``-ln P(success) + mu * fees``.

    Args:
        params: the numbers to use (default: :attr:`default_params`).
    """

    name: ClassVar[str] = "mincostflow"
    description: ClassVar[str] = (
        "min-cost flow split (Pickhardt-Richter, like renepay/askrene): probability + fees"
    )
    splits: ClassVar[bool] = True
    min_part_msat: ClassVar[int | None] = None
    halve_on_failure: ClassVar[bool] = False
    #: the numbers a strategy built without ``params`` uses
    default_params: ClassVar[MinCostFlowParams] = MinCostFlowParams()

    def __init__(self, params: MinCostFlowParams | None = None) -> None:
        self._params = self.default_params if params is None else params

    @property
    def params(self) -> MinCostFlowParams:
        """The numbers this instance solves with."""
        return self._params

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """Routes splitting ``request.amount_msat`` (see :meth:`Strategy.find_routes`).

        ``maxparts == 1`` is answered by ``probabilistic`` (a single path is
        exactly its question). Channels first carry at most one ``htlc_max``
        each; when that caps the flow below the amount, the flow is solved
        again with up to ``maxparts * htlc_max`` per channel and paths over a
        hop's ``htlc_max`` cut into several parts (within ``maxparts``). When
        the network can carry the amount but the flow's routes cannot be made
        to pass the exact checks (fees pushing a hop over its liquidity, more
        paths than ``maxparts``), ``probabilistic`` is tried for the whole
        amount before giving up.

        Raises:
            RouteNotFound: the maximum flow is below the amount (message
                gives it), or the flow cannot be cut into ``maxparts`` routes
                that pass the exact checks.
            RouteTooExpensive: flows exist but every one tried exceeds
                ``maxfee_msat`` or ``maxdelay``.
        """
        if request.maxparts == 1:
            return self._single_path().find_routes(request, ctx)
        if self._params.single_path_probability < 1.0:
            try:
                [route] = self._single_path().find_routes(request, ctx)
                if (route.probability or 0.0) >= self._params.single_path_probability:
                    return [route]
            except (RouteNotFound, RouteTooExpensive):
                pass  # the flow below decides (and explains)
        try:
            return self._find_routes(request, ctx, 1)
        except RouteNotFound as exc:
            if int(exc.data.get("max_flow_msat", 0)) <= 0:
                raise
            # too little capacity with one HTLC per channel: several parts may pass
            # the same channel (each up to its htlc_max), as the bench oracle counts
            try:
                return self._find_routes(request, ctx, request.maxparts)
            except RouteNotFound:
                raise exc from None

    def _single_path(self) -> ProbabilisticStrategy:
        """``probabilistic`` with this strategy's cost weights."""
        return ProbabilisticStrategy(self._params)

    def _find_routes(
        self, request: RouteInput, ctx: RoutingContext, htlcs_per_channel: int
    ) -> list[Route]:
        """:meth:`find_routes` with channels carrying up to ``htlcs_per_channel * htlc_max``."""
        g = ctx.graph
        s, t = endpoints(request, g)
        amount = request.amount_msat
        unit = -(-amount // self._params.units)
        demand = -(-amount // unit)
        base, cap_msat = _capacities(request, ctx, s, unit, htlcs_per_channel)
        hop_w = weighted(topology(g), np.where(base, 1.0, np.inf))
        ds = distances(hop_w, s, hops=True)
        if not np.isfinite(ds[t]):
            self._raise_if_delay_bound(request, ctx, unit, s, t, demand)
            raise RouteNotFound(
                f"mincostflow: destination {request.destination} unreachable over channels "
                f"that can carry {unit} msat (max flow 0 msat)",
                data={"amount_msat": amount, "max_flow_msat": 0},
            )
        dt = distances(hop_w, t, reverse=True, hops=True)
        levels = self._levels(base, ds[g.src] + 1.0 + dt[g.dst], float(ds[t]))
        original_cap_u = cap_msat // unit
        failure = _Failure(max_flow=0, why="infeasible")
        impossible = False
        for li, keep in enumerate(levels):
            ctx.check_deadline()
            repaired = bool(np.any(cap_msat // unit < original_cap_u))
            if li > 0 and li == len(levels) - 1 and repaired:
                break  # exact checks, not capacity, failed: skip the slow whole graph
            problem = flow_network(g.src, g.dst, np.flatnonzero(keep), s, t)
            # cap_msat is shrunk in place by repairs: they carry over to wider levels
            result = self._solve_and_build(
                request, ctx, problem, cap_msat, unit, demand, split=htlcs_per_channel > 1
            )
            if isinstance(result, list):
                return result
            failure = result
            if failure.why == "maxparts":
                break
            if failure.why == "infeasible" and not failure.problems and not repaired:
                if len(levels) == 1:
                    impossible = True
                elif li == 0:
                    # before widening (the whole graph is slow to solve): can it carry it?
                    whole = max_flow(g.src, g.dst, np.where(base, original_cap_u, 0), s, t)
                    if whole < demand:
                        failure = _Failure(max_flow=whole, why="infeasible")
                        impossible = True
                        break
        if not impossible:
            # the network could carry the amount but exact fees or maxparts broke the
            # flow's routes: one route for everything may still pass the exact checks
            try:
                return self._single_path().find_routes(request, ctx)
            except RouteNotFound:
                pass
        else:
            self._raise_if_delay_bound(request, ctx, unit, s, t, demand)
        raise self._failure_error(request, failure, unit)

    def _levels(self, base: B, through: F64, best: float) -> list[B]:
        """The edge sets to try, narrowest first: the hop neighbourhoods, then ``base``.

        ``through`` is, per edge, the hop count of the shortest path through it;
        a level is kept only when it adds edges to the one before.
        """
        slacks = self._params.slacks
        levels: list[B] = []
        for slack in slacks:
            keep = base & (through <= best + slack)
            if int(keep.sum()) >= self._params.min_pruned_edges or slack == slacks[-1]:
                levels.append(keep)
        levels.append(base)
        sizes = [int(k.sum()) for k in levels]
        return [k for i, k in enumerate(levels) if i == 0 or sizes[i] > sizes[i - 1]]

    def _failure_error(self, request: RouteInput, failure: _Failure, unit: int) -> RouteNotFound:
        """The error that explains ``failure``."""
        amount = request.amount_msat
        if failure.why == "maxparts":
            return RouteNotFound(
                f"mincostflow: the flow for {amount} msat needs more than "
                f"maxparts={request.maxparts} routes",
                data={"maxparts": request.maxparts},
            )
        if failure.why == "repairs":
            return RouteNotFound(
                f"mincostflow: routes for {amount} msat kept failing the exact htlc/liquidity "
                f"checks after {self._params.max_repairs} repairs",
                data={"problems": failure.problems[-8:]},
            )
        return RouteNotFound(
            f"mincostflow: no flow of {amount} msat to {request.destination}: "
            f"max flow is about {failure.max_flow * unit} msat",
            data={
                "amount_msat": amount,
                "max_flow_msat": failure.max_flow * unit,
                "problems": failure.problems[-8:],
            },
        )

    @staticmethod
    def _raise_if_delay_bound(
        request: RouteInput, ctx: RoutingContext, unit: int, s: int, t: int, demand: int
    ) -> None:
        """Raise :class:`RouteTooExpensive` if only CLTV deltas over ``maxdelay`` stop the flow."""
        g = ctx.graph
        if bool(np.all(delay_allowed(request, g, s))):
            return
        mask = allowed_edges(request, ctx, None) & (g.htlc_min_msat <= request.amount_msat)
        cap_u = np.where(mask, np.minimum(ctx.max_msat, g.htlc_max_msat), 0) // unit
        if max_flow(g.src, g.dst, np.where(mask, cap_u, 0), s, t) >= demand:
            raise RouteTooExpensive(
                f"mincostflow: {request.amount_msat} msat can only flow over channels whose "
                f"CLTV delays exceed maxdelay {request.maxdelay}",
                data={"maxdelay": request.maxdelay},
            )

    # -- building blocks ---------------------------------------------------------------

    def _arcs(
        self,
        request: RouteInput,
        ctx: RoutingContext,
        p: FlowNetwork,
        cap_msat: I64,
        unit: int,
        mu: float,
        delay_weight: float,
    ) -> tuple[I64, I64, I64, I64, I64]:
        """(tails, heads, capacities, costs, edge index into p.edges) of the linearised arcs."""
        g = ctx.graph
        e = p.edges
        cap_u = cap_msat[e] // unit
        lo = np.clip(ctx.min_msat[e], 0, None).astype(np.float64)
        hi = np.maximum(ctx.max_msat[e].astype(np.float64), lo)
        from_source = g.src[e] == g.node_index[request.source]
        per_msat = self._params.flow_cost_per_msat(g, e, request.amount_msat, from_source)
        fee_cost = mu * per_msat * unit  # -ln P units per flow unit
        if delay_weight > 0:
            room = max(1, request.maxdelay - request.final_cltv)
            fee_cost = fee_cost + np.where(from_source, 0.0, delay_weight * g.cltv_delta[e] / room)
        tails: list[I64] = []
        heads: list[I64] = []
        caps: list[I64] = []
        costs: list[I64] = []
        which: list[I64] = []
        idx = np.arange(len(e), dtype=np.int64)
        for seg_cap, seg_cost in nlp_pieces(lo, hi, cap_u, unit, self._params.pivots):
            use = seg_cap > 0
            tails.append(p.tails[use])
            heads.append(p.heads[use])
            caps.append(seg_cap[use])
            total = np.rint((seg_cost[use] + fee_cost[use]) * COST_SCALE) + 1.0
            costs.append(np.minimum(total, MAX_ARC_COST).astype(np.int64))
            which.append(idx[use])
        return (
            np.concatenate(tails),
            np.concatenate(heads),
            np.concatenate(caps),
            np.concatenate(costs),
            np.concatenate(which),
        )

    def _solve_and_build(
        self,
        request: RouteInput,
        ctx: RoutingContext,
        p: FlowNetwork,
        cap_msat: I64,
        unit: int,
        demand: int,
        split: bool = False,
    ) -> list[Route] | _Failure:
        """Routes, or why this edge set gave none (repairs shrink ``cap_msat`` in place).

        With ``split`` (channels capped at several ``htlc_max``), paths over a
        hop's ``htlc_max`` are cut into parts that fit.

        Raises:
            RouteTooExpensive: flows exist but stay over budget after ``budget_steps``.
        """
        g = ctx.graph
        mu = 1.0 / (self._params.penalty_ppm * 1e-6 * request.amount_msat)
        mu_step = 0
        delay_weight = 0.0
        delay_step = 0
        repairs = 0
        over: list[tuple[int, int]] = []  # (total fee, max delay) of over-budget answers
        problems: list[dict[str, Any]] = []
        while True:
            ctx.check_deadline()
            tails, heads, caps, costs, which = self._arcs(
                request, ctx, p, cap_msat, unit, mu, delay_weight
            )
            sol = min_cost_flow(
                tails,
                heads,
                caps,
                costs,
                p.s,
                p.t,
                demand,
                num_nodes=p.num_nodes,
                max_flow_if_infeasible=True,
            )
            if sol.flows is None:
                if sol.status != "infeasible":
                    raise BarqError(f"mincostflow: OR-Tools min-cost flow answered {sol.status}")
                if over:  # repairs after an over-budget answer closed the flow
                    break
                return _Failure(max_flow=sol.max_flow, why="infeasible", problems=problems)
            edge_flow = np.bincount(which, weights=sol.flows, minlength=len(p.edges)).astype(
                np.int64
            )
            paths = self._to_paths(request, p, edge_flow, cap_msat, unit, demand)
            if paths is not None and split:
                paths = self._split_over_htlc_max(request, ctx, paths)
            if paths is None:
                return _Failure(max_flow=demand, why="maxparts", problems=problems)
            routes, bad = build_routes(
                ctx, [(x.edges, x.amount_msat) for x in paths], request.final_cltv
            )
            if bad:
                repairs += 1
                for b in bad:
                    problems.append(
                        {
                            "channel": g.scid_dir(b.edge),
                            "reason": b.reason,
                            "overshoot_msat": b.overshoot_msat,
                        }
                    )
                    # htlc_min: a part too small for the channel; else shrink by the excess
                    cap_msat[b.edge] = (
                        0
                        if b.reason == "htlc_min"
                        else max(0, int(cap_msat[b.edge]) - b.overshoot_msat)
                    )
                if repairs > self._params.max_repairs:
                    return _Failure(max_flow=demand, why="repairs", problems=problems)
                continue
            fee = sum(r.fee_msat for r in routes)
            delay = max(r.delay for r in routes)
            fee_over = fee > request.maxfee_msat
            delay_over = delay > request.maxdelay
            if not (fee_over or delay_over):
                return routes
            over.append((fee, delay))
            if fee_over:
                mu_step += 1
                mu *= 10.0
            if delay_over:
                delay_step += 1
                delay_weight = 10.0**delay_step
            if mu_step > self._params.budget_steps or delay_step > self._params.budget_steps:
                break
        cheapest = min(f for f, _ in over)
        shortest = min(d for _, d in over)
        raise RouteTooExpensive(
            f"mincostflow: every flow of {request.amount_msat} msat found exceeds the budget "
            f"(cheapest total fee {cheapest} msat, maxfee {request.maxfee_msat} msat; smallest "
            f"max delay {shortest}, maxdelay {request.maxdelay})",
            data={
                "cheapest_fee_msat": cheapest,
                "maxfee_msat": request.maxfee_msat,
                "smallest_delay": shortest,
                "maxdelay": request.maxdelay,
            },
        )

    def _to_paths(
        self,
        request: RouteInput,
        p: FlowNetwork,
        edge_flow: I64,
        cap_msat: I64,
        unit: int,
        demand: int,
    ) -> list[_Path] | None:
        """Decomposed paths in msat adding up to the amount, at most ``maxparts`` (or None)."""
        raw = decompose_flow(p, edge_flow)
        raw.sort(key=lambda x: -x[1])
        paths = [_Path([int(p.edges[k]) for k in ks], units * unit) for ks, units in raw]
        excess = demand * unit - request.amount_msat
        # rounding: take the excess (< one unit) from the largest path
        paths[0].amount_msat -= excess
        if len(paths) <= request.maxparts:
            return paths
        # too many parts: keep maxparts paths and move the others' amounts onto them.
        # Which to keep: first the largest flows, else the widest paths.
        by_flow = list(range(len(paths)))
        by_width = sorted(
            by_flow, key=lambda i: (-min(int(cap_msat[e]) for e in paths[i].edges), i)
        )
        for order in (by_flow, by_width):
            merged = self._merge(paths, order[: request.maxparts], cap_msat)
            if merged is not None:
                return merged
        return None

    @staticmethod
    def _split_over_htlc_max(
        request: RouteInput, ctx: RoutingContext, paths: list[_Path]
    ) -> list[_Path] | None:
        """``paths`` with each one over a hop's ``htlc_max`` cut into equal parts that fit.

        Returns None when that needs more than ``request.maxparts`` parts.
        """
        out = [
            _Path(list(x.edges), a)
            for x in paths
            for a in htlc_max_parts(ctx.graph, x.edges, x.amount_msat, request.final_cltv)
        ]
        return out if len(out) <= request.maxparts else None

    @staticmethod
    def _merge(paths: list[_Path], keep: list[int], cap_msat: I64) -> list[_Path] | None:
        """``paths[keep]`` carrying the whole amount within ``cap_msat``, or None."""
        kept = [_Path(list(paths[i].edges), paths[i].amount_msat) for i in keep]
        load: dict[int, int] = defaultdict(int)
        for path in kept:
            for e in path.edges:
                load[e] += path.amount_msat
        left = sum(x.amount_msat for x in paths) - sum(x.amount_msat for x in kept)
        for path in kept:
            if left == 0:
                break
            room = min(int(cap_msat[e]) - load[e] for e in path.edges)
            add = min(max(room, 0), left)
            if add:
                path.amount_msat += add
                for e in path.edges:
                    load[e] += add
                left -= add
        if left or any(int(cap_msat[e]) < a for e, a in load.items()):
            return None
        return kept


def _capacities(
    request: RouteInput, ctx: RoutingContext, s: int, unit: int, htlcs_per_channel: int
) -> tuple[B, I64]:
    """Edges that may carry flow at all, and what each may carry (msat).

    Common masks, CLTV delta, ``htlc_min <= amount``, and room for one flow unit;
    a channel carries at most ``htlcs_per_channel * htlc_max`` and ``ctx.max_msat``.
    """
    g = ctx.graph
    amount = request.amount_msat
    base = (
        allowed_edges(request, ctx, None)
        & delay_allowed(request, g, s)
        & (g.htlc_min_msat <= amount)
    )
    htlc_cap = g.htlc_max_msat
    if htlcs_per_channel > 1:
        big = g.htlc_max_msat > np.iinfo(np.int64).max // htlcs_per_channel
        htlc_cap = np.where(
            big, np.iinfo(np.int64).max, g.htlc_max_msat * np.where(big, 1, htlcs_per_channel)
        )
    cap_msat = np.minimum(ctx.max_msat, htlc_cap)
    # exact hop amounts also carry downstream fees; no margin is kept for them up
    # front (mainnet fees are tiny and capacities often equal round amounts):
    # the exact check after building routes shrinks what overflows and re-solves
    cap_msat = np.where(base, np.maximum(cap_msat, 0), 0)
    base &= cap_msat >= unit
    return base, cap_msat
