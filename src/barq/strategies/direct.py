"""``direct``: pay over one of our own channels with the destination (one hop, no fee).

Knowledge used: only our own channels' exact spendable amounts (for those
``ctx.min_msat == ctx.max_msat``). Does not split by itself; with
``min_part_msat`` set the supervisor halves an amount no single channel can
carry, which spreads a payment over several direct channels.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
import numpy as np

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.model import Route, RouteInput
from barq.routing import (
    RoutingContext,
    allowed_edges,
    build_route,
    endpoints,
    route_probability,
)

__all__ = ["DirectParams", "DirectStrategy"]


class DirectParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``direct`` has no tunable numbers: the best channel is the one with the most spendable."""


class DirectStrategy:
    """One hop over the usable direct channel with the most spendable that fits.

    Candidates: half-channels from ``request.source`` to
    ``request.destination`` that pass the common masks (usable, enabled, not
    excluded, htlc limits, ``amount <= ctx.max_msat``). Among them the one with
    the largest ``ctx.min_msat`` (ties: largest ``max_msat``, then lowest row)
    wins. The route pays no fee; its delay is ``request.final_cltv``.

    ``min_part_msat`` is 1,000 sat: a payment larger than any one direct
    channel can be halved by the supervisor and spread over several.
    """

    name: ClassVar[str] = "direct"
    description: ClassVar[str] = "one hop over our own channel with the destination"
    splits: ClassVar[bool] = False
    min_part_msat: ClassVar[int | None] = 1_000_000
    halve_on_failure: ClassVar[bool] = False

    def __init__(self, params: DirectParams | None = None) -> None:
        self._params = DirectParams() if params is None else params

    @property
    def params(self) -> DirectParams:
        return self._params

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """One single-hop route (see :meth:`barq.routing.Strategy.find_routes`).

        Raises:
            RouteNotFound: no usable direct channel, or none with enough spendable.
            RouteTooExpensive: ``final_cltv`` alone exceeds ``maxdelay``.
        """
        g = ctx.graph
        s, t = endpoints(request, g)
        direct = (g.src == s) & (g.dst == t)
        usable = direct & allowed_edges(request, ctx, None)
        if not usable.any():
            raise RouteNotFound(
                f"no usable direct channel with {request.destination}",
                data={"destination": request.destination, "channels": int(direct.sum())},
            )
        fits = usable & allowed_edges(request, ctx, request.amount_msat)
        if not fits.any():
            best = int(ctx.max_msat[usable].max())
            raise RouteNotFound(
                f"no direct channel with enough spendable for {request.amount_msat} msat "
                f"(largest {best} msat over {int(usable.sum())} usable channel(s))",
                data={"amount_msat": request.amount_msat, "largest_spendable_msat": best},
            )
        if request.final_cltv > request.maxdelay:
            raise RouteTooExpensive(
                f"final CLTV {request.final_cltv} exceeds maxdelay {request.maxdelay}",
                data={"maxdelay": request.maxdelay},
            )
        cand = np.flatnonzero(fits)
        # lexsort: last key is primary -> largest min, then largest max, then lowest row
        pick = int(cand[np.lexsort((cand, -ctx.max_msat[cand], -ctx.min_msat[cand]))[0]])
        route = build_route(g, [pick], request.amount_msat, request.final_cltv)
        return [Route(hops=route.hops, probability=route_probability(ctx, route, [pick]))]
