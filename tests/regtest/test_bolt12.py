"""Issue 14 on real lightningd: BOLT 12 offers and invoices over blinded paths, and keysend.

Network (one per test function, the fewest nodes that show each case)::

    l1 (payer, Barq) ── l2 ── l3 ┄┄ l4      ┄┄ : unannounced channel (the payee's only
       └──────────── l5 ─┘   l2 ┄┄ l6            way in is its invoice's blinded path)

l4's invoices have l3 as introduction node (two hops from l1, by l2 or by l5),
l6's have l2, a direct peer of l1. Keysend goes to l3 over two hops.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from regtest_env import MISSING, PLUGIN, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from pyln.client import RpcError
from pyln.testing.utils import wait_for

HOLD_SRC = Path(__file__).parent / "plugins" / "hold_htlcs.py"

PAYER = {
    "plugin": PLUGIN,
    "barq-handle-pay": True,
    "xpay-handle-pay": False,
    "barq-handle-keysend": True,
}


def hold_plugin(tmp_path: Path) -> str:
    dst = tmp_path / "hold_htlcs.py"
    dst.write_text(f"#!{sys.executable}\n" + HOLD_SRC.read_text().split("\n", 1)[1])
    dst.chmod(0o755)
    return str(dst)


def barqpay(node: Any, invstring: str, **kw: Any) -> dict[str, Any]:
    res: dict[str, Any] = node.rpc.call("barqpay", {"invstring": invstring, **kw})
    return res


def refused(node: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(RpcError) as exc:
        node.rpc.call(method, params)
    err: dict[str, Any] = exc.value.error
    return err


def paid_invoice(node: Any, payment_hash: str) -> dict[str, Any]:
    (inv,) = [i for i in node.rpc.listinvoices()["invoices"] if i["payment_hash"] == payment_hash]
    return dict(inv)


def sync_blocks(nodes: list[Any]) -> None:
    height = nodes[0].bitcoin.rpc.getblockcount()
    for n in nodes:
        wait_for(lambda n=n: n.rpc.getinfo()["blockheight"] == height)


def hops_of(part: dict[str, Any]) -> list[dict[str, Any]]:
    route = part["route"]
    hops: list[dict[str, Any]] = route["hops"] if isinstance(route, dict) else route
    return hops


def succeeded(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in res["attempts"] if p["state"] == "succeeded"]


# --------------------------------------------------------------------------- offers, invoices


def test_offers_and_bolt12_invoices(node_factory: Any) -> None:
    l1, l2, l3, l4, l5, l6 = node_factory.get_nodes(6, opts=[PAYER, {}, {}, {}, {}, {}])
    for a, b in ((l1, l2), (l1, l5), (l2, l3), (l5, l3)):
        a.fundchannel(b, 1_000_000)
    l3.fundchannel(l4, 3_000_000, announce_channel=False)
    l2.fundchannel(l6, 1_000_000, announce_channel=False)
    l1.bitcoin.generate_block(6)
    sync_blocks([l1, l2, l3, l4, l5, l6])
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 8, timeout=120)

    # a fixed-amount offer of a payee behind an unannounced channel (intro l3, 2 hops)
    offer = l4.rpc.offer(amount="30000sat", description="barq fixed")["bolt12"]
    res = barqpay(l1, offer)
    assert res["status"] == "complete" and res["amount_msat"] == 30_000_000
    assert res["bolt11"].startswith("lni1")  # the fetched invoice it paid
    assert res["destination"] == l4.info["id"]
    h = res["payment_hash"]
    assert paid_invoice(l4, h)["status"] == "paid"
    assert paid_invoice(l4, h)["payment_preimage"] == res["payment_preimage"]
    parts = l1.rpc.listsendpays(payment_hash=h)["payments"]
    assert parts and all(p["partid"] >= 1 for p in parts)  # injected, nonzero part ids
    assert {p["groupid"] for p in parts} == {res["groupid"]}
    status = l1.rpc.call("barqstatus", {"payment_hash": h})["payments"]
    assert status and status[0]["status"] == "complete"
    err = refused(l1, "barqpay", {"invstring": offer, "amount_msat": 30_000_000})
    assert err["code"] == -32602 and "amount_msat parameter unnecessary" in err["message"]

    # an amountless offer: amount_msat is required, then paid
    anyamount = l4.rpc.offer(amount="any", description="barq any")["bolt12"]
    err = refused(l1, "barqpay", {"invstring": anyamount})
    assert err["code"] == -32602 and "amount_msat parameter required" in err["message"]
    res = barqpay(l1, anyamount, amount_msat=12_345_000, payer_note="thanks")
    assert res["status"] == "complete" and res["amount_msat"] == 12_345_000
    assert paid_invoice(l4, res["payment_hash"])["amount_received_msat"] >= 12_345_000

    # an invoice fetched by the caller (the blinded path is the only way to l4)
    inv = l1.rpc.fetchinvoice(offer)["invoice"]
    res = barqpay(l1, inv)
    assert res["status"] == "complete" and res["bolt11"] == inv
    again = barqpay(l1, inv)  # paid: answered from listsendpays, nothing sent
    assert again["status"] == "complete" and again.get("already_paid") is True

    # the introduction node is a direct peer (l2 for l6)
    near = l6.rpc.offer(amount="20000sat", description="barq near")["bolt12"]
    res = barqpay(l1, near)
    assert res["status"] == "complete" and res["destination"] == l6.info["id"]

    # MPP across two routes into the blinded path: 1,500,000 sat > each of l1's channels
    big = l4.rpc.offer(amount="1500000sat", description="barq mpp")["bolt12"]
    res = barqpay(l1, big, retry_for=60)
    assert res["status"] == "complete" and res["amount_msat"] == 1_500_000_000
    ok = succeeded(res)
    assert len(ok) >= 2
    assert len({hops_of(p)[0]["channel"] for p in ok}) == 2

    # pay redirected to Barq (barq-handle-pay): an offer too
    offer2 = l4.rpc.offer(amount="1000sat", description="barq via pay")["bolt12"]
    res = l1.rpc.pay(offer2)
    assert res["status"] == "complete" and "strategy" in res  # Barq's result

    # expired offer, currency offer, malformed strings: clear errors, nothing sent
    expiring = l4.rpc.offer(
        amount="1000sat", description="barq expiring", absolute_expiry=int(time.time()) + 2
    )["bolt12"]
    time.sleep(3)
    err = refused(l1, "barqpay", {"invstring": expiring})
    assert err["code"] == 207 and "Offer expired" in err["message"]
    err = refused(l1, "barqpay", {"invstring": "lni1qqqqqqqq"})
    assert err["code"] == -32602
    err = refused(l1, "barqpay", {"invstring": offer[:-6] + "qqqqqq"})
    assert err["code"] == -32602
    assert l1.rpc.call("barqstatus")["payments"]  # the plugin still answers


# --------------------------------------------------------------------------- keysend


def test_keysend(node_factory: Any) -> None:
    # CLN v26.06 deprecated `keysend` (removal in v27.03): allowed here to show the redirect
    opts = [{**PAYER, "allow-deprecated-apis": True}, {}, {}]
    l1, _l2, l3 = node_factory.line_graph(3, opts=opts, wait_for_announce=True)
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 4, timeout=120)
    dest = l3.info["id"]

    res = l1.rpc.call(
        "barqkeysend",
        {"destination": dest, "amount_msat": 1_234_000, "extratlvs": {"65537": "62617271"}},
    )
    assert res["status"] == "complete" and res["destination"] == dest
    assert res["amount_msat"] == 1_234_000 and res["amount_sent_msat"] > 1_234_000
    inv = paid_invoice(l3, res["payment_hash"])
    assert inv["status"] == "paid" and inv["amount_received_msat"] == 1_234_000
    assert inv["payment_preimage"] == res["payment_preimage"]
    assert inv["description"] == "keysend: barq"
    hist = l1.rpc.call("barqlistpays", {"payment_hash": res["payment_hash"]})["pays"]
    assert hist and hist[0]["status"] == "complete"

    # CLN's keysend redirected to Barq (barq-handle-keysend)
    res = l1.rpc.keysend(dest, 5_000)
    assert res["status"] == "complete" and "strategy" in res

    # refused with nothing sent, the plugin still answering
    before = len(l1.rpc.listsendpays()["payments"])
    for params, code, needle in (
        ({"destination": l1.info["id"], "amount_msat": 1000}, -32602, "yourself"),
        ({"destination": "02" + "42" * 32, "amount_msat": 1000}, 205, "Unknown destination"),
        ({"destination": dest, "amount_msat": 1000, "extratlvs": {"7": "00"}}, -32602, "reserved"),
        ({"destination": dest, "amount_msat": 1000, "extratlvs": {"65537": "zz"}}, -32602, "hex"),
        ({"destination": dest, "amount_msat": 0}, -32602, "amount_msat"),
        ({"destination": dest, "amount_msat": 2**64}, -32602, "amount_msat"),
    ):
        err = refused(l1, "barqkeysend", params)
        assert err["code"] == code and needle in err["message"], err
    assert len(l1.rpc.listsendpays()["payments"]) == before
    assert l1.rpc.call("barqstatus")["payments"]


# --------------------------------------------------------------------------- restart


def _stopped_mid_payment(node_factory: Any, tmp_path: Path) -> tuple[Any, Any, str, str]:
    """l1 -> l2 -> l3 (holding HTLCs): l1 pays l3's BOLT 12 invoice and Barq is stopped while
    the injected part is held; returns (l1, l3, the invoice, its payment hash)."""
    l1, _l2, l3 = node_factory.line_graph(
        3, opts=[PAYER, {}, {"plugin": hold_plugin(tmp_path)}], wait_for_announce=True
    )
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 4, timeout=120)
    l3.rpc.call("holdhtlcs", {"mode": "off"})
    offer = l3.rpc.offer(amount="25000sat", description="barq restart")["bolt12"]
    inv = l1.rpc.fetchinvoice(offer)["invoice"]
    h = l1.rpc.decode(inv)["invoice_payment_hash"]
    l3.rpc.call("holdhtlcs", {"mode": "on"})
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(barqpay, l1, inv)
        wait_for(lambda: l3.rpc.call("heldhtlcs")["held"] >= 1)
        l1.rpc.plugin_stop("barq-plugin")
        with pytest.raises(RpcError):
            fut.result(timeout=30)
    return l1, l3, inv, h


def test_restart_mid_bolt12_payment_adopts_its_parts(node_factory: Any, tmp_path: Path) -> None:
    l1, l3, inv, h = _stopped_mid_payment(node_factory, tmp_path)
    before = l1.rpc.listsendpays(payment_hash=h)["payments"]
    assert [p["status"] for p in before] == ["pending"]
    l1.rpc.plugin_start(PLUGIN)
    l3.rpc.call("holdhtlcs", {"mode": "off"})
    res = barqpay(l1, inv)  # adopts the pending injected part, sends nothing new
    assert res["status"] == "complete"
    after = l1.rpc.listsendpays(payment_hash=h)["payments"]
    assert len(after) == 1 and after[0]["status"] == "complete"
    assert paid_invoice(l3, h)["status"] == "paid"


def test_restart_watcher_sees_an_injected_part_fail(node_factory: Any, tmp_path: Path) -> None:
    """After a restart the watcher waits for the pending injected part; it fails (lightningd
    answers waitsendpay with 202, the error onion it cannot read): failed, not pending."""
    l1, l3, inv, h = _stopped_mid_payment(node_factory, tmp_path)
    l1.rpc.plugin_start(PLUGIN)

    def status() -> str | None:
        views = l1.rpc.call("barqstatus", {"payment_hash": h})["payments"]
        return str(views[0]["status"]) if views else None

    wait_for(lambda: status() == "pending")  # the watcher awaits the adopted part
    l3.rpc.call("failhtlcs")
    wait_for(lambda: status() == "failed", timeout=30)
    [part] = l1.rpc.listsendpays(payment_hash=h)["payments"]
    assert part["status"] == "failed"
    res = barqpay(l1, inv)  # a fresh group pays it
    assert res["status"] == "complete" and paid_invoice(l3, h)["status"] == "paid"


# --------------------------------------------------------------------------- intro = payer


def test_introduction_node_is_the_payer(node_factory: Any) -> None:
    """The payee's only channel is an unannounced one with the payer: CLN's offers plugin
    (``find_best_peer``) makes the invoice's one blinded path start at the payer, whose
    injected onion's first layer is then the path's own."""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[PAYER, {}, {}])
    l1.fundchannel(l2, 1_000_000)  # public: l1 is announced, as find_best_peer requires
    l1.fundchannel(l3, 1_000_000, announce_channel=False)
    l1.bitcoin.generate_block(6)
    sync_blocks([l1, l2, l3])
    wait_for(lambda: l1.info["id"] in {n["nodeid"] for n in l3.rpc.listnodes()["nodes"]})
    wait_for(lambda: any("alias" in n for n in l3.rpc.listnodes(l1.info["id"])["nodes"]))
    offer = l3.rpc.offer(amount="40000sat", description="barq intro is us")["bolt12"]
    inv = l1.rpc.fetchinvoice(offer)["invoice"]
    dec = l1.rpc.decode(inv)
    [path] = dec["invoice_paths"]
    assert path["first_node_id"] == l1.info["id"]  # the blinded path starts at the payer
    pay = path["payinfo"]
    fee = pay["fee_base_msat"] + 40_000_000 * pay["fee_proportional_millionths"] // 1_000_000
    res = barqpay(l1, inv)
    assert res["status"] == "complete" and res["amount_msat"] == 40_000_000
    assert paid_invoice(l3, res["payment_hash"])["status"] == "paid"
    [part] = l1.rpc.listsendpays(payment_hash=res["payment_hash"])["payments"]
    # lightningd counts what left our channel: the path's fee is our own relay fee, kept by
    # us; Barq counts it as xpay does (the injected amount), against maxfee
    assert part["status"] == "complete" and part["amount_sent_msat"] == 40_000_000
    assert res["amount_sent_msat"] == 40_000_000 + fee and res["fee_msat"] == fee
    assert [h["channel"] for h in hops_of(succeeded(res)[0])][-1].startswith("0x")


# --------------------------------------------------------------------------- two blinded paths


def _intro_policy(payer: Any, intro: Any, payee: Any) -> dict[str, Any]:
    """The introduction node's channel to the payee: scid and its policy toward the payee."""
    (ch,) = intro.rpc.listpeerchannels(payee.info["id"])["channels"]
    scid = ch["short_channel_id"]
    (half,) = [
        c
        for c in payer.rpc.listchannels(short_channel_id=scid)["channels"]
        if c["source"] == intro.info["id"]
    ]
    return {"scid": scid, **half}


