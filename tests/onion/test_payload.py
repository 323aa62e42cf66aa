"""BOLT 4 hop payloads, byte for byte against the spec's onion test vectors."""

from __future__ import annotations

from typing import Any

import pytest
from onion_data import blinded_vector, load_json

from barq.onion import (
    KEYSEND_PREIMAGE,
    HopPayload,
    TlvError,
    blinded_payload,
    check_custom_records,
    decode_payload,
    final_payload,
    forward_payload,
)
from barq.onion.payload import scid_from_u64, scid_to_u64
from barq.onion.tlv import encode_tlv_stream, prefix_length


def _clear_hops() -> list[dict[str, Any]]:
    hops: list[dict[str, Any]] = load_json("onion-test.json")["generate"]["hops"]
    return hops


def test_forwarding_payloads_of_the_clear_vector() -> None:
    """bolt04/onion-test.json hops 0, 2, 3: amt_to_forward, outgoing_cltv_value, scid."""
    hops = _clear_hops()
    expected = {0: (15000, 1500, "0x0x1"), 2: (12500, 1250, "0x0x3"), 3: (10000, 1000, "0x0x4")}
    for i, (amount, cltv, scid) in expected.items():
        built = forward_payload(short_channel_id=scid, amt_to_forward=amount, outgoing_cltv=cltv)
        assert built.hex() == hops[i]["payload"]


def test_vector_payloads_with_odd_unknown_records() -> None:
    """Hops 1 and 4 carry records 513 and 301 (below 65536, so not Barq custom records):
    the known fields still encode to the vector's bytes around them."""
    hops = _clear_hops()
    one = HopPayload(amt_to_forward=14000, outgoing_cltv_value=1400, short_channel_id="0x0x2")
    records = one.records()
    records[513] = bytes(range(1, 16)) * 4
    assert prefix_length(encode_tlv_stream(records)).hex() == hops[1]["payload"]

    vec_final = bytes.fromhex(hops[4]["payload"])
    secret = decode_payload(vec_final).payment_secret
    assert secret is not None
    final = HopPayload(
        amt_to_forward=10000, outgoing_cltv_value=1000, payment_secret=secret, total_msat=10000
    )
    records = final.records()
    records[301] = b"\x2a" * 224
    assert prefix_length(encode_tlv_stream(records)) == vec_final


def test_decode_the_clear_vector() -> None:
    final = decode_payload(bytes.fromhex(_clear_hops()[4]["payload"]))
    assert (final.amt_to_forward, final.outgoing_cltv_value, final.total_msat) == (
        10000,
        1000,
        10000,
    )
    assert final.short_channel_id is None
    assert list(final.custom_records) == [301]


def test_blinded_vector_payloads() -> None:
    """bolt04/blinded-payment-onion-test.json: Alice (clear), Bob (introduction),
    Carol, Dave, Eve (final), each built by the matching builder."""
    vec = blinded_vector()
    hops = vec["full_route"]["hops"]
    tlvs = [h["tlvs"] for h in hops]
    alice = forward_payload(
        short_channel_id=tlvs[0]["outgoing_channel_id"],
        amt_to_forward=tlvs[0]["amt_to_forward"],
        outgoing_cltv=tlvs[0]["outgoing_cltv_value"],
    )
    assert alice.hex() == hops[0]["payload"]
    blinded = vec["blinded_route"]
    enc = [bytes.fromhex(h["encrypted_data"]) for h in blinded["hops"]]
    bob = blinded_payload(
        encrypted_recipient_data=enc[0], path_key=bytes.fromhex(blinded["first_path_key"])
    )
    assert bob.hex() == hops[1]["payload"]
    assert blinded_payload(encrypted_recipient_data=enc[1]).hex() == hops[2]["payload"]
    assert blinded_payload(encrypted_recipient_data=enc[2]).hex() == hops[3]["payload"]
    eve = blinded_payload(
        encrypted_recipient_data=enc[3],
        amt_to_forward=tlvs[4]["amt_to_forward"],
        outgoing_cltv=tlvs[4]["outgoing_cltv_value"],
        total_amount_msat=tlvs[4]["total_amount_msat"],
    )
    assert eve.hex() == hops[4]["payload"]
    parsed = decode_payload(eve)
    assert (parsed.amt_to_forward, parsed.total_amount_msat) == (100000, 150000)


