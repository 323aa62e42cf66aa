"""Path machinery shared by the built-in strategies (private).

What lives here:

* :func:`allowed_edges` — the half-channels a request may use for an amount
  (the common contract of :meth:`Strategy.find_routes`);
* :class:`Topology` — per-graph static structure (rows sorted by node pair),
  computed once per :class:`~barq.graph.Graph` and cached;
* :func:`weighted` / :func:`shortest_path` / :func:`distances` — scipy
  ``csgraph`` Dijkstra on a cost vector. Two scipy pitfalls are handled here:
  explicit zeros in a sparse matrix mean "no edge" (every weight gets
  :data:`EPSILON` added) and duplicate entries of a CSR are *summed* (parallel
  channels are collapsed to the cheapest one per ``(src, dst)`` pair, and we
  remember which row it was);
* :func:`check_hops` — the exact per-hop verification of a built route;
* :func:`find_path` — the search loop behind :class:`~barq.strategies.base.PathStrategy`;
* :func:`reserve` — a context with liquidity used by earlier parts removed.

Nothing here does I/O; everything is deterministic.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from barq.errors import InvalidParams, RouteNotFound, RouteTooExpensive
from barq.graph import Graph
from barq.model import Route, RouteInput
from barq.strategies.base import (
    BLOCKS_PER_YEAR,
    DEFAULT_RISKFACTOR,
    RoutingContext,
    build_route,
    fee_costs,
    success_probability,
)

if TYPE_CHECKING:
    from barq.strategies.base import PathStrategy

__all__ = [
    "EPSILON",
    "HopProblem",
    "Topology",
    "Weighted",
    "add_route_usage",
    "allowed_edges",
    "check_hops",
    "delay_allowed",
    "distances",
    "endpoints",
    "find_path",
    "reserve",
    "route_probability",
    "shortest_path",
    "topology",
    "weighted",
]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Added to every Dijkstra weight: scipy drops explicit zeros (zero-fee edges would
#: vanish) and it doubles as a tiny per-hop tie-break (fewer hops win a tie).
EPSILON = 1e-3

#: Search attempts of :func:`find_path` (bans after exact checks + budget re-weighting).
MAX_ATTEMPTS = 24
#: Successive weights of the fee (or CLTV) term added when a route is over budget.
BUDGET_WEIGHTS = (1.0, 10.0, 100.0, 1e4, 1e6)


# -- endpoints and masks -------------------------------------------------------------------


def endpoints(request: RouteInput, graph: Graph) -> tuple[int, int]:
    """Node indexes of ``request.source`` and ``request.destination``.

    Raises:
        InvalidParams: non-positive amount or ``maxparts``.
        RouteNotFound: an end is not in the graph, they are the same node, or
            the destination is excluded.
    """
    if request.amount_msat <= 0:
        raise InvalidParams(f"amount must be positive, got {request.amount_msat} msat")
    if request.maxparts < 1:
        raise InvalidParams(f"maxparts must be at least 1, got {request.maxparts}")
    if request.destination in request.exclude_nodes:
        raise RouteNotFound(
            f"destination {request.destination} is excluded",
            data={"destination": request.destination},
        )
    s = graph.node_index.get(request.source)
    if s is None:
        raise RouteNotFound(
            f"source {request.source} has no channel in the graph", data={"source": request.source}
        )
    t = graph.node_index.get(request.destination)
    if t is None:
        raise RouteNotFound(
            f"destination {request.destination} is not in the graph",
            data={"destination": request.destination},
        )
    if s == t:
        raise RouteNotFound(
            "source and destination are the same node", data={"destination": request.destination}
        )
    return s, t


def allowed_edges(
    request: RouteInput,
    ctx: RoutingContext,
    amount_msat: int | None,
) -> B:
    """Half-channels that may carry ``amount_msat`` for this request.

    An edge is allowed when ``ctx.usable`` and ``graph.enabled``, it is not in
    ``request.exclude_channels``, neither end is in ``request.exclude_nodes``
    (the source is never excluded: it is us), and, when ``amount_msat`` is
    given, ``htlc_min <= amount <= htlc_max`` and ``amount <= ctx.max_msat``.
    CLTV limits are separate (:func:`delay_allowed`).
    """
    g = ctx.graph
    mask: B = ctx.usable & g.enabled
    if request.exclude_channels:
        mask = mask.copy()
        for sd in request.exclude_channels:
            e = g.edge_by_scid_dir(sd)
            if e is not None:
                mask[e] = False
    if request.exclude_nodes:
        idx = [
            g.node_index[n]
            for n in request.exclude_nodes
            if n in g.node_index and n != request.source
        ]
        if idx:
            bad = np.asarray(idx, dtype=np.int32)
            mask = mask & ~(np.isin(g.src, bad) | np.isin(g.dst, bad))
    if amount_msat is not None:
        mask = (
            mask
            & (g.htlc_min_msat <= amount_msat)
            & (g.htlc_max_msat >= amount_msat)
            & (ctx.max_msat >= amount_msat)
        )
    return mask


def delay_allowed(request: RouteInput, graph: Graph, source: int) -> B:
    """Edges whose CLTV delta alone does not break ``maxdelay`` (source edges: always)."""
    room = request.maxdelay - request.final_cltv
    out: B = (graph.cltv_delta <= room) | (graph.src == source)
    if room < 0:
        out[:] = False
    return out


# -- static topology -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Topology:
    """Rows of a graph grouped by ``(src, dst)`` pair (parallel channels share a group).

    Groups are numbered in ``(src, dst)`` order. Most groups hold one row
    (``single_rows``/``single_gid``); the rows of groups with parallel
    channels are listed group after group in ``multi_rows`` (group
    ``multi_gid[k]`` starts at ``multi_start[k]`` and has ``multi_count[k]`` rows).

    Attributes:
        graph: the graph this was computed from.
        gsrc, gdst: the node pair of each group.
    """

    graph: Graph
    gsrc: I32
    gdst: I32
    single_rows: I64
    single_gid: I64
    multi_rows: I64
    multi_gid: I64
    multi_start: I64
    multi_count: I64

    @property
    def num_groups(self) -> int:
        return len(self.gsrc)


_CACHE_SIZE = 4
_cache: OrderedDict[int, Topology] = OrderedDict()
#: the same topologies by the shape of their graph (:func:`_shape_key`)
_by_shape: OrderedDict[tuple[int, int, bytes], Topology] = OrderedDict()
_cache_lock = threading.Lock()


def _shape_key(graph: Graph) -> tuple[int, int, bytes]:
    """What a :class:`Topology` depends on: node count and the ``src``/``dst`` arrays (~1 ms)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(graph.src).tobytes())
    h.update(np.ascontiguousarray(graph.dst).tobytes())
    return graph.num_nodes, graph.num_edges, h.digest()


