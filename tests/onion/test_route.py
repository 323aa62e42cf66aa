"""Route -> onion hops: the BOLT 4 blinded vector end to end, clear routes, refusals."""

from __future__ import annotations

import msgspec
import pytest
from onion_data import blinded_vector, vector_plan

from barq.model import Hop, Route
from barq.onion import (
    BlindedEdge,
    BlindedFinal,
    BlindedHop,
    BlindedPath,
    BlindedPayinfo,
    ClearFinal,
    OnionFailure,
    OnionTooLarge,
    blinded_edge,
    build_onion,
    createonion_params,
    decode_payload,
    injectpaymentonion_params,
    keysend_final,
    payer_introduction,
)
from barq.onion.payload import KEYSEND_PREIMAGE

ME = "02" + "aa" * 32
B = "02" + "bb" * 32
C = "03" + "cc" * 32
SECRET = bytes(range(32))


def two_hops(amount: int = 50_000, final_delay: int = 18) -> Route:
    """ME -> B -> C in sendpay shape; B charges 1001 msat and 6 blocks to forward to C."""
    return Route(
        hops=(
            Hop(
                id=B,
                channel="101x1x0",
                direction=0,
                amount_msat=amount + 1001,
                delay=final_delay + 6,
            ),
            Hop(id=C, channel="102x2x1", direction=1, amount_msat=amount, delay=final_delay),
        )
    )


# --------------------------------------------------------------------------- the spec vector


def test_blinded_vector_end_to_end() -> None:
    """bolt04/blinded-payment-onion-test.json: our route through Alice to Bob's blinded
    path gives the vector's five (pubkey, payload) pairs exactly."""
    vec = blinded_vector()
    _, _, plan = vector_plan()
    expected = [(h["pubkey"], h["payload"]) for h in vec["full_route"]["hops"]]
    assert [(h.pubkey, h.payload.hex()) for h in plan.hops] == expected
    assert plan.introduction_index == 1  # Alice 0, Bob (introduction) 1
    assert (plan.first_peer, plan.first_amount_msat, plan.first_delay) == (
        expected[0][0],
        110125,
        150,
    )
    assert plan.first_cltv_expiry == vec["final_cltv"] + 150
    assert plan.delivered_msat == 100000
    params = createonion_params(plan, vec["associated_data"], session_key=vec["session_key"])
    assert params["hops"][1] == {"pubkey": expected[1][0], "payload": expected[1][1]}
    assert params["assocdata"] == vec["associated_data"]


# --------------------------------------------------------------------------- clear routes


def test_clear_route_for_sendonion() -> None:
    plan = build_onion(
        two_hops(), ClearFinal(payment_secret=SECRET, total_msat=80_000), blockheight=800
    )
    assert [h.pubkey for h in plan.hops] == [B, C]
    b, c = (decode_payload(h.payload) for h in plan.hops)
    assert (b.short_channel_id, b.amt_to_forward, b.outgoing_cltv_value) == ("102x2x1", 50_000, 818)
    assert (c.amt_to_forward, c.outgoing_cltv_value) == (50_000, 818)
    assert (c.payment_secret, c.total_msat, c.short_channel_id) == (SECRET, 80_000, None)
    assert not plan.payer_included and plan.introduction_index is None
    assert (plan.first_peer, plan.first_amount_msat, plan.first_delay) == (B, 51_001, 24)
    with pytest.raises(ValueError, match="needs an onion built with payer="):
        injectpaymentonion_params(plan, onion="00", payment_hash="11" * 32, partid=1, groupid=1)


def test_clear_route_for_injectpaymentonion() -> None:
    """With payer=, the onion starts at our own node, which forwards over our channel."""
    plan = build_onion(two_hops(), ClearFinal(payment_secret=SECRET), blockheight=800, payer=ME)
    assert [h.pubkey for h in plan.hops] == [ME, B, C]
    me = decode_payload(plan.hops[0].payload)
    assert (me.short_channel_id, me.amt_to_forward, me.outgoing_cltv_value) == (
        "101x1x0",
        51_001,
        824,
    )
    assert decode_payload(plan.hops[2].payload).total_msat == 50_000  # defaults to the part
    params = injectpaymentonion_params(
        plan,
        onion="ab",
        payment_hash="11" * 32,
        partid=3,
        groupid=9,
        invstring="lnbcrt1...",
        label="x",
    )
    assert params == {
        "onion": "ab",
        "payment_hash": "11" * 32,
        "amount_msat": 51_001,
        "cltv_expiry": 824,
        "partid": 3,
        "groupid": 9,
        "destination_msat": 50_000,
        "invstring": "lnbcrt1...",
        "label": "x",
    }
    with pytest.raises(ValueError, match="non-zero partid"):
        injectpaymentonion_params(plan, onion="ab", payment_hash="11" * 32, partid=0, groupid=1)


