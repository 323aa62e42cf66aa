"""Omniscient oracles for the benchmark: what was possible with the TRUE liquidity.

The simulator hides the liquidity of every half-channel from the payer; the
benchmark shows it to these functions only, to tell a strategy's failure on
an impossible payment from a failure on a possible one, and to price the
cheapest way the amount could have gone.

Both oracles run on the same per-half-channel capacity (:func:`oracle_capacity_msat`):

* only half-channels that gossip marks enabled, with ``htlc_min_msat <= amount``;
* at most the liquidity the sending side truly holds;
* at most ``maxparts * htlc_max_msat`` (a payment of ``maxparts`` parts cannot push
  more than that over one half-channel).

It stays a max-flow on liquidity: forwarding fees, CLTV limits and the part
count are otherwise ignored; the fee budget only rules out payments whose
min-cost fee lower bound exceeds it. So "feasible" is a slight
over-estimate (a payment the oracle calls feasible may be impossible with
``maxparts`` parts; one it calls infeasible is impossible for sure).

Min-cost fee approximation (documented in ``docs/bench.md``): the fee of
a half-channel is ``base + flow * ppm / 1e6`` when it carries flow, which is
concave (the base is a fixed charge). The solver needs linear costs, so the
base fee is prorated over the amount: a half-channel costs
``ppm + base_msat * 1e6 / amount_msat`` per msat. Since ``flow <= amount``
this under-charges the base, so the solver's optimum is a *lower bound* of the
true minimum (``fee_lower_bound_msat``). The reported oracle fee
(``fee_msat``) is the cheaper of two real flows: the optimal flow with the
base charged in full on every half-channel it uses, and the cheapest single
path that can carry the whole amount (scipy Dijkstra, base in full); so it is
at least the true minimum, and usually equal to it on mainnet, where most
base fees are 0. The payer's own first hop is free, and fees on fees are
ignored. The flow is solved in whole satoshis (capacities rounded down, the
amount rounded up) with costs in 1e-6 msat per satoshi.

Fees are priced by the cost model of :mod:`barq.routing` (the one every
strategy uses): :func:`~barq.routing.prorated_fee_ppm` for the solver,
:func:`~barq.routing.edge_fees_msat` for real fees, :func:`~barq.routing.fee_costs`
for the single path; the solvers are its flow and path primitives.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

from barq.errors import BarqError
from barq.graph import Graph
from barq.model import NodeId
from barq.routing import (
    FlowSolution,
    edge_fees_msat,
    fee_costs,
    max_flow,
    min_cost_flow,
    prorated_fee_ppm,
    shortest_path,
    topology,
    weighted,
)

__all__ = [
    "MinCostFee",
    "OracleResult",
    "max_flow_msat",
    "min_cost_fee",
    "oracle",
    "oracle_capacity_msat",
]

I64 = npt.NDArray[np.int64]

#: unit costs are clamped here (1e-3 msat per sat, i.e. 100 % fee) so that
#: OR-Tools' cost scaling cannot overflow int64 on mainnet-size graphs.
_MAX_UNIT_COST = 1_000_000


class MinCostFee(msgspec.Struct, frozen=True, kw_only=True):
    """The oracle's cheapest way to deliver the amount.

    ``fee_msat``: the cheaper of the optimal flow with base fees charged in
    full and the cheapest single path (an upper bound of the true minimum);
    ``fee_lower_bound_msat``: the solver's optimum with prorated base fees
    (a lower bound); ``fee_lower_bound_msat <= fee_msat``.
    """

    fee_msat: int
    fee_lower_bound_msat: int
    channels_used: int


class OracleResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an omniscient payer could do for one (source, destination, amount).

    ``feasible``: the max-flow reaches the amount and (when a fee budget was
    given) the min-cost lower bound fits in it; ``over_budget`` says the flow
    exists but even the lower bound of its fee exceeds the budget.
    """

    max_flow_msat: int
    feasible: bool
    fee_msat: int | None = None
    fee_lower_bound_msat: int | None = None
    over_budget: bool = False