def test_final_payload_fields() -> None:
    secret = bytes(range(32))
    built = decode_payload(
        final_payload(
            amt_to_forward=4000,
            outgoing_cltv=800,
            payment_secret=secret,
            total_msat=9000,
            payment_metadata=b"meta",
            custom_records={KEYSEND_PREIMAGE: b"\x01" * 32, 65537: b"x"},
        )
    )
    assert built == HopPayload(
        amt_to_forward=4000,
        outgoing_cltv_value=800,
        payment_secret=secret,
        total_msat=9000,
        payment_metadata=b"meta",
        custom_records={65537: b"x", KEYSEND_PREIMAGE: b"\x01" * 32},
    )
    # no secret: no payment_data at all (keysend), total defaults to the amount
    bare = decode_payload(final_payload(amt_to_forward=5, outgoing_cltv=9))
    assert bare.payment_secret is None and bare.total_msat is None
    # TLV order: 2, 4, 8, 16, 65537, 5482373484 whatever the dict order
    raw = final_payload(
        amt_to_forward=1,
        outgoing_cltv=1,
        payment_secret=secret,
        custom_records={KEYSEND_PREIMAGE: b"", 65537: b""},
    )
    assert raw.endswith(bytes.fromhex("fe0001000100" + "ff0000000146c6616c00"))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"amt_to_forward": 0, "outgoing_cltv": 1}, "amt_to_forward must be positive"),
        ({"amt_to_forward": 1, "outgoing_cltv": 0}, "outgoing_cltv must be positive"),
        ({"amt_to_forward": 5, "outgoing_cltv": 1, "total_msat": 4}, "below this part"),
        ({"amt_to_forward": 5, "outgoing_cltv": 1, "total_msat": 10}, "needs the invoice"),
        (
            {"amt_to_forward": 5, "outgoing_cltv": 1, "payment_secret": b"short"},
            "32 bytes",
        ),
        (
            {"amt_to_forward": 5, "outgoing_cltv": 1, "custom_records": {8: b""}},
            "type 8 is a BOLT 4 payload field",
        ),
        (
            {"amt_to_forward": 5, "outgoing_cltv": 1, "custom_records": {65535: b""}},
            "type 65535 is reserved for BOLT 4",
        ),
        ({"amt_to_forward": 2**64, "outgoing_cltv": 1}, "tu64 out of range"),
        ({"amt_to_forward": 1, "outgoing_cltv": 2**32}, "tu32 out of range"),
    ],
)
def test_final_payload_refusals(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        final_payload(**kwargs)


def test_blinded_payload_refusals() -> None:
    with pytest.raises(ValueError, match="needs amt_to_forward, outgoing_cltv and total"):
        blinded_payload(encrypted_recipient_data=b"x", amt_to_forward=5)
    with pytest.raises(ValueError, match="below this part"):
        blinded_payload(
            encrypted_recipient_data=b"x", amt_to_forward=5, outgoing_cltv=1, total_amount_msat=4
        )
    with pytest.raises(ValueError, match="33-byte compressed point"):
        blinded_payload(encrypted_recipient_data=b"x", path_key=b"\x04" + bytes(32))


def test_forward_payload_refuses_a_bad_scid() -> None:
    with pytest.raises(ValueError, match="not a short_channel_id"):
        forward_payload(short_channel_id="103:1:0", amt_to_forward=1, outgoing_cltv=1)
    with pytest.raises(ValueError, match="out of range"):
        forward_payload(short_channel_id="16777216x0x0", amt_to_forward=1, outgoing_cltv=1)


def test_scid_u64() -> None:
    assert scid_to_u64("103x1x0") == (103 << 40) | (1 << 16)
    assert scid_from_u64(scid_to_u64("700123x2047x3")) == "700123x2047x3"


def test_custom_record_rule() -> None:
    check_custom_records({65536: b"", 65537: b"", KEYSEND_PREIMAGE: b"", 133773310: b""})
    with pytest.raises(ValueError, match="custom records need a type >= 65536"):
        check_custom_records({2: b""})
    with pytest.raises(ValueError, match="above 2\\*\\*64 - 1"):
        check_custom_records({2**64: b""})


def test_decode_rejects_bad_known_fields() -> None:
    with pytest.raises(TlvError, match="short_channel_id must be 8 bytes"):
        decode_payload(bytes.fromhex("0602" + "0000"), prefixed=False)
    with pytest.raises(TlvError, match="not minimal"):
        decode_payload(bytes.fromhex("020100"), prefixed=False)
    with pytest.raises(TlvError, match="payment_data shorter"):
        decode_payload(bytes.fromhex("080100"), prefixed=False)