def test_keysend_route() -> None:
    preimage = b"\x07" * 32
    plan = build_onion(
        two_hops(final_delay=42), keysend_final(preimage, {65537: b"hi"}), blockheight=100, payer=ME
    )
    final = decode_payload(plan.hops[-1].payload)
    assert final.custom_records == {65537: b"hi", KEYSEND_PREIMAGE: preimage}
    assert (final.payment_secret, final.total_msat, final.outgoing_cltv_value) == (None, None, 142)


@pytest.mark.parametrize(
    ("route", "error"),
    [
        (Route(hops=()), "empty route"),
        (
            Route(
                hops=(
                    Hop(id=B, channel="1x1x1", direction=0, amount_msat=5, delay=10),
                    Hop(id=C, channel="2x2x2", direction=0, amount_msat=6, delay=9),
                )
            ),
            "increase along the path",
        ),
        (
            Route(hops=(Hop(id=B, channel="1x1x1", direction=0, amount_msat=0, delay=10),)),
            "non-positive amount",
        ),
    ],
)
def test_bad_routes(route: Route, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        build_onion(route, ClearFinal(), blockheight=1)


def test_onion_too_large() -> None:
    big = ClearFinal(custom_records={65537: bytes(1200)})
    with pytest.raises(OnionTooLarge, match="the onion holds 1300"):
        build_onion(two_hops(), big, blockheight=1, payer=ME)
    fits = ClearFinal(custom_records={65537: bytes(1000)})
    assert build_onion(two_hops(), fits, blockheight=1).payloads_size <= 1300


# --------------------------------------------------------------------------- blinded tails


def edge_at(intro: str, hops: int = 2, cltv: int = 30) -> BlindedEdge:
    path = BlindedPath(
        first_node_id=intro,
        first_path_key=bytes.fromhex("02" + "22" * 32),
        hops=tuple(
            BlindedHop(
                blinded_node_id=f"03{i:02x}" + "44" * 31, encrypted_recipient_data=bytes([i]) * 3
            )
            for i in range(hops)
        ),
    )
    info = BlindedPayinfo(
        fee_base_msat=1000,
        fee_proportional_millionths=100,
        cltv_expiry_delta=cltv,
        htlc_minimum_msat=0,
        htlc_maximum_msat=10**10,
    )
    return blinded_edge(0, path, info)


def test_introduction_node_is_a_direct_peer() -> None:
    edge = edge_at(B)
    route = Route(
        hops=(
            Hop(id=B, channel="101x1x0", direction=0, amount_msat=1_001_100, delay=30),
            edge.hop(1_000_000),
        )
    )
    final = BlindedFinal(edge=edge, total_msat=3_000_000)
    plan = build_onion(route, final, blockheight=500)
    assert [h.pubkey for h in plan.hops] == [B, edge.path.hops[1].blinded_node_id]
    intro, last = (decode_payload(h.payload) for h in plan.hops)
    assert intro.current_path_key == edge.path.first_path_key
    assert intro.amt_to_forward is None and intro.short_channel_id is None
    assert (last.amt_to_forward, last.outgoing_cltv_value, last.total_amount_msat) == (
        1_000_000,
        500,  # BOLT 4: the final blinded hop's CLTV is the block height itself
        3_000_000,
    )
    assert last.current_path_key is None
    assert plan.introduction_index == 0 and plan.first_peer == B

    injected = build_onion(route, final, blockheight=500, payer=ME)
    assert [h.pubkey for h in injected.hops] == [ME, B, edge.path.hops[1].blinded_node_id]
    assert injected.introduction_index == 1
    assert decode_payload(injected.hops[0].payload).short_channel_id == "101x1x0"


def test_payer_is_the_introduction_node() -> None:
    edge = edge_at(ME, hops=1, cltv=12)
    route = Route(hops=(edge.hop(2_000_000, delay=3),))
    plan = build_onion(
        route, BlindedFinal(edge=edge, total_msat=2_000_000), blockheight=700, payer=ME
    )
    (only,) = plan.hops
    assert only.pubkey == ME
    p = decode_payload(only.payload)
    # one-hop path: introduction node and final at once
    assert p.current_path_key == edge.path.first_path_key and p.amt_to_forward == 2_000_000
    assert p.outgoing_cltv_value == 703
    assert plan.first_peer is None and plan.introduction_index == 0
    assert plan.first_amount_msat == 2_000_000 + 1000 + 200
    assert (plan.first_delay, plan.first_cltv_expiry) == (15, 715)
    with pytest.raises(ValueError, match="pass payer= that node"):
        build_onion(route, BlindedFinal(edge=edge, total_msat=2_000_000), blockheight=700)


def test_payer_is_the_introduction_node_reached_over_its_lead() -> None:
    """The router's shape of such a path: [lead, path] (see barq.onion.blinded); the lead
    hop is the payer itself and leaves no payload, the route's fee and delay are the path's."""
    plain = edge_at(ME, hops=1, cltv=12)
    edge = blinded_edge(0, plain.path, plain.payinfo, payer=ME)
    assert edge.via_payer and edge.source == payer_introduction(0) and edge.introduction == ME
    lead = Hop(
        id=edge.source,
        channel=edge.lead_scid,
        direction=edge.lead_direction,
        amount_msat=2_001_200,
        delay=15,
    )
    route = Route(hops=(lead, edge.hop(2_000_000, delay=3)))
    assert route.fee_msat == 1200 and route.delay == 15
    final = BlindedFinal(edge=edge, total_msat=2_000_000)
    plan = build_onion(route, final, blockheight=700, payer=ME)
    (only,) = plan.hops
    assert only.pubkey == ME  # the path's first layer, keyed to our real id
    p = decode_payload(only.payload)
    assert p.current_path_key == edge.path.first_path_key and p.short_channel_id is None
    assert (p.amt_to_forward, p.outgoing_cltv_value) == (2_000_000, 703)
    assert plan.first_peer is None and plan.introduction_index == 0
    assert (plan.first_amount_msat, plan.first_cltv_expiry) == (2_001_200, 715)
    # whatever our node says about the path is charged to the path's edge, not to a hop of ours
    site = OnionFailure(onion_index=0, message=b"\xc0\x18").locate(route, plan)
    assert (site.erring_index, site.erring_node, site.erring_channel) == (1, edge.source, edge.scid)
    assert site.in_blinded_path
    with pytest.raises(ValueError, match="reached over its lead"):
        build_onion(Route(hops=(edge.hop(2_000_000),)), final, blockheight=700, payer=ME)
    with pytest.raises(ValueError, match="needs payer= that node"):
        build_onion(route, final, blockheight=700, payer=B)
    with pytest.raises(ValueError, match="the path needs 2001200 msat/15 blocks"):
        short = msgspec.structs.replace(lead, amount_msat=2_001_199)
        tail = edge.hop(2_000_000, delay=3)
        build_onion(Route(hops=(short, tail)), final, blockheight=700, payer=ME)


def test_blinded_refusals() -> None:
    edge = edge_at(B)
    final = BlindedFinal(edge=edge, total_msat=1_000_000)
    into = Hop(id=B, channel="101x1x0", direction=0, amount_msat=1_001_100, delay=30)
    with pytest.raises(ValueError, match="must end with the blinded edge"):
        build_onion(Route(hops=(into,)), final, blockheight=1)
    with pytest.raises(ValueError, match="not the introduction node"):
        wrong = Hop(id=C, channel="101x1x0", direction=0, amount_msat=1_001_100, delay=30)
        build_onion(Route(hops=(wrong, edge.hop(1_000_000))), final, blockheight=1)
    with pytest.raises(ValueError, match="the path needs 1001100 msat/30 blocks"):
        short = Hop(id=B, channel="101x1x0", direction=0, amount_msat=1_001_099, delay=30)
        build_onion(Route(hops=(short, edge.hop(1_000_000))), final, blockheight=1)
    with pytest.raises(ValueError, match="the path needs 1001100 msat/30 blocks"):
        early = Hop(id=B, channel="101x1x0", direction=0, amount_msat=1_001_100, delay=29)
        build_onion(Route(hops=(early, edge.hop(1_000_000))), final, blockheight=1)
    with pytest.raises(ValueError, match="below this part's"):
        build_onion(
            Route(hops=(into, edge.hop(1_000_000))),
            BlindedFinal(edge=edge, total_msat=999_999),
            blockheight=1,
        )
    tight = blinded_edge(
        0,
        edge.path,
        BlindedPayinfo(
            fee_base_msat=0,
            fee_proportional_millionths=0,
            cltv_expiry_delta=30,
            htlc_minimum_msat=0,
            htlc_maximum_msat=999_999,
        ),
    )
    with pytest.raises(ValueError, match=r"carries 1\.\.999999 msat, not 1000000"):
        build_onion(
            Route(hops=(into, tight.hop(1_000_000))),
            BlindedFinal(edge=tight, total_msat=1_000_000),
            blockheight=1,
        )