def test_mpp_across_two_blinded_paths(node_factory: Any) -> None:
    """CLN issues one blinded path per invoice, so the payee's invoice is rewritten with two
    paths built here ([A -> P] and [B -> P], BOLT 4 route blinding, the path_id lightningd
    expects) and signed by the payee (``createinvoice``); each path alone is too small."""
    from route_blinding import Payinfo, blind_path, final_tlvs, intro_tlvs, rewrite_invoice

    l1, a, b, p = node_factory.get_nodes(4, opts=[PAYER, {}, {}, {}])
    # our channels have room for a whole path's part and more: what limits is the paths
    for x, y, sat in ((l1, a, 2_000_000), (l1, b, 2_000_000), (a, p, 1_000_000), (b, p, 1_000_000)):
        x.fundchannel(y, sat)
    l1.bitcoin.generate_block(6)
    sync_blocks([l1, a, b, p])
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 8, timeout=120)

    amount = 1_200_000_000  # msat: more than either path carries (htlc_maximum_msat below)
    offer = p.rpc.offer(amount=f"{amount}msat", description="barq two paths")["bolt12"]
    fetched = l1.rpc.fetchinvoice(offer)["invoice"]
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    base = bytes.fromhex(p.rpc.makesecret(string="bolt12-invoice-base")["secret"])
    path_id = hashlib.sha256(base + payment_hash).digest()  # common/bolt12_id.c
    cltv_final = p.rpc.listconfigs("cltv-final")["configs"]["cltv-final"]["value_int"]
    height = l1.rpc.getinfo()["blockheight"]
    paths, infos = [], []
    for intro in (a, b):
        pol = _intro_policy(l1, intro, p)
        tlvs = intro_tlvs(
            scid=pol["scid"],
            cltv_expiry_delta=pol["delay"],
            fee_base_msat=pol["base_fee_millisatoshi"],
            fee_proportional_millionths=pol["fee_per_millionth"],
            max_cltv_expiry=height + 2016,
            htlc_minimum_msat=0,
        )
        nodes = [bytes.fromhex(intro.info["id"]), bytes.fromhex(p.info["id"])]
        paths.append(blind_path(os.urandom(32), nodes, [tlvs, final_tlvs(path_id)]))
        infos.append(
            Payinfo(
                fee_base_msat=pol["base_fee_millisatoshi"],
                fee_proportional_millionths=pol["fee_per_millionth"],
                cltv_expiry_delta=pol["delay"] + cltv_final,
                htlc_minimum_msat=0,
                htlc_maximum_msat=800_000_000,
            )
        )
    unsigned = rewrite_invoice(fetched, paths, infos, payment_hash)
    inv = p.rpc.createinvoice(unsigned, "barq-two-paths", preimage.hex())["bolt12"]
    dec = l1.rpc.decode(inv)
    assert dec["valid"] and len(dec["invoice_paths"]) == 2
    assert [x["first_node_id"] for x in dec["invoice_paths"]] == [a.info["id"], b.info["id"]]

    res = barqpay(l1, inv, maxparts=4, retry_for=90)
    assert res["status"] == "complete" and res["payment_hash"] == payment_hash.hex()
    assert res["payment_preimage"] == preimage.hex()
    received = paid_invoice(p, payment_hash.hex())
    assert received["status"] == "paid" and received["amount_received_msat"] >= amount
    ok = succeeded(res)
    assert len({hops_of(x)[-1]["channel"] for x in ok}) == 2  # both paths carried parts
    for intro in (a, b):  # and both introduction nodes forwarded to the payee
        assert intro.rpc.listforwards(status="settled")["forwards"]
    parts = l1.rpc.listsendpays(payment_hash=payment_hash.hex())["payments"]
    assert sum(x["status"] == "complete" for x in parts) >= 2
