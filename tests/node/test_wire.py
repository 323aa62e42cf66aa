"""BOLT 4 failure messages and BOLT 7 channel_update / short_channel_id parsing (pure)."""

from __future__ import annotations

import msgspec
import pytest
from wire_bytes import channel_update, scid_int, with_update

from barq.model import ChannelUpdate, FailCode
from barq.node.wire import parse_channel_update, parse_failure_message, scid_from_int


def test_scid_from_int() -> None:
    assert scid_from_int(scid_int(103, 1, 0)) == "103x1x0"
    assert scid_from_int(scid_int(840000, 0xFFFFFF, 0xFFFF)) == "840000x16777215x65535"


@pytest.mark.parametrize("prefixed", [False, True])
@pytest.mark.parametrize(
    ("code", "fixed"),
    [
        (FailCode.TEMPORARY_CHANNEL_FAILURE, b""),
        (FailCode.AMOUNT_BELOW_MINIMUM, (5000).to_bytes(8, "big")),
        (FailCode.FEE_INSUFFICIENT, (10001).to_bytes(8, "big")),
        (FailCode.INCORRECT_CLTV_EXPIRY, (120).to_bytes(4, "big")),
        (FailCode.EXPIRY_TOO_SOON, b""),
        (FailCode.CHANNEL_DISABLED, (1).to_bytes(2, "big")),
    ],
)
def test_parse_failure_message_update_codes(code: int, fixed: bytes, prefixed: bool) -> None:
    update = channel_update(
        scid=(118, 1, 0),
        direction=1,
        cltv=40,
        htlc_min=1000,
        fee_base=1000,
        ppm=250,
        htlc_max=500_000_000,
        prefixed=prefixed,
    )
    got_code, got = parse_failure_message(with_update(code, fixed, update))
    assert got_code == code
    assert got is not None and got.signed == (update[2:] if prefixed else update)
    assert msgspec.structs.replace(got, signed=b"") == ChannelUpdate(
        scid="118x1x0",
        direction=1,
        fee_base_msat=1000,
        fee_ppm=250,
        cltv_delta=40,
        htlc_min_msat=1000,
        htlc_max_msat=500_000_000,
        disabled=False,
        timestamp=1738000123,
    )


def test_parse_channel_update_matches_store_writer() -> None:
    store_writer = pytest.importorskip("barq.graph.store_writer")
    raw = store_writer.encode_channel_update(
        "840000x1234x1",
        1,
        fee_base_msat=21,
        fee_ppm=3,
        cltv_delta=144,
        htlc_min_msat=1,
        htlc_max_msat=2**40,
        disabled=True,
        timestamp=1700000000,
    )
    got = parse_channel_update(raw)
    assert got.signed == raw[2:]  # from the signature on, without the type
    assert msgspec.structs.replace(got, signed=b"") == ChannelUpdate(
        scid="840000x1234x1",
        direction=1,
        fee_base_msat=21,
        fee_ppm=3,
        cltv_delta=144,
        htlc_min_msat=1,
        htlc_max_msat=2**40,
        disabled=True,
        timestamp=1700000000,
    )


def test_parse_channel_update_flags_and_optional_max() -> None:
    got = parse_channel_update(channel_update(direction=0, disabled=True, htlc_max=None))
    assert got.disabled and got.direction == 0 and got.htlc_max_msat is None
    # A bare update whose signature happens to start with the type bytes is still bare.
    tricky = channel_update(signature=b"\x01\x02" + bytes(62), fee_base=7)
    assert parse_channel_update(tricky).fee_base_msat == 7
    assert parse_channel_update(b"\x01\x02" + tricky).fee_base_msat == 7
    with pytest.raises(ValueError, match="too short"):
        parse_channel_update(bytes(100))


def test_parse_failure_message_without_update() -> None:
    # incorrect_or_unknown_payment_details: u64 htlc_msat, u32 height (CLN test_pay.py).
    assert parse_failure_message(bytes.fromhex("400f00000000000000640000006c")) == (0x400F, None)
    assert parse_failure_message(bytes.fromhex("2002")) == (0x2002, None)
    # UPDATE codes with a zero length (BOLT 4 lets nodes stop sending updates).
    assert parse_failure_message(bytes.fromhex("10070000")) == (0x1007, None)


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("1007"),  # no length
        bytes.fromhex("100b0000"),  # amount_below_minimum cut inside htlc_msat
        bytes.fromhex("1007008a") + bytes(20),  # length larger than the bytes left
        bytes.fromhex("10070010") + bytes(16),  # 16-byte "update"
    ],
)
def test_parse_failure_message_malformed_gives_no_update(raw: bytes) -> None:
    assert parse_failure_message(raw) == (int.from_bytes(raw[:2], "big"), None)


def test_parse_failure_message_too_short() -> None:
    with pytest.raises(ValueError):
        parse_failure_message(b"\x10")
