"""``probabilistic``: the single path that best trades fees against success probability.

Knowledge used: the liquidity bounds ``ctx.min_msat``/``ctx.max_msat`` (the
uniform model of :func:`~barq.strategies.base.success_probability`) plus fees
and CLTV risk as in ``dijkstra``. Does not split: the supervisor halves the
amount when no route fits (down to ``min_part_msat``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from barq.model import RouteInput
from barq.strategies.base import (
    DEFAULT_RISKFACTOR,
    F64,
    PathStrategy,
    RoutingContext,
    fee_costs,
    neg_log_success,
    risk_costs,
)

__all__ = ["ProbabilisticStrategy"]


class ProbabilisticStrategy(PathStrategy):
    """Minimise ``fee + risk + penalty(amount) * -ln P_e(amount)`` summed over the path.

    ``P_e`` is the uniform-liquidity success probability of the half-channel.
    Since ``-ln`` of a product is the sum of ``-ln``, the path minimises
    ``fees + penalty * -ln P(path)``. The penalty, in msat per unit of
    ``-ln P``, grows with the amount like LDK's
    ``liquidity_penalty_amount_multiplier_msat`` (and Pickhardt's ``mu``)::

        penalty = penalty_base_msat + amount_msat * penalty_ppm / 1e6

    With the defaults (1,000 msat + 2,000 ppm) doubling the success probability of a
    100,000 sat payment (``-ln 0.5 = 0.69``) is worth paying about 139 sat
    (1,390 ppm) more in fees: probability dominates at mainnet's typical fee
    rates (median 1 ppm) yet a fee ten times larger is not paid for a
    marginal gain. The fee budget still binds: an over-budget path makes the
    search weigh fees more (see :class:`PathStrategy`).
    """

    name: ClassVar[str] = "probabilistic"
    description: ClassVar[str] = (
        "single most probable path (uniform liquidity model) traded against fees"
    )
    penalty_base_msat: ClassVar[int] = 1_000
    penalty_ppm: ClassVar[float] = 2_000
    #: CLN's ``riskfactor`` (annual %) pricing CLTV deltas, as in ``dijkstra``
    riskfactor: ClassVar[float] = DEFAULT_RISKFACTOR

    def __init__(
        self, *, penalty_ppm: float | None = None, riskfactor: float | None = None
    ) -> None:
        """Weights default to the class attributes; ``mincostflow`` passes its own so
        that its single-path answers trade fees against probability as its flows do."""
        self._penalty_ppm = self.penalty_ppm if penalty_ppm is None else penalty_ppm
        self._riskfactor = self.riskfactor if riskfactor is None else riskfactor

    def penalty_msat(self, amount_msat: int) -> float:
        """msat charged per unit of ``-ln P`` for ``amount_msat``."""
        return self.penalty_base_msat + amount_msat * self._penalty_ppm / 1e6

    def edge_costs(self, request: RouteInput, ctx: RoutingContext, amount_msat: int) -> F64:
        g = ctx.graph
        nlp = neg_log_success(ctx, amount_msat)
        cost = (
            fee_costs(g, request.source, amount_msat)
            + risk_costs(g, request.source, amount_msat, self._riskfactor)
            + self.penalty_msat(amount_msat) * nlp
        )
        out: F64 = np.where(np.isfinite(nlp), cost, np.inf)
        return out