def _remember(cache: OrderedDict[Any, Topology], key: Any, topo: Topology) -> None:
    cache[key] = topo
    cache.move_to_end(key)
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def topology(graph: Graph) -> Topology:
    """The (cached) :class:`Topology` of ``graph`` (~10-20 ms on mainnet the first time).

    Cached by graph object and by shape: a new graph with the same nodes and
    half-channel endpoints (our channels' balances or policies overlaid on the
    same gossip, as every new runtime or ``listpeerchannels`` refresh makes)
    reuses the topology.
    """
    key = id(graph)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit.graph is graph:
            _cache.move_to_end(key)
            return hit
    shape = _shape_key(graph)
    with _cache_lock:
        same = _by_shape.get(shape)
        if same is not None:
            topo = replace(same, graph=graph)
            _remember(_cache, key, topo)
            _by_shape.move_to_end(shape)
            return topo
    n = graph.num_edges
    order = np.lexsort((graph.dst, graph.src)).astype(np.int64)
    ss = graph.src[order]
    sd = graph.dst[order]
    new = np.ones(n, dtype=np.bool_)
    if n:
        new[1:] = (ss[1:] != ss[:-1]) | (sd[1:] != sd[:-1])
    gstart = np.flatnonzero(new).astype(np.int64)
    gcount = np.diff(np.append(gstart, n)).astype(np.int64)
    group_of = (np.cumsum(new) - 1).astype(np.int64)
    single = np.repeat(gcount == 1, gcount)
    multi_pos = np.flatnonzero(~single)
    multi_g = group_of[multi_pos]
    mnew = np.ones(len(multi_pos), dtype=np.bool_)
    mnew[1:] = multi_g[1:] != multi_g[:-1]
    multi_start = np.flatnonzero(mnew).astype(np.int64)
    topo = Topology(
        graph=graph,
        gsrc=ss[gstart].astype(np.int32),
        gdst=sd[gstart].astype(np.int32),
        single_rows=order[single],
        single_gid=group_of[single],
        multi_rows=order[multi_pos],
        multi_gid=multi_g[multi_start],
        multi_start=multi_start,
        multi_count=np.diff(np.append(multi_start, len(multi_pos))).astype(np.int64),
    )
    with _cache_lock:
        _remember(_cache, key, topo)
        _remember(_by_shape, shape, topo)
    return topo


