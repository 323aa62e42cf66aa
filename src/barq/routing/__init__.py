"""The public toolkit for routing strategies: everything a strategy needs, nothing private.

A strategy imports from here (and from :mod:`barq.model`, :mod:`barq.errors`,
numpy/scipy/OR-Tools) and from nowhere else in Barq. The implementation lives
in private modules, re-exported below by concern (trio's layout: the names
report ``barq.routing`` as their home; ``tests/routing/test_exports.py``
guards the surface):

* **the question and the knowledge** — :class:`RoutingContext` (graph +
  liquidity bounds + what is usable, read-only, with a deadline);
* **the interface** — :class:`Strategy` (protocol), :class:`PathStrategy`
  (base of single-path strategies: write only :meth:`PathStrategy.edge_costs`,
  or only its :class:`CostParams`);
* **the cost model** (fee + CLTV risk + success probability, written once) —
  :class:`CostParams`, :func:`fee_costs`, :func:`risk_costs`,
  :func:`neg_log_success`, :func:`success_probability`,
  :func:`success_probabilities`, :func:`route_probability`,
  :func:`flow_probability`, :func:`nlp_pieces`, :func:`edge_fees_msat`,
  :func:`prorated_fee_rate`, :func:`prorated_fee_ppm`, :func:`risk_rate`,
  :func:`delay_block_weight`;
* **routes** — :func:`build_route` (exact hop amounts and delays),
  :func:`build_routes` (a set sent together, checked), :func:`check_hops`,
  :func:`htlc_max_parts` (cut a path's amount under its ``htlc_max``),
  :func:`reserve` / :func:`add_route_usage` (parts of one answer seeing each other);
* **paths** — :func:`endpoints`, :func:`allowed_edges`, :func:`delay_allowed`,
  :func:`topology`, :func:`weighted`, :func:`shortest_path`,
  :func:`distances`, :func:`find_path` (the whole single-path search);
* **flows** — :func:`flow_network`, :func:`max_flow`, :func:`min_cost_flow`,
  :func:`decompose_flow`.
"""

import contextlib

import msgspec

from barq.routing._context import RoutingContext
from barq.routing._cost import (
    BLOCKS_PER_YEAR,
    DEFAULT_RISKFACTOR,
    CostParams,
    delay_block_weight,
    edge_fees_msat,
    fee_costs,
    flow_probability,
    neg_log_success,
    nlp_pieces,
    prorated_fee_ppm,
    prorated_fee_rate,
    risk_costs,
    risk_rate,
    route_probability,
    success_probabilities,
    success_probability,
)
from barq.routing._flow import (
    FlowNetwork,
    FlowSolution,
    decompose_flow,
    flow_network,
    max_flow,
    min_cost_flow,
)
from barq.routing._masks import allowed_edges, delay_allowed, endpoints
from barq.routing._route import (
    HopProblem,
    add_route_usage,
    build_route,
    build_routes,
    check_hops,
    htlc_max_parts,
    reserve,
)
from barq.routing._search import EdgeCostModel, find_path
from barq.routing._strategy import F64, PathStrategy, Strategy
from barq.routing._topology import (
    EPSILON,
    Topology,
    Weighted,
    distances,
    shortest_path,
    topology,
    weighted,
)

__all__ = [
    "BLOCKS_PER_YEAR",
    "DEFAULT_RISKFACTOR",
    "EPSILON",
    "F64",
    "CostParams",
    "EdgeCostModel",
    "FlowNetwork",
    "FlowSolution",
    "HopProblem",
    "PathStrategy",
    "RoutingContext",
    "Strategy",
    "Topology",
    "Weighted",
    "add_route_usage",
    "allowed_edges",
    "build_route",
    "build_routes",
    "check_hops",
    "decompose_flow",
    "delay_allowed",
    "delay_block_weight",
    "distances",
    "edge_fees_msat",
    "endpoints",
    "fee_costs",
    "find_path",
    "flow_network",
    "flow_probability",
    "htlc_max_parts",
    "max_flow",
    "min_cost_flow",
    "neg_log_success",
    "nlp_pieces",
    "prorated_fee_ppm",
    "prorated_fee_rate",
    "reserve",
    "risk_costs",
    "risk_rate",
    "route_probability",
    "shortest_path",
    "success_probabilities",
    "success_probability",
    "topology",
    "weighted",
]


def _fixup_module_metadata() -> None:
    """Report ``barq.routing`` as the home of every class and function (trio's habit)."""
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
            continue  # msgspec resolves a Struct's annotations in its own module
        if getattr(obj, "__module__", "").startswith("barq.routing._"):
            with contextlib.suppress(AttributeError, TypeError):  # builtins, aliases
                obj.__module__ = __name__


_fixup_module_metadata()
