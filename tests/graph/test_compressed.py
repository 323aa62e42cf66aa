"""GOSSMAP_COMPRESSv1 loader: bigsize decoding, small handmade files, errors, mainnet counts."""

from __future__ import annotations

import gzip
import lzma
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from graph_helpers import bigsize, compress_body, node_id, write_compressed
from hypothesis import given, settings
from hypothesis import strategies as st

from barq.errors import GraphLoadError
from barq.graph import largest_scc, load_compressed, read_node_map, summarize, synthetic_node_id
from barq.graph.compressed import default_node_map_path, parse_bigsizes

# -- bigsize --------------------------------------------------------------------------------

_values = st.one_of(
    st.integers(0, 0xFC),
    st.integers(0xFD, 0xFFFF),
    st.integers(0x10000, 2**32 - 1),
    st.integers(2**32, 2**64 - 1),
    st.sampled_from([0xFD, 0xFE, 0xFF, 0xFDFD, 0xFEFEFE]),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(_values, max_size=60), st.binary(max_size=5))
def test_parse_bigsizes_matches_reference(values: list[int], prefix: bytes) -> None:
    buf = prefix + b"".join(bigsize(v) for v in values)
    got = parse_bigsizes(buf, len(prefix))
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == values


def test_parse_bigsizes_rejects_cut_short_and_non_minimal() -> None:
    with pytest.raises(ValueError, match="cut short"):
        parse_bigsizes(b"\x01\xfe\x00\x01", 0)
    with pytest.raises(ValueError, match="non-minimal"):
        parse_bigsizes(b"\xfd\x00\x10", 0)  # 16 must be one byte
    with pytest.raises(ValueError, match="non-minimal"):
        parse_bigsizes(b"\xff\x00\x00\x00\x00\x00\x00\x01\x00", 0)


# -- a small handmade file -------------------------------------------------------------------


def _small_body() -> bytes:
    # 3 channels over 4 nodes: 0-1, 0-2, 1-3 (node1 < node2, as the compressor writes)
    return compress_body(
        [0, 0, 1],
        [1, 2, 3],
        disabled=[1, 4],  # channel 0 dir 1, channel 2 dir 0
        capacity_sat=[1_000_000, 2_000_000, 1_000_000],
        htlc_min=[1000, 0, 1, 1, 0, 5],
        htlc_max=[0, 1, 123_456_000, 0, 0, 3_000_000_000],  # 0 = cap, 1 = 99 % cap, > cap
        base_fee=[1000, 0, 0, 1, 0, 2000],
        ppm=[10, 0, 1, 500, 0, 7],
        delay=[40, 0, 144, 80, 0, 18],
    )


def test_small_file_decodes_per_direction(tmp_path: Path) -> None:
    p = write_compressed(tmp_path / "g.compressed", _small_body())
    g = load_compressed(p)  # no sibling node map -> synthetic ids
    assert g.num_nodes == 4 and g.num_edges == 6
    assert g.nodes == [synthetic_node_id(i) for i in range(4)]
    assert g.scid == ["0x1x0"] * 2 + ["1x2x1"] * 2 + ["3x3x2"] * 2  # CLN decompressor's scids
    assert g.direction.tolist() == [0, 1] * 3
    assert g.src.tolist() == [0, 1, 0, 2, 1, 3]
    assert g.dst.tolist() == [1, 0, 2, 0, 3, 1]
    assert g.enabled.tolist() == [True, False, True, True, False, True]
    assert g.capacity_msat.tolist() == [10**9, 10**9, 2 * 10**9, 2 * 10**9, 10**9, 10**9]
    # htlc_max: capacity, 99 % of 1e9 msat, raw, capacity, capacity, capped at capacity
    assert g.htlc_max_msat.tolist() == [10**9, 990_000_000, 123_456_000, 2 * 10**9, 10**9, 10**9]
    assert g.htlc_min_msat.tolist() == [1000, 0, 1, 1, 0, 5]
    assert g.fee_base_msat.tolist() == [1000, 0, 0, 1, 0, 2000]
    assert g.fee_ppm.tolist() == [10, 0, 1, 500, 0, 7]
    assert g.cltv_delta.tolist() == [40, 0, 144, 80, 0, 18]
    assert not g.private.any()
    h = g.half_channel(4)
    assert (h.source, h.destination, h.enabled) == (
        synthetic_node_id(1),
        synthetic_node_id(3),
        False,
    )


