"""The seeded graph builders the simulator runs on (barq.graph.synthetic)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sim_helpers import (
    SAT,
)

from barq.errors import InvalidParams
from barq.graph.synthetic import ChannelSpec, builtin_network, line_network, network_from_channels
from barq.invoice import bolt11


def test_builtin_network_shape_and_determinism() -> None:
    g, keys = builtin_network(seed=1)
    g2, keys2 = builtin_network(seed=1)
    g3, _ = builtin_network(seed=2)
    assert g.nodes == g2.nodes and g.scid == g2.scid and keys == keys2
    assert np.array_equal(g.fee_ppm, g2.fee_ppm) and np.array_equal(
        g.capacity_msat, g2.capacity_msat
    )
    assert g.nodes != g3.nodes
    assert g.num_nodes == 40 and len(keys) == 40
    for i, n in enumerate(g.nodes):
        assert keys[n] == hashlib.sha256(f"barq-sim-1-{i}".encode()).digest()
        assert bolt11.pubkey_of(keys[n]) == n
    # BOLT 7 directions, policies in range, parallel channels, hubs
    for e in range(g.num_edges):
        s, d = g.nodes[int(g.src[e])], g.nodes[int(g.dst[e])]
        assert int(g.direction[e]) == (0 if s < d else 1)
    assert g.capacity_msat.min() >= 500_000 * SAT and g.capacity_msat.max() <= 20_000_000 * SAT
    assert g.fee_base_msat.min() >= 0 and g.fee_base_msat.max() <= 1000
    assert g.fee_ppm.min() >= 1 and g.fee_ppm.max() <= 2000
    assert g.cltv_delta.min() >= 18 and g.cltv_delta.max() <= 144
    assert (g.htlc_min_msat == 1000).all() and (g.htlc_max_msat <= g.capacity_msat).all()
    assert (g.htlc_max_msat < g.capacity_msat).any()
    pairs = [tuple(sorted((int(g.src[e]), int(g.dst[e])))) for e in range(0, g.num_edges)]
    assert len(set(pairs)) < len(set(g.scid))  # some pair has parallel channels
    degree = np.bincount(g.src, minlength=g.num_nodes)
    assert degree.max() >= 8 and degree.min() >= 1
    assert len(set(g.scid)) * 2 == g.num_edges


def test_line_and_grid_builders() -> None:
    g, _ = line_network(3, 2_000_000)
    assert g.num_edges == 4 and sorted(set(g.scid)) == ["101x1x0", "102x1x0"]
    assert (g.capacity_msat == 2_000_000 * SAT).all()
    from barq.graph.synthetic import grid_network

    grid, _ = grid_network(2, 3)
    assert grid.num_nodes == 6 and grid.num_edges == 2 * 7
    with pytest.raises(InvalidParams):
        network_from_channels(2, [ChannelSpec(a=0, b=0, capacity_sat=1)])
