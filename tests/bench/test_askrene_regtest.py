"""A real lightningd on a written gossip_store serves exactly the graph (skips without binaries)."""

from __future__ import annotations

import msgspec
import pytest

from barq.bench.askrene import RpcAskrene, channel_mismatches, pay_like_xpay
from barq.bench.lightningd import RegtestLightningd, find_binaries
from barq.graph import Graph, largest_scc
from barq.graph.synthetic import builtin_network

pytestmark = pytest.mark.regtest


def test_lightningd_lists_the_written_graph_and_askrene_routes_on_it() -> None:
    found = find_binaries()
    if isinstance(found, str):
        pytest.skip(found)
    built, _ = builtin_network(1)
    # one disabled half-channel and one channel announced in one direction only
    halves = list(built.half_channels())
    graph = Graph.from_half_channels(
        [msgspec.structs.replace(halves[0], enabled=False), *halves[2:]]
    )
    assert graph.scid_dir(0) == built.scid_dir(0) and not graph.enabled[0]
    assert graph.edge(built.scid[1], int(built.direction[1])) is None
    with RegtestLightningd.start(graph, found) as node:
        channels = node.rpc.listchannels()["channels"]
        assert len(channels) == graph.num_edges
        assert channel_mismatches(graph, channels) == []

        scc = [graph.nodes[int(i)] for i in largest_scc(graph)]
        src, dst = scc[0], scc[-1]
        ask = RpcAskrene(node.rpc, src, dst, final_cltv=18)
        node.rpc.call("askrene-create-layer", {"layer": "t"})
        liquidity = graph.capacity_msat.copy()  # everything can pass: one round
        got = pay_like_xpay(
            ask, "t", graph, liquidity, amount_msat=10_000_000, maxfee_msat=100_000, maxparts=8
        )
        assert got.succeeded and got.rounds == 1 and got.attempts >= 1
        assert node.rpc.call("askrene-listreservations")["reservations"] == []
