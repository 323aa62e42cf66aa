"""``adaptive`` (the default): plan cheap, weigh probability more only after failures.

The cost of a flow is ``-ln P(success) + fees / penalty_ppm`` (``mincostflow``'s
cost model, :class:`~barq.routing.CostParams`): a small ``penalty_ppm`` makes
fees dominate (cheap routes, more failures), a large one probability.
``mincostflow`` fixes it at 2,000 ppm, ``cheapflow`` at 200 ppm; this strategy
climbs a ladder of weights instead (``penalty_ppm * growth**k``: 20, 200, 2,000):

1. The rung is ``learnt_failures // failures_per_step`` (capped at the last):
   the half-channels whose upper bound the estimator has lowered after a
   failure (:func:`learnt_failures`, on :attr:`RoutingContext.learnt_max_msat`,
   not on ``max_msat``, which the router also caps at what free HTLC slots
   carry). A fresh payment plans at 20 ppm; the supervisor asks again only
   for the amount that failed, and each further failure moves that
   remainder's plan up the ladder.
2. A plan over ``widen_over_ppm`` of fees is solved again on the wider hop
   neighbourhood (``wide_slacks``) and the cheaper of the two by the rung's
   cost is kept (``mincostflow`` prunes to the shortest hop count + 1, which
   may hold only dear channels where one hop more is cheap).
3. No route, or over budget, at one rung: the next rung is tried. A network
   that cannot carry the amount at all (max flow) does not depend on the
   weight: such a "no route" ends the ladder at once.

Measured on the 2024 mainnet snapshot: README.md ("Default strategy and why").
"""

from __future__ import annotations

import math
from typing import ClassVar

import msgspec
import numpy as np
import numpy.typing as npt

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.model import Route, RouteInput
from barq.routing import RoutingContext, flow_probability
from barq.strategies.mincostflow import MinCostFlowParams, MinCostFlowStrategy

__all__ = ["ADAPTIVE_PARAMS", "AdaptiveParams", "AdaptiveStrategy"]


