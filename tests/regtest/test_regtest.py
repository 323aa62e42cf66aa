"""Barq on real lightningd + bitcoind (regtest), driven like ``lightning-cli`` would.

Scenarios follow issue 5. Every invoice is created with ``exposeprivatechannels=[]``
(no random route hint) unless the scenario is about route hints.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from regtest_env import MISSING, PLUGIN, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import itertools

from pyln.client import RpcError
from pyln.testing.utils import only_one, wait_for

HOLD_SRC = Path(__file__).parent / "plugins" / "hold_htlcs.py"


# --------------------------------------------------------------------------- helpers


def hold_plugin(tmp_path: Path) -> str:
    """The HTLC-holding test plugin, with this interpreter in its shebang."""
    dst = tmp_path / "hold_htlcs.py"
    dst.write_text(f"#!{sys.executable}\n" + HOLD_SRC.read_text().split("\n", 1)[1])
    dst.chmod(0o755)
    return str(dst)


def invoice(node: Any, amount_msat: int, label: str, **kw: Any) -> str:
    kw.setdefault("exposeprivatechannels", [])
    inv = node.rpc.invoice(amount_msat, label, f"barq regtest {label}", **kw)
    return str(inv["bolt11"])


def barqpay(node: Any, bolt11: str, **kw: Any) -> dict[str, Any]:
    res: dict[str, Any] = node.rpc.call("barqpay", {"invstring": bolt11, **kw})
    return res


def hops_of(part: dict[str, Any]) -> list[dict[str, Any]]:
    route = part["route"]
    hops: list[dict[str, Any]] = route["hops"] if isinstance(route, dict) else route
    return hops


def sendpays(node: Any, payment_hash: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = node.rpc.listsendpays(payment_hash=payment_hash)["payments"]
    return out


def wait_gossip(node: Any, directions: int) -> None:
    wait_for(lambda: len(node.rpc.listchannels()["channels"]) >= directions, timeout=120)


def command_names(node: Any) -> set[str]:
    return {c["command"].split()[0] for c in node.rpc.help()["help"]}


def scid_between(a: Any, b: Any) -> str:
    chans = a.rpc.listpeerchannels(b.info["id"])["channels"]
    return str(chans[0]["short_channel_id"])


def open_channel(node_factory: Any, a: Any, b: Any, capacity_sat: int, **kw: Any) -> str:
    """Fund a -> b (all liquidity on a's side); returns the scid."""
    scid, _ = a.fundchannel(b, capacity_sat, **kw)
    return str(scid)


# --------------------------------------------------------------------------- 1. lifecycle


def test_plugin_registers_and_restarts(node_factory: Any) -> None:
    l1 = node_factory.get_node(options={"plugin": PLUGIN})
    names = command_names(l1)
    for cmd in ("barqpay", "barqstatus", "barqlistpays", "barqroute", "barqstrategies"):
        assert cmd in names
    configs = l1.rpc.listconfigs()["configs"]
    assert "barq-strategy" in configs
    strategies = {s["name"] for s in l1.rpc.call("barqstrategies")["strategies"]}
    assert {"direct", "dijkstra", "probabilistic", "mincostflow"} <= strategies

    l1.rpc.plugin_stop("barq-plugin")
    assert "barqpay" not in command_names(l1)
    l1.rpc.plugin_start(PLUGIN)
    assert "barqpay" in command_names(l1)
    assert l1.rpc.call("barqstatus")["payments"] == []


# --------------------------------------------------------------------------- 2. direct


@pytest.mark.parametrize("strategy", [None, "direct"])
def test_direct_payment(node_factory: Any, strategy: str | None) -> None:
    l1, l2 = node_factory.line_graph(2, opts={"plugin": PLUGIN}, wait_for_announce=True)
    bolt11 = invoice(l2, 50_000_000, "direct")
    kw = {"strategy": strategy} if strategy else {}
    res = barqpay(l1, bolt11, **kw)
    assert res["status"] == "complete"
    assert res["amount_msat"] == 50_000_000
    assert res["amount_sent_msat"] == 50_000_000  # no fee over our own channel
    inv = l2.rpc.listinvoices("direct")["invoices"][0]
    assert inv["status"] == "paid"
    assert res["payment_preimage"] == inv["payment_preimage"]
    assert len(hops_of(res["attempts"][0])) == 1


# --------------------------------------------------------------------------- 3. multi-hop


@pytest.mark.parametrize("n", [3, 4])
def test_multihop_fees_and_cltv_exact(node_factory: Any, n: int) -> None:
    nodes = node_factory.line_graph(n, opts={"plugin": PLUGIN}, wait_for_announce=True)
    l1, payee = nodes[0], nodes[-1]
    wait_gossip(l1, 2 * (n - 1))
    bolt11 = invoice(payee, 100_000_000, f"line{n}")
    res = barqpay(l1, bolt11, strategy="dijkstra")
    assert res["status"] == "complete"
    decoded = l1.rpc.decode(bolt11)
    chans = {(c["short_channel_id"], c["direction"]): c for c in l1.rpc.listchannels()["channels"]}
    for part in res["attempts"]:
        if part["state"] != "succeeded":
            continue
        hops = hops_of(part)
        assert len(hops) == n - 1
        assert hops[-1]["amount_msat"] == part["amount_msat"]
        assert hops[-1]["delay"] == decoded["min_final_cltv_expiry"]
        for prev, nxt in itertools.pairwise(hops):
            c = chans[(nxt["channel"], nxt["direction"])]
            fee = c["base_fee_millisatoshi"] + nxt["amount_msat"] * c["fee_per_millionth"] // 10**6
            assert prev["amount_msat"] - nxt["amount_msat"] == fee
            assert prev["delay"] - nxt["delay"] == c["delay"]
    # what the forwarding nodes really earned is what the route said
    fees_earned = sum(
        f["fee_msat"]
        for node in nodes[1:-1]
        for f in node.rpc.listforwards(status="settled")["forwards"]
    )
    assert fees_earned == res["amount_sent_msat"] - res["amount_msat"]


# --------------------------------------------------------------------------- 4. MPP


def _diamond(node_factory: Any, paths: int, capacity_sat: int, **opts: Any) -> tuple[Any, Any]:
    """l1 -> m_i -> payee for i in 1..paths, every channel ``capacity_sat``."""
    nodes = node_factory.get_nodes(
        paths + 2, opts=[{"plugin": PLUGIN, **opts}] + [{}] * (paths + 1)
    )
    l1, payee, mids = nodes[0], nodes[-1], nodes[1:-1]
    for m in mids:
        open_channel(node_factory, l1, m, capacity_sat)
        open_channel(node_factory, m, payee, capacity_sat)
    node_factory.bitcoind.generate_block(6)
    wait_gossip(l1, 4 * paths)
    return l1, payee


def test_mpp_over_several_paths_respects_maxparts(node_factory: Any) -> None:
    l1, payee = _diamond(node_factory, 3, 1_000_000)
    amount = 2_000_000_000  # 2M sat: no single path can carry it
    bolt11 = invoice(payee, amount, "mpp")
    res = barqpay(l1, bolt11, maxparts=4)
    assert res["status"] == "complete"
    h = res["payment_hash"]
    # answered at the first preimage: let the other parts settle (barq-slow-mode would wait)
    wait_for(lambda: not any(p["status"] == "pending" for p in sendpays(l1, h)))
    parts = sendpays(l1, h)
    ok = [p for p in parts if p["status"] == "complete"]
    assert sum(p["amount_msat"] for p in ok) == amount
    [settled] = l1.rpc.call("barqlistpays", {"payment_hash": h})["pays"]
    won = [p for p in settled["attempts"] if p["state"] == "succeeded"]
    assert len({hops_of(p)[0]["channel"] for p in won}) >= 2
    assert len(ok) <= 4
    # never more than maxparts parts in flight at once
    events = sorted(
        [(p["created_at"], 1) for p in parts]
        + [(p.get("completed_at", p["created_at"]), -1) for p in parts]
    )
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak <= 4


# --------------------------------------------------------------------------- 5. learning


def test_learns_depleted_channel(node_factory: Any) -> None:
    # cheap path l1-l2-l4 (its l2->l4 side drained), expensive path l1-l3-l4
    l1, l2, l3, l4 = node_factory.get_nodes(
        4, opts=[{"plugin": PLUGIN}, {}, {"fee-base": 5000, "fee-per-satoshi": 5000}, {}]
    )
    open_channel(node_factory, l1, l2, 1_000_000)
    scid24 = open_channel(node_factory, l2, l4, 1_000_000)
    open_channel(node_factory, l1, l3, 1_000_000)
    open_channel(node_factory, l3, l4, 1_000_000)
    node_factory.bitcoind.generate_block(6)
    wait_gossip(l1, 8)
    # drain l2 -> l4 by paying l4 from l2 directly
    l2.rpc.xpay(invoice(l4, 850_000_000, "drain"))
    res = barqpay(l1, invoice(l4, 300_000_000, "learn1"), strategy="dijkstra")
    assert res["status"] == "complete"
    tried = [p for p in res["attempts"] if any(h["channel"] == scid24 for h in hops_of(p))]
    assert tried and all(p["state"] != "succeeded" for p in tried)
    failed_first = min(res["attempts"], key=lambda p: p["partid"])
    assert failed_first["state"] in ("failed", "resplit")
    # a second payment right after does not try the drained channel again
    res2 = barqpay(l1, invoice(l4, 300_000_000, "learn2"), strategy="dijkstra")
    assert res2["status"] == "complete"
    assert not any(h["channel"] == scid24 for p in res2["attempts"] for h in hops_of(p))


# --------------------------------------------------------------------------- 6. route hints


def test_private_channel_through_route_hint(node_factory: Any) -> None:
    l1, l2, l3 = node_factory.get_nodes(3, opts=[{"plugin": PLUGIN}, {}, {}])
    open_channel(node_factory, l1, l2, 1_000_000)
    private_scid = open_channel(node_factory, l2, l3, 1_000_000, announce_channel=False)
    node_factory.bitcoind.generate_block(6)
    wait_gossip(l1, 2)
    # l3 puts its private channel in invoices once it has l2's channel_update for it
    labels = iter(range(1000))

    def hinted_invoice() -> str | None:
        bolt11 = str(l3.rpc.invoice(10_000_000, f"hint{next(labels)}", "hint")["bolt11"])
        return bolt11 if l1.rpc.decode(bolt11).get("routes") else None

    wait_for(lambda: hinted_invoice() is not None)
    bolt11 = hinted_invoice()
    assert bolt11 is not None
    # the hint names the private channel by its scid alias (option_scid_alias) or its scid
    hint = l1.rpc.decode(bolt11)["routes"][0][-1]
    chan = only_one(l3.rpc.listpeerchannels()["channels"])
    assert hint["short_channel_id"] in (
        private_scid,
        chan["alias"]["local"],
        chan["alias"].get("remote"),
    )
    res = barqpay(l1, bolt11)
    assert res["status"] == "complete"
    last = [hops_of(p)[-1] for p in res["attempts"] if p["state"] == "succeeded"]
    assert last and all(h["channel"] == hint["short_channel_id"] for h in last)
    assert all(h["id"] == l3.info["id"] for h in last)


# --------------------------------------------------------------------------- 7./8. impossible


def test_impossible_payment_fails_cleanly(node_factory: Any) -> None:
    l1, payee = _diamond(node_factory, 2, 1_000_000)
    # gossip says 2M sat can reach the payee, but the last hops are drained to ~300k sat each
    mids = [p for p in l1.rpc.listpeers()["peers"]]
    for i, peer in enumerate(mids):
        mid = next(n for n in node_factory.nodes if n.info["id"] == peer["id"])
        mid.rpc.xpay(invoice(payee, 700_000_000, f"drain{i}"))
    amount = 1_200_000_000
    t0 = time.time()
    with pytest.raises(RpcError) as err:
        barqpay(l1, invoice(payee, amount, "impossible"), retry_for=20)
    # parts that reached the payee are held until its 60 s MPP timeout, and Barq waits
    # for every part sent before it reports: retry_for + 60 s bounds the whole call
    assert time.time() - t0 < 20 + 60 + 15
    e = err.value.error
    # xpay's words: routing failed after attempts is 209, retry_for running out 210
    assert (e["code"], e["message"].split(" after ")[0]) in ((209, "Failed"), (210, "Timed out"))
    attempts = e["data"]["attempts"]
    assert attempts, "data lists what was tried"
    failures = [a["failure"] for a in attempts if a.get("failure")]
    assert failures and all(f["failcodename"] for f in failures)
    last_hops = {p["short_channel_id"] for p in payee.rpc.listpeerchannels()["channels"]}
    assert {f["erring_channel"] for f in failures} & last_hops
    parts = sendpays(l1, e["data"]["payment_hash"])
    assert not any(p["status"] == "complete" for p in parts)
    assert not any(p["status"] == "pending" for p in parts)


def test_maxfee_too_low(node_factory: Any) -> None:
    l1, _l2, l3 = node_factory.line_graph(
        3,
        opts=[{"plugin": PLUGIN}, {"fee-base": 10_000, "fee-per-satoshi": 10_000}, {}],
        wait_for_announce=True,
    )
    wait_gossip(l1, 4)
    with pytest.raises(RpcError) as err:
        barqpay(l1, invoice(l3, 100_000_000, "fee"), maxfee=10)
    assert err.value.error["code"] == 206
    assert l1.rpc.listsendpays()["payments"] == []


# --------------------------------------------------------------------------- 9. bad invoices


def test_bad_invoices(node_factory: Any) -> None:
    l1, l2 = node_factory.line_graph(2, opts={"plugin": PLUGIN}, wait_for_announce=True)
    with pytest.raises(RpcError) as err:
        barqpay(l1, "lnbcrt1notaninvoice")
    assert err.value.error["code"] == -32602
    # expired
    expired = invoice(l2, 1000, "expired", expiry=1)
    time.sleep(2)
    with pytest.raises(RpcError) as err:
        barqpay(l1, expired)
    assert err.value.error["code"] == 207
    # wrong network: a mainnet invoice (BOLT 11 test vector)
    mainnet = (
        "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5"
        "qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgq"
        "uk0rl77nj30yxdy8j9"
        "vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh"
    )
    with pytest.raises(RpcError) as err:
        barqpay(l1, mainnet)
    assert err.value.error["code"] == -32602
    # already paid: paid once, the second call sends nothing new
    paid = invoice(l2, 10_000, "paid")
    first = barqpay(l1, paid)
    before = len(sendpays(l1, first["payment_hash"]))
    try:
        again = barqpay(l1, paid)
        assert again["status"] == "complete"
        assert again["payment_preimage"] == first["payment_preimage"]
    except RpcError as exc:
        assert exc.error["code"] == 201
    assert len(sendpays(l1, first["payment_hash"])) == before
    # the plugin is still up
    assert l1.rpc.call("barqstatus")["payments"]


# --------------------------------------------------------------------------- 10. live status


def test_barqstatus_while_in_flight(node_factory: Any, tmp_path: Path) -> None:
    l1, _l2, l3 = node_factory.line_graph(
        3, opts=[{"plugin": PLUGIN}, {}, {"plugin": hold_plugin(tmp_path)}], wait_for_announce=True
    )
    wait_gossip(l1, 4)
    bolt11 = invoice(l3, 20_000_000, "held")
    payment_hash = l1.rpc.decode(bolt11)["payment_hash"]
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(barqpay, l1, bolt11)
        wait_for(lambda: l3.rpc.call("heldhtlcs")["held"] >= 1)
        status = l1.rpc.call("barqstatus", {"payment_hash": payment_hash})["payments"]
        assert status and status[0]["status"] == "pending"
        inflight = [p for p in status[0]["attempts"] if p["state"] == "inflight"]
        assert inflight and hops_of(inflight[0])[-1]["id"] == l3.info["id"]
        l3.rpc.call("holdhtlcs", {"mode": "off"})
        res = fut.result(timeout=60)
    assert res["status"] == "complete"
    done = l1.rpc.call("barqstatus", {"payment_hash": payment_hash})["payments"][0]
    assert done["status"] == "complete"


# --------------------------------------------------------------------------- 11. restart


def test_restart_with_part_in_flight(node_factory: Any, tmp_path: Path) -> None:
    l1, _l2, l3 = node_factory.line_graph(
        3, opts=[{"plugin": PLUGIN}, {}, {"plugin": hold_plugin(tmp_path)}], wait_for_announce=True
    )
    wait_gossip(l1, 4)
    bolt11 = invoice(l3, 30_000_000, "restart")
    payment_hash = l1.rpc.decode(bolt11)["payment_hash"]
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(barqpay, l1, bolt11)
        wait_for(lambda: l3.rpc.call("heldhtlcs")["held"] >= 1)
        l1.rpc.plugin_stop("barq-plugin")
        with pytest.raises(RpcError):
            fut.result(timeout=30)
    before = sendpays(l1, payment_hash)
    assert [p["status"] for p in before] == ["pending"]
    l1.rpc.plugin_start(PLUGIN)
    l3.rpc.call("holdhtlcs", {"mode": "off"})
    res = barqpay(l1, bolt11)  # adopts the pending part, sends nothing new
    assert res["status"] == "complete"
    after = sendpays(l1, payment_hash)
    assert len(after) == 1 and after[0]["status"] == "complete"
    ids = [(p["groupid"], p["partid"]) for p in after]
    assert len(ids) == len(set(ids))
    hist = l1.rpc.call("barqlistpays", {"payment_hash": payment_hash})["pays"]
    assert hist and hist[0]["status"] == "complete"


# --------------------------------------------------------------------------- 12. concurrency


def test_ten_payments_at_once(node_factory: Any) -> None:
    l1, l2, l3, l4 = node_factory.get_nodes(4, opts=[{"plugin": PLUGIN}, {}, {}, {}])
    open_channel(node_factory, l1, l2, 5_000_000)
    open_channel(node_factory, l2, l3, 5_000_000)
    open_channel(node_factory, l2, l4, 5_000_000)
    node_factory.bitcoind.generate_block(6)
    wait_gossip(l1, 6)
    payees = [l2, l3, l4]
    invs = [
        (payees[i % 3], invoice(payees[i % 3], 1_000_000 * (i + 1), f"c{i}")) for i in range(10)
    ]
    with ThreadPoolExecutor(10) as ex:
        results = list(ex.map(lambda t: barqpay(l1, t[1]), invs))
    assert all(r["status"] == "complete" for r in results)
    for (payee, _), r, i in zip(invs, results, range(10), strict=True):
        assert r["amount_msat"] == 1_000_000 * (i + 1)
        assert r["destination"] == payee.info["id"]
        assert payee.rpc.listinvoices(f"c{i}")["invoices"][0]["status"] == "paid"


# --------------------------------------------------------------------------- 13. disconnect


def test_payee_disconnects_mid_payment(node_factory: Any, tmp_path: Path) -> None:
    l1, l2, l3 = node_factory.line_graph(
        3,
        opts=[
            {"plugin": PLUGIN},
            {"may_reconnect": True},
            {"plugin": hold_plugin(tmp_path), "may_reconnect": True},
        ],
        wait_for_announce=True,
    )
    wait_gossip(l1, 4)
    bolt11 = invoice(l3, 10_000_000, "disc")
    payment_hash = l1.rpc.decode(bolt11)["payment_hash"]
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(barqpay, l1, bolt11, retry_for=120)
        wait_for(lambda: l3.rpc.call("heldhtlcs")["held"] >= 1)
        l3.stop()  # the payee goes away holding our HTLC
        l3.daemon.opts.pop("plugin", None)  # comes back without holding
        l3.start()
        l3.rpc.connect(l2.info["id"], "localhost", l2.port)
        try:
            res = fut.result(timeout=120)
            assert res["status"] == "complete"
        except RpcError as exc:
            assert exc.error["code"] in (203, 204, 205, 210)
    final = sendpays(l1, payment_hash)
    assert not any(p["status"] == "pending" for p in final)
    status = l1.rpc.call("barqstatus", {"payment_hash": payment_hash})["payments"][0]
    assert status["status"] in ("complete", "failed")
    assert not [p for p in status["attempts"] if p["state"] == "inflight"]


# --------------------------------------------------------------------------- 14. pay redirection


def test_pay_is_served_by_barq(node_factory: Any) -> None:
    opts = {"plugin": PLUGIN, "barq-handle-pay": True, "xpay-handle-pay": False}
    l1, _l2, l3 = node_factory.line_graph(3, opts=[opts, {}, {}], wait_for_announce=True)
    wait_gossip(l1, 4)
    bolt11 = invoice(l3, 5_000_000, "redirect")
    res = l1.rpc.pay(bolt11)
    assert res["status"] == "complete"
    assert (
        res["payment_preimage"]
        == l3.rpc.listinvoices("redirect")["invoices"][0]["payment_preimage"]
    )
    hist = l1.rpc.call("barqlistpays", {"payment_hash": res["payment_hash"]})["pays"]
    assert hist and hist[0]["status"] == "complete"