def test_htlc_max_99_percent_is_exact_integer_msat(tmp_path: Path) -> None:
    body = compress_body(
        [0],
        [1],
        capacity_sat=[1_234_567],
        htlc_min=[0, 0],
        htlc_max=[1, 1],
        base_fee=[0, 0],
        ppm=[0, 0],
        delay=[6, 6],
    )
    g = load_compressed(write_compressed(tmp_path / "x.compressed", body))
    assert g.htlc_max_msat.tolist() == [1_234_567_000 * 99 // 100] * 2 == [1_222_221_330] * 2


def test_plain_uncompressed_image_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "plain.compressed"
    p.write_bytes(_small_body())
    assert load_compressed(p).num_edges == 6


def test_synthetic_ids_increase_with_index() -> None:
    ids = [synthetic_node_id(i) for i in (0, 1, 2, 255, 256, 70_000, 2**31)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 66 and i.startswith("02") for i in ids)
    assert synthetic_node_id(7) == synthetic_node_id(7)


# -- node map --------------------------------------------------------------------------------


def _write_map(path: Path, lines: list[str]) -> Path:
    path.write_bytes(lzma.compress("\n".join(lines).encode() + b"\n"))
    return path


def test_node_map_gives_real_ids_and_bolt_directions(tmp_path: Path) -> None:
    p = write_compressed(tmp_path / "g.compressed", _small_body())
    # node 0 gets the LARGEST id: its channels' direction 0 must now leave the other end
    ids = [node_id(9), node_id(1), node_id(2), node_id(3)]
    _write_map(
        default_node_map_path(p),
        [f"{i}:{n}:alias {i}" for i, n in enumerate(ids)] + ["continued:alias"],
    )
    g = load_compressed(p)  # "auto" finds the sibling map
    assert g.nodes == ids
    assert g.src.tolist() == [1, 0, 2, 0, 1, 3]
    assert g.dst.tolist() == [0, 1, 0, 2, 3, 1]
    for e in range(g.num_edges):  # BOLT 7: direction 0 leaves the smaller id
        h = g.half_channel(e)
        assert (h.source < h.destination) == (h.direction == 0)
    # values stay with their slot: channel 0 slot 0 (base 1000) is now node1 -> node0
    assert (g.fee_base_msat[0], g.src[0], g.dst[0]) == (1000, 1, 0)
    assert load_compressed(p, node_map=None).nodes == [synthetic_node_id(i) for i in range(4)]


def test_node_map_missing_index_and_default_name(tmp_path: Path) -> None:
    assert default_node_map_path("/d/gossip-store-2024.compressed") == Path(
        "/d/gossip-store-2024-node-map.xz"
    )
    p = write_compressed(tmp_path / "g.compressed", _small_body())
    m = _write_map(tmp_path / "m.xz", [f"{i}:{node_id(i)}:" for i in range(3)])
    with pytest.raises(GraphLoadError, match=r"m\.xz: no node id for index 3"):
        load_compressed(p, node_map=m)
    dup = _write_map(tmp_path / "dup.xz", [f"0:{node_id(0)}:", f"0:{node_id(1)}:"])
    with pytest.raises(GraphLoadError, match="appears twice"):
        read_node_map(dup)
    with pytest.raises(GraphLoadError, match="no such file"):
        load_compressed(p, node_map=tmp_path / "nope.xz")


# -- errors ----------------------------------------------------------------------------------


def test_truncated_gzip(tmp_path: Path) -> None:
    raw = gzip.compress(_small_body())
    p = tmp_path / "t.compressed"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(GraphLoadError, match=r"t\.compressed: corrupt or truncated gzip"):
        load_compressed(p)


@pytest.mark.parametrize("cut", [1, 5, 12, 30])
def test_truncated_content(tmp_path: Path, cut: int) -> None:
    body = _small_body()
    p = write_compressed(tmp_path / "t.compressed", body[:-cut])
    with pytest.raises(GraphLoadError, match=r"t\.compressed: truncated"):
        load_compressed(p)


def test_bad_magic(tmp_path: Path) -> None:
    p = write_compressed(tmp_path / "m.compressed", b"GOSSMAP_COMPRESSv2\0" + _small_body()[19:])
    with pytest.raises(GraphLoadError, match=r"m\.compressed: bad magic"):
        load_compressed(p)


def test_trailing_bytes(tmp_path: Path) -> None:
    p = write_compressed(tmp_path / "tr.compressed", _small_body() + b"\x00\x01")
    with pytest.raises(GraphLoadError, match=r"tr\.compressed: 2 trailing numbers"):
        load_compressed(p)


def test_template_index_out_of_range(tmp_path: Path) -> None:
    body = compress_body(
        [0],
        [1],
        capacity_sat=[5],
        htlc_min=[0, 0],
        htlc_max=[0, 0],
        base_fee=[0, 0],
        ppm=[0, 0],
        delay=[6, 6],
    )
    # last number is the delay index of channel 0 dir 1 (template has 1 value): make it 1
    p = write_compressed(tmp_path / "i.compressed", body[:-1] + bigsize(1))
    with pytest.raises(GraphLoadError, match=r"i\.compressed: delay: index 1 outside"):
        load_compressed(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GraphLoadError, match=r"nope\.compressed: no such file"):
        load_compressed(tmp_path / "nope.compressed")


# -- the mainnet snapshot (skipped when absent) ----------------------------------------------


def test_mainnet_counts_match_readme(snapshot: Path) -> None:
    g = load_compressed(snapshot, node_map=None)  # the README's reading: slot 0 = node1 -> node2
    s = summarize(g)
    assert s.channels == 59_428 and s.half_channels == 2 * 59_428
    assert s.nodes == 18_212
    assert s.nodes_with_enabled == 18_184
    assert s.both_enabled == 47_823
    assert s.largest_scc == 13_134 == len(largest_scc(g))
    assert s.median_fee_base_msat == 0
    assert s.median_fee_ppm == 1
    assert s.median_cltv_delta == 40
    assert s.median_capacity_msat == 1_500_000_000
    assert (g.htlc_max_msat <= g.capacity_msat).all()
    assert len(set(g.scid)) == 59_428


def test_mainnet_with_real_ids(snapshot: Path) -> None:
    if not default_node_map_path(snapshot).is_file():
        pytest.skip("node map not found next to the snapshot")
    g = load_compressed(snapshot)
    assert g.nodes[0] == "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"
    src = np.array(g.nodes)[g.src]
    dst = np.array(g.nodes)[g.dst]
    assert ((src < dst) == (g.direction == 0)).all()  # BOLT 7 direction everywhere
    s = summarize(g)
    assert (s.nodes_with_enabled, s.both_enabled, s.median_cltv_delta) == (18_184, 47_823, 40)
    assert s.largest_scc == 12_739
    # Why slot 0 is the smaller pubkey: nodes configure one cltv delta for all their
    # channels. Read this way 91 % of enabled half-channels carry their source's most
    # common delta; read as file node1 -> node2 only 66 % do.
    e = g.enabled
    pairs = Counter(zip(g.src[e].tolist(), g.cltv_delta[e].tolist(), strict=True))
    best: dict[int, int] = {}
    for (node, _), k in pairs.items():
        best[node] = max(best.get(node, 0), k)
    assert sum(best.values()) / int(e.sum()) > 0.88
