"""Corrupted inputs: every loader raises GraphLoadError (naming the file) or loads, nothing else."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
from graph_helpers import compress_body, node_id

from barq.errors import GraphLoadError
from barq.graph import load_compressed, load_gossip_store, load_graph
from barq.graph.store_writer import GossipStoreWriter


def _store() -> bytes:
    w = GossipStoreWriter(checksums=False)
    w.add_uuid()
    for k in range(6):
        w.add_channel(f"{100 + k}x1x0", node_id(k), node_id(k + 1), capacity_sat=10**6)
        w.add_update(f"{100 + k}x1x0", k % 2, fee_ppm=k)
        w.add_node(node_id(k), alias=f"n{k}")
    w.add_delete("101x1x0")
    return w.getvalue()


def _compressed() -> bytes:
    return compress_body(
        [0, 0, 1, 2],
        [1, 2, 3, 4],
        disabled=[3],
        capacity_sat=[10**6, 2 * 10**6, 70_000, 10**9],
        htlc_min=[0] * 8,
        htlc_max=[0, 1, 5000, 0, 0, 0, 1, 1],
        base_fee=[0, 1000] * 4,
        ppm=list(range(8)),
        delay=[40] * 8,
    )


def _mutations(data: bytes, rng: random.Random, count: int, start: int) -> list[bytes]:
    out = []
    for _ in range(count):
        b = bytearray(data)
        kind = rng.randrange(3)
        if kind == 0:  # flip a few bytes
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(start, len(b))] = rng.randrange(256)
        elif kind == 1:  # cut
            del b[rng.randrange(start, len(b)) :]
        else:  # insert junk
            pos = rng.randrange(start, len(b))
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("kind", ["gossip_store", "compressed"])
def test_corruption_gives_graph_load_error_or_a_graph(tmp_path: Path, kind: str) -> None:
    rng = random.Random(f"fuzz-{kind}")
    data = _store() if kind == "gossip_store" else _compressed()
    load = load_gossip_store if kind == "gossip_store" else load_compressed
    p = tmp_path / f"fuzzed_{kind}"
    errors = 0
    for blob in _mutations(data, rng, 300, 1):
        p.write_bytes(gzip.compress(blob, mtime=0) if kind == "compressed" else blob)
        try:
            g = load(p)
        except GraphLoadError as e:
            assert str(p) in str(e)
            errors += 1
            continue
        assert (g.htlc_max_msat <= g.capacity_msat).all()
        assert len(g.src) == g.num_edges and (g.src < g.num_nodes).all()
    assert errors > 30  # the corruption does get noticed


def test_random_files_through_load_graph(tmp_path: Path) -> None:
    rng = random.Random(7)
    p = tmp_path / "random.bin"
    for _ in range(100):
        p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400))))
        try:
            load_graph(p)
        except GraphLoadError as e:
            assert str(p) in str(e)


def test_fuzz_baselines_load(tmp_path: Path) -> None:
    (tmp_path / "gs").write_bytes(_store())
    (tmp_path / "c").write_bytes(_compressed())
    assert load_gossip_store(tmp_path / "gs").num_edges == 5
    assert load_compressed(tmp_path / "c").num_edges == 8
    bad = compress_body(
        [0],
        [3],
        capacity_sat=[1],
        htlc_min=[0, 0],
        htlc_max=[0, 0],
        base_fee=[0, 0],
        ppm=[0, 0],
        delay=[0, 0],
    )
    (tmp_path / "bad").write_bytes(bad)
    with pytest.raises(GraphLoadError, match="node index 3 out of range for 1 channels"):
        load_compressed(tmp_path / "bad")
