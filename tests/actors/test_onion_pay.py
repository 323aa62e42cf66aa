"""Keysend, BOLT 12 invoices and offers mapped to the engine's invoice (barq.actors._onion_pay).

The BOLT 12 strings are CLN's own (``decode`` of a regtest invoice, committed by the onion
layer's regtest test as ``tests/onion/fixtures/bolt12_regtest.json``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from barq.actors._onion_pay import (
    OnionPayment,
    bolt12_payment,
    fetch_error,
    fetchinvoice_params,
    has_basic_mpp,
    keysend_payment,
)
from barq.actors._onion_send import _Part, _translate
from barq.actors._router_book import RouterBook
from barq.actors.messages import KnowledgeSnapshot
from barq.errors import (
    InvalidInvoice,
    InvalidParams,
    InvoiceExpired,
    PartFailed,
    RouteNotFound,
    RpcError,
)
from barq.graph import Graph
from barq.model import (
    HalfChannel,
    Hop,
    NodeId,
    NodeInfo,
    PartStatus,
    Route,
    RouteInput,
    Scid,
    direction_of,
)
from barq.model.payment import PayParams
from barq.onion import (
    BLINDED_DESTINATION,
    KEYSEND_FINAL_CLTV,
    KEYSEND_PREIMAGE,
    BlindedFinal,
    ClearFinal,
    blinded_edge,
    build_onion,
    paths_from_decode,
    payer_introduction,
)
from barq.onion.route import OnionPlan
from barq.strategies.dijkstra import DijkstraStrategy

FIXTURE = Path(__file__).parents[1] / "onion" / "fixtures" / "bolt12_regtest.json"
US = NodeId("02" + "aa" * 32)
PEER = NodeId("03" + "bb" * 32)
INFO = NodeInfo(id=US, network="regtest", blockheight=100)


def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def _invoice_json() -> dict[str, Any]:
    return dict(_fixture()["decode_invoice"])


# -- keysend -----------------------------------------------------------------------------------


def test_keysend_invoice_has_a_fresh_preimage_final_cltv_42_and_the_records() -> None:
    p = keysend_payment(
        PayParams(invstring="", amount_msat=5000), PEER, {"65537": "6261727a"}, INFO, "", 1000.0
    )
    inv = p.invoice
    assert inv.payee == PEER and inv.amount_msat is None and inv.payment_secret is None
    assert inv.min_final_cltv_expiry == KEYSEND_FINAL_CLTV == 42
    preimage = p.target.custom_records[KEYSEND_PREIMAGE]
    assert hashlib.sha256(preimage).hexdigest() == inv.payment_hash
    assert p.target.custom_records[65537] == b"barz"
    assert p.params.maxparts == 1  # no basic_mpp advertised: one part
    again = keysend_payment(PayParams(invstring="", amount_msat=5000), PEER, None, INFO, "", 0)
    assert again.invoice.payment_hash != inv.payment_hash  # fresh every time


def test_keysend_mpp_only_when_the_payee_advertises_basic_mpp() -> None:
    params = PayParams(invstring="", amount_msat=5000, maxparts=8)
    assert keysend_payment(params, PEER, None, INFO, "020000", 0).params.maxparts == 8
    assert keysend_payment(params, PEER, None, INFO, "08a0", 0).params.maxparts == 1
    assert has_basic_mpp("010000") and has_basic_mpp("020000") and not has_basic_mpp("zz")


@pytest.mark.parametrize(
    ("destination", "extratlvs", "needle"),
    [
        (US, None, "Keysend cannot be used to send funds to yourself"),
        ("02" + "aa" * 31, None, "not a node id"),
        (PEER, {"65535": "00"}, "reserved"),
        (PEER, {str(KEYSEND_PREIMAGE): "00" * 32}, "keysend preimage"),
        (PEER, {"65537": "xyz"}, "not hex"),
        (PEER, {"abc": "00"}, "not a numeric TLV type"),
    ],
)
def test_keysend_refusals_are_invalid_params(
    destination: str, extratlvs: dict[str, str] | None, needle: str
) -> None:
    with pytest.raises(InvalidParams, match=needle) as e:
        keysend_payment(
            PayParams(invstring="", amount_msat=1), destination, extratlvs, INFO, None, 0
        )
    assert e.value.code == -32602


def test_keysend_final_payload_one_part_or_a_shared_mpp_secret() -> None:
    p = keysend_payment(PayParams(invstring="", amount_msat=5000), PEER, None, INFO, "020000", 0)

    def route(amount: int) -> Route:
        hop = Hop(id=PEER, channel=Scid("1x1x1"), direction=0, amount_msat=amount, delay=42)
        return Route(hops=(hop,))

    whole = p.target.final(route(5000), 5000)
    assert isinstance(whole, ClearFinal) and whole.payment_secret is None
    a, b = p.target.final(route(2000), 5000), p.target.final(route(3000), 5000)
    assert isinstance(a, ClearFinal) and isinstance(b, ClearFinal)
    assert a.payment_secret is not None and a.payment_secret == b.payment_secret
    assert (
        a.total_msat == 5000
        and a.custom_records[KEYSEND_PREIMAGE] == (p.target.custom_records[KEYSEND_PREIMAGE])
    )


# -- BOLT 12 invoices --------------------------------------------------------------------------


def test_bolt12_invoice_from_clns_decode() -> None:
    d = _invoice_json()
    p = bolt12_payment(PayParams(invstring="lni1x"), d, INFO)
    inv = p.invoice
    assert inv.payee == BLINDED_DESTINATION and inv.bolt11 == "lni1x"
    assert inv.payment_hash == d["invoice_payment_hash"]
    assert inv.amount_msat == 30_000_000 and inv.expires_at == d["invoice_created_at"] + 7200
    assert inv.min_final_cltv_expiry == 0 and inv.network == "regtest"
    (hint,) = inv.route_hints
    (hop,) = hint
    path = d["invoice_paths"][0]
    tag = int(d["invoice_payment_hash"][:6], 16)  # the path's scid is this invoice's own
    assert hop.node_id == path["first_node_id"] and hop.scid == f"0x{tag}x0"
    assert (hop.fee_base_msat, hop.fee_ppm, hop.cltv_delta) == (1, 10, 11)
    (edge,) = p.target.blinded
    assert edge.source == path["first_node_id"] and edge.scid == hop.scid
    assert p.target.destination == d["invoice_node_id"] and p.target.invstring == "lni1x"
    assert p.params.maxparts is None  # invoice_features 020000: basic_mpp, MPP allowed


def test_bolt12_invoice_without_mpp_is_one_part() -> None:
    d = _invoice_json() | {"invoice_features": ""}
    assert bolt12_payment(PayParams(invstring="lni1x"), d, INFO).params.maxparts == 1


_PAYINFO = _invoice_json()["invoice_paths"][0]["payinfo"]


def _broken_path(**change: Any) -> dict[str, Any]:
    d = _invoice_json()
    path = dict(d["invoice_paths"][0]) | change
    return d | {"invoice_paths": [path]}


@pytest.mark.parametrize(
    ("decoded", "error", "needle"),
    [
        (_fixture()["decode_offer"], InvalidInvoice, "not a bolt12 invoice"),
        ({"type": "bolt11 invoice", "valid": True}, InvalidInvoice, "not a bolt12 invoice"),
        (
            _invoice_json() | {"valid": False, "warning_missing_invoice_paths": "x"},
            InvalidInvoice,
            "warning_missing_invoice_paths",
        ),
        (
            {k: v for k, v in _invoice_json().items() if k != "invoice_payment_hash"},
            InvalidInvoice,
            "invoice_payment_hash",
        ),
        (_invoice_json() | {"invoice_node_id": "nope"}, InvalidInvoice, "invoice_node_id"),
        (_invoice_json() | {"invoice_payment_hash": "zz"}, InvalidInvoice, "payment_hash"),
        (_invoice_json() | {"invoice_paths": []}, InvalidInvoice, "without invoice_paths"),
        (_broken_path(first_path_key="zz"), InvalidInvoice, "first_path_key is not hex"),
        (_broken_path(path=[]), InvalidInvoice, "has no hops"),
        (
            _broken_path(payinfo=_PAYINFO | {"features": "01"}),
            RouteNotFound,
            "No usable blinded paths",
        ),
        (_invoice_json() | {"invoice_amount_msat": 0}, InvalidInvoice, "zero amount"),
    ],
)
def test_malformed_bolt12_invoices_are_clear_errors(
    decoded: dict[str, Any], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        bolt12_payment(PayParams(invstring="lni1x"), decoded, INFO)


# -- offers ------------------------------------------------------------------------------------


def test_fetchinvoice_params_follow_the_bolt11_amount_rules() -> None:
    offer = dict(_fixture()["decode_offer"])
    assert offer["offer_amount_msat"] == 30_000_000
    fixed = PayParams(invstring="lno1x", quantity=2, payer_note="hi")
    assert fetchinvoice_params(fixed, offer, 0) == {
        "offer": "lno1x",
        "quantity": 2,
        "payer_note": "hi",
    }
    with pytest.raises(InvalidParams, match="amount_msat parameter unnecessary"):
        fetchinvoice_params(PayParams(invstring="lno1x", amount_msat=5), offer, 0)
    amountless = {k: v for k, v in offer.items() if k != "offer_amount_msat"}
    with pytest.raises(InvalidParams, match="amount_msat parameter required"):
        fetchinvoice_params(PayParams(invstring="lno1x"), amountless, 0)
    got = fetchinvoice_params(PayParams(invstring="lno1x", amount_msat=7), amountless, 0)
    assert got == {"offer": "lno1x", "amount_msat": 7}


def test_offers_barq_cannot_pay_are_refused() -> None:
    offer = dict(_fixture()["decode_offer"])
    p = PayParams(invstring="lno1x")
    with pytest.raises(InvalidParams, match="Cannot pay offer in different currency USD"):
        fetchinvoice_params(p, offer | {"offer_currency": "USD"}, 0)
    with pytest.raises(InvoiceExpired, match="Offer expired 5 seconds ago") as e:
        fetchinvoice_params(p, offer | {"offer_absolute_expiry": 95}, 100)
    assert e.value.code == 207
    with pytest.raises(InvalidParams, match="recurring"):
        fetchinvoice_params(p, offer | {"offer_recurrence": {}}, 0)
    with pytest.raises(InvalidInvoice):
        fetchinvoice_params(p, _invoice_json(), 0)


@pytest.mark.parametrize(
    ("code", "expected"), [(1002, 207), (1003, 205), (1004, 209), (1005, 209), (-32602, -32602)]
)
def test_fetchinvoice_errors_get_pays_codes(code: int, expected: int) -> None:
    err = fetch_error(RpcError("nope", method="fetchinvoice", rpc_code=code, rpc_data={"x": 1}))
    assert err.code == expected and "fetchinvoice: nope" in err.message
    assert err.data["x"] == 1


# -- the onion sender's reading of injectpaymentonion's errors --------------------------------


def _part_over(n_hops: int) -> tuple[Route, OnionPlan]:
    hops = tuple(
        Hop(
            id=NodeId(f"02{i + 1:02x}" + "cc" * 31),
            channel=Scid(f"{100 + i}x1x0"),
            direction=0,
            amount_msat=10_000_000 + 1000 * (n_hops - 1 - i),
            delay=20 + 10 * (n_hops - 1 - i),
        )
        for i in range(n_hops)
    )
    route = Route(hops=hops)
    final = ClearFinal(payment_secret=b"\x01" * 32, total_msat=10_000_000)
    return route, build_onion(route, final, blockheight=100, payer=US)


def test_a_218_failure_is_peeled_with_every_secret_and_placed_on_the_route() -> None:
    """CLN's own reply (fixture): bolt11 over l1 -> l2 -> l3, wrong payment secret at l3."""
    fx = _fixture()
    route, plan = _part_over(2)
    part = _Part(route, plan, tuple(bytes.fromhex(s) for s in fx["bolt11_failure_secrets"]))
    err = fx["injectpaymentonion_error"]
    exc = RpcError(err["message"], method="injectpaymentonion", rpc_code=218, rpc_data=err["data"])
    out = _translate(exc, part, {})
    assert isinstance(out, PartFailed) and out.failure is not None
    assert out.failure.failcode == 0x400F  # incorrect_or_unknown_payment_details
    assert out.failure.erring_index == 2 == len(route.hops)  # the destination
    garbled = RpcError("x", rpc_code=218, rpc_data={"onionreply": "00" * 300})
    out = _translate(garbled, part, {})
    assert isinstance(out, PartFailed) and out.failure is None  # unknown, safe


