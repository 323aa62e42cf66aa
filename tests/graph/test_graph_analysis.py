"""largest_scc and summarize on small graphs."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from graph_helpers import node_id

from barq.graph import Graph, largest_scc, summarize
from barq.model import HalfChannel


def _g(arcs: list[tuple[int, int, bool]], n: int) -> Graph:
    """Half-channels from (src, dst, enabled); scid per unordered pair."""
    ids = [node_id(i) for i in range(n)]
    halves = []
    for s, d, en in arcs:
        a, b = sorted((s, d))
        halves.append(
            HalfChannel(
                scid=f"{a + 1}x{b + 1}x0",
                direction=0 if s < d else 1,
                source=ids[s],
                destination=ids[d],
                capacity_msat=(a + b + 1) * 1000,
                fee_base_msat=s,
                fee_ppm=d,
                cltv_delta=6,
                htlc_min_msat=0,
                htlc_max_msat=1000,
                enabled=en,
            )
        )
    return Graph.from_half_channels(halves)


def _idx(g: Graph, nodes: list[int]) -> list[int]:
    return sorted(g.node_index[node_id(i)] for i in nodes)


def test_largest_scc_uses_enabled_directions_only() -> None:
    # 0 <-> 1 <-> 2 cycle both ways, 3 reachable one way only, 2 -> 4 disabled back
    g = _g(
        [
            (0, 1, True),
            (1, 0, True),
            (1, 2, True),
            (2, 1, True),
            (2, 3, True),
            (3, 4, True),
            (4, 3, False),
        ],
        5,
    )
    assert largest_scc(g).tolist() == _idx(g, [0, 1, 2])
    # enabling 4 -> 3 and adding 3 -> 2 ... makes {0..4}
    g2 = _g(
        [
            (0, 1, True),
            (1, 0, True),
            (1, 2, True),
            (2, 1, True),
            (2, 3, True),
            (3, 2, True),
            (3, 4, True),
            (4, 3, True),
        ],
        5,
    )
    assert largest_scc(g2).tolist() == _idx(g2, [0, 1, 2, 3, 4])


def test_largest_scc_ties_and_empty() -> None:
    g = _g([(2, 3, True), (3, 2, True), (0, 1, True), (1, 0, True)], 4)
    # two components of size 2: the one holding the smallest node index wins
    assert largest_scc(g).tolist() == [0, 1]  # node indexes of node_id(2), node_id(3)
    assert g.nodes[:2] == [node_id(2), node_id(3)]
    assert largest_scc(Graph.from_half_channels([])).tolist() == []


def test_summarize() -> None:
    g = _g([(0, 1, True), (1, 0, True), (1, 2, True), (2, 1, False), (3, 4, False)], 5)
    s = summarize(g)
    assert (s.nodes, s.half_channels, s.channels, s.enabled_half_channels) == (5, 5, 3, 3)
    assert (s.nodes_with_enabled, s.both_enabled, s.largest_scc) == (3, 1, 2)
    assert s.median_fee_base_msat == float(np.median([0, 1, 1]))
    assert s.median_capacity_msat == 3000.0  # channels 0-1 (2000) and 1-2 (4000)
    e = summarize(Graph.from_half_channels([]))
    assert e.channels == 0 and e.median_fee_ppm is None and e.median_capacity_msat is None


def test_graph_columns_are_read_only_and_callers_arrays_stay_writable() -> None:
    fees = np.array([1, 2], dtype=np.int64)
    g = Graph(
        nodes=["a", "b"],
        scid=["1x1x0", "1x1x0"],
        direction=[0, 1],
        src=[0, 1],
        dst=[1, 0],
        capacity_msat=[10, 10],
        fee_base_msat=fees,
        fee_ppm=[0, 0],
        cltv_delta=[6, 6],
        htlc_min_msat=[0, 0],
        htlc_max_msat=[10, 10],
        enabled=[True, True],
    )
    for name in ("src", "fee_base_msat", "capacity_msat", "enabled", "private"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(g, name)[0] = 0
    fees[0] = 99  # the caller's array is its own: the graph does not change
    assert fees.flags.writeable and int(g.fee_base_msat[0]) == 1
    # an overlay builds a new graph, the old one is untouched
    h = g.with_half_channels([msgspec.structs.replace(g.half_channel(0), fee_base_msat=7)])
    assert int(g.fee_base_msat[0]) == 1 and 7 in h.fee_base_msat.tolist()
