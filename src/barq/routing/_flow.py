"""Flow primitives: a pruned flow network, OR-Tools max flow and min-cost flow, decomposition.

Used by ``mincostflow`` (and the bench oracle). Capacities, costs and flows
are integers (OR-Tools); callers choose the unit (msat, sat, ``amount / 1000``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.graph.python import max_flow as _max_flow
from ortools.graph.python import min_cost_flow as _min_cost_flow

from barq.errors import BarqError

__all__ = [
    "FlowNetwork",
    "FlowSolution",
    "decompose_flow",
    "flow_network",
    "max_flow",
    "min_cost_flow",
]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class FlowNetwork:
    """A subset of a graph's half-channels renumbered for a solver.

    Attributes:
        edges: rows of the graph kept (local edge ``k`` is graph row ``edges[k]``).
        node_of: graph node index of each local node.
        tails, heads: local node numbers of each local edge's ends.
        num_nodes: local nodes (the ends of ``edges``, plus ``s`` and ``t``).
        s, t: local numbers of the source and the sink.
    """

    edges: I64
    node_of: I64
    tails: I64
    heads: I64
    num_nodes: int
    s: int
    t: int


def flow_network(src: I32, dst: I32, edges: I64, s: int, t: int) -> FlowNetwork:
    """The network of graph rows ``edges`` (ends ``src``/``dst``) between nodes ``s`` and ``t``."""
    ends = np.concatenate([[s, t], src[edges], dst[edges]])
    nodes, inv = np.unique(ends, return_inverse=True)
    k = len(edges)
    return FlowNetwork(
        edges=edges,
        node_of=nodes,
        tails=inv[2 : 2 + k].astype(np.int64),
        heads=inv[2 + k :].astype(np.int64),
        num_nodes=len(nodes),
        s=int(inv[0]),
        t=int(inv[1]),
    )


def max_flow(tails: I32, heads: I32, caps: I64, s: int, t: int) -> int:
    """Maximum flow from node ``s`` to node ``t`` over arcs with capacities ``caps``.

    Arcs with zero capacity are left out; 0 when an end has no arc (~13 ms on mainnet).

    Raises:
        BarqError: the solver failed.
    """
    keep = np.flatnonzero(caps > 0)
    if keep.size == 0 or s == t:
        return 0
    try:
        mf = _max_flow.SimpleMaxFlow()
        mf.add_arcs_with_capacity(
            tails[keep].astype(np.int32), heads[keep].astype(np.int32), caps[keep].astype(np.int64)
        )
        if s >= mf.num_nodes() or t >= mf.num_nodes():
            return 0  # an end without any usable arc
        status = mf.solve(s, t)
        if status == mf.OPTIMAL:
            return int(mf.optimal_flow())
    except Exception as exc:  # pragma: no cover - solver internals
        raise BarqError(f"OR-Tools max flow failed: {exc}") from exc
    raise BarqError(f"OR-Tools max flow returned status {status}")


@dataclass(frozen=True, slots=True)
class FlowSolution:
    """What :func:`min_cost_flow` found.

    Attributes:
        status: ``"optimal"``, ``"infeasible"`` or ``"bad_cost_range"`` (OR-Tools
            fears an overflow: scale the costs down).
        flows: flow per arc (optimal only).
        cost: total cost of ``flows`` (optimal only).
        max_flow: when infeasible and asked for, the largest flow that fits.
    """

    status: str
    flows: I64 | None = None
    cost: int = 0
    max_flow: int = 0


def min_cost_flow(
    tails: I32 | I64,
    heads: I32 | I64,
    caps: I64,
    costs: I64,
    s: int,
    t: int,
    demand: int,
    *,
    num_nodes: int | None = None,
    max_flow_if_infeasible: bool = False,
) -> FlowSolution:
    """The cheapest flow of ``demand`` from ``s`` to ``t`` (OR-Tools ``SimpleMinCostFlow``).

    Args:
        tails, heads, caps, costs: the arcs (integer capacities and unit costs).
        s, t, demand: source, sink and the flow to send.
        num_nodes: nodes ``0..num_nodes-1`` all exist (isolated ones too); without
            it only the ends of the arcs exist, and an ``s``/``t`` without arcs
            is infeasible.
        max_flow_if_infeasible: when infeasible, also find the largest flow.

    Raises:
        BarqError: the solver failed for another reason than those in :class:`FlowSolution`.
    """
    try:
        smcf = _min_cost_flow.SimpleMinCostFlow()
        if len(tails):
            smcf.add_arcs_with_capacity_and_unit_cost(
                np.asarray(tails).astype(np.int32), np.asarray(heads).astype(np.int32), caps, costs
            )
        if num_nodes is not None:
            supplies = np.zeros(num_nodes, dtype=np.int64)
            supplies[s] = demand
            supplies[t] = -demand
            smcf.set_nodes_supplies(np.arange(num_nodes, dtype=np.int32), supplies)
        else:
            if s >= smcf.num_nodes() or t >= smcf.num_nodes():
                return FlowSolution(status="infeasible")
            smcf.set_node_supply(s, demand)
            smcf.set_node_supply(t, -demand)
        status = smcf.solve()
        if status == smcf.OPTIMAL:
            flows = np.asarray(smcf.flows(np.arange(len(tails), dtype=np.int32)), dtype=np.int64)
            return FlowSolution(status="optimal", flows=flows, cost=int(smcf.optimal_cost()))
        if status == smcf.INFEASIBLE:
            if not max_flow_if_infeasible:
                return FlowSolution(status="infeasible")
            smcf.solve_max_flow_with_min_cost()
            return FlowSolution(status="infeasible", max_flow=int(smcf.maximum_flow()))
        if status == smcf.BAD_COST_RANGE:
            return FlowSolution(status="bad_cost_range")
    except Exception as exc:  # pragma: no cover - solver internals
        raise BarqError(f"OR-Tools min-cost flow failed: {exc}") from exc
    raise BarqError(f"OR-Tools min-cost flow returned status {status}")


def decompose_flow(net: FlowNetwork, edge_flow: I64) -> list[tuple[list[int], int]]:
    """Greedy path decomposition of a flow from ``net.s`` to ``net.t``.

    Follows the largest remaining flow out of each node; cycles met on the way
    are cancelled.

    Returns:
        ``[(local edge indexes, flow)]``, one entry per path.

    Raises:
        BarqError: the flow is not conserved (a dead end before ``t``).
    """
    rem = edge_flow.copy()
    out_edges: dict[int, list[int]] = defaultdict(list)
    for k in np.flatnonzero(rem > 0).tolist():
        out_edges[int(net.tails[k])].append(k)
    paths: list[tuple[list[int], int]] = []
    guard = 0
    while guard < 100_000:
        guard += 1
        outs = [k for k in out_edges[net.s] if rem[k] > 0]
        if not outs:
            break
        node = net.s
        path: list[int] = []
        seen = {node: 0}
        while node != net.t:
            cand = [k for k in out_edges[node] if rem[k] > 0]
            if not cand:  # flow conservation broken: cannot happen with a solver answer
                raise BarqError("flow decomposition reached a dead end")
            k = max(cand, key=lambda j: (int(rem[j]), -j))
            path.append(k)
            node = int(net.heads[k])
            if node in seen:  # a cycle: cancel it and continue from there
                cyc = path[seen[node] :]
                m = min(int(rem[j]) for j in cyc)
                for j in cyc:
                    rem[j] -= m
                del path[seen[node] :]
                seen = {n: i for n, i in seen.items() if i <= seen[node]}
                continue
            seen[node] = len(path)
        amount = min(int(rem[k]) for k in path)
        for k in path:
            rem[k] -= amount
        paths.append((path, amount))
    return paths
