"""``dijkstra``: the cheapest single path by fee plus CLTV risk (CLN ``getroute``).

This is the reference single-path strategy: a new one is a copy of this file
with another :meth:`edge_costs` (see :class:`~barq.strategies.base.PathStrategy`,
which owns masks, Dijkstra, exact route building, verification and budgets).

Knowledge used: gossip policy (fees, CLTV deltas, htlc limits) and only the
hard liquidity bound ``ctx.max_msat`` (as a mask), not the probabilities.
Does not split: the supervisor halves the amount when no route fits (down to
``min_part_msat``).
"""

from __future__ import annotations

from typing import ClassVar

from barq.model import RouteInput
from barq.strategies.base import (
    DEFAULT_RISKFACTOR,
    F64,
    PathStrategy,
    RoutingContext,
    fee_costs,
    risk_costs,
)

__all__ = ["DijkstraStrategy"]


class DijkstraStrategy(PathStrategy):
    """Cheapest path: ``cost(e) = fee_e(amount) + amount * cltv_delta_e * riskfactor / 100 / year``.

    ``riskfactor`` is CLN's (percent per year, default 10; ``year`` =
    52,596 blocks): with it one block of CLTV on 1 BTC weighs about 190 sat.
    Fee and risk are zero on our own first hop.
    """

    name: ClassVar[str] = "dijkstra"
    description: ClassVar[str] = "cheapest single path by fee + CLTV risk (CLN getroute)"
    riskfactor: ClassVar[float] = DEFAULT_RISKFACTOR

    def edge_costs(self, request: RouteInput, ctx: RoutingContext, amount_msat: int) -> F64:
        g = ctx.graph
        return fee_costs(g, request.source, amount_msat) + risk_costs(
            g, request.source, amount_msat, self.riskfactor
        )