# -- weighted graphs and Dijkstra ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weighted:
    """A cost vector collapsed onto the topology: one CSR entry per usable node pair.

    Attributes:
        csr: ``num_nodes x num_nodes`` weights (cheapest edge + :data:`EPSILON`).
        chosen: per group, the row of its cheapest finite edge (``-1``: none).
        kept: group id of each CSR entry, in CSR order.
    """

    topo: Topology
    csr: Any
    chosen: I64
    kept: I64

    def edge_between(self, u: int, v: int) -> int:
        """Row of the edge the CSR uses from node ``u`` to node ``v``."""
        lo, hi = int(self.csr.indptr[u]), int(self.csr.indptr[u + 1])
        pos = lo + int(np.searchsorted(self.csr.indices[lo:hi], v))
        return int(self.chosen[self.kept[pos]])


def weighted(topo: Topology, cost: F64) -> Weighted:
    """Collapse ``cost`` (per edge row; ``inf`` = unusable) to a CSR matrix.

    Per ``(src, dst)`` pair the cheapest finite edge is kept (vectorised:
    group minimum with ``minimum.reduceat``, then the first row reaching it).
    """
    n_nodes = topo.graph.num_nodes
    ng = topo.num_groups
    chosen = np.full(ng, -1, dtype=np.int64)
    gmin = np.full(ng, np.inf)
    gmin[topo.single_gid] = cost[topo.single_rows]
    chosen[topo.single_gid] = topo.single_rows
    if len(topo.multi_rows):
        cm = cost[topo.multi_rows]
        mmin = np.minimum.reduceat(cm, topo.multi_start)
        gmin[topo.multi_gid] = mmin
        idx = np.flatnonzero(cm == np.repeat(mmin, topo.multi_count))
        # idx is sorted: the first hit of each group is where the group number changes
        hit_group = np.searchsorted(topo.multi_start, idx, side="right") - 1
        first = np.ones(len(idx), dtype=np.bool_)
        first[1:] = hit_group[1:] != hit_group[:-1]
        chosen[topo.multi_gid[hit_group[first]]] = topo.multi_rows[idx[first]]
    kept = np.flatnonzero(np.isfinite(gmin)).astype(np.int64)
    chosen[~np.isfinite(gmin)] = -1
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(topo.gsrc[kept], minlength=n_nodes))
    csr = csr_matrix((gmin[kept] + EPSILON, topo.gdst[kept], indptr), shape=(n_nodes, n_nodes))
    return Weighted(topo=topo, csr=csr, chosen=chosen, kept=kept)


def shortest_path(w: Weighted, source: int, target: int) -> list[int] | None:
    """Edge rows of the cheapest path ``source -> target`` in ``w``, or ``None``."""
    dist, pred = dijkstra(w.csr, directed=True, indices=source, return_predecessors=True)
    if not np.isfinite(dist[target]):
        return None
    path: list[int] = []
    v = target
    while v != source:
        u = int(pred[v])
        path.append(w.edge_between(u, v))
        v = u
    path.reverse()
    return path


def distances(w: Weighted, node: int, *, reverse: bool = False, hops: bool = False) -> F64:
    """Distances from ``node`` (or *to* it when ``reverse``), by cost or by hop count."""
    m = w.csr.T.tocsr() if reverse else w.csr
    out: F64 = np.asarray(
        dijkstra(m, directed=True, indices=node, unweighted=hops), dtype=np.float64
    )
    return out


