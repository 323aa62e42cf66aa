"""The strategy interface, and the base class of single-path strategies."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import msgspec
import numpy as np
import numpy.typing as npt

from barq.model import Route, RouteInput
from barq.routing._context import RoutingContext
from barq.routing._cost import CostParams
from barq.routing._search import find_path

__all__ = ["PathStrategy", "Strategy"]

F64 = npt.NDArray[np.float64]


@runtime_checkable
class Strategy(Protocol):
    """A routing strategy: pure and synchronous (no I/O, no awaits), in the style of
    renepay's ``mcf.c``: it maps *graph + liquidity knowledge + request* to routes.

    The router actor calls it (in a worker thread, with a deadline) and nothing
    else does. Build one with no arguments for its defaults, or with a
    ``params`` Struct of its own type for other numbers.

    Class attributes:
        name: registry key (``strategy=NAME`` in ``barqpay``).
        description: one line for ``barqstrategies``.
        splits: True when :meth:`find_routes` may return several routes that
            together deliver ``request.amount_msat`` (the supervisor then asks
            it for the whole remaining amount); False when it always returns
            one route (the supervisor splits adaptively by halving).
        min_part_msat: adaptive splitting floor: when no route is found for
            an amount, the supervisor halves it while the halves stay at or
            above this (``None``: never split, e.g. ``singlepath``).
        halve_on_failure: when a part fails for liquidity, retry its amount
            as two halves (CLN ``pay``'s presplit behaviour) instead of asking
            for the whole amount again.

    Attributes:
        params: the strategy's tunable numbers, one frozen :class:`msgspec.Struct`
            (listed with their values by ``barqstrategies``).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    splits: ClassVar[bool]
    min_part_msat: ClassVar[int | None]
    halve_on_failure: ClassVar[bool]

    @property
    def params(self) -> msgspec.Struct: ...

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """Routes from ``request.source`` to ``request.destination``.

        Contract: the routes' ``amount_msat`` add up to exactly
        ``request.amount_msat``; there are at most ``request.maxparts``; their
        fees add up to at most ``request.maxfee_msat``; each route's ``delay``
        is at most ``request.maxdelay``; each hop respects the channel's
        ``htlc_min``/``htlc_max``; excluded or unusable half-channels are not used.

        Raises:
            barq.errors.RouteNotFound: no routes fit (205).
            barq.errors.RouteTooExpensive: routes exist but cost more than
                ``maxfee_msat`` or exceed ``maxdelay`` (206).
        """
        ...


class PathStrategy:
    """Base of single-path strategies: set ``default_params``, or override :meth:`edge_costs`.

    The base class owns the path machinery (:func:`~barq.routing.find_path`):
    it masks the half-channels that cannot carry the amount (unusable, disabled,
    excluded, htlc limits, ``ctx.max_msat``, CLTV delta beyond ``maxdelay``),
    runs scipy's Dijkstra on :meth:`edge_costs` (parallel channels: the cheapest
    one per node pair), builds the exact route with :func:`~barq.routing.build_route`
    and verifies it (htlc limits and liquidity with the real hop amounts, fee
    budget, ``maxdelay``). A half-channel that fails the exact check is banned
    and the search repeated; a route over budget makes the search weigh fees
    (or CLTV) more, a few times, before giving up with
    :class:`~barq.errors.RouteTooExpensive`.

    The default :meth:`edge_costs` is the cost model
    (:meth:`CostParams.edge_costs`: fee + CLTV risk + penalty x ``-ln P``) with
    :attr:`params`. Every route returned carries ``probability`` (uniform model
    on ``[ctx.min_msat, ctx.max_msat]`` with the exact hop amounts).

    Subclasses set ``name`` and ``description`` and may change the other
    class attributes (see :class:`Strategy`).

    Args:
        params: the cost weights (default: ``default_params``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    splits: ClassVar[bool] = False
    min_part_msat: ClassVar[int | None] = 1_000_000
    halve_on_failure: ClassVar[bool] = False
    #: the weights a strategy built without ``params`` uses
    default_params: ClassVar[CostParams] = CostParams()

    def __init__(self, params: CostParams | None = None) -> None:
        self._params = self.default_params if params is None else params

    @property
    def params(self) -> CostParams:
        """The cost weights this instance prices with."""
        return self._params

    def edge_costs(self, request: RouteInput, ctx: RoutingContext, amount_msat: int) -> F64:
        """Cost (>= 0, any unit consistent across edges) of sending ``amount_msat`` over each
        half-channel; ``inf``/``nan`` forbid an edge.

        Only edges the base class allows are looked at, so this need not repeat
        the masks. Must be vectorised (one float64 array of ``graph.num_edges``).
        """
        return self._params.edge_costs(ctx, request.source, amount_msat)

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        """One route delivering ``request.amount_msat`` (see :meth:`Strategy.find_routes`)."""
        return [self.find_route(request, ctx)]

    def find_route(
        self,
        request: RouteInput,
        ctx: RoutingContext,
        *,
        amount_msat: int | None = None,
        maxfee_msat: int | None = None,
    ) -> Route:
        """The cheapest route (by :meth:`edge_costs`) for ``amount_msat`` under ``maxfee_msat``.

        Args:
            request: the question (source, destination, exclusions, limits).
            ctx: liquidity knowledge.
            amount_msat: defaults to ``request.amount_msat``.
            maxfee_msat: defaults to ``request.maxfee_msat``.

        Raises:
            RouteNotFound: no path can carry the amount.
            RouteTooExpensive: paths exist but all exceed the fee budget or ``maxdelay``.
        """
        route, _ = find_path(
            self,
            request,
            ctx,
            request.amount_msat if amount_msat is None else amount_msat,
            request.maxfee_msat if maxfee_msat is None else maxfee_msat,
        )
        return route
