"""barqpay answers at the first preimage (as xpay); ``barq-slow-mode`` waits for every part.

Network: l1 pays l3 over its own small channel to l3 and over l2 (``l1 -> l2 -> l3``);
150,000 sat do not fit in the small channel, so the payment goes in parts over both.
l2 drops its connection to l1 just before it would pass the preimage back
(``dev-disconnect -WIRE_UPDATE_FULFILL_HTLC``): the part over l2 settles only after the
peers reconnect, while the direct part settles at once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from regtest_env import MISSING, PLUGIN, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from pyln.testing.utils import wait_for

AMOUNT_MSAT = 150_000_000


def _network(node_factory: Any, **payer_opts: Any) -> tuple[Any, Any, Any]:
    # both reconnect after l2 drops the connection (pyln-testing sets dev-no-reconnect otherwise)
    l1 = node_factory.get_node(may_reconnect=True)
    l2 = node_factory.get_node(disconnect=["-WIRE_UPDATE_FULFILL_HTLC"], may_reconnect=True)
    l3 = node_factory.get_node()
    for a, b in ((l1, l2), (l2, l3), (l1, l3)):
        a.rpc.connect(b.info["id"], "localhost", b.port)
    l1.fundchannel(l2, 1_000_000)
    l2.fundchannel(l3, 1_000_000)
    l1.fundchannel(l3, 100_000)
    l1.bitcoin.generate_block(5)
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 6, timeout=120)
    # Barq starts on a node that knows the whole graph (as on a real node)
    l1.rpc.plugin_start(PLUGIN, **payer_opts)
    return l1, l2, l3


def _pay(l1: Any, l3: Any, label: str) -> tuple[dict[str, Any], float]:
    inv = l3.rpc.invoice(AMOUNT_MSAT, label, "barq answer", exposeprivatechannels=[])
    t0 = time.monotonic()
    res: dict[str, Any] = l1.rpc.call(
        "barqpay", {"invstring": inv["bolt11"], "strategy": "mincostflow"}
    )
    return res, time.monotonic() - t0


def _stored(l1: Any, payment_hash: str) -> dict[str, Any]:
    [pay] = l1.rpc.call("barqlistpays", {"payment_hash": payment_hash})["pays"]
    out: dict[str, Any] = pay
    return out


def test_barqpay_answers_at_the_first_preimage(node_factory: Any) -> None:
    l1, _l2, l3 = _network(node_factory)
    res, _ = _pay(l1, l3, "early")
    assert res["status"] == "complete" and res["answer_at"] == "preimage"
    assert (
        res["payment_preimage"] == l3.rpc.listinvoices("early")["invoices"][0]["payment_preimage"]
    )
    states = sorted(a["state"] for a in res["attempts"])
    assert "succeeded" in states and "inflight" in states
    assert res["pending_parts"] == states.count("inflight") >= 1
    # the answer counts the parts still settling, as xpay's amount_sent_msat does
    assert res["amount_sent_msat"] == sum(a["amount_sent_msat"] for a in res["attempts"])
    for phase in ("decode", "graph_refresh", "plan", "first_sendpay", "parse", "total"):
        assert phase in res["timings_ms"], phase
    h = res["payment_hash"]
    # barqstatus and the store follow the parts to the end
    wait_for(lambda: all(a["state"] == "succeeded" for a in _stored(l1, h)["attempts"]))
    stored = _stored(l1, h)
    assert stored["status"] == "complete"
    assert stored["amount_sent_msat"] == res["amount_sent_msat"]
    [live] = l1.rpc.call("barqstatus", {"payment_hash": h})["payments"]
    assert live["status"] == "complete"
    assert all(a["state"] == "succeeded" for a in live["attempts"])
    sendpays = l1.rpc.listsendpays(payment_hash=h)["payments"]
    assert {p["status"] for p in sendpays} == {"complete"}


def test_slow_mode_answers_when_every_part_settled(node_factory: Any) -> None:
    l1, _l2, l3 = _network(node_factory, **{"barq-slow-mode": "true"})
    res, _ = _pay(l1, l3, "slow")
    assert res["status"] == "complete" and res["answer_at"] == "end"
    assert res["pending_parts"] == 0
    assert len(res["attempts"]) >= 2
    assert all(a["state"] == "succeeded" for a in res["attempts"])
    assert res["delivered_msat"] == AMOUNT_MSAT
    # already settled when answered: the node agrees at once
    sendpays = l1.rpc.listsendpays(payment_hash=res["payment_hash"])["payments"]
    assert {p["status"] for p in sendpays} == {"complete"}
