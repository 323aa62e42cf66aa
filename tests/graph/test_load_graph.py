"""load_graph sniffs the format and dispatches."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from graph_helpers import compress_body, node_id

from barq.errors import GraphLoadError
from barq.graph import load_graph, sniff_format
from barq.graph.store_writer import GossipStoreWriter

A, B = node_id(1), node_id(2)


def _store() -> bytes:
    w = GossipStoreWriter()
    w.add_uuid()
    w.add_channel("100x1x0", A, B, capacity_sat=1000)
    w.add_update("100x1x0", 0)
    return w.getvalue()


def _listchannels() -> bytes:
    return json.dumps(
        {
            "channels": [
                {
                    "source": A,
                    "destination": B,
                    "short_channel_id": "100x1x0",
                    "direction": 0,
                    "amount_msat": 1_000_000,
                    "base_fee_millisatoshi": 1,
                    "fee_per_millionth": 1,
                    "delay": 6,
                    "htlc_minimum_msat": 0,
                    "active": True,
                    "public": True,
                }
            ]
        }
    ).encode()


def _compressed() -> bytes:
    return compress_body(
        [0],
        [1],
        capacity_sat=[1000],
        htlc_min=[0, 0],
        htlc_max=[0, 0],
        base_fee=[1, 1],
        ppm=[1, 1],
        delay=[6, 6],
    )


def test_each_format(tmp_path: Path) -> None:
    cases = {
        "gossip_store": ("gossip_store", _store()),
        "snap.compressed": ("compressed", gzip.compress(_compressed())),
        "plain.compressed": ("compressed", _compressed()),
        "lc.json": ("listchannels", b"\n  " + _listchannels()),
        "lc.json.gz": ("listchannels", gzip.compress(_listchannels())),
        "lc_no_suffix": ("listchannels", _listchannels()),
    }
    for name, (fmt, data) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        assert sniff_format(p) == fmt, name
        g = load_graph(p)
        assert g.num_edges == (2 if fmt == "compressed" else 1), name


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(GraphLoadError, match=r"missing\.gs: no such file"):
        load_graph(tmp_path / "missing.gs")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(GraphLoadError, match="empty: empty file"):
        load_graph(tmp_path / "empty")
    (tmp_path / "text.txt").write_text("hello")
    with pytest.raises(GraphLoadError, match=r"text\.txt: unknown graph format"):
        load_graph(tmp_path / "text.txt")
    (tmp_path / "other.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(GraphLoadError, match=r"other\.gz: unknown graph format"):
        load_graph(tmp_path / "other.gz")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-garbage")
    with pytest.raises(GraphLoadError, match=r"bad\.gz: corrupt gzip"):
        load_graph(tmp_path / "bad.gz")
    # a gossip_store with a future major version is recognised, then refused by its loader
    (tmp_path / "v2").write_bytes(b"\x30" + _store()[1:])
    with pytest.raises(GraphLoadError, match="unknown graph format"):
        load_graph(tmp_path / "v2")
    (tmp_path / "v0").write_bytes(b"\x0c" + _store()[1:])
    with pytest.raises(GraphLoadError, match="v0: unsupported gossip_store version 0x0c"):
        load_graph(tmp_path / "v0")


def test_mainnet_snapshot_through_load_graph(snapshot: Path) -> None:
    g = load_graph(snapshot)
    assert g.num_edges == 2 * 59_428
