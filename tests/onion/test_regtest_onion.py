"""The onion layer against real lightningd (regtest; skipped without binaries).

* ``createonion`` turns the BOLT 4 vectors' payloads (ours, for the blinded
  one) into the vectors' onions, byte for byte;
* onions built by :func:`barq.onion.build_onion` are paid through
  ``injectpaymentonion`` as xpay does: bolt11 over 2 hops, keysend, a BOLT 12
  invoice whose payee sits behind an unannounced channel (introduction node
  2 hops away, and the payer itself as introduction node); failures are
  peeled with the ``createonion`` secrets, including one from inside a
  blinded path; an injected part is seen pending by ``listsendpays`` and
  awaited by ``waitsendpay``, as restart adoption needs.

Set ``BARQ_CAPTURE_FIXTURES=1`` to rewrite ``fixtures/bolt12_regtest.json``
(the ``decode`` of the fetched invoice and offer, and what the RPCs answered).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from onion_data import blinded_vector, load_json, vector_plan
from regtest_env import MISSING, SKIP_REASON

from barq.model import Hop, Route, fee_msat
from barq.onion import (
    BlindedEdge,
    BlindedFinal,
    ClearFinal,
    blinded_edge,
    build_onion,
    createonion_params,
    injectpaymentonion_params,
    keysend_final,
    new_preimage,
    paths_from_decode,
    payment_hash_of,
    unwrap_onion_error,
)
from barq.onion.route import OnionPlan

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from pyln.client import RpcError
from pyln.testing.utils import wait_for

pytestmark = pytest.mark.regtest

HERE = Path(__file__).parent
HOLD_SRC = HERE.parent / "regtest" / "plugins" / "hold_htlcs.py"
FIXTURE = HERE / "fixtures" / "bolt12_regtest.json"
CAPTURE = os.environ.get("BARQ_CAPTURE_FIXTURES") == "1"

INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = 0x400F
INVALID_ONION_BLINDING = 0xC018


def hold_plugin(tmp_path: Path) -> str:
    dst = tmp_path / "hold_htlcs.py"
    dst.write_text(f"#!{sys.executable}\n" + HOLD_SRC.read_text().split("\n", 1)[1])
    dst.chmod(0o755)
    return str(dst)


def clear_route(payer: Any, nodes: list[Any], amount_msat: int, final_delay: int) -> Route:
    """``payer -> nodes...`` in sendpay shape, fees and CLTV from the payer's gossip."""
    ids = [payer.info["id"]] + [n.info["id"] for n in nodes]
    hops: list[Hop] = []
    amount, delay = amount_msat, final_delay
    for i in range(len(ids) - 1, 0, -1):
        src, dst = ids[i - 1], ids[i]
        chan = next(
            c for c in payer.rpc.listchannels(source=src)["channels"] if c["destination"] == dst
        )
        hops.insert(
            0,
            Hop(
                id=dst,
                channel=chan["short_channel_id"],
                direction=chan["direction"],
                amount_msat=amount,
                delay=delay,
            ),
        )
        if i > 1:  # the payer charges itself nothing
            amount += fee_msat(amount, chan["base_fee_millisatoshi"], chan["fee_per_millionth"])
            delay += chan["delay"]
    return Route(hops=tuple(hops))


def onion_for(
    node: Any, plan: OnionPlan, payment_hash: str, partid: int, groupid: int, **kw: Any
) -> tuple[dict[str, Any], list[bytes]]:
    """createonion, then injectpaymentonion's parameters; and the shared secrets."""
    made = node.rpc.call("createonion", createonion_params(plan, payment_hash))
    params = injectpaymentonion_params(
        plan, onion=made["onion"], payment_hash=payment_hash, partid=partid, groupid=groupid, **kw
    )
    return params, [bytes.fromhex(s) for s in made["shared_secrets"]]


