"""Static structure of a graph and Dijkstra on cost vectors (scipy ``csgraph``).

Two scipy pitfalls are handled here: explicit zeros in a sparse matrix mean
"no edge" (every weight gets :data:`EPSILON` added) and duplicate entries of a
CSR are *summed* (parallel channels are collapsed to the cheapest one per
``(src, dst)`` pair, and we remember which row it was).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from barq.graph import Graph

__all__ = ["EPSILON", "Topology", "Weighted", "distances", "shortest_path", "topology", "weighted"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]

#: Added to every Dijkstra weight: scipy drops explicit zeros (zero-fee edges would
#: vanish) and it doubles as a tiny per-hop tie-break (fewer hops win a tie).
EPSILON = 1e-3


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
