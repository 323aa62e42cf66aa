"""``dijkstra``: the cheapest single path by fee plus CLTV risk (CLN ``getroute``).

This is the reference single-path strategy: :class:`~barq.routing.PathStrategy`
owns masks, Dijkstra, exact route building, verification and budgets; the
cost model (:class:`~barq.routing.CostParams`) prices each half-channel, here
with no weight on success probability.

Knowledge used: gossip policy (fees, CLTV deltas, htlc limits) and only the
hard liquidity bound ``ctx.max_msat`` (as a mask), not the probabilities.
Does not split: the supervisor halves the amount when no route fits (down to
``min_part_msat``).
"""

from __future__ import annotations

from typing import ClassVar

from barq.routing import CostParams, PathStrategy

__all__ = ["DIJKSTRA_PARAMS", "DijkstraStrategy"]

#: fee + CLTV risk at CLN's riskfactor 10, no probability penalty
DIJKSTRA_PARAMS = CostParams(penalty_ppm=0.0, penalty_base_msat=0)


class DijkstraStrategy(PathStrategy):
    """Cheapest path: ``cost(e) = fee_e(amount) + amount * cltv_delta_e * riskfactor / 100 / year``.

    ``riskfactor`` is CLN's (percent per year, default 10; ``year`` =
    52,596 blocks): with it one block of CLTV on 1 BTC weighs about 190 sat.
    Fee and risk are zero on our own first hop.
    """

    name: ClassVar[str] = "dijkstra"
    description: ClassVar[str] = "cheapest single path by fee + CLTV risk (CLN getroute)"
    default_params: ClassVar[CostParams] = DIJKSTRA_PARAMS