def oracle_capacity_msat(
    graph: Graph, liquidity_msat: npt.ArrayLike, *, amount_msat: int, maxparts: int
) -> I64:
    """Per half-channel, what the oracles may push over it (see the module doc).

    Args:
        graph: the graph the payment runs on.
        liquidity_msat: per half-channel (row of ``graph``), the liquidity the
            sending side truly holds.
        amount_msat: the payment amount (half-channels with a larger ``htlc_min`` are unusable).
        maxparts: the payment's part limit (>= 1).

    Returns:
        int64 array, one entry per half-channel, ``0`` for unusable ones.

    Raises:
        BarqError: ``liquidity_msat`` does not have one entry per half-channel.
    """
    liq = np.asarray(liquidity_msat, dtype=np.int64)
    if liq.shape != (graph.num_edges,):
        raise BarqError(
            f"oracle: liquidity has shape {liq.shape}, expected ({graph.num_edges},) "
            "(one entry per half-channel)"
        )
    parts = max(1, int(maxparts))
    per_parts = np.where(
        graph.htlc_max_msat > (np.iinfo(np.int64).max // parts),
        np.iinfo(np.int64).max,
        graph.htlc_max_msat * parts,
    )
    cap = np.minimum(np.maximum(liq, 0), per_parts)
    usable = graph.enabled & (graph.htlc_min_msat <= amount_msat)
    return np.where(usable, cap, 0).astype(np.int64)


def _node(graph: Graph, node: NodeId, what: str) -> int:
    i = graph.node_index.get(node)
    if i is None:
        raise BarqError(f"oracle: {what} {node} is not in the graph")
    return i


def max_flow_msat(
    graph: Graph, capacity_msat: npt.ArrayLike, source: NodeId, destination: NodeId
) -> int:
    """Maximum flow (msat) from ``source`` to ``destination`` over ``capacity_msat``.

    Uses :func:`barq.routing.max_flow` (OR-Tools ``SimpleMaxFlow`` on int64
    capacities); half-channels with zero capacity are left out.

    Raises:
        BarqError: an endpoint is not in the graph, or the solver failed.
    """
    s = _node(graph, source, "source")
    t = _node(graph, destination, "destination")
    return max_flow(graph.src, graph.dst, np.asarray(capacity_msat, dtype=np.int64), s, t)


def _solve_mcf(
    graph: Graph, keep: I64, cap_sat: I64, s: int, t: int, amount_msat: int, scale: int
) -> FlowSolution:
    """The min-cost flow of the amount (in sat) over rows ``keep``, costs at ``scale``."""
    amount_sat = -(-amount_msat // 1000)
    tails = graph.src[keep].astype(np.int32)
    heads = graph.dst[keep].astype(np.int32)
    # cost unit: 1/scale of 1e-3 msat per sat, so ``ppm`` maps exactly; base prorated
    cost = np.minimum(prorated_fee_ppm(graph, keep, amount_msat, scale), _MAX_UNIT_COST * scale)
    cost = np.where(tails == s, 0, cost).astype(np.int64)  # our own first hop is free
    return min_cost_flow(tails, heads, cap_sat[keep], cost, s, t, amount_sat)


def _cheapest_single_path(
    graph: Graph, cap_msat: I64, source: NodeId, s: int, t: int, amount_msat: int
) -> int | None:
    """Fee of the cheapest single path that can carry the whole amount (``None``: none)."""
    if not np.any(cap_msat >= amount_msat):
        return None
    cost = np.where(cap_msat >= amount_msat, fee_costs(graph, source, amount_msat), np.inf)
    path = shortest_path(weighted(topology(graph), cost), s, t)
    if path is None:
        return None
    rows = np.asarray(path, dtype=np.int64)
    return edge_fees_msat(graph, rows, np.full(len(path), amount_msat, dtype=np.int64), s)


def min_cost_fee(
    graph: Graph,
    capacity_msat: npt.ArrayLike,
    source: NodeId,
    destination: NodeId,
    amount_msat: int,
) -> MinCostFee | None:
    """The cheapest way found to deliver ``amount_msat`` over ``capacity_msat`` (module doc).

    ``fee_msat`` is the smaller of the fee (base in full) of the optimal
    prorated-base min-cost flow and the fee of the cheapest single path that
    can carry the whole amount: both are real flows.

    Returns:
        ``None`` when the amount cannot flow (in whole satoshis), else the fee.

    Raises:
        BarqError: an endpoint is not in the graph, or the solver failed for
            another reason than infeasibility.
    """
    s = _node(graph, source, "source")
    t = _node(graph, destination, "destination")
    if amount_msat <= 0 or s == t:
        return MinCostFee(fee_msat=0, fee_lower_bound_msat=0, channels_used=0)
    cap = np.asarray(capacity_msat, dtype=np.int64)
    cap_sat = cap // 1000
    keep = np.flatnonzero(cap_sat > 0)
    if keep.size == 0:
        return None
    solved = _solve_mcf(graph, keep, cap_sat, s, t, amount_msat, 1000)
    if solved.status == "bad_cost_range":  # finer costs first; coarser if OR-Tools fears overflow
        solved = _solve_mcf(graph, keep, cap_sat, s, t, amount_msat, 1)
        scale = 1
    else:
        scale = 1000
    if solved.status == "infeasible":
        return None
    if solved.flows is None:
        raise BarqError(f"oracle: min-cost-flow solver answered {solved.status}")
    used = np.flatnonzero(solved.flows > 0)
    fee = edge_fees_msat(graph, keep[used], solved.flows[used] * 1000, s)
    optimum = solved.cost / (1000 * scale)
    single = _cheapest_single_path(graph, cap, source, s, t, amount_msat)
    best = fee if single is None else min(fee, single)
    lower = min(math.ceil(optimum - 1e-9), best)
    return MinCostFee(fee_msat=best, fee_lower_bound_msat=lower, channels_used=int(used.size))


def oracle(
    graph: Graph,
    liquidity_msat: npt.ArrayLike,
    source: NodeId,
    destination: NodeId,
    amount_msat: int,
    *,
    maxparts: int,
    maxfee_msat: int | None = None,
) -> OracleResult:
    """Max-flow feasibility and (when the flow exists) the min-cost fee, with the true liquidity.

    Args:
        maxfee_msat: the payment's fee budget; when given, a payment whose
            min-cost fee *lower bound* exceeds it is infeasible (no flow at all
            can pay it within budget).

    Raises:
        BarqError: bad input (see :func:`oracle_capacity_msat`, :func:`max_flow_msat`).
    """
    cap = oracle_capacity_msat(graph, liquidity_msat, amount_msat=amount_msat, maxparts=maxparts)
    flow = max_flow_msat(graph, cap, source, destination)
    if flow < amount_msat:
        return OracleResult(max_flow_msat=flow, feasible=False)
    mc = min_cost_fee(graph, cap, source, destination, amount_msat)
    over = mc is not None and maxfee_msat is not None and mc.fee_lower_bound_msat > maxfee_msat
    return OracleResult(
        max_flow_msat=flow,
        feasible=not over,
        fee_msat=None if mc is None else mc.fee_msat,
        fee_lower_bound_msat=None if mc is None else mc.fee_lower_bound_msat,
        over_budget=over,
    )