class AdaptiveParams(MinCostFlowParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``mincostflow``'s numbers (``penalty_ppm`` is the first, cheapest weight) plus the ladder.

    Attributes:
        growth: factor between two weights of the ladder (``penalty_ppm * growth**k``).
        steps: how many weights are tried at most (1: plain ``mincostflow`` at ``penalty_ppm``).
        failures_per_step: learnt failures (:func:`learnt_failures`) per rung climbed.
        widen_over_ppm: a plan whose fees exceed this share of the amount (ppm) is
            solved again on the wider neighbourhood ``wide_slacks``.
        wide_slacks: the hop slacks of that second solve (``mincostflow``'s ``slacks``).
        min_learnt_probability: a plan less likely than this on the half-channels
            that failed before (:func:`learnt_probability`) is solved again one rung up.
    """

    growth: float = 10.0
    steps: int = 3
    failures_per_step: int = 20
    widen_over_ppm: float = 300.0
    wide_slacks: tuple[int, ...] = (3,)
    min_learnt_probability: float = 0.5


#: cheap first (20 ppm of fees per unit of ``-ln P``), then 200, then 2,000 (``mincostflow``'s)
ADAPTIVE_PARAMS = AdaptiveParams(penalty_ppm=20.0, riskfactor=1.0)


class AdaptiveStrategy:
    """Min-cost flow whose fee weight falls, per request, until the plan is likely enough.

    Args:
        params: the numbers to use (default: :data:`ADAPTIVE_PARAMS`).
    """

    name: ClassVar[str] = "adaptive"
    description: ClassVar[str] = (
        "min-cost flow, cheapest first; more probability weight only when the plan is unlikely"
    )
    splits: ClassVar[bool] = True
    min_part_msat: ClassVar[int | None] = None
    halve_on_failure: ClassVar[bool] = False
    default_params: ClassVar[AdaptiveParams] = ADAPTIVE_PARAMS

    def __init__(self, params: AdaptiveParams | None = None) -> None:
        self._params = p = self.default_params if params is None else params
        flow = msgspec.structs.asdict(self._params)
        for extra in _LADDER_ONLY:
            del flow[extra]
        weights = [
            self._params.penalty_ppm * self._params.growth**k for k in range(max(1, p.steps))
        ]
        self._ladder = tuple(
            MinCostFlowStrategy(MinCostFlowParams(**{**flow, "penalty_ppm": w})) for w in weights
        )
        self._wide = tuple(
            MinCostFlowStrategy(
                MinCostFlowParams(**{**flow, "penalty_ppm": w, "slacks": p.wide_slacks})
            )
            for w in weights
        )

    @property
    def params(self) -> AdaptiveParams:
        """The numbers this instance solves with."""
        return self._params

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """Routes splitting ``request.amount_msat`` (see :meth:`Strategy.find_routes`).

        Raises:
            RouteNotFound: the network cannot carry the amount, or no weight gave routes.
            RouteTooExpensive: every weight tried gave routes over the budgets.
        """
        p = self._params
        learnt = learnt_mask(ctx)
        first = min(len(self._ladder) - 1, int(learnt.sum()) // max(1, p.failures_per_step))
        error: RouteNotFound | RouteTooExpensive | None = None
        plan: list[Route] | None = None  # the last plan that leans on failed channels
        for k in range(first, len(self._ladder)):
            ctx.check_deadline()
            try:
                routes = self._solve(k, request, ctx)
            except RouteNotFound as exc:
                if _short(exc, request) and plan is None:
                    raise
                error = exc
                continue
            except RouteTooExpensive as exc:
                error = exc
                continue
            if learnt_probability(ctx, learnt, routes) >= p.min_learnt_probability:
                return routes
            plan = routes
        if plan is not None:
            return plan
        assert error is not None
        raise error

    def _solve(self, k: int, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """Rung ``k``'s plan; a plan over ``widen_over_ppm`` of fees is solved again on
        the wider hop neighbourhood (``wide_slacks``) and the cheaper of the two by the
        rung's own cost (``fees / weight - ln P``) is kept: the narrow neighbourhood
        (shortest hop count + 1) may hold only dear channels where one hop more is cheap."""
        routes = self._ladder[k].find_routes(request, ctx)
        amount = request.amount_msat
        if sum(r.fee_msat for r in routes) * 1e6 <= self._params.widen_over_ppm * amount:
            return routes
        try:
            wide = self._wide[k].find_routes(request, ctx)
        except (RouteNotFound, RouteTooExpensive):
            return routes
        weight = self._ladder[k].params.penalty_ppm * 1e-6 * amount
        return min((routes, wide), key=lambda rs: _cost(rs, weight))


#: the fields of :class:`AdaptiveParams` that are not :class:`MinCostFlowParams`'
_LADDER_ONLY = (
    "growth",
    "steps",
    "failures_per_step",
    "widen_over_ppm",
    "wide_slacks",
    "min_learnt_probability",
)


def _cost(routes: list[Route], weight_msat: float) -> float:
    """A plan's cost in units of ``-ln P``: ``fees / weight - ln P`` (``inf`` if P is 0)."""
    p = _probability(routes)
    fee = sum(r.fee_msat for r in routes)
    return math.inf if p <= 0.0 else fee / weight_msat - math.log(p)


def learnt_failures(ctx: RoutingContext) -> int:
    """How many half-channels :func:`learnt_mask` marks (failures seen)."""
    return int(np.count_nonzero(learnt_mask(ctx)))


def learnt_mask(ctx: RoutingContext) -> npt.NDArray[np.bool_]:
    """Half-channels the estimator knows to hold less than their capacity (failures seen).

    Read on the bound the estimator learnt (:attr:`RoutingContext.learnt_max_msat`),
    not on ``max_msat``: the router also caps ``max_msat`` at what free HTLC slots
    carry (30 x ``htlc_max``, 1,667 half-channels of the 2024 mainnet snapshot),
    which is no failure. Our own channels (known exactly, ``min == max``) do not count.
    """
    g = ctx.graph
    known_max = (
        ctx.max_msat + ctx.inflight_msat if ctx.learnt_max_msat is None else ctx.learnt_max_msat
    )
    out: npt.NDArray[np.bool_] = (known_max < g.capacity_msat) & (ctx.min_msat < ctx.max_msat)
    return out


def learnt_probability(
    ctx: RoutingContext, learnt: npt.NDArray[np.bool_], routes: list[Route]
) -> float:
    """Success probability of what ``routes`` together put on the ``learnt`` half-channels
    (uniform in ``[min, max]``); 1.0 when they use none."""
    g = ctx.graph
    total: dict[int, int] = {}
    for route in routes:
        for hop in route.hops:
            e = g.edge(hop.channel, hop.direction)
            if e is not None and learnt[e]:
                total[e] = total.get(e, 0) + hop.amount_msat
    return flow_probability(ctx, list(total), total)


def _probability(routes: list[Route]) -> float:
    """The plan's success probability: the product of its routes' (unknown counts as 0)."""
    return math.prod(r.probability or 0.0 for r in routes)


def _short(exc: RouteNotFound, request: RouteInput) -> bool:
    """The max flow is below the amount: no weight can change that."""
    found = exc.data.get("max_flow_msat")
    return isinstance(found, int) and found < request.amount_msat