def inject(node: Any, plan: OnionPlan, payment_hash: str, *ids: int, **kw: Any) -> dict[str, Any]:
    params, _ = onion_for(node, plan, payment_hash, *ids, **kw)
    out: dict[str, Any] = node.rpc.call("injectpaymentonion", params)
    return out


def inject_failure(
    node: Any, plan: OnionPlan, payment_hash: str, *ids: int, **kw: Any
) -> tuple[RpcError, list[bytes]]:
    params, shared = onion_for(node, plan, payment_hash, *ids, **kw)
    with pytest.raises(RpcError) as exc:
        node.rpc.call("injectpaymentonion", params)
    return exc.value, shared


def fetch_edge(payer: Any, offer: str) -> tuple[dict[str, Any], dict[str, Any], BlindedEdge]:
    """fetchinvoice + decode: (fetchinvoice's answer, the decode, its only path as an edge)."""
    fetched: dict[str, Any] = payer.rpc.fetchinvoice(offer)
    decoded: dict[str, Any] = payer.rpc.decode(fetched["invoice"])
    ((path, payinfo),) = paths_from_decode(decoded)
    return fetched, decoded, blinded_edge(0, path, payinfo)


def blinded_plan(
    payer: Any, via: list[Any], edge: BlindedEdge, deliver: int
) -> tuple[Route, OnionPlan]:
    """payer -> via... (to the introduction node) -> the edge, as one part of ``deliver``."""
    to_intro = (
        clear_route(payer, via, edge.amount_in_msat(deliver), edge.cltv_delta).hops if via else ()
    )
    route = Route(hops=(*to_intro, edge.hop(deliver)))
    plan = build_onion(
        route,
        BlindedFinal(edge=edge, total_msat=deliver),
        blockheight=blockheight(payer),
        payer=payer.info["id"],
    )
    return route, plan


def blockheight(node: Any) -> int:
    return int(node.rpc.getinfo()["blockheight"]) + 1  # as xpay: one block of slack


# --------------------------------------------------------------------------- vectors


def test_createonion_builds_the_spec_onions(node_factory: Any) -> None:
    l1 = node_factory.get_node()
    clear = load_json("onion-test.json")
    gen = clear["generate"]
    made = l1.rpc.call(
        "createonion",
        {
            "hops": gen["hops"],
            "assocdata": gen["associated_data"],
            "session_key": gen["session_key"],
        },
    )
    assert made["onion"] == clear["onion"]

    vec = blinded_vector()
    _, _, plan = vector_plan()
    made = l1.rpc.call(
        "createonion",
        createonion_params(plan, vec["associated_data"], session_key=vec["session_key"]),
    )
    assert made["onion"] == vec["onion"]


# --------------------------------------------------------------------------- network


