"""listchannels loader: dicts, JSON files, gzip, old msat strings, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from graph_helpers import node_id

from barq.errors import GraphLoadError
from barq.graph import load_listchannels

A, B, C = node_id(1), node_id(2), node_id(3)


def _entry(src: str, dst: str, scid: str, **kw: Any) -> dict[str, Any]:
    """One direction as CLN v26 prints it (doc/schemas/listchannels.json)."""
    e: dict[str, Any] = {
        "source": src,
        "destination": dst,
        "short_channel_id": scid,
        "direction": 0 if src < dst else 1,
        "public": True,
        "amount_msat": 1_000_000_000,
        "message_flags": 1,
        "channel_flags": 0 if src < dst else 1,
        "active": True,
        "last_update": 1738000001,
        "base_fee_millisatoshi": 1,
        "fee_per_millionth": 10,
        "delay": 6,
        "htlc_minimum_msat": 0,
        "htlc_maximum_msat": 990_000_000,
        "features": "",
    }
    e.update(kw)
    return e


def _doc() -> dict[str, Any]:
    return {
        "channels": [
            _entry(A, B, "116x1x1"),
            _entry(B, A, "116x1x1", active=False, base_fee_millisatoshi=7),
            _entry(
                C,
                B,
                "117x2x0",
                public=False,
                amount_msat=50_000_000,
                htlc_maximum_msat=None,
                fee_per_millionth=250,
                delay=144,
            ),
        ]
    }


def _check(g: Any) -> None:
    assert g.num_edges == 3
    e = g.edge("116x1x1", 0)
    h = g.half_channel(e)
    assert (
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
    ) == (A, B, 10**9, 1, 10, 6, 0, 990_000_000, True, False)
    h = g.half_channel(g.edge("116x1x1", 1))
    assert (h.source, h.enabled, h.fee_base_msat) == (B, False, 7)
    h = g.half_channel(g.edge("117x2x0", 1))
    assert (h.source, h.destination, h.private, h.htlc_max_msat, h.fee_ppm, h.cltv_delta) == (
        C,
        B,
        True,
        50_000_000,
        250,
        144,
    )


def test_from_parsed_dict() -> None:
    doc = _doc()
    del doc["channels"][2]["htlc_maximum_msat"]  # optional in the schema
    _check(load_listchannels(doc))


def test_from_json_and_gzip_files(tmp_path: Path) -> None:
    raw = json.dumps(_doc()).encode()
    (tmp_path / "lc.json").write_bytes(raw)
    (tmp_path / "lc.json.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "lc_gz_without_suffix").write_bytes(gzip.compress(raw))
    for name in ("lc.json", "lc.json.gz", "lc_gz_without_suffix"):
        _check(load_listchannels(tmp_path / name))
        _check(load_listchannels(str(tmp_path / name)))


def test_old_msat_strings_and_missing_direction() -> None:
    doc = _doc()
    for e in doc["channels"]:
        e["amount_msat"] = f"{e['amount_msat']}msat"
        e["htlc_minimum_msat"] = "0msat"
        del e["direction"]
    doc["channels"][0]["htlc_maximum_msat"] = "990000000msat"
    _check(load_listchannels(doc))


def test_htlc_max_capped_and_duplicates_last_wins() -> None:
    doc = {
        "channels": [
            _entry(A, B, "1x1x1", htlc_maximum_msat=5 * 10**9),
            _entry(A, B, "1x1x1", fee_per_millionth=99, htlc_maximum_msat=5),
        ]
    }
    g = load_listchannels(doc)
    assert g.num_edges == 1
    assert (g.fee_ppm[0], g.htlc_max_msat[0]) == (99, 5)
    g = load_listchannels({"channels": [_entry(A, B, "1x1x1", htlc_maximum_msat=5 * 10**9)]})
    assert g.htlc_max_msat.tolist() == [10**9]


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda e: e.pop("delay"), r"missing required field `delay`"),
        (lambda e: e.update(delay="six"), r"\$\.channels\[0\]\.delay"),
        (lambda e: e.update(direction=1), r"direction 1 but direction 0"),
        (lambda e: e.update(short_channel_id="1:2:3"), r"is not BLOCKxTXxOUT"),
        (lambda e: e.update(source="02abc", direction=1), r"'02abc' is not a node id"),
        (lambda e: e.update(destination=A), r"source and destination are the same"),
        (lambda e: e.update(amount_msat="12sat"), r"amount_msat: '12sat' is not an msat"),
        (
            lambda e: e.update(fee_per_millionth=2**32),
            r"fee_per_millionth: 4294967296 is not a u32",
        ),
    ],
)
def test_bad_entries(mutate: Any, pattern: str) -> None:
    e = _entry(A, B, "1x1x1")
    mutate(e)
    with pytest.raises(GraphLoadError, match=pattern):
        load_listchannels({"channels": [e]})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(GraphLoadError, match=r"nope\.json: no such file"):
        load_listchannels(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"channels": [')
    with pytest.raises(GraphLoadError, match=r"bad\.json: invalid JSON"):
        load_listchannels(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"peers": []}')
    with pytest.raises(GraphLoadError, match=r"wrong\.json: not a listchannels result"):
        load_listchannels(wrong)
    trunc = tmp_path / "t.json.gz"
    trunc.write_bytes(gzip.compress(json.dumps(_doc()).encode())[:40])
    with pytest.raises(GraphLoadError, match=r"t\.json\.gz: corrupt or truncated gzip"):
        load_listchannels(trunc)
    with pytest.raises(GraphLoadError, match="expected a path or a mapping"):
        load_listchannels(42)  # type: ignore[arg-type]


def test_empty_listing() -> None:
    g = load_listchannels({"channels": []})
    assert (g.num_nodes, g.num_edges) == (0, 0)
