"""gossip_store loader on generated stores, cross-checked with pyln's Gossmap."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from graph_helpers import node_id
from pyln.client.gossmap import Gossmap

import barq.graph.gossip_store as gs_mod
from barq.errors import GraphLoadError
from barq.graph import Graph, load_gossip_store
from barq.graph.store_writer import (
    FLAG_COMPLETED,
    FLAG_DELETED,
    FLAG_DYING,
    GossipStoreWriter,
    crc32c,
    encode_channel_announcement,
    encode_channel_update,
)

A, B, C, D, E = (node_id(i) for i in range(5))


def _write(tmp_path: Path, w: GossipStoreWriter, name: str = "gossip_store") -> Path:
    p = tmp_path / name
    p.write_bytes(w.getvalue())
    return p


def _row(g: Graph, scid: str, d: int) -> tuple[object, ...]:
    e = g.edge(scid, d)
    assert e is not None, f"{scid}/{d} missing"
    h = g.half_channel(e)
    return (
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


def _pyln_rows(path: Path) -> dict[tuple[str, int], tuple[object, ...]]:
    gm = Gossmap(str(path))
    out: dict[tuple[str, int], tuple[object, ...]] = {}
    for scid, ch in gm.channels.items():
        for d in (0, 1):
            h = ch.half_channels[d]
            if h is None:
                continue
            cap = ch.satoshis * 1000
            out[(str(scid), d)] = (
                str(h.source),
                str(h.destination),
                cap,
                h.fee_base_msat,
                h.fee_proportional_millionths,
                h.cltv_expiry_delta,
                h.htlc_minimum_msat,
                min(h.htlc_maximum_msat, cap),
                not h.disabled,
                ch.is_private,
            )
    return out


def _our_rows(g: Graph) -> dict[tuple[str, int], tuple[object, ...]]:
    return {
        (g.scid[e], int(g.direction[e])): _row(g, g.scid[e], int(g.direction[e]))
        for e in range(g.num_edges)
    }


def test_crc32c_known_vector() -> None:
    assert crc32c(0, b"123456789") == 0xE3069283  # the CRC-32C check value


def test_small_store(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_uuid()
    w.add_channel("100x1x0", B, A, capacity_sat=1_000_000)  # writer orders the ends
    w.add_update(
        "100x1x0",
        0,
        fee_base_msat=1,
        fee_ppm=2,
        cltv_delta=3,
        htlc_min_msat=4,
        htlc_max_msat=990_000_000,
    )
    w.add_update(
        "100x1x0",
        1,
        fee_base_msat=5,
        fee_ppm=6,
        cltv_delta=7,
        htlc_min_msat=8,
        htlc_max_msat=5_000_000_000,
        disabled=True,
    )  # above capacity: capped
    w.add_channel("101x1x0", B, C, capacity_sat=2_000)
    w.add_update("101x1x0", 1, fee_base_msat=9, htlc_max_msat=2_000_000)  # dir 0 unknown
    w.add_node(A, alias="alice")
    p = _write(tmp_path, w)
    g = load_gossip_store(p)
    assert g.num_edges == 3
    assert _row(g, "100x1x0", 0) == (A, B, 10**9, 1, 2, 3, 4, 990_000_000, True, False)
    assert _row(g, "100x1x0", 1) == (B, A, 10**9, 5, 6, 7, 8, 10**9, False, False)
    assert _row(g, "101x1x0", 1) == (C, B, 2_000_000, 9, 1, 40, 1000, 2_000_000, True, False)
    assert g.edge("101x1x0", 0) is None
    assert sorted(g.nodes) == [A, B, C]
    assert _our_rows(g) == _pyln_rows(p)


def test_record_kinds(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_uuid()
    # a deleted channel (announcement, amount and update all marked deleted)
    w.add_channel("1x1x1", A, B, capacity_sat=5, flags=FLAG_COMPLETED | FLAG_DELETED)
    w.add_update("1x1x1", 0, flags=FLAG_COMPLETED | FLAG_DELETED)
    # a superseded update marked deleted, then the newer one; then a later one wins anyway
    w.add_channel("2x1x0", A, B, capacity_sat=100_000)
    w.add_update("2x1x0", 0, fee_base_msat=111, flags=FLAG_COMPLETED | FLAG_DELETED)
    w.add_update("2x1x0", 0, fee_base_msat=222)
    w.add_update("2x1x0", 0, fee_base_msat=333)
    # a dying channel (closed, kept 12 blocks for splices): still routable, like gossmap
    w.add_channel("3x1x0", B, C, capacity_sat=100_000, flags=FLAG_COMPLETED | FLAG_DYING)
    w.add_update("3x1x0", 1, fee_ppm=42)
    w.add_dying("3x1x0", 800_000)
    # a channel removed by gossip_store_delete_chan
    w.add_channel("4x1x0", C, D, capacity_sat=100_000)
    w.add_update("4x1x0", 0)
    w.add_delete("4x1x0")
    # an update for a channel nobody announced
    w.add_update("5x1x0", 0)
    # obsolete private records (pre-v24.02 stores) carry their own capacity
    w.add_private_channel("6x1x0", D, E, capacity_sat=70_000)
    w.add_update("6x1x0", 1, fee_base_msat=0, fee_ppm=0, private=True)
    p = _write(tmp_path, w)
    g = load_gossip_store(p)
    assert sorted(set(g.scid)) == ["2x1x0", "3x1x0", "6x1x0"]
    assert _row(g, "2x1x0", 0)[3] == 333
    assert _row(g, "3x1x0", 1)[4] == 42
    assert _row(g, "3x1x0", 1)[8] is True
    assert _row(g, "6x1x0", 1) == (E, D, 70_000_000, 0, 0, 40, 1000, 70_000_000, True, True)
    # pyln agrees on everything it reads (it does not record the private capacity)
    ours = _our_rows(g)
    theirs = _pyln_rows_or_private(p)
    assert {k: v for k, v in ours.items() if k[0] != "6x1x0"} == theirs


def _pyln_rows_or_private(p: Path) -> dict[tuple[str, int], tuple[object, ...]]:
    gm = Gossmap(str(p))
    assert gm.get_channel("6x1x0").is_private and gm.get_channel("6x1x0").satoshis is None
    del gm.channels[gm.get_channel("6x1x0").scid]
    out: dict[tuple[str, int], tuple[object, ...]] = {}
    for scid, ch in gm.channels.items():
        for d in (0, 1):
            h = ch.half_channels[d]
            if h is not None:
                cap = ch.satoshis * 1000
                out[(str(scid), d)] = (
                    str(h.source),
                    str(h.destination),
                    cap,
                    h.fee_base_msat,
                    h.fee_proportional_millionths,
                    h.cltv_expiry_delta,
                    h.htlc_minimum_msat,
                    min(h.htlc_maximum_msat, cap),
                    not h.disabled,
                    ch.is_private,
                )
    return out


def test_duplicate_announcement_keeps_the_first(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_channel("7x1x0", A, B, capacity_sat=1_000)
    w.add_update("7x1x0", 0, fee_ppm=1)
    w.add_channel("7x1x0", C, D, capacity_sat=9_000)  # gossmap logs "redundant" and keeps #1
    w.add_update("7x1x0", 0, fee_ppm=2)
    g = load_gossip_store(_write(tmp_path, w))
    assert _row(g, "7x1x0", 0)[:5] == (A, B, 1_000_000, 1000, 2)


def test_channel_without_amount_is_not_loaded(tmp_path: Path) -> None:
    w = GossipStoreWriter()
    w.add_channel("8x1x0", A, B, capacity_sat=1_000)
    w.add_update("8x1x0", 0)
    w.record(encode_channel_update("9x1x0", 0))  # placeholder record between
    # an announcement whose amount record never came
    w.record(encode_channel_announcement("10x1x0", A, C))
    w.add_update("10x1x0", 0)
    g = load_gossip_store(_write(tmp_path, w))
    assert sorted(set(g.scid)) == ["8x1x0"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_store_matches_pyln(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    nodes = [node_id(i) for i in range(25)]
    w = GossipStoreWriter(checksums=False)
    w.add_uuid()
    scids: list[str] = []
    for k in range(60):
        a, b = rng.sample(nodes, 2)
        scid = f"{700_000 + k}x{rng.randrange(3000)}x{rng.randrange(4)}"
        deleted = rng.random() < 0.1
        fl = FLAG_COMPLETED | (FLAG_DELETED if deleted else 0)
        w.add_channel(scid, a, b, capacity_sat=rng.randrange(20_000, 10**8), flags=fl)
        if not deleted:
            scids.append(scid)
        for _ in range(rng.randrange(4)):
            s = rng.choice(scids) if scids else scid
            w.add_update(
                s,
                rng.randrange(2),
                fee_base_msat=rng.randrange(5000),
                fee_ppm=rng.randrange(3000),
                cltv_delta=rng.choice([6, 34, 40, 144]),
                htlc_min_msat=rng.randrange(2000),
                htlc_max_msat=rng.randrange(1, 2 * 10**11),
                disabled=rng.random() < 0.2,
                flags=FLAG_COMPLETED | (FLAG_DELETED if rng.random() < 0.1 else 0),
            )
        if rng.random() < 0.05 and scids:
            w.add_delete(scids.pop(rng.randrange(len(scids))))
        if rng.random() < 0.2:
            w.add_node(rng.choice(nodes), alias=f"n{k}")
    p = _write(tmp_path, w)
    ours = _our_rows(load_gossip_store(p))
    assert len(ours) > 30
    assert ours == _pyln_rows(p)


# -- partial, truncated and foreign files ----------------------------------------------------


def _two_channel_store() -> GossipStoreWriter:
    w = GossipStoreWriter()
    w.add_uuid()
    w.add_channel("100x1x0", A, B, capacity_sat=1_000_000)
    w.add_update("100x1x0", 0)
    w.add_channel("101x1x0", B, C, capacity_sat=1_000_000)
    w.add_update("101x1x0", 1)
    return w


def test_record_being_written_is_not_an_error(tmp_path: Path) -> None:
    w = _two_channel_store()
    w.record(encode_channel_update("100x1x0", 1), flags=0)  # completed bit not yet set
    full = w.getvalue()
    for cut in (0, 3, 20):  # the unfinished record may even be partially on disk
        p = tmp_path / f"gs{cut}"
        p.write_bytes(full[: len(full) - cut])
        g = load_gossip_store(p)
        assert sorted(zip(g.scid, g.direction.tolist(), strict=True)) == [
            ("100x1x0", 0),
            ("101x1x0", 1),
        ]


@pytest.mark.parametrize("cut", [1, 10, 100, 140])
def test_truncated_store(tmp_path: Path, cut: int) -> None:
    full = _two_channel_store().getvalue()
    p = tmp_path / "gossip_store"
    p.write_bytes(full[: len(full) - cut])
    with pytest.raises(GraphLoadError, match=r"gossip_store: truncated record"):
        load_gossip_store(p)


@pytest.mark.parametrize("version", [0x20, 0xF0, 0x0C, 0x00])
def test_wrong_version(tmp_path: Path, version: int) -> None:
    w = GossipStoreWriter(version=version)
    p = _write(tmp_path, w, "old_store")
    with pytest.raises(
        GraphLoadError,
        match=rf"old_store: unsupported gossip_store version "
        rf"0x{version:02x}",
    ):
        load_gossip_store(p)


def test_version_15_is_accepted(tmp_path: Path) -> None:
    w = GossipStoreWriter(version=0x0F)
    w.add_channel("100x1x0", A, B, capacity_sat=1)
    w.add_update("100x1x0", 0)
    assert load_gossip_store(_write(tmp_path, w)).num_edges == 1


def test_empty_missing_and_malformed(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(GraphLoadError, match="empty: empty file"):
        load_gossip_store(empty)
    with pytest.raises(GraphLoadError, match="nope: no such file"):
        load_gossip_store(tmp_path / "nope")
    with pytest.raises(GraphLoadError, match="is a directory"):
        load_gossip_store(tmp_path)
    w = GossipStoreWriter()
    w.record(b"\x01")  # a record too short to hold a type
    with pytest.raises(GraphLoadError, match="too short"):
        load_gossip_store(_write(tmp_path, w, "short"))
    w = GossipStoreWriter()
    w.add_channel("100x1x0", A, B, capacity_sat=1)
    w.record(encode_channel_update("100x1x0", 0)[:100])
    with pytest.raises(GraphLoadError, match=r"bad_update: channel_update at offset \d+ is too"):
        load_gossip_store(_write(tmp_path, w, "bad_update"))


# -- gossip_store_ended ------------------------------------------------------------------------


def test_ended_store_that_was_not_replaced_keeps_its_records(tmp_path: Path) -> None:
    w = _two_channel_store()
    w.add_ended(1234)
    w.add_channel("102x1x0", C, D, capacity_sat=1)  # after the end marker: not read
    w.add_update("102x1x0", 0)
    g = load_gossip_store(_write(tmp_path, w))
    assert sorted(set(g.scid)) == ["100x1x0", "101x1x0"]


def test_ended_store_replaced_by_a_new_file_is_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _two_channel_store()
    old.add_ended(1234)
    p = _write(tmp_path, old)
    new = GossipStoreWriter()
    new.add_uuid()
    new.add_channel("200x1x0", D, E, capacity_sat=3)
    new.add_update("200x1x0", 1)
    # simulate lightningd renaming the rewritten store over the path after we opened it
    (tmp_path / "gossip_store.tmp").write_bytes(new.getvalue())
    real_read = gs_mod._read
    calls: list[Path] = []

    def read_then_replace(path: Path) -> tuple[bytes, tuple[int, int]]:
        out = real_read(path)
        calls.append(path)
        if len(calls) == 1:
            (tmp_path / "gossip_store.tmp").replace(path)
        return out

    monkeypatch.setattr(gs_mod, "_read", read_then_replace)
    g = load_gossip_store(p)
    assert len(calls) == 2
    assert set(g.scid) == {"200x1x0"}
    # and pyln's Gossmap would have died on it
    with pytest.raises(AssertionError):
        Gossmap(str(_write(tmp_path, old, "old_copy")))