def test_invalid_onion_blinding_is_charged_to_the_blinded_edge() -> None:
    """CLN's reply (fixture): l1 -> l2 -> l3 (introduction node) -> l4, 1 msat short."""
    fx = _fixture()
    ((path, payinfo),) = paths_from_decode(fx["decode_invoice"])
    path = path.with_first_node(NodeId("02" + "c3" * 32))
    edge = blinded_edge(0, path, payinfo)
    hops = (
        Hop(
            id=NodeId("02" + "c2" * 32),
            channel=Scid("101x1x0"),
            direction=0,
            amount_msat=2_000_000,
            delay=60,
        ),
        Hop(id=edge.source, channel=Scid("102x1x0"), direction=0, amount_msat=1_999_000, delay=40),
        edge.hop(1_000_000),
    )
    route = Route(hops=hops)
    plan = build_onion(
        route, BlindedFinal(edge=edge, total_msat=1_000_000), blockheight=100, payer=US
    )
    bf = fx["blinded_failure"]
    part = _Part(route, plan, tuple(bytes.fromhex(s) for s in bf["shared_secrets"]))
    exc = RpcError("x", rpc_code=218, rpc_data={"onionreply": bf["onionreply"]})
    out = _translate(exc, part, {})
    assert isinstance(out, PartFailed) and out.failure is not None
    # invalid_onion_blinding (0xc018) from l3, read as xpay does: the path lacks capacity
    assert out.failure.failcode == 0x1007  # temporary_channel_failure: re-plan the amount
    assert "invalid_onion_blinding" in out.failure.message
    assert out.failure.erring_node == edge.source
    assert out.failure.erring_channel == edge.scid  # the blinded path is what failed


