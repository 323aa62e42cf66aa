"""``probabilistic``: the single path that best trades fees against success probability.

Knowledge used: the liquidity bounds ``ctx.min_msat``/``ctx.max_msat`` (the
uniform model of :func:`~barq.routing.success_probability`) plus fees and
CLTV risk as in ``dijkstra``. Does not split: the supervisor halves the
amount when no route fits (down to ``min_part_msat``).
"""

from __future__ import annotations

from typing import ClassVar

from barq.routing import CostParams, PathStrategy

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
    search weigh fees more (see :class:`~barq.routing.PathStrategy`).
    ``mincostflow`` builds one with its own :class:`~barq.routing.CostParams`
    so that its single-path answers trade fees against probability as its
    flows do.
    """

    name: ClassVar[str] = "probabilistic"
    description: ClassVar[str] = (
        "single most probable path (uniform liquidity model) traded against fees"
    )
    default_params: ClassVar[CostParams] = CostParams()
