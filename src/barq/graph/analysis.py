"""Whole-graph queries: strongly connected components and summary counts."""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from barq.graph._graph import Graph

__all__ = ["GraphSummary", "largest_scc", "summarize"]


def _enabled_adjacency(graph: Graph) -> csr_matrix:
    e = graph.enabled
    n = graph.num_nodes
    return csr_matrix(
        (np.ones(int(e.sum()), dtype=np.int8), (graph.src[e], graph.dst[e])), shape=(n, n)
    )


def largest_scc(graph: Graph) -> npt.NDArray[np.int64]:
    """Node indexes (sorted) of the largest strongly connected component.

    Only enabled half-channels count as arcs; ties go to the component
    holding the smallest node index. An empty graph gives an empty array.
    """
    if graph.num_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    _, labels = connected_components(_enabled_adjacency(graph), directed=True, connection="strong")
    sizes = np.bincount(labels)
    ties = np.flatnonzero(sizes == sizes.max())
    biggest = int(labels[np.flatnonzero(np.isin(labels, ties))[0]])
    return np.flatnonzero(labels == biggest).astype(np.int64)


class GraphSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts over a graph (enabled half-channels unless said otherwise).

    ``channels`` counts distinct scids, ``both_enabled`` channels with both
    directions enabled; medians are over enabled half-channels (capacity over
    channels with an enabled direction), ``None`` when there are none.
    """

    nodes: int
    half_channels: int
    channels: int
    enabled_half_channels: int
    nodes_with_enabled: int
    both_enabled: int
    largest_scc: int
    median_fee_base_msat: float | None
    median_fee_ppm: float | None
    median_cltv_delta: float | None
    median_capacity_msat: float | None


def summarize(graph: Graph) -> GraphSummary:
    """The counts of :class:`GraphSummary` (cost: one SCC, a few numpy passes)."""
    e = graph.enabled
    scids = np.array(graph.scid, dtype=object) if graph.num_edges else np.zeros(0, dtype=object)
    _, chan_of = np.unique(scids, return_inverse=True) if graph.num_edges else (None, None)
    channels = int(chan_of.max()) + 1 if chan_of is not None and len(chan_of) else 0
    both = 0
    cap_median: float | None = None
    if channels:
        assert chan_of is not None
        per_chan = np.bincount(chan_of[e], minlength=channels)
        both = int((per_chan >= 2).sum())
        has = per_chan > 0
        if has.any():
            cap = np.zeros(channels, dtype=np.int64)
            cap[chan_of] = graph.capacity_msat
            cap_median = float(np.median(cap[has]))

    def med(a: npt.NDArray[np.int64]) -> float | None:
        return float(np.median(a[e])) if e.any() else None

    return GraphSummary(
        nodes=graph.num_nodes,
        half_channels=graph.num_edges,
        channels=channels,
        enabled_half_channels=int(e.sum()),
        nodes_with_enabled=len(np.unique(np.concatenate([graph.src[e], graph.dst[e]]))),
        both_enabled=both,
        largest_scc=len(largest_scc(graph)),
        median_fee_base_msat=med(graph.fee_base_msat),
        median_fee_ppm=med(graph.fee_ppm),
        median_cltv_delta=med(graph.cltv_delta),
        median_capacity_msat=cap_median,
    )