# -- verification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HopProblem:
    """A hop of a built route that does not fit its half-channel with the exact amount."""

    edge: int
    amount_msat: int
    reason: str  # "htlc_min", "htlc_max" or "liquidity"
    overshoot_msat: int


def check_hops(
    graph: Graph,
    ctx: RoutingContext,
    route: Route,
    edges: Sequence[int],
    used_msat: I64 | None = None,
) -> HopProblem | None:
    """First hop whose exact amount breaks htlc limits or ``ctx.max_msat`` (minus ``used``)."""
    for hop, e in zip(route.hops, edges, strict=True):
        a = hop.amount_msat
        if a < int(graph.htlc_min_msat[e]):
            return HopProblem(e, a, "htlc_min", int(graph.htlc_min_msat[e]) - a)
        if a > int(graph.htlc_max_msat[e]):
            return HopProblem(e, a, "htlc_max", a - int(graph.htlc_max_msat[e]))
        room = int(ctx.max_msat[e]) - (0 if used_msat is None else int(used_msat[e]))
        if a > room:
            return HopProblem(e, a, "liquidity", a - room)
    return None


def route_probability(
    ctx: RoutingContext,
    route: Route,
    edges: Sequence[int],
    used_msat: I64 | None = None,
) -> float:
    """Product over hops of the uniform-model success probability of the hop amount
    (plus what ``used_msat`` already puts on the same half-channel)."""
    p = 1.0
    for hop, e in zip(route.hops, edges, strict=True):
        extra = 0 if used_msat is None else int(used_msat[e])
        p *= success_probability(
            hop.amount_msat + extra, int(ctx.min_msat[e]), int(ctx.max_msat[e])
        )
    return p


def reserve(ctx: RoutingContext, used_msat: I64) -> RoutingContext:
    """``ctx`` with ``used_msat`` (per edge) taken out of both liquidity bounds."""
    return RoutingContext(
        graph=ctx.graph,
        min_msat=np.maximum(ctx.min_msat - used_msat, 0),
        max_msat=np.maximum(ctx.max_msat - used_msat, 0),
        usable=ctx.usable,
        inflight_msat=ctx.inflight_msat + used_msat,
    )


def add_route_usage(used_msat: I64, route: Route, edges: Sequence[int]) -> None:
    """Add each hop's amount of ``route`` to ``used_msat`` (in place)."""
    for hop, e in zip(route.hops, edges, strict=True):
        used_msat[e] += hop.amount_msat


# -- the single-path search ----------------------------------------------------------------


def _short(node: str) -> str:
    return node[:16] + "…" if len(node) > 16 else node


