"""The tests' route-blinding helper (``route_blinding.py``) against BOLT 4's own vectors.

``vectors/route-blinding-test.json`` (lightning/bolts ``bolt04/``): a route made of two
blinded routes, Bob -> Carol (session key 0x02...) and Dave -> Eve (0x01...).
"""

from __future__ import annotations

from typing import Any

import pytest
from onion_data import load_json
from route_blinding import (
    BlindedRoute,
    Payinfo,
    blind_path,
    bolt12_decode,
    bolt12_encode,
    final_tlvs,
    hop_secrets,
    intro_tlvs,
    next_path_privkey,
    rewrite_invoice,
)

from barq.onion.tlv import decode_tlv_stream


def _vector() -> dict[str, Any]:
    out: dict[str, Any] = load_json("route-blinding-test.json")
    return out


def _hops() -> list[dict[str, Any]]:
    hops: list[dict[str, Any]] = _vector()["generate"]["hops"]
    return hops


@pytest.mark.parametrize("i", range(4))
def test_every_hop_matches_the_vector(i: int) -> None:
    h = _hops()[i]
    got = hop_secrets(
        bytes.fromhex(h["path_privkey"]),
        bytes.fromhex(h["node_id"]),
        bytes.fromhex(h["encoded_tlvs"]),
    )
    assert got.path_key.hex() == h["path_key"]
    assert got.shared_secret.hex() == h["shared_secret"]
    assert got.rho.hex() == h["rho"]
    assert got.blinded_node_id.hex() == h["blinded_node_id"]
    assert got.encrypted_data.hex() == h["encrypted_data"]


def test_the_next_path_key_is_derived_as_the_vector_says() -> None:
    bob, carol, dave, eve = _hops()
    for a, b in ((bob, carol), (dave, eve)):
        e = bytes.fromhex(a["path_privkey"])
        hop = hop_secrets(e, bytes.fromhex(a["node_id"]), bytes.fromhex(a["encoded_tlvs"]))
        assert next_path_privkey(e, hop).hex() == b["path_privkey"]


def test_blind_path_builds_the_vectors_routes() -> None:
    v = _vector()
    bob, carol, dave, eve = _hops()
    hops = v["route"]["hops"]
    for session, (a, b), expected in (
        (bob["session_key"], (bob, carol), hops[:2]),
        (dave["session_key"], (dave, eve), hops[2:]),
    ):
        route = blind_path(
            bytes.fromhex(session),
            [bytes.fromhex(a["node_id"]), bytes.fromhex(b["node_id"])],
            [bytes.fromhex(a["encoded_tlvs"]), bytes.fromhex(b["encoded_tlvs"])],
        )
        assert [h.blinded_node_id.hex() for h in route.hops] == [
            x["blinded_node_id"] for x in expected
        ]
        assert [h.encrypted_data.hex() for h in route.hops] == [
            x["encrypted_data"] for x in expected
        ]
    first = blind_path(
        bytes.fromhex(bob["session_key"]),
        [bytes.fromhex(bob["node_id"])],
        [bytes.fromhex(bob["encoded_tlvs"])],
    )
    assert first.first_node_id.hex() == v["route"]["first_node_id"]
    assert first.first_path_key.hex() == v["route"]["first_path_key"]


def test_tlvs_encode_the_vectors_fields() -> None:
    bob, _carol, _dave, eve = _hops()
    relay, constraints = bob["tlvs"]["payment_relay"], bob["tlvs"]["payment_constraints"]
    ours = decode_tlv_stream(
        intro_tlvs(
            scid=bob["tlvs"]["short_channel_id"],
            cltv_expiry_delta=relay["cltv_expiry_delta"],
            fee_base_msat=relay["fee_base_msat"],
            fee_proportional_millionths=relay["fee_proportional_millionths"],
            max_cltv_expiry=constraints["max_cltv_expiry"],
            htlc_minimum_msat=constraints["htlc_minimum_msat"],
        )
    )
    theirs = decode_tlv_stream(bytes.fromhex(bob["encoded_tlvs"]))
    assert ours == {t: theirs[t] for t in (2, 10, 12)}
    eves = decode_tlv_stream(bytes.fromhex(eve["encoded_tlvs"]))
    assert decode_tlv_stream(final_tlvs(bytes.fromhex(eve["tlvs"]["path_id"]))) == {6: eves[6]}


def test_an_invoice_is_rewritten_with_two_paths_and_no_signature() -> None:
    inv: str = load_json("bolt12_regtest.json")["fetchinvoice"]["invoice"]
    hrp, records = bolt12_decode(inv)
    assert hrp == "lni" and bolt12_encode(hrp, records) == inv  # round trip
    bob, _carol, dave, _eve = _hops()
    paths = [
        blind_path(bytes.fromhex(n["session_key"]), [bytes.fromhex(n["node_id"])], [b"\x06\x01x"])
        for n in (bob, dave)
    ]
    info = Payinfo(
        fee_base_msat=1,
        fee_proportional_millionths=10,
        cltv_expiry_delta=24,
        htlc_minimum_msat=0,
        htlc_maximum_msat=700_000_000,
    )
    out = rewrite_invoice(inv, paths, [info, info], b"\x11" * 32)
    _, new = bolt12_decode(out)
    assert 240 not in new and new[168] == b"\x11" * 32
    assert new[160] == paths[0].serialize() + paths[1].serialize()
    assert len(new[162]) == 2 * len(info.serialize()) == 2 * 28
    assert {t: v for t, v in new.items() if t not in (160, 162, 168)} == {
        t: v for t, v in records.items() if t not in (160, 162, 168, 240)
    }
    # first node, path key, one hop: blinded id, u16 length, 3 bytes of TLV + 16 of Poly1305
    assert isinstance(paths[0], BlindedRoute)
    assert len(paths[0].serialize()) == 33 + 33 + 1 + 33 + 2 + 3 + 16
