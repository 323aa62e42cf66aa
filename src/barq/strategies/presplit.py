"""``presplit``: baseline modelling CLN ``pay``'s presplitter.

The amount is cut up front into equal parts of about 10,000 sat (at most
``request.maxparts``; bigger equal parts when the amount needs more), and
each part is routed by ``dijkstra``'s cost with the liquidity taken by the
earlier parts of the same call removed, so parts spread over the network.
A part that finds no route is halved in place (down to ``min_part_msat``,
within ``maxparts``). The fee budget is shared out in proportion to amounts,
what a part does not spend rolls over to the next.

Knowledge used: as ``dijkstra`` (fees, CLTV, hard bound ``ctx.max_msat``).
Splits (``splits=True``); a part failing in flight is retried as two halves
(``halve_on_failure``) down to 100 sat.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np

from barq.errors import RouteNotFound
from barq.model import Route, RouteInput
from barq.routing import (
    CostParams,
    RoutingContext,
    add_route_usage,
    endpoints,
    find_path,
    reserve,
)
from barq.strategies.dijkstra import DijkstraStrategy

__all__ = ["PresplitParams", "PresplitStrategy", "presplit_amounts"]


class PresplitParams(CostParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``dijkstra``'s cost weights plus the part size.

    Attributes:
        part_msat: target part size (CLN ``pay``'s presplit uses 10,000 sat).
    """

    penalty_ppm: float = 0.0
    penalty_base_msat: int = 0
    part_msat: int = 10_000_000


def presplit_amounts(amount_msat: int, part_msat: int, maxparts: int) -> list[int]:
    """Equal parts of about ``part_msat`` (at most ``maxparts``) adding up to ``amount_msat``.

    The first ``amount % n`` parts are 1 msat larger than the others.
    """
    n = max(1, min(-(-amount_msat // part_msat), maxparts))
    q, r = divmod(amount_msat, n)
    return [q + 1] * r + [q] * (n - r)


class PresplitStrategy:
    """Presplit into ~10,000 sat parts, each the cheapest path given the earlier parts."""

    name: ClassVar[str] = "presplit"
    description: ClassVar[str] = (
        "baseline (CLN pay): presplit into ~10k sat parts, each by cheapest fee"
    )
    splits: ClassVar[bool] = True
    min_part_msat: ClassVar[int | None] = 100_000
    halve_on_failure: ClassVar[bool] = True

    def __init__(self, params: PresplitParams | None = None) -> None:
        self._params = PresplitParams() if params is None else params
        self._path = DijkstraStrategy(self._params)

    @property
    def params(self) -> PresplitParams:
        return self._params

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """Routes for the presplit parts (see :meth:`barq.routing.Strategy.find_routes`).

        Raises:
            RouteNotFound: some part finds no route even after halving.
            RouteTooExpensive: some part's share of the fee budget (or ``maxdelay``)
                is exceeded by every route it has.
        """
        endpoints(request, ctx.graph)
        queue = deque(
            presplit_amounts(request.amount_msat, self._params.part_msat, request.maxparts)
        )
        floor = self.min_part_msat or 1
        used = np.zeros(ctx.graph.num_edges, dtype=np.int64)
        routes: list[Route] = []
        fee_left = request.maxfee_msat
        amount_left = request.amount_msat
        while queue:
            ctx.check_deadline()
            a = queue.popleft()
            share = fee_left * a // amount_left
            try:
                route, edges = find_path(self._path, request, reserve(ctx, used), a, share)
            except RouteNotFound as exc:
                half = a // 2
                if half >= floor and len(routes) + len(queue) + 2 <= request.maxparts:
                    queue.appendleft(a - half)
                    queue.appendleft(half)
                    continue
                raise RouteNotFound(
                    f"presplit: no route for a part of {a} msat after {len(routes)} part(s) "
                    f"routed: {exc.message}",
                    data={**exc.data, "part_msat": a},
                ) from exc
            add_route_usage(used, route, edges)
            routes.append(route)
            fee_left -= route.fee_msat
            amount_left -= a
        return routes
