"""The directed channel graph as parallel numpy arrays (one row per half-channel).

Why arrays and not a networkx graph: routing on the mainnet graph needs
vectorised per-edge costs and scipy/OR-Tools solvers; networkx Dijkstra took
72 ms there against 3 ms for scipy's csgraph. ``Graph.to_networkx`` exists for
small graphs, oracles and debugging.

A :class:`Graph` is immutable after construction: its numpy columns are
read-only (``setflags(write=False)``), so worker threads can share one safely;
overlays (our own channels, route hints, channel updates) build a new one with
:meth:`Graph.with_half_channels`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from barq.model import HalfChannel, NodeId, Scid, ScidDir, scid_dir

__all__ = ["COLUMNS", "Graph"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]

#: the per-half-channel numpy columns (read-only once the graph is built)
COLUMNS = (
    "direction",
    "src",
    "dst",
    "capacity_msat",
    "fee_base_msat",
    "fee_ppm",
    "cltv_delta",
    "htlc_min_msat",
    "htlc_max_msat",
    "enabled",
    "private",
)


def _frozen(values: npt.ArrayLike, dtype: Any) -> Any:
    """``values`` as a read-only array of ``dtype``.

    An array passed in with the right dtype is copied first: the caller's own
    array stays writable, and the graph's cannot change behind its back.
    """
    out = np.asarray(values, dtype=dtype)
    if isinstance(values, np.ndarray) and np.shares_memory(out, values):
        out = out.copy()
    out.setflags(write=False)
    return out


class Graph:
    """Half-channels of a Lightning graph.

    Attributes (all numpy arrays have one entry per half-channel ``e``):
        nodes: node id by node index.
        node_index: node index by node id.
        scid, direction: which half-channel row ``e`` is (``scid`` a list of str).
        src, dst: node indexes (int32) of the sending and receiving end.
        capacity_msat: channel capacity (int64, both sides together).
        fee_base_msat, fee_ppm, cltv_delta, htlc_min_msat, htlc_max_msat: policy (int64).
        enabled: the direction is usable per gossip (bool).
        private: known from our own channels or a route hint, not public gossip.

    Every numpy column is read-only. Invariants: ``htlc_max_msat`` is resolved
    (never the 0/1 shorthand of the compressed format) and ``<= capacity_msat``;
    each ``(scid, direction)`` appears once.
    """

    __slots__ = (
        "_edge_of",
        "capacity_msat",
        "cltv_delta",
        "direction",
        "dst",
        "enabled",
        "fee_base_msat",
        "fee_ppm",
        "htlc_max_msat",
        "htlc_min_msat",
        "node_index",
        "nodes",
        "private",
        "scid",
        "src",
    )

    nodes: list[NodeId]
    node_index: dict[NodeId, int]
    scid: list[Scid]
    direction: npt.NDArray[np.int8]
    src: I32
    dst: I32
    capacity_msat: I64
    fee_base_msat: I64
    fee_ppm: I64
    cltv_delta: I64
    htlc_min_msat: I64
    htlc_max_msat: I64
    enabled: B
    private: B

    def __init__(
        self,
        *,
        nodes: Sequence[NodeId],
        scid: Sequence[Scid],
        direction: npt.ArrayLike,
        src: npt.ArrayLike,
        dst: npt.ArrayLike,
        capacity_msat: npt.ArrayLike,
        fee_base_msat: npt.ArrayLike,
        fee_ppm: npt.ArrayLike,
        cltv_delta: npt.ArrayLike,
        htlc_min_msat: npt.ArrayLike,
        htlc_max_msat: npt.ArrayLike,
        enabled: npt.ArrayLike,
        private: npt.ArrayLike | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.node_index = {n: i for i, n in enumerate(self.nodes)}
        self.scid = list(scid)
        self.direction = _frozen(direction, np.int8)
        self.src = _frozen(src, np.int32)
        self.dst = _frozen(dst, np.int32)
        self.capacity_msat = _frozen(capacity_msat, np.int64)
        self.fee_base_msat = _frozen(fee_base_msat, np.int64)
        self.fee_ppm = _frozen(fee_ppm, np.int64)
        self.cltv_delta = _frozen(cltv_delta, np.int64)
        self.htlc_min_msat = _frozen(htlc_min_msat, np.int64)
        self.htlc_max_msat = _frozen(htlc_max_msat, np.int64)
        self.enabled = _frozen(enabled, np.bool_)
        n = len(self.scid)
        self.private = _frozen(
            np.zeros(n, dtype=np.bool_) if private is None else private, np.bool_
        )
        for name in COLUMNS:
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"Graph: column {name} has {len(getattr(self, name))} rows, expected {n}"
                )
        self._edge_of: dict[tuple[Scid, int], int] | None = None

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_half_channels(cls, halves: Iterable[HalfChannel]) -> Graph:
        """Build from :class:`HalfChannel` records (later duplicates replace earlier ones)."""
        rows: dict[tuple[Scid, int], HalfChannel] = {}
        for h in halves:
            rows[(h.scid, h.direction)] = h
        nodes: list[NodeId] = []
        index: dict[NodeId, int] = {}

        def idx(n: NodeId) -> int:
            i = index.get(n)
            if i is None:
                i = index[n] = len(nodes)
                nodes.append(n)
            return i

        hs = list(rows.values())
        return cls(
            nodes=nodes,
            scid=[h.scid for h in hs],
            direction=[h.direction for h in hs],
            src=[idx(h.source) for h in hs],
            dst=[idx(h.destination) for h in hs],
            capacity_msat=[h.capacity_msat for h in hs],
            fee_base_msat=[h.fee_base_msat for h in hs],
            fee_ppm=[h.fee_ppm for h in hs],
            cltv_delta=[h.cltv_delta for h in hs],
            htlc_min_msat=[h.htlc_min_msat for h in hs],
            htlc_max_msat=[min(h.htlc_max_msat, h.capacity_msat) for h in hs],
            enabled=[h.enabled for h in hs],
            private=[h.private for h in hs],
        )

    def with_half_channels(self, extra: Iterable[HalfChannel]) -> Graph:
        """A new graph with ``extra`` added; an existing ``(scid, direction)`` is replaced.

        Cost is O(rows) numpy copies plus O(len(extra)) Python work, so overlaying a
        few local channels or route hints on the mainnet graph stays around a millisecond.
        """
        rows: dict[tuple[Scid, int], HalfChannel] = {}
        for h in extra:
            rows[(h.scid, h.direction)] = h
        if not rows:
            return self
        keep = np.ones(self.num_edges, dtype=np.bool_)
        for key in rows:
            e = self.edge(*key)
            if e is not None:
                keep[e] = False
        nodes = list(self.nodes)
        index = dict(self.node_index)

        def idx(n: NodeId) -> int:
            i = index.get(n)
            if i is None:
                i = index[n] = len(nodes)
                nodes.append(n)
            return i

        hs = list(rows.values())
        kept = np.flatnonzero(keep)

        def cat(name: str, new: list[Any], dtype: Any) -> Any:
            old = getattr(self, name)[kept]
            return np.concatenate([old, np.asarray(new, dtype=dtype)])

        return Graph(
            nodes=nodes,
            scid=[self.scid[int(e)] for e in kept] + [h.scid for h in hs],
            direction=cat("direction", [h.direction for h in hs], np.int8),
            src=cat("src", [idx(h.source) for h in hs], np.int32),
            dst=cat("dst", [idx(h.destination) for h in hs], np.int32),
            capacity_msat=cat("capacity_msat", [h.capacity_msat for h in hs], np.int64),
            fee_base_msat=cat("fee_base_msat", [h.fee_base_msat for h in hs], np.int64),
            fee_ppm=cat("fee_ppm", [h.fee_ppm for h in hs], np.int64),
            cltv_delta=cat("cltv_delta", [h.cltv_delta for h in hs], np.int64),
            htlc_min_msat=cat("htlc_min_msat", [h.htlc_min_msat for h in hs], np.int64),
            htlc_max_msat=cat(
                "htlc_max_msat", [min(h.htlc_max_msat, h.capacity_msat) for h in hs], np.int64
            ),
            enabled=cat("enabled", [h.enabled for h in hs], np.bool_),
            private=cat("private", [h.private for h in hs], np.bool_),
        )

    # -- queries ------------------------------------------------------------------------

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        return len(self.scid)

    def edge(self, scid: Scid, direction: int) -> int | None:
        """Row index of half-channel ``scid/direction``, or ``None``."""
        if self._edge_of is None:
            pairs = zip(self.scid, self.direction.tolist(), strict=True)
            self._edge_of = {(s, int(d)): e for e, (s, d) in enumerate(pairs)}
        return self._edge_of.get((scid, direction))

    def edge_by_scid_dir(self, sd: ScidDir) -> int | None:
        s, _, d = sd.partition("/")
        return self.edge(Scid(s), int(d)) if d in ("0", "1") else None

    def scid_dir(self, e: int) -> ScidDir:
        return scid_dir(self.scid[e], int(self.direction[e]))

    def half_channel(self, e: int) -> HalfChannel:
        return HalfChannel(
            scid=self.scid[e],
            direction=int(self.direction[e]),
            source=self.nodes[int(self.src[e])],
            destination=self.nodes[int(self.dst[e])],
            capacity_msat=int(self.capacity_msat[e]),
            fee_base_msat=int(self.fee_base_msat[e]),
            fee_ppm=int(self.fee_ppm[e]),
            cltv_delta=int(self.cltv_delta[e]),
            htlc_min_msat=int(self.htlc_min_msat[e]),
            htlc_max_msat=int(self.htlc_max_msat[e]),
            enabled=bool(self.enabled[e]),
            private=bool(self.private[e]),
        )

    def half_channels(self) -> Iterable[HalfChannel]:
        return (self.half_channel(e) for e in range(self.num_edges))

    def out_edges(self, node: NodeId) -> list[int]:
        """Rows whose source is ``node`` (linear scan: for small graphs and tests)."""
        i = self.node_index.get(node)
        if i is None:
            return []
        return [int(e) for e in np.flatnonzero(self.src == i)]

    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph`` with one edge per enabled half-channel (key = ScidDir)."""
        import networkx as nx

        g = nx.MultiDiGraph()
        g.add_nodes_from(self.nodes)
        for e in np.flatnonzero(self.enabled):
            h = self.half_channel(int(e))
            g.add_edge(h.source, h.destination, key=self.scid_dir(int(e)), half=h)
        return g

    def __repr__(self) -> str:
        return f"<Graph {self.num_nodes} nodes, {self.num_edges} half-channels>"
