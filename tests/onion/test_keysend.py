"""Keysend: the preimage record and the ``extratlvs`` rules."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from barq.errors import InvalidParams
from barq.onion import (
    KEYSEND_FINAL_CLTV,
    KEYSEND_PREIMAGE,
    keysend_final,
    new_preimage,
    parse_extratlvs,
    payment_hash_of,
)


def test_preimage_and_hash() -> None:
    preimage = new_preimage()
    assert len(preimage) == 32 and new_preimage() != preimage
    assert payment_hash_of(preimage) == hashlib.sha256(preimage).hexdigest()
    assert KEYSEND_PREIMAGE == 5482373484 and KEYSEND_FINAL_CLTV == 42


def test_keysend_final_carries_the_preimage() -> None:
    final = keysend_final(b"\x01" * 32, {65537: b"note"})
    assert final.custom_records == {65537: b"note", KEYSEND_PREIMAGE: b"\x01" * 32}
    assert final.payment_secret is None and final.total_msat is None
    with pytest.raises(ValueError, match="32 bytes"):
        keysend_final(b"\x01" * 31)
    with pytest.raises(ValueError, match="must not carry the keysend preimage"):
        keysend_final(b"\x01" * 32, {KEYSEND_PREIMAGE: b""})


def test_extratlvs_as_cln_takes_them() -> None:
    assert parse_extratlvs({"65537": "6869", "133773310": ""}) == {65537: b"hi", 133773310: b""}
    assert parse_extratlvs({7629169: "00"}) == {7629169: b"\x00"}


@pytest.mark.parametrize(
    ("extratlvs", "error"),
    [
        ({"8": "00"}, "type 8 is reserved for BOLT 4"),
        ({"65535": "00"}, "type 65535 is reserved"),
        ({"5482373484": "00"}, "is the keysend preimage"),
        ({"abc": "00"}, "'abc' is not a numeric TLV type"),
        ({"-5": "00"}, "not a numeric TLV type"),
        ({"65537": "zz"}, "not hex"),
        ({"65537": 5}, "must be a hex string"),
        ({str(2**64): "00"}, "above 2\\*\\*64 - 1"),
    ],
)
def test_extratlvs_refusals(extratlvs: Any, error: str) -> None:
    with pytest.raises(InvalidParams, match=error) as exc:
        parse_extratlvs(extratlvs)
    assert exc.value.code == -32602
