"""The incremental gossip_store reader agrees with a full load after every append."""

from __future__ import annotations

import os
import random
from pathlib import Path

from graph_helpers import node_id

from barq.graph import Graph, load_gossip_store
from barq.graph.gossip_reader import GossipStoreReader
from barq.graph.store_writer import FLAG_COMPLETED, GossipStoreWriter

A, B, C, D = (node_id(i) for i in range(4))


def _rows(g: Graph) -> dict[tuple[str, int], tuple[object, ...]]:
    out: dict[tuple[str, int], tuple[object, ...]] = {}
    for e in range(g.num_edges):
        h = g.half_channel(e)
        out[(h.scid, h.direction)] = (
            h.source,
            h.destination,
            h.capacity_msat,
            h.fee_base_msat,
            h.fee_ppm,
            h.cltv_delta,
            h.htlc_min_msat,
            h.htlc_max_msat,
            h.enabled,
            h.private,
        )
    return out


def _random_chunk(w: GossipStoreWriter, rng: random.Random, scids: list[str], k0: int) -> None:
    nodes = [node_id(i) for i in range(20)]
    for k in range(k0, k0 + 15):
        a, b = rng.sample(nodes, 2)
        scid = f"{700_000 + k}x{rng.randrange(3000)}x0"
        w.add_channel(scid, a, b, capacity_sat=rng.randrange(20_000, 10**8))
        scids.append(scid)
        for _ in range(rng.randrange(4)):
            w.add_update(
                rng.choice(scids),
                rng.randrange(2),
                fee_base_msat=rng.randrange(5000),
                fee_ppm=rng.randrange(3000),
                cltv_delta=rng.choice([6, 34, 40, 144]),
                disabled=rng.random() < 0.2,
            )
        if rng.random() < 0.1 and scids:
            w.add_delete(scids.pop(rng.randrange(len(scids))))


def test_each_append_matches_a_full_load(tmp_path: Path) -> None:
    rng = random.Random(7)
    w = GossipStoreWriter(checksums=False)
    w.add_uuid()
    scids: list[str] = []
    p = tmp_path / "gossip_store"
    reader = GossipStoreReader(p)
    for step in range(8):
        _random_chunk(w, rng, scids, 15 * step)
        p.write_bytes(w.getvalue())  # same inode: only appended bytes are new
        g = reader.graph()
        assert reader.last.full == (step == 0)
        assert _rows(g) == _rows(load_gossip_store(p)), step
    assert reader.graph() is g  # nothing appended: the same graph object
    assert not reader.last.full and reader.last.bytes_read == 0


def test_a_delta_applies_policy_changes_and_deletions(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_channel("100x1x0", A, B, capacity_sat=1_000_000)
    w.add_update("100x1x0", 0, fee_base_msat=1000)
    w.add_channel("101x1x0", B, C, capacity_sat=2_000_000)
    w.add_update("101x1x0", 0)
    p = tmp_path / "gossip_store"
    p.write_bytes(w.getvalue())
    reader = GossipStoreReader(p)
    g0 = reader.graph()
    assert g0.num_edges == 2
    w.add_update("100x1x0", 0, fee_base_msat=7000, timestamp=5)
    w.add_delete("101x1x0")
    w.add_channel("102x1x0", C, D, capacity_sat=3_000_000)
    w.add_update("102x1x0", 1)
    p.write_bytes(w.getvalue())
    g1 = reader.graph()
    assert not reader.last.full and reader.last.records == 2
    assert g1 is not g0 and g0.num_edges == 2  # the old graph is untouched
    assert int(g1.fee_base_msat[g1.edge("100x1x0", 0)]) == 7000
    assert g1.edge("101x1x0", 0) is None
    assert g1.edge("102x1x0", 1) is not None
    assert not g1.fee_base_msat.flags.writeable


def test_a_record_being_written_is_read_next_time(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_channel("100x1x0", A, B, capacity_sat=1_000_000)
    w.add_update("100x1x0", 0)
    p = tmp_path / "gossip_store"
    p.write_bytes(w.getvalue())
    reader = GossipStoreReader(p)
    reader.graph()
    done = len(w)
    w.add_update("100x1x0", 1, flags=FLAG_COMPLETED)
    body = w.getvalue()
    unfinished = bytearray(body)
    unfinished[done] &= ~(FLAG_COMPLETED >> 8)  # flags are written complete last
    p.write_bytes(bytes(unfinished))
    assert reader.graph().edge("100x1x0", 1) is None
    p.write_bytes(body)
    assert reader.graph().edge("100x1x0", 1) is not None
    assert not reader.last.full


def test_rewritten_or_shrunk_store_is_read_in_full(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_channel("100x1x0", A, B, capacity_sat=1_000_000)
    w.add_update("100x1x0", 0)
    w.add_channel("101x1x0", B, C, capacity_sat=1_000_000)
    w.add_update("101x1x0", 0)
    p = tmp_path / "gossip_store"
    p.write_bytes(w.getvalue())
    reader = GossipStoreReader(p)
    assert reader.graph().num_edges == 2
    # compacted in place: shorter than what was read
    small = GossipStoreWriter()
    small.add_channel("100x1x0", A, B, capacity_sat=1_000_000)
    small.add_update("100x1x0", 0)
    p.write_bytes(small.getvalue())
    assert reader.graph().num_edges == 1 and reader.last.full
    # replaced by another file (rename over the path), even a longer one
    w.add_channel("102x1x0", C, D, capacity_sat=1_000_000)
    w.add_update("102x1x0", 0)
    new = tmp_path / "gossip_store.tmp"
    new.write_bytes(w.getvalue())
    os.replace(new, p)
    assert reader.graph().num_edges == 3 and reader.last.full
    # the end marker: lightningd moved on to a new file; it is read when it appears
    w.add_ended()
    p.write_bytes(w.getvalue())
    assert reader.graph().num_edges == 3
    fresh = GossipStoreWriter()
    fresh.add_channel("103x1x0", A, D, capacity_sat=1_000_000)
    fresh.add_update("103x1x0", 0)
    new.write_bytes(fresh.getvalue())
    os.replace(new, p)
    g = reader.graph()
    assert reader.last.full and g.num_edges == 1 and g.edge("103x1x0", 0) is not None