def find_path(
    strategy: PathStrategy,
    request: RouteInput,
    ctx: RoutingContext,
    amount_msat: int,
    maxfee_msat: int,
) -> tuple[Route, list[int]]:
    """The search loop of :meth:`PathStrategy.find_route` (see there for the contract).

    Returns the route and its half-channel rows.

    1. mask the edges that can carry ``amount_msat`` (:func:`allowed_edges`,
       :func:`delay_allowed`) and ask the strategy for its ``edge_costs``;
    2. Dijkstra; build the exact route; if a hop breaks htlc limits or
       liquidity with its real amount (which includes downstream fees), ban
       that edge and search again; when bans leave no path, lift them once and
       search with fees dominating (a cheaper downstream may let the edge fit);
    3. if the route is over ``maxfee_msat`` (or ``maxdelay``), add the fee
       (CLTV) to the cost with a growing weight (:data:`BUDGET_WEIGHTS`) and
       search again; when even the heaviest weighting does not fit, raise
       :class:`RouteTooExpensive`.
    """
    g = ctx.graph
    s, t = endpoints(request, g)
    if amount_msat <= 0:
        raise InvalidParams(f"amount must be positive, got {amount_msat} msat")
    topo = topology(g)
    amount_mask = allowed_edges(request, ctx, amount_msat)
    mask = amount_mask & delay_allowed(request, g, s)
    raw = np.asarray(strategy.edge_costs(request, ctx, amount_msat), dtype=np.float64)
    if raw.shape != (g.num_edges,):
        raise ValueError(
            f"{type(strategy).__name__}.edge_costs returned shape {raw.shape}, "
            f"expected ({g.num_edges},)"
        )
    ok = mask & np.isfinite(raw)
    base = np.where(ok, np.maximum(raw, 0.0), np.inf)
    fee_term: F64 | None = None
    delay_term: F64 | None = None
    fee_step = delay_step = -1
    fee_first = False
    unbanned: F64 | None = None
    banned: list[dict[str, Any]] = []
    over: list[Route] = []
    searched = False
    for _ in range(MAX_ATTEMPTS):
        cost = base
        if fee_step >= 0:
            if fee_term is None:
                fee_term = fee_costs(g, request.source, amount_msat)
            cost = cost + BUDGET_WEIGHTS[fee_step] * fee_term
        if delay_step >= 0:
            if delay_term is None:
                # one block weighs at least 1 msat, else CLN's risk of the amount
                delay_term = np.where(g.src == s, 0.0, g.cltv_delta.astype(np.float64)) * max(
                    1.0, amount_msat * DEFAULT_RISKFACTOR / 100.0 / BLOCKS_PER_YEAR
                )
            cost = cost + BUDGET_WEIGHTS[delay_step] * delay_term
        path = shortest_path(weighted(topo, cost), s, t)
        if path is None:
            if unbanned is not None and not fee_first and fee_step < len(BUDGET_WEIGHTS) - 1:
                # Edges were banned because downstream fees pushed their exact amount
                # over a limit: with a cheaper downstream they may fit. Lift the bans
                # and search again with fees dominating the cost.
                fee_first = True
                base = unbanned.copy()
                fee_step = len(BUDGET_WEIGHTS) - 1
                continue
            break
        searched = True
        route = build_route(g, path, amount_msat, request.final_cltv)
        problem = check_hops(g, ctx, route, path)
        if problem is not None:
            if unbanned is None:
                unbanned = base.copy()
            base[problem.edge] = np.inf
            banned.append(
                {
                    "channel": g.scid_dir(problem.edge),
                    "reason": problem.reason,
                    "amount_msat": problem.amount_msat,
                }
            )
            continue
        fee_over = route.fee_msat > maxfee_msat
        delay_over = route.delay > request.maxdelay
        if not (fee_over or delay_over):
            return Route(hops=route.hops, probability=route_probability(ctx, route, path)), path
        over.append(route)
        if fee_over:
            fee_step += 1
        if delay_over:
            delay_step += 1
        if fee_step >= len(BUDGET_WEIGHTS) or delay_step >= len(BUDGET_WEIGHTS):
            break
    what = f"{amount_msat} msat from {_short(request.source)} to {_short(request.destination)}"
    if over:
        cheapest = min(r.fee_msat for r in over)
        shortest = min(r.delay for r in over)
        raise RouteTooExpensive(
            f"{strategy.name or type(strategy).__name__}: every route for {what} exceeds the "
            f"budget (cheapest fee {cheapest} msat > maxfee {maxfee_msat} msat, or smallest "
            f"delay {shortest} > maxdelay {request.maxdelay})",
            data={
                "cheapest_fee_msat": cheapest,
                "maxfee_msat": maxfee_msat,
                "smallest_delay": shortest,
                "maxdelay": request.maxdelay,
            },
        )
    if not searched:
        # Tell "too expensive in CLTV" and "unreachable" apart from "not enough capacity".
        amount_w = weighted(topo, np.where(amount_mask, 1.0, np.inf))
        if shortest_path(amount_w, s, t) is not None:
            raise RouteTooExpensive(
                f"every path for {what} has a CLTV delay above maxdelay {request.maxdelay}",
                data={"maxdelay": request.maxdelay},
            )
        any_w = weighted(topo, np.where(allowed_edges(request, ctx, None), 1.0, np.inf))
        if shortest_path(any_w, s, t) is None:
            raise RouteNotFound(
                f"no route for {what}: destination unreachable over usable channels",
                data={"amount_msat": amount_msat},
            )
        raise RouteNotFound(
            f"no route for {what}: no path whose channels can all carry the amount "
            f"(htlc limits or liquidity)",
            data={"amount_msat": amount_msat},
        )
    raise RouteNotFound(
        f"no route for {what}: {len(banned)} candidate path(s) failed the exact "
        f"htlc/liquidity check",
        data={"amount_msat": amount_msat, "banned": banned},
    )
