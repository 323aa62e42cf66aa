"""Data model: failcodes, routes in sendpay shape, scid/direction parsing, fees."""

from __future__ import annotations

import msgspec
import pytest

from barq.model import (
    FailCode,
    Hop,
    Route,
    RouteFailure,
    failcode_name,
    fee_msat,
    parse_scid_dir,
    scid_dir,
)
from barq.model.payment import PartEnded, PartState, PaymentEvent, PaymentStarted

A = "02" + "11" * 32
B = "03" + "22" * 32


def test_failcode_numbers_match_bolt4() -> None:
    assert FailCode.TEMPORARY_CHANNEL_FAILURE == 0x1007
    assert FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS == 0x400F
    assert FailCode.MPP_TIMEOUT == 0x17
    assert FailCode.PERMANENT_NODE_FAILURE == 0x6002
    assert FailCode.UNKNOWN_NEXT_PEER == 0x400A
    assert FailCode.CHANNEL_DISABLED == 0x1014
    assert FailCode.TEMPORARY_CHANNEL_FAILURE.cln_name == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert FailCode.from_name("WIRE_MPP_TIMEOUT") is FailCode.MPP_TIMEOUT
    assert FailCode.PERMANENT_CHANNEL_FAILURE.is_permanent
    assert not FailCode.TEMPORARY_CHANNEL_FAILURE.is_permanent
    assert FailCode.TEMPORARY_NODE_FAILURE.is_node
    assert FailCode.FEE_INSUFFICIENT.has_update
    assert failcode_name(0x9999) == "WIRE_UNKNOWN_0x9999"


def test_scid_dir_roundtrip_and_errors() -> None:
    assert scid_dir("103x1x0", 1) == "103x1x0/1"
    assert parse_scid_dir("103x1x0/1") == ("103x1x0", 1)
    for bad in ("103x1x0", "103x1/0", "103x1x0/2", "axbxc/0", ""):
        with pytest.raises(ValueError):
            parse_scid_dir(bad)


def test_fee_is_integer_bolt7() -> None:
    assert fee_msat(1_000_000, 1000, 1) == 1001
    assert fee_msat(999_999, 0, 1) == 0  # floor, never float
    assert fee_msat(10**11, 0, 2500) == 250_000_000


def test_route_properties_and_sendpay_shape() -> None:
    r = Route(
        hops=(
            Hop(id=A, channel="1x1x0", direction=0, amount_msat=1010, delay=24),
            Hop(id=B, channel="2x1x0", direction=1, amount_msat=1000, delay=18),
        )
    )
    r.check()
    assert (r.amount_msat, r.sent_msat, r.fee_msat, r.delay) == (1000, 1010, 10, 24)
    assert r.destination == B
    assert r.describe() == "1x1x0/0 -> 2x1x0/1"
    assert r.to_sendpay()[0] == {
        "id": A,
        "channel": "1x1x0",
        "direction": 0,
        "amount_msat": 1010,
        "delay": 24,
        "style": "tlv",
    }
    bad = Route(hops=(r.hops[1], r.hops[0]))
    with pytest.raises(ValueError):
        bad.check()


def test_structs_roundtrip_through_json() -> None:
    f = RouteFailure(
        failcode=0x1007, erring_index=1, erring_node=A, erring_channel="2x1x0", erring_direction=1
    )
    assert f.failcodename == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert msgspec.json.decode(msgspec.json.encode(f), type=RouteFailure) == f
    ev: PaymentEvent = PartEnded(
        payment_hash="00" * 32,
        partid=1,
        groupid=1,
        amount_msat=5,
        state=PartState.FAILED,
        at=1.0,
        failure=f,
    )
    raw = msgspec.json.encode(ev)
    assert msgspec.json.decode(raw, type=PaymentEvent) == ev
    started = PaymentStarted(
        payment_hash="00" * 32, destination=B, amount_msat=1, strategy="x", at=0.0
    )
    assert b'"type":"PaymentStarted"' in msgspec.json.encode(started)
