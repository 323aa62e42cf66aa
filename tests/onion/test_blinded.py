"""The blinded-path edge model (fee, CLTV, limits) and reading ``decode``'s invoice_paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from onion_data import load_json

from barq.model import fee_msat, is_node_id
from barq.onion import (
    BLINDED_DESTINATION,
    BlindedHop,
    BlindedPath,
    BlindedPayinfo,
    blinded_edge,
    paths_from_decode,
)

INTRO = "02" + "11" * 32


def payinfo(
    base: int, ppm: int, *, cltv: int = 40, lo: int = 0, hi: int = 10**12
) -> BlindedPayinfo:
    return BlindedPayinfo(
        fee_base_msat=base,
        fee_proportional_millionths=ppm,
        cltv_expiry_delta=cltv,
        htlc_minimum_msat=lo,
        htlc_maximum_msat=hi,
    )


def path(first: str | None = INTRO) -> BlindedPath:
    return BlindedPath(
        first_node_id=first,
        first_path_key=bytes.fromhex("02" + "22" * 32),
        hops=(BlindedHop(blinded_node_id="03" + "33" * 32, encrypted_recipient_data=b"x"),),
    )


# --------------------------------------------------------------------------- fee


@pytest.mark.parametrize(
    ("base", "ppm", "deliver", "fee"),
    [
        (1000, 100, 1_000_000, 1100),  # 1000 + 1_000_000 * 100 / 1e6
        (0, 1, 999_999, 0),  # 0.999999 msat floors to 0
        (0, 1, 1_000_000, 1),
        (10100, 251, 100_000, 10125),  # the BOLT 4 vector: 25.1 floors to 25 -> 110125 in
        (1, 10, 30_000_000, 301),  # CLN's regtest invoice path: 1 + 300
        (0, 0, 5, 0),
    ],
)
def test_fee_is_bolt7_floor_on_the_delivered_amount(
    base: int, ppm: int, deliver: int, fee: int
) -> None:
    info = payinfo(base, ppm)
    assert info.fee_msat(deliver) == fee
    assert info.amount_in_msat(deliver) == deliver + fee


def test_max_deliverable_by_hand() -> None:
    info = payinfo(1000, 100)
    assert info.max_deliverable_msat(1_001_100) == 1_000_000
    # 999_999 + 1000 + floor(99.9999) = 1_001_098 fits, 1_000_000 needs 1_001_100
    assert info.max_deliverable_msat(1_001_099) == 999_999
    assert info.max_deliverable_msat(1000) == 0
    assert info.max_deliverable_msat(999) == -1


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**13))
def test_max_deliverable_is_the_exact_inverse(base: int, ppm: int, budget: int) -> None:
    info = payinfo(base, ppm)
    d = info.max_deliverable_msat(budget)
    if d < 0:
        assert budget < base
    else:
        assert info.amount_in_msat(d) <= budget < info.amount_in_msat(d + 1)


# --------------------------------------------------------------------------- edge


def test_edge_is_a_channel_to_the_blinded_destination() -> None:
    edge = blinded_edge(2, path(), payinfo(1000, 100, cltv=46, lo=0, hi=1_001_100))
    assert (edge.source, edge.destination) == (INTRO, BLINDED_DESTINATION)
    assert is_node_id(BLINDED_DESTINATION)
    assert edge.scid == "0x0x2" and edge.scid_dir == f"0x0x2/{edge.direction}"
    assert edge.direction == 1  # BLINDED_DESTINATION sorts below every real id
    assert (edge.fee_base_msat, edge.fee_ppm, edge.cltv_delta) == (1000, 100, 46)
    assert edge.fee_msat(500_000) == fee_msat(500_000, 1000, 100) == 1050
    # htlc_maximum_msat bounds what enters the path (fee included): 1_000_000 delivered
    assert (edge.htlc_min_msat, edge.htlc_max_msat) == (1, 1_000_000)
    assert edge.accepts(1_000_000) and not edge.accepts(1_000_001) and not edge.accepts(0)


def test_edge_minimum_applies_to_the_delivered_amount() -> None:
    edge = blinded_edge(0, path(), payinfo(5, 0, lo=2000))
    assert not edge.accepts(1999) and edge.accepts(2000)


def test_edge_refusals() -> None:
    with pytest.raises(ValueError, match="path index -1 outside"):
        blinded_edge(-1, path(), payinfo(0, 0))
    with pytest.raises(ValueError, match="introduction node not resolved"):
        blinded_edge(0, path(None), payinfo(0, 0))
    with pytest.raises(ValueError, match="leaves nothing above htlc_minimum_msat"):
        blinded_edge(0, path(), payinfo(1000, 0, lo=10, hi=1005))


def test_introduction_node_may_be_anyone() -> None:
    """Payer, direct peer or payee: the edge always goes to the pseudo destination."""
    for first in (INTRO, "03" + "44" * 32):
        assert blinded_edge(0, path(first), payinfo(0, 0)).source == first


def test_unknown_even_payinfo_features() -> None:
    assert payinfo(0, 0).unknown_even_feature() is None
    even = BlindedPayinfo(**{**_fields(payinfo(0, 0)), "features": b"\x01\x00"})  # bit 8
    assert even.unknown_even_feature() == 8
    assert even.unknown_even_feature(frozenset({8})) is None
    odd = BlindedPayinfo(**{**_fields(payinfo(0, 0)), "features": b"\x02"})  # bit 1
    assert odd.unknown_even_feature() is None


def _fields(info: BlindedPayinfo) -> dict[str, Any]:
    return {f: getattr(info, f) for f in info.__struct_fields__}


# --------------------------------------------------------------------------- decode JSON


def _decoded() -> dict[str, Any]:
    out: dict[str, Any] = load_json("bolt12_regtest.json")["decode_invoice"]
    return out


def test_paths_from_a_cln_decode() -> None:
    decoded = _decoded()
    ((bpath, info),) = paths_from_decode(decoded)
    raw = decoded["invoice_paths"][0]
    assert bpath.first_node_id == raw["first_node_id"]
    assert bpath.first_path_key.hex() == raw["first_path_key"]
    assert [h.blinded_node_id for h in bpath.hops] == [h["blinded_node_id"] for h in raw["path"]]
    assert [h.encrypted_recipient_data.hex() for h in bpath.hops] == [
        h["encrypted_recipient_data"] for h in raw["path"]
    ]
    pi = raw["payinfo"]
    assert (info.fee_base_msat, info.fee_proportional_millionths) == (
        pi["fee_base_msat"],
        pi["fee_proportional_millionths"],
    )
    assert (info.cltv_expiry_delta, info.htlc_minimum_msat, info.htlc_maximum_msat) == (
        pi["cltv_expiry_delta"],
        pi["htlc_minimum_msat"],
        pi["htlc_maximum_msat"],
    )
    assert info.features == b""
    assert len(bpath.hops) == 2  # CLN: introduction node (the payee's peer), then the payee
    edge = blinded_edge(0, bpath, info)
    assert edge.accepts(decoded["invoice_amount_msat"])


def test_a_path_named_by_channel_end_needs_resolving() -> None:
    decoded = copy.deepcopy(_decoded())
    raw = decoded["invoice_paths"][0]
    del raw["first_node_id"]
    raw["first_scid"], raw["first_scid_dir"] = "103x1x0", 1
    ((bpath, info),) = paths_from_decode(decoded)
    assert bpath.first_node_id is None and bpath.first_scid_dir == "103x1x0/1"
    with pytest.raises(ValueError, match="not resolved"):
        blinded_edge(0, bpath, info)
    resolved = bpath.with_first_node(INTRO)
    assert blinded_edge(0, resolved, info).source == INTRO
    with pytest.raises(ValueError, match="not a node id"):
        bpath.with_first_node("nope")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d.update(type="bolt12 offer"), "not a valid bolt12 invoice"),
        (lambda d: d.update(valid=False), "not a valid bolt12 invoice"),
        (lambda d: d.pop("invoice_paths"), "without invoice_paths"),
        (lambda d: d["invoice_paths"][0].update(path=[]), r"invoice_paths\[0\] has no hops"),
        (lambda d: d["invoice_paths"][0].pop("first_node_id"), "neither first_node_id"),
        (lambda d: d["invoice_paths"][0]["payinfo"].pop("cltv_expiry_delta"), "malformed"),
        (lambda d: d["invoice_paths"][0]["payinfo"].update(fee_base_msat="1msat"), "malformed"),
        (lambda d: d["invoice_paths"][0].update(first_node_id="04ab"), "not a node id"),
        (lambda d: d["invoice_paths"][0].update(first_path_key="02ab"), "not a compressed point"),
        (lambda d: d["invoice_paths"][0].update(first_path_key="zz"), "first_path_key is not hex"),
        (
            lambda d: d["invoice_paths"][0]["path"][0].update(encrypted_recipient_data="x"),
            "encrypted_recipient_data is not hex",
        ),
    ],
)
def test_malformed_decode_answers(change: Any, error: str) -> None:
    decoded = copy.deepcopy(_decoded())
    change(decoded)
    with pytest.raises(ValueError, match=error):
        paths_from_decode(decoded)
