"""A failure's channel_update is learnt only when its signature checks and it is newer
(issue 12 item 6): the retry pays the new fee over the same channel."""

from __future__ import annotations

import coincurve
import msgspec
from coincurve.ecdsa import der_to_cdata, serialize_compact

from barq.actors._router_book import RouterBook
from barq.actors.messages import PartOutcome
from barq.graph import Graph
from barq.graph.signatures import signed_by, update_digest
from barq.graph.store_writer import encode_channel_update
from barq.model import (
    ChannelUpdate,
    FailCode,
    HalfChannel,
    Hop,
    NodeId,
    Route,
    RouteFailure,
    Scid,
    direction_of,
)
from barq.model.payment import PartState
from barq.node.wire import parse_channel_update

KEYS = {name: coincurve.PrivateKey(bytes([i + 1]) * 32) for i, name in enumerate("uad")}
IDS = {name: NodeId(k.public_key.format(compressed=True).hex()) for name, k in KEYS.items()}
US, A, D = IDS["u"], IDS["a"], IDS["d"]


def _half(scid: str, src: NodeId, dst: NodeId, fee_base: int) -> HalfChannel:
    return HalfChannel(
        scid=Scid(scid),
        direction=direction_of(src, dst),
        source=src,
        destination=dst,
        capacity_msat=10**9,
        fee_base_msat=fee_base,
        fee_ppm=100,
        cltv_delta=40,
        htlc_min_msat=1,
        htlc_max_msat=10**9,
    )


def _graph() -> Graph:
    return Graph.from_half_channels(
        [
            _half("101x1x0", US, A, 0),
            _half("101x1x0", A, US, 0),
            _half("103x1x0", A, D, 1000),
            _half("103x1x0", D, A, 1000),
        ]
    )


def signed_update(signer: str, *, fee_base: int, timestamp: int) -> ChannelUpdate:
    """A channel_update of 103x1x0 (A -> D) as a node would send it, signed by ``signer``."""
    raw = encode_channel_update(
        Scid("103x1x0"),
        direction_of(A, D),
        fee_base_msat=fee_base,
        fee_ppm=100,
        cltv_delta=40,
        htlc_min_msat=1,
        htlc_max_msat=10**9,
        timestamp=timestamp,
    )
    body = raw[2:]  # without the type: signature first
    der = KEYS[signer].sign(update_digest(body), hasher=None)
    sig = serialize_compact(der_to_cdata(der))
    return parse_channel_update(raw[:2] + sig + body[64:])


def _route() -> Route:
    return Route(
        hops=(
            Hop(
                id=A,
                channel=Scid("101x1x0"),
                direction=direction_of(US, A),
                amount_msat=101_000,
                delay=58,
            ),
            Hop(
                id=D,
                channel=Scid("103x1x0"),
                direction=direction_of(A, D),
                amount_msat=100_000,
                delay=18,
            ),
        )
    )


def _fail_with(b: RouterBook, update: ChannelUpdate) -> None:
    p = b.reserve("h", b.graph, _route())
    failure = RouteFailure(
        erring_index=1,
        failcode=FailCode.FEE_INSUFFICIENT,
        erring_node=A,
        erring_channel=Scid("103x1x0"),
        erring_direction=direction_of(A, D),
        channel_update=update,
    )
    b.release(p.reservation, PartOutcome(state=PartState.FAILED, sent=True, failure=failure))


def _fee(b: RouterBook) -> int:
    e = b.graph.edge(Scid("103x1x0"), direction_of(A, D))
    assert e is not None
    return int(b.graph.fee_base_msat[e])


def test_signed_by_checks_the_signer_and_the_bytes() -> None:
    u = signed_update("a", fee_base=1500, timestamp=10)
    assert signed_by(u, A)
    assert not signed_by(u, D)  # someone else's key
    forged = bytearray(u.signed)
    forged[-20] ^= 1  # the fee changed after signing
    assert not signed_by(msgspec.structs.replace(u, signed=bytes(forged)), A)
    assert not signed_by(msgspec.structs.replace(u, signed=b""), A)
    assert not signed_by(u, NodeId("02" + "00" * 32))  # not a key


def test_a_signed_newer_update_changes_the_fee_for_the_retry() -> None:
    b = RouterBook(our_id=US, gossip=_graph(), channels=[])
    _fail_with(b, signed_update("a", fee_base=1500, timestamp=10))
    assert _fee(b) == 1500
    _fail_with(b, signed_update("a", fee_base=900, timestamp=9))  # older: ignored
    assert _fee(b) == 1500
    _fail_with(b, signed_update("a", fee_base=2500, timestamp=11))
    assert _fee(b) == 2500


def test_an_update_signed_by_another_node_is_ignored() -> None:
    b = RouterBook(our_id=US, gossip=_graph(), channels=[])
    _fail_with(b, signed_update("d", fee_base=1, timestamp=10))  # D speaks for A's direction
    assert _fee(b) == 1000
    bad = signed_update("a", fee_base=7, timestamp=10)
    raw = bytearray(bad.signed)
    raw[0] ^= 1
    _fail_with(b, msgspec.structs.replace(bad, signed=bytes(raw)))
    assert _fee(b) == 1000
