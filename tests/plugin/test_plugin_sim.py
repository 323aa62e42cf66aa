"""The plugin with the real engine on the simulated network, driven over JSON-RPC.

The network (``builtin_network``, 40 nodes) runs in its own trio thread
(:mod:`sim_world`), so it outlives plugin restarts as lightningd does; the
plugin is built with a node factory that reaches it. Real time, small
simulated latencies.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plugin_driver import PluginDriver
from sim_world import SimWorld

from barq.invoice import InvoiceFields, encode, pubkey_of
from barq.sim import SimulatedNetwork

PAYEE = 25  # two hops from the payer in builtin_network(7)
FAR = 33


@pytest.fixture
def sim() -> Iterator[SimWorld]:
    w = SimWorld()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def plugin(sim: SimWorld, tmp_path: Path) -> Iterator[PluginDriver]:
    d = PluginDriver(node_factory=sim.node_factory)
    try:
        d.init(tmp_path)
        assert d.wait_engine()["engine"]["state"] == "running"
        yield d
    finally:
        d.close()


def _signed_invoice(
    sim: SimWorld,
    *,
    key: bytes,
    created_at: int,
    expiry: int = 3600,
    network: str = "regtest",
    amount_msat: int = 10_000_000,
) -> str:
    return encode(
        InvoiceFields(
            network=network,
            payment_hash=hashlib.sha256(key + b"hash").hexdigest(),
            created_at=created_at,
            amount_msat=amount_msat,
            payment_secret="42" * 32,
            description="test",
            expiry=expiry,
            min_final_cltv_expiry=18,
            features="024100",
        ),
        key,
    )


def test_pay_through_the_plugin(sim: SimWorld, plugin: PluginDriver) -> None:
    inv = sim.invoice(FAR, 120_000_000)
    rid = plugin.send("barqpay", {"invstring": inv, "label": "sim"})
    r = plugin.wait(rid)["result"]
    assert r["status"] == "complete"
    assert r["payment_preimage"] == sim.net.preimage_of(r["payment_hash"])
    assert r["destination"] == sim.graph.nodes[FAR] and r["amount_msat"] == 120_000_000
    assert sim.net.received_msat(r["payment_hash"]) == 120_000_000
    ok = [a for a in r["attempts"] if a["state"] == "succeeded"]
    assert sum(a["amount_msat"] for a in ok) == 120_000_000
    assert r["amount_sent_msat"] == sum(a["amount_sent_msat"] for a in ok)
    assert r["fee_msat"] == r["amount_sent_msat"] - 120_000_000 <= r["maxfee_msat"]
    assert all(a["route"][-1]["id"] == r["destination"] for a in r["attempts"])
    # progress: one start and one end per part, each with its route
    starts = [n["params"]["barq_part_start"] for n in plugin.notes("barq_part_start")]
    ends = [n["params"]["barq_part_end"] for n in plugin.notes("barq_part_end")]
    assert len(starts) == len(ends) == r["parts"] >= 1
    assert {e["outcome"] for e in ends} <= {"succeeded", "failed", "resplit"}
    assert plugin.notes("message", req_id=rid)[-1]["params"]["message"] == "payment complete"
    prog = [n["params"] for n in plugin.notes("progress", req_id=rid)]
    assert prog[-1] == {"id": rid, "num": 120_000_000, "total": 120_000_000}
    assert [p["num"] for p in prog] == sorted(p["num"] for p in prog)
    # the node's parts match what barq reports
    sent = sim.listsendpays(r["payment_hash"])
    assert sorted(p.partid for p in sent) == sorted(a["partid"] for a in r["attempts"])
    # history
    [rec] = plugin.call("barqlistpays", [r["payment_hash"]])["pays"]
    assert rec["status"] == "complete" and rec["label"] == "sim"
    assert rec["attempts"] == r["attempts"]


def test_positional_form_and_options(sim: SimWorld, plugin: PluginDriver) -> None:
    inv = sim.invoice(PAYEE, 2_000_000)
    r = plugin.call("barqpay", [inv, None, 1, "5000msat", 20, 1000, None, "dijkstra", "pos"])
    assert r["status"] == "complete" and r["strategy"] == "dijkstra"
    assert r["maxfee_msat"] == 5000 and r["parts"] == 1


def test_already_paid_invoice_is_not_paid_twice(sim: SimWorld, plugin: PluginDriver) -> None:
    inv = sim.invoice(PAYEE, 3_000_000)
    first = plugin.call("barqpay", [inv])
    n_parts = len(sim.listsendpays(first["payment_hash"]))
    again = plugin.call("barqpay", [inv])
    assert again["already_paid"] is True and again["payment_preimage"] == first["payment_preimage"]
    assert len(sim.listsendpays(first["payment_hash"])) == n_parts
    assert sim.net.received_msat(first["payment_hash"]) == 3_000_000
    amountless = sim.invoice(PAYEE, None)
    plugin.call("barqpay", [amountless, 1_000_000])
    err = plugin.error("barqpay", [amountless, 2_000_000])
    assert err.code == 201 and "already paid with 1000000 msat" in err.message


def test_barqstatus_while_paying(sim: SimWorld, tmp_path: Path) -> None:
    sim.net.hop_latency_s = 0.25
    with PluginDriver(node_factory=sim.node_factory) as d:
        d.init(tmp_path)
        d.wait_engine()
        inv = sim.invoice(FAR, 10_000_000)
        rid = d.send("barqpay", [inv])
        d.wait_for(lambda: bool(d.notes("barq_part_start")), what="a part sent")
        st = d.call("barqstatus")
        assert not d.answered(rid)
        [p] = st["payments"]
        assert p["status"] == "pending" and p["inflight_msat"] > 0
        assert p["attempts"][0]["state"] == "inflight" and p["attempts"][0]["elapsed_s"] >= 0
        assert d.wait(rid)["result"]["status"] == "complete"
        assert d.call("barqstatus")["payments"][0]["status"] == "complete"


def test_failure_reports_every_attempt(sim: SimWorld, plugin: PluginDriver) -> None:
    g = sim.graph
    for e in np.flatnonzero(g.dst == PAYEE).tolist():  # nothing can reach the payee
        sim.call(sim.net.set_balance, g.scid[e], int(g.direction[e]), 0)
    inv = sim.invoice(PAYEE, 50_000_000)
    err = plugin.error("barqpay", {"invstring": inv, "retry_for": 5})
    # xpay's words: after attempts, 209 "Failed after N attempts. ..."; retry_for: 210
    assert (err.code, err.message.split(" after ")[0]) in ((209, "Failed"), (210, "Timed out"))
    assert err.data is not None and err.data["status"] == "failed"
    tried = err.data["attempts"]
    assert tried and all(a["state"] == "failed" for a in tried)
    assert all(a["failure"]["failcodename"] == "WIRE_TEMPORARY_CHANNEL_FAILURE" for a in tried)
    assert all(a["failure"]["erring_channel"] for a in tried)
    assert sim.net.received_msat(err.data["payment_hash"]) == 0
    [rec] = plugin.call("barqlistpays", {"status": "failed"})["pays"]
    assert rec["error_code"] == err.code and len(rec["attempts"]) == len(tried)


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "other_network",
        "expired",
        "amountless",
        "amount_differs",
        "ourselves",
        "no_channels",
        "unknown_strategy",
        "bad_exclude",
        "maxparts",
        "maxfee",
        "retry_for",
    ],
)
def test_bad_input_with_the_real_engine(sim: SimWorld, plugin: PluginDriver, case: str) -> None:
    now = int(time.time())
    params: dict[str, Any]
    match case:
        case "malformed":
            params, code, needle = {"invstring": "lnbcrt1qqqqqqqqq"}, -32602, "bolt11"
        case "other_network":
            other = SimulatedNetwork(sim.graph, seed=7, keys=sim.keys, network="bitcoin")
            params = {"invstring": other.create_invoice(sim.graph.nodes[PAYEE], 1000)}
            code, needle = -32602, "Invalid bolt11 invoice: it is for network bitcoin"
        case "expired":
            key = sim.keys[sim.graph.nodes[PAYEE]]
            params = {"invstring": _signed_invoice(sim, key=key, created_at=now - 7200)}
            code, needle = 207, "expired"
        case "amountless":
            params, code, needle = {"invstring": sim.invoice(PAYEE, None)}, -32602, "amount"
        case "amount_differs":
            params = {"invstring": sim.invoice(PAYEE, 5000), "amount_msat": 6000}
            code, needle = -32602, "amount_msat parameter unnecessary"
        case "ourselves":
            params = {"invstring": sim.invoice(sim.payer, 5000)}
            code, needle = -32602, "pay itself"
        case "no_channels":
            key = hashlib.sha256(b"a node with no channels").digest()
            params = {"invstring": _signed_invoice(sim, key=key, created_at=now)}
            code, needle = 205, pubkey_of(key)
        case "unknown_strategy":
            params = {"invstring": sim.invoice(PAYEE, 5000), "strategy": "teleport"}
            code, needle = -32602, "teleport"
        case "bad_exclude":
            params = {"invstring": sim.invoice(PAYEE, 5000), "exclude": ["103x1x0/7"]}
            code, needle = -32602, "exclude[0]"
        case "maxparts":
            params = {"invstring": sim.invoice(PAYEE, 5000), "maxparts": 100_000}
            code, needle = -32602, "maxparts"
        case "maxfee":
            params = {"invstring": sim.invoice(PAYEE, 5000), "maxfee": "-1"}
            code, needle = -32602, "maxfee"
        case "retry_for":
            params = {"invstring": sim.invoice(PAYEE, 5000), "retry_for": 0}
            code, needle = -32602, "retry_for"
    err = plugin.error("barqpay", params)
    assert err.code == code, err.error
    assert needle in err.message
    assert sim.listsendpays() == []  # nothing was sent
    # the plugin is still up and pays the next invoice
    assert plugin.call("barqpay", [sim.invoice(PAYEE, 7000)])["status"] == "complete"


def test_barqroute(sim: SimWorld, plugin: PluginDriver) -> None:
    dest = sim.graph.nodes[FAR]
    r = plugin.call("barqroute", [dest, 50_000_000])
    assert r["strategy"] == "adaptive" and sum(x["amount_msat"] for x in r["routes"]) == 50_000_000
    assert all(x["hops"][-1]["id"] == dest for x in r["routes"])
    assert r["fee_msat"] == sum(x["fee_msat"] for x in r["routes"])
    one = plugin.call(
        "barqroute", {"destination": dest, "amount_msat": "1000sat", "strategy": "dijkstra"}
    )
    assert len(one["routes"]) == 1 and one["routes"][0]["hops"][-1]["id"] == dest
    assert sim.listsendpays() == []
    err = plugin.error("barqroute", ["02" + "00" * 32, 1000])
    assert err.code == 205


def test_restart_mid_payment_pays_exactly_once(sim: SimWorld, tmp_path: Path) -> None:
    sim.net.hop_latency_s = 0.8  # the part outlives plugin A by a wide margin
    inv = sim.invoice(FAR, 80_000_000)
    with PluginDriver(node_factory=sim.node_factory) as a:
        a.init(tmp_path)
        a.wait_engine()
        rid = a.send("barqpay", [inv])
        a.wait_for(lambda: bool(a.notes("barq_part_start")), what="a part sent")
        h = a.notes("barq_part_start")[0]["params"]["barq_part_start"]["payment_hash"]
    # plugin A is gone with its parts in flight (the network keeps them)
    assert any(p.status == "pending" for p in sim.listsendpays(h))
    assert a.wait(rid)["error"]["code"] == 209  # A answered: it was stopping
    sim.net.hop_latency_s = 0.01
    with PluginDriver(node_factory=sim.node_factory) as b:
        b.init(tmp_path)
        b.wait_engine()
        st = b.call("barqstatus", [h])
        assert st["payments"] and st["payments"][0]["status"] in ("pending", "complete")
        r = b.call("barqpay", [inv], timeout=30)
        assert r["status"] == "complete"
        assert r["payment_preimage"] == sim.net.preimage_of(h)
        assert all(a["route"] for a in r["attempts"])  # routes recorded by A are kept
        [rec] = [p for p in b.call("barqlistpays", [h])["pays"] if p["status"] == "complete"]
        assert rec["payment_hash"] == h
    parts = sim.listsendpays(h)
    ids = Counter((p.groupid, p.partid) for p in parts)
    assert max(ids.values()) == 1  # no part id was ever reused
    assert sim.net.received_msat(h) == 80_000_000  # paid exactly once
    assert sim.net.overpayments == []


def test_handle_pay_then_barqpay(sim: SimWorld, tmp_path: Path) -> None:
    with PluginDriver(node_factory=sim.node_factory) as d:
        d.init(tmp_path, {"barq-handle-pay": True})
        d.wait_engine()
        inv = sim.invoice(PAYEE, 4_000_000)
        hook = d.call(
            "rpc_command",
            {
                "rpc_command": {
                    "id": "cli:pay#1",
                    "method": "pay",
                    "params": {"bolt11": inv, "maxfeepercent": 0.5, "exemptfee": 100},
                }
            },
        )
        replace = hook["replace"]
        assert replace["method"] == "barqpay" and replace["params"] == {
            "invstring": inv,
            "maxfeepercent": 0.5,
            "exemptfee": 100,
        }
        r = d.call(replace["method"], replace["params"])  # what lightningd does next
        # xpay's budget: 0.5 % of 4,000,000 msat (above the 100 msat exempt)
        assert r["status"] == "complete" and r["maxfee_msat"] == 20_000


def test_amount_given_for_an_invoice_with_one_is_refused(
    sim: SimWorld, plugin: PluginDriver
) -> None:
    inv = sim.invoice(PAYEE, 6_000_000)
    err = plugin.error("barqpay", {"invstring": inv, "amount_msat": "6000sat"})
    assert err.code == -32602 and err.message.startswith("amount_msat parameter unnecessary")
    assert plugin.call("barqstatus")["payments"] == []  # refused before anything started
