"""failures.classify: every failure class reads as the module table says (pure)."""

from __future__ import annotations

import pytest

from barq.model import ChannelUpdate, FailCode, Hop, Route, RouteFailure
from barq.payment import FailureKind, classify

A, B, C = "02" + "aa" * 32, "02" + "bb" * 32, "03" + "cc" * 32
ROUTE = Route(
    hops=(
        Hop(id=A, channel="1x1x1", direction=0, amount_msat=3002, delay=98),
        Hop(id=B, channel="2x2x2", direction=1, amount_msat=3001, delay=58),
        Hop(id=C, channel="3x3x3", direction=0, amount_msat=3000, delay=18),
    )
)


def fail(code: FailCode | int, index: int, **kw: object) -> RouteFailure:
    return RouteFailure(failcode=int(code), erring_index=index, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "index", "kind", "channel", "node"),
    [
        (FailCode.TEMPORARY_CHANNEL_FAILURE, 1, FailureKind.LIQUIDITY, "2x2x2/1", A),
        (FailCode.TEMPORARY_CHANNEL_FAILURE, 2, FailureKind.LIQUIDITY, "3x3x3/0", B),
        (FailCode.FEE_INSUFFICIENT, 1, FailureKind.POLICY, "2x2x2/1", A),
        (FailCode.INCORRECT_CLTV_EXPIRY, 2, FailureKind.POLICY, "3x3x3/0", B),
        (FailCode.AMOUNT_BELOW_MINIMUM, 1, FailureKind.POLICY, "2x2x2/1", A),
        (FailCode.EXPIRY_TOO_SOON, 1, FailureKind.POLICY, "2x2x2/1", A),
        (FailCode.CHANNEL_DISABLED, 2, FailureKind.POLICY, "3x3x3/0", B),
        (FailCode.UNKNOWN_NEXT_PEER, 1, FailureKind.CHANNEL, "2x2x2/1", A),
        (FailCode.PERMANENT_CHANNEL_FAILURE, 2, FailureKind.CHANNEL, "3x3x3/0", B),
        (FailCode.PERMANENT_NODE_FAILURE, 1, FailureKind.NODE_PERMANENT, "2x2x2/1", A),
        (FailCode.TEMPORARY_NODE_FAILURE, 2, FailureKind.NODE_TEMPORARY, "3x3x3/0", B),
        (FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, 3, FailureKind.DESTINATION, None, C),
        (FailCode.TEMPORARY_NODE_FAILURE, 3, FailureKind.DESTINATION, None, C),
        (FailCode.MPP_TIMEOUT, 3, FailureKind.MPP_TIMEOUT, None, C),
        (FailCode.INVALID_ONION_HMAC, 1, FailureKind.OTHER, "2x2x2/1", A),
        (0x7777, 2, FailureKind.OTHER, "3x3x3/0", B),
    ],
)
def test_each_failure_class(
    code: int, index: int, kind: FailureKind, channel: str | None, node: str
) -> None:
    v = classify(ROUTE, fail(code, index))
    assert (v.kind, v.channel, v.node, v.index) == (kind, channel, node, index)
    assert v.local is False
    assert v.final is (kind is FailureKind.DESTINATION)


def test_failure_at_our_first_hop_is_local() -> None:
    v = classify(ROUTE, fail(FailCode.TEMPORARY_CHANNEL_FAILURE, 0))
    assert v.local and v.kind is FailureKind.LIQUIDITY
    assert v.channel == "1x1x1/0" and v.node is None


def test_update_codes_carry_their_channel_update() -> None:
    upd = ChannelUpdate(
        scid="2x2x2", direction=1, fee_base_msat=9, fee_ppm=9, cltv_delta=9, htlc_min_msat=1
    )
    v = classify(ROUTE, fail(FailCode.FEE_INSUFFICIENT, 1, channel_update=upd))
    assert v.update == upd
    assert classify(ROUTE, fail(FailCode.FEE_INSUFFICIENT, 1)).update is None


def test_erring_index_is_clamped_and_erring_node_preferred() -> None:
    v = classify(ROUTE, fail(FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, 9))
    assert v.index == 3 and v.final
    v = classify(ROUTE, fail(FailCode.TEMPORARY_NODE_FAILURE, 1, erring_node=C))
    assert v.node == C
    assert classify(ROUTE, fail(FailCode.TEMPORARY_CHANNEL_FAILURE, 1)).forwarded_hops == 1