def test_injected_onions_on_a_real_network(node_factory: Any, tmp_path: Path) -> None:
    observed: dict[str, Any] = {}
    l1, l2, l3 = node_factory.line_graph(
        3, wait_for_announce=True, opts=[{}, {}, {"plugin": hold_plugin(tmp_path)}]
    )
    l3.rpc.call("holdhtlcs", ["off"])
    l4 = node_factory.get_node()
    l3.fundchannel(l4, 1_000_000, announce_channel=False)
    l1.bitcoin.generate_block(6)
    for n in (l1, l2, l3, l4):
        wait_for(lambda n=n: n.rpc.getinfo()["blockheight"] == l1.bitcoin.rpc.getblockcount())
    me = l1.info["id"]

    # --- bolt11, 2 hops, success
    amount = 10_000_000
    inv = l3.rpc.invoice(amount, "ok", "ok", exposeprivatechannels=[])
    dec = l1.rpc.decode(inv["bolt11"])
    route = clear_route(l1, [l2, l3], amount, dec["min_final_cltv_expiry"])
    final = ClearFinal(payment_secret=bytes.fromhex(dec["payment_secret"]), total_msat=amount)
    plan = build_onion(route, final, blockheight=blockheight(l1), payer=me)
    res = inject(l1, plan, inv["payment_hash"], 1, 1, invstring=inv["bolt11"])
    assert res["payment_preimage"] == l3.rpc.listinvoices("ok")["invoices"][0]["payment_preimage"]
    (part,) = l1.rpc.listsendpays(payment_hash=inv["payment_hash"])["payments"]
    observed["listsendpays_injected_complete"] = part
    assert (part["partid"], part["groupid"], part["status"]) == (1, 1, "complete")
    assert part["amount_msat"] == amount and part["amount_sent_msat"] == plan.first_amount_msat
    assert part["destination"] == l3.info["id"] and part["bolt11"] == inv["bolt11"]

    # --- bolt11 failure from the destination, peeled from both answers
    inv = l3.rpc.invoice(amount, "bad", "bad", exposeprivatechannels=[])
    wrong = ClearFinal(payment_secret=secrets.token_bytes(32), total_msat=amount)
    plan = build_onion(route, wrong, blockheight=blockheight(l1), payer=me)
    err, shared = inject_failure(l1, plan, inv["payment_hash"], 1, 1, invstring=inv["bolt11"])
    observed["injectpaymentonion_error"] = err.error
    assert err.error["code"] == 218
    failure = unwrap_onion_error(shared, bytes.fromhex(err.error["data"]["onionreply"]))
    assert failure is not None and failure.onion_index == 2
    assert failure.failcode == INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
    site = failure.locate(route, plan)
    assert (site.erring_index, site.erring_node) == (2, l3.info["id"])
    with pytest.raises(RpcError) as waited:
        l1.rpc.waitsendpay(inv["payment_hash"], partid=1, groupid=1)
    observed["waitsendpay_error_for_failed_injected_part"] = waited.value.error
    assert waited.value.error["code"] == 202
    again = unwrap_onion_error(
        shared[1:], bytes.fromhex(waited.value.error["data"]["onionreply"]), first_index=1
    )
    assert again == failure
    (part,) = l1.rpc.listsendpays(payment_hash=inv["payment_hash"])["payments"]
    observed["listsendpays_injected_failed"] = part
    assert (
        part["status"] == "failed"
        and part["erroronion"] == waited.value.error["data"]["onionreply"]
    )
    observed["bolt11_failure_secrets"] = [s.hex() for s in shared]

    # --- an injected part in flight: listsendpays sees it, waitsendpay awaits it
    l3.rpc.call("holdhtlcs", ["on"])
    inv = l3.rpc.invoice(amount, "held", "held", exposeprivatechannels=[])
    plan = build_onion(route, final_for(l1, inv, amount), blockheight=blockheight(l1), payer=me)
    results: dict[str, Any] = {}
    t_inject = threading.Thread(
        target=lambda: results.update(
            inject=inject(l1, plan, inv["payment_hash"], 7, 3, invstring=inv["bolt11"])
        )
    )
    t_inject.start()
    wait_for(lambda: l3.rpc.call("heldhtlcs")["held"] == 1)
    (part,) = l1.rpc.listsendpays(payment_hash=inv["payment_hash"])["payments"]
    observed["listsendpays_injected_pending"] = part
    assert (part["status"], part["partid"], part["groupid"]) == ("pending", 7, 3)
    t_wait = threading.Thread(
        target=lambda: results.update(
            wait=l1.rpc.waitsendpay(inv["payment_hash"], partid=7, groupid=3)
        )
    )
    t_wait.start()
    l3.rpc.call("holdhtlcs", ["off"])
    t_inject.join(60)
    t_wait.join(60)
    observed["waitsendpay_for_injected_part"] = results["wait"]
    assert results["wait"]["status"] == "complete"
    assert results["wait"]["payment_preimage"] == results["inject"]["payment_preimage"]

    # --- keysend over 2 hops with an extra odd record
    preimage = new_preimage()
    ks_route = clear_route(l1, [l2, l3], 1_234_000, 42)
    ks = keysend_final(preimage, {65537: b"barq"})
    plan = build_onion(ks_route, ks, blockheight=blockheight(l1), payer=me)
    ks_hash = payment_hash_of(preimage)
    res = inject(l1, plan, ks_hash, 1, 1, destination=l3.info["id"])
    assert res["payment_preimage"] == preimage.hex()
    (received,) = [i for i in l3.rpc.listinvoices()["invoices"] if i["payment_hash"] == ks_hash]
    observed["keysend_invoice_at_payee"] = received
    assert received["status"] == "paid" and received["amount_received_msat"] == 1_234_000

    # --- BOLT 12: payee behind an unannounced channel, introduction node l3
    offer = l4.rpc.offer(amount="30000sat", description="barq onion")
    fetched, decoded, edge = fetch_edge(l1, offer["bolt12"])
    invoice = fetched["invoice"]
    observed["offer"] = offer
    observed["fetchinvoice"] = fetched
    observed["decode_offer"] = l1.rpc.decode(offer["bolt12"])
    observed["decode_invoice"] = decoded
    assert edge.source == l3.info["id"]
    b12_hash = decoded["invoice_payment_hash"]
    _, plan = blinded_plan(l1, [l2, l3], edge, decoded["invoice_amount_msat"])
    res = inject(l1, plan, b12_hash, 1, 1, invstring=invoice)
    (paid,) = [i for i in l4.rpc.listinvoices()["invoices"] if i["payment_hash"] == b12_hash]
    assert paid["status"] == "paid" and res["payment_preimage"] == paid["payment_preimage"]
    (part,) = l1.rpc.listsendpays(payment_hash=b12_hash)["payments"]
    observed["listsendpays_injected_bolt12"] = part
    assert part["bolt12"] == invoice and part["destination"] == l4.info["id"]

    # --- a failure inside the blinded path comes back from l3 as invalid_onion_blinding
    fetched, decoded, edge = fetch_edge(l1, offer["bolt12"])
    invoice = fetched["invoice"]
    bad_route, plan = blinded_plan(l1, [l2, l3], edge, decoded["invoice_amount_msat"] - 1)
    err, shared = inject_failure(l1, plan, decoded["invoice_payment_hash"], 1, 1, invstring=invoice)
    failure = unwrap_onion_error(shared, bytes.fromhex(err.error["data"]["onionreply"]))
    assert failure is not None
    observed["blinded_failure"] = {
        "onion_index": failure.onion_index,
        "failcode": failure.failcode,
        "shared_secrets": [s.hex() for s in shared],
        "onionreply": err.error["data"]["onionreply"],
    }
    assert failure.onion_index == plan.introduction_index == 2
    assert failure.failcode == INVALID_ONION_BLINDING
    site = failure.locate(bad_route, plan)
    assert site.in_blinded_path and site.erring_channel == edge.scid
    assert site.erring_node == l3.info["id"]

    # --- the payer is the introduction node: l3 pays l4's offer over l4's path via l3
    fetched, decoded, edge = fetch_edge(l3, offer["bolt12"])
    invoice = fetched["invoice"]
    assert edge.source == l3.info["id"]
    deliver = decoded["invoice_amount_msat"]
    _, plan = blinded_plan(l3, [], edge, deliver)
    assert plan.first_peer is None and plan.first_amount_msat == edge.amount_in_msat(deliver)
    inject(l3, plan, decoded["invoice_payment_hash"], 1, 1, invstring=invoice)
    (paid,) = [
        i
        for i in l4.rpc.listinvoices()["invoices"]
        if i["payment_hash"] == decoded["invoice_payment_hash"]
    ]
    assert paid["status"] == "paid"

    if CAPTURE:
        FIXTURE.write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")


def final_for(payer: Any, inv: dict[str, Any], amount: int) -> ClearFinal:
    dec = payer.rpc.decode(inv["bolt11"])
    return ClearFinal(payment_secret=bytes.fromhex(dec["payment_secret"]), total_msat=amount)