def test_219_is_the_earlier_success_and_other_refusals_fail_the_part() -> None:
    route, plan = _part_over(1)
    part = _Part(route, plan, ())
    params = {"payment_hash": "aa" * 32, "partid": 3, "groupid": 1}
    paid = RpcError("paid", rpc_code=219, rpc_data={"payment_preimage": "bb" * 32})
    out = _translate(paid, part, params)
    assert isinstance(out, PartStatus) and out.payment_preimage == "bb" * 32
    assert out.status == "complete" and out.amount_msat == plan.delivered_msat
    refusal = RpcError("Unknown scid", rpc_code=-32602)
    out = _translate(refusal, part, params)
    assert isinstance(out, PartFailed) and out.failure is None
    assert "injectpaymentonion refused: Unknown scid" in out.message


def _path_at_the_payer() -> tuple[OnionPayment, NodeInfo]:
    """CLN's invoice (fixture) as seen by its introduction node: the payer is the introduction
    node (CLN's ``find_best_peer`` picks us when the payee's only channel is with us)."""
    d = _invoice_json()
    me = NodeInfo(id=d["invoice_paths"][0]["first_node_id"], network="regtest", blockheight=1)
    return bolt12_payment(PayParams(invstring="lni1x"), d, me), me


def test_a_path_starting_at_the_payer_is_a_free_lead_then_the_path() -> None:
    p, me = _path_at_the_payer()
    (edge,) = p.target.blinded
    assert edge.via_payer and edge.introduction == me.id
    assert edge.source == payer_introduction(0) != me.id
    ((lead, path),) = p.invoice.route_hints
    assert (lead.node_id, lead.scid) == (me.id, edge.lead_scid)
    assert (lead.fee_base_msat, lead.fee_ppm, lead.cltv_delta) == (0, 0, 0)
    assert (path.node_id, path.scid) == (edge.source, edge.scid)
    assert (path.fee_base_msat, path.fee_ppm, path.cltv_delta) == (1, 10, 11)  # the payinfo's
    assert edge.lead_scid.startswith("0x") and edge.lead_scid != edge.scid


