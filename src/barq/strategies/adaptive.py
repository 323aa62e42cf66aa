"""``adaptive`` (the default): plan cheap, weigh probability more only where it is needed.

The cost of a flow is ``-ln P(success) + fees / penalty_ppm`` (``mincostflow``'s
cost model, :class:`~barq.routing.CostParams`): a small ``penalty_ppm`` makes
fees dominate (cheap routes, more failures), a large one probability.
``mincostflow`` fixes it at 2,000 ppm, ``cheapflow`` at 200 ppm; this strategy
climbs a ladder instead, for every request:

1. Solve the flow with the cheapest weight, ``penalty_ppm``.
2. If the whole set of routes is at least ``min_probability`` likely under
   what the estimator knows now (:attr:`~barq.model.Route.probability`, the
   uniform model of the total each half-channel carries), send it.
3. Otherwise multiply the weight by ``growth`` and solve again, up to
   ``steps`` weights; the last plan is sent whatever its probability.

The supervisor asks again only for the amount that failed, and by then the
estimator knows where the cheap routes ran dry: the cheap plan for that
remainder is less likely, so the weight grows round after round exactly
where the cheap channels proved short, while the parts that went through
kept their low fees. A network that can carry the amount at all (max flow)
does not depend on the weight: such a "no route" ends the ladder at once.
"""

from __future__ import annotations

import math
from typing import ClassVar

import msgspec
import numpy as np

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.model import Route, RouteInput
from barq.routing import RoutingContext
from barq.strategies.mincostflow import MinCostFlowParams, MinCostFlowStrategy

__all__ = ["ADAPTIVE_PARAMS", "AdaptiveParams", "AdaptiveStrategy"]


class AdaptiveParams(MinCostFlowParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``mincostflow``'s numbers (``penalty_ppm`` is the first, cheapest weight) plus the ladder.

    Attributes:
        growth: factor between two weights of the ladder (``penalty_ppm * growth**k``).
        steps: how many weights are tried at most (1: plain ``mincostflow`` at ``penalty_ppm``).
        min_probability: a plan at least this likely (product over its routes) is sent.
    """

    growth: float = 10.0
    steps: int = 3
    failures_per_step: int = 20
    widen_over_ppm: float = 300.0
    wide_slacks: tuple[int, ...] = (3,)


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
        failures = learnt_failures(ctx)
        first = min(len(self._ladder) - 1, failures // max(1, p.failures_per_step))
        error: RouteNotFound | RouteTooExpensive | None = None
        for k in range(first, len(self._ladder)):
            ctx.check_deadline()
            try:
                return self._solve(k, request, ctx)
            except RouteNotFound as exc:
                if _short(exc, request):
                    raise
                error = exc
            except RouteTooExpensive as exc:
                error = exc
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
_LADDER_ONLY = ("growth", "steps", "failures_per_step", "widen_over_ppm", "wide_slacks")


def _cost(routes: list[Route], weight_msat: float) -> float:
    """A plan's cost in units of ``-ln P``: ``fees / weight - ln P`` (``inf`` if P is 0)."""
    p = _probability(routes)
    fee = sum(r.fee_msat for r in routes)
    return math.inf if p <= 0.0 else fee / weight_msat - math.log(p)


def learnt_failures(ctx: RoutingContext) -> int:
    """Half-channels the estimator knows to hold less than their capacity (failures seen).

    Counted on the bound the estimator learnt (:attr:`RoutingContext.learnt_max_msat`),
    not on ``max_msat``: the router also caps ``max_msat`` at what free HTLC slots
    carry (30 x ``htlc_max``, 1,667 half-channels of the 2024 mainnet snapshot),
    which is no failure. Our own channels (known exactly, ``min == max``) do not count.
    """
    g = ctx.graph
    known_max = (
        ctx.max_msat + ctx.inflight_msat if ctx.learnt_max_msat is None else ctx.learnt_max_msat
    )
    return int(np.count_nonzero((known_max < g.capacity_msat) & (ctx.min_msat < ctx.max_msat)))


def _probability(routes: list[Route]) -> float:
    """The plan's success probability: the product of its routes' (unknown counts as 0)."""
    return math.prod(r.probability or 0.0 for r in routes)


def _short(exc: RouteNotFound, request: RouteInput) -> bool:
    """The max flow is below the amount: no weight can change that."""
    found = exc.data.get("max_flow_msat")
    return isinstance(found, int) and found < request.amount_msat
