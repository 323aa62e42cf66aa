"""An example third-party Barq strategy: the path with the fewest hops.

Ties (paths of equal length) go to the path most likely to succeed under the
estimator's liquidity bounds. It imports only Barq's public toolkit
(:mod:`barq.routing`) and :mod:`barq.model`: :class:`~barq.routing.PathStrategy`
does the rest (masks for disabled/excluded channels, htlc limits and known
liquidity, Dijkstra, exact fees and CLTV, the fee budget). Installed, it is
found through the ``barq.strategies`` entry point in this package's
``pyproject.toml``.
"""

from __future__ import annotations

from typing import ClassVar

from barq.model import RouteInput
from barq.routing import F64, PathStrategy, RoutingContext, neg_log_success

__all__ = ["FewHopsStrategy"]


class FewHopsStrategy(PathStrategy):
    """Cost per half-channel: 1 hop, plus a little for each unit of ``-ln P(success)``."""

    name: ClassVar[str] = "fewhops"
    description: ClassVar[str] = "example plugin: fewest hops, then most likely to succeed"

    def edge_costs(self, request: RouteInput, ctx: RoutingContext, amount_msat: int) -> F64:
        cost: F64 = 1.0 + 0.1 * neg_log_success(ctx, amount_msat)
        return cost