def test_a_route_over_a_path_at_the_payer_pays_its_fee_and_cltv() -> None:
    """The strategy routes [lead, path] on the router's graph with the invoice's hints: the
    path's fee and CLTV are the route's (our own lead edge is free, like any first hop)."""
    p, me = _path_at_the_payer()
    (edge,) = p.target.blinded
    peer = NodeId("03" + "dd" * 32)
    gossip = Graph.from_half_channels(
        [
            HalfChannel(
                scid=Scid("103x1x0"),
                direction=direction_of(me.id, peer),
                source=me.id,
                destination=peer,
                capacity_msat=10**9,
                fee_base_msat=0,
                fee_ppm=0,
                cltv_delta=6,
                htlc_min_msat=0,
                htlc_max_msat=10**9,
                enabled=True,
                private=False,
            )
        ]
    )
    book = RouterBook(our_id=me.id, gossip=gossip, channels=())
    graph = book.payment_graph(BLINDED_DESTINATION, p.invoice.route_hints)
    ctx = book.context(graph, KnowledgeSnapshot(taken_at=0.0), BLINDED_DESTINATION)
    request = RouteInput(
        source=me.id,
        destination=BLINDED_DESTINATION,
        amount_msat=1_000_000,
        final_cltv=0,
        route_hints=p.invoice.route_hints,
    )
    (route,) = DijkstraStrategy().find_routes(request, ctx)
    assert [h.channel for h in route.hops] == [edge.lead_scid, edge.scid]
    assert route.amount_msat == 1_000_000
    assert route.fee_msat == edge.fee_msat(1_000_000) == 1 + 10  # base 1, 10 ppm
    assert route.delay == 11  # the payinfo's cltv_expiry_delta
    plan = build_onion(
        route, p.target.final(route, 1_000_000), blockheight=100, payer=p.target.payer
    )
    assert plan.first_amount_msat == route.sent_msat and plan.first_cltv_expiry == 111
