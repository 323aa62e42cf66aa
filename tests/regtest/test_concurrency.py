"""Many calls at once (issue 17 item 1 and its concurrency suite).

* the same invoice from N threads with the same parameters: one payment, every
  call answers "complete" with it;
* the same amountless invoice from N threads with different amounts (and ways
  to pay them): exactly one amount is paid; only the calls that asked for it
  answer "complete", the others are refused (200 while it is in flight, 201
  once it is paid) and nothing of theirs is sent;
* N >= 50 different invoices at once: every one complete, exact payee totals,
  one "complete" record per payment.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from regtest_env import MISSING, PLUGIN, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from pyln.client import RpcError
from pyln.testing.utils import wait_for

THREADS = 20
AMOUNT = 10_000_000


def barqpay(node: Any, bolt11: str, **kw: Any) -> dict[str, Any]:
    """The call's result, or its JSON-RPC error object (with ``"error": True``)."""
    try:
        res: dict[str, Any] = node.rpc.call("barqpay", {"invstring": bolt11, **kw})
    except RpcError as exc:
        return {"error": True, **exc.error}
    return res


def line(node_factory: Any) -> tuple[Any, Any, Any]:
    l1, l2, l3 = node_factory.line_graph(
        3, opts=[{"plugin": PLUGIN}, {}, {}], wait_for_announce=True
    )
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 4, timeout=120)
    return l1, l2, l3


def delivered(node: Any, payment_hash: str) -> int:
    parts = node.rpc.listsendpays(payment_hash=payment_hash)["payments"]
    assert not [p for p in parts if p["status"] == "pending"]
    return sum(int(p["amount_msat"]) for p in parts if p["status"] == "complete")


def test_one_invoice_from_many_threads_with_the_same_parameters(node_factory: Any) -> None:
    l1, _, l3 = line(node_factory)
    bolt11 = l3.rpc.invoice(AMOUNT, "same", "same", exposeprivatechannels=[])["bolt11"]
    h = l1.rpc.decode(bolt11)["payment_hash"]
    with ThreadPoolExecutor(THREADS) as ex:
        results = list(ex.map(lambda _: barqpay(l1, bolt11), range(THREADS)))
    assert [r.get("status") for r in results] == ["complete"] * THREADS, results
    preimage = l3.rpc.listinvoices("same")["invoices"][0]["payment_preimage"]
    assert {r["payment_preimage"] for r in results} == {preimage}
    assert {r["amount_msat"] for r in results} == {AMOUNT}
    assert l3.rpc.listinvoices("same")["invoices"][0]["amount_received_msat"] == AMOUNT
    assert delivered(l1, h) == AMOUNT
    [hist] = l1.rpc.call("barqlistpays", {"payment_hash": h})["pays"]
    assert hist["status"] == "complete"


def test_one_amountless_invoice_from_many_threads_with_different_parameters(
    node_factory: Any,
) -> None:
    l1, _, l3 = line(node_factory)
    bolt11 = l3.rpc.invoice("any", "any", "any", exposeprivatechannels=[])["bolt11"]
    h = l1.rpc.decode(bolt11)["payment_hash"]
    calls = [
        {"amount_msat": AMOUNT * (1 + i % 2), **({"strategy": "dijkstra"} if i % 4 < 2 else {})}
        for i in range(THREADS)
    ]
    with ThreadPoolExecutor(THREADS) as ex:
        results = list(ex.map(lambda kw: barqpay(l1, bolt11, **kw), calls))
    inv = l3.rpc.listinvoices("any")["invoices"][0]
    paid = int(inv["amount_received_msat"])
    assert paid in (AMOUNT, 2 * AMOUNT) and delivered(l1, h) == paid
    for kw, r in zip(calls, results, strict=True):
        if kw["amount_msat"] == paid:
            assert r.get("status") == "complete", r
            assert r["amount_msat"] == paid and r["payment_preimage"] == inv["payment_preimage"]
        else:
            assert r.get("error") and r["code"] in (200, 201), r  # never "complete"
    asked = sum(kw["amount_msat"] == paid for kw in calls)
    assert sum(r.get("status") == "complete" for r in results) == asked
    [hist] = l1.rpc.call("barqlistpays", {"payment_hash": h})["pays"]
    assert hist["status"] == "complete" and hist["amount_msat"] == paid


def test_fifty_invoices_at_once(node_factory: Any) -> None:
    n = 50
    l1, l2, l3, l4 = node_factory.get_nodes(4, opts=[{"plugin": PLUGIN}, {}, {}, {}])
    for a, b in ((l1, l2), (l2, l3), (l2, l4)):
        a.fundchannel(b, 5_000_000)
    node_factory.bitcoind.generate_block(6)
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 6, timeout=120)
    payees = [l2, l3, l4]
    invs = []
    for i in range(n):
        payee, amount = payees[i % 3], 1_000_000 * (1 + i % 10)
        b = payee.rpc.invoice(amount, f"c{i}", f"c{i}", exposeprivatechannels=[])["bolt11"]
        invs.append((payee, amount, b))
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda t: barqpay(l1, t[2]), invs))
    assert [r.get("status") for r in results] == ["complete"] * n, results
    for i, ((payee, amount, _), r) in enumerate(zip(invs, results, strict=True)):
        got = payee.rpc.listinvoices(f"c{i}")["invoices"][0]
        assert got["status"] == "paid" and got["amount_received_msat"] == amount
        assert r["amount_msat"] == amount and r["destination"] == payee.info["id"]
        assert delivered(l1, r["payment_hash"]) == amount
    pays = l1.rpc.call("barqlistpays")["pays"]
    done = [p["payment_hash"] for p in pays if p["status"] == "complete"]
    assert sorted(done) == sorted(r["payment_hash"] for r in results)  # one record each
