"""pay's contract on real lightningd (issue 12 items 2-5), with ``barqpay`` and with ``pay``.

Every scenario runs twice on one network: once through ``barqpay``, once
through ``pay`` redirected to Barq (``barq-handle-pay``, ``xpay-handle-pay``
off). Invoices carry no route hint unless a scenario says so.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from regtest_env import MISSING, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from _contract_net import (
    VIAS,
    hash_of,
    invoice,
    pay,
    payer,
    refused,
    sendpays,
    timed_error,
    wait_gossip,
)
from pyln.testing.utils import sync_blockheight, wait_for

#: "at once": far below the retry_for the calls are given
AT_ONCE_S = 15
RETRY_FOR = 60


def _fund(node_factory: Any, *pairs: tuple[Any, Any]) -> None:
    """Channels a -> b (the funder holds the liquidity), then 6 blocks (announced), and every
    node at the chain's height (a payer behind the payee makes its HTLCs expire too soon)."""
    for a, b in pairs:
        a.fundchannel(b, 1_000_000)
    node_factory.bitcoind.generate_block(6)
    sync_blockheight(node_factory.bitcoind, list({id(n): n for p in pairs for n in p}.values()))


# --------------------------------------------------------------------------- item 2: parameters


def test_amount_rules(node_factory: Any) -> None:
    """pay's amount rules: amount_msat refused for an invoice with an amount, required without."""
    l1, l2 = node_factory.line_graph(2, opts=[payer(), {}], wait_for_announce=True)
    for via in VIAS:
        fixed = invoice(l2, 10_000, f"fixed-{via}")
        err = refused(pay, l1, via, fixed, amount_msat=10_000)
        assert err["code"] == -32602, err
        assert err["message"].startswith("amount_msat parameter unnecessary"), err
        anyamt = invoice(l2, "any", f"any-{via}")
        err = refused(pay, l1, via, anyamt)
        assert err["code"] == -32602, err
        assert err["message"].startswith("amount_msat parameter required"), err
        assert sendpays(l1, hash_of(l1, fixed)) == [] and sendpays(l1, hash_of(l1, anyamt)) == []
        # and the right ways
        assert pay(l1, via, fixed)["status"] == "complete"
        res = pay(l1, via, anyamt, amount_msat=7_000)
        assert res["status"] == "complete" and res["amount_msat"] == 7_000
        got = l2.rpc.listinvoices(f"any-{via}")["invoices"][0]["amount_received_msat"]
        assert got == 7_000


def test_pay_parameters_are_kept(node_factory: Any) -> None:
    """label, prefixes and case, pay's fee and tuning parameters, description, positional."""
    l1, _l2, l3 = node_factory.line_graph(3, opts=[payer(), {}, {}], wait_for_announce=True)
    wait_gossip(l1, 4)
    for via in VIAS:
        bare = invoice(l3, 20_000, f"lbl-{via}")
        res = pay(
            l1,
            via,
            "LIGHTNING:" + bare.upper(),
            label=f"my label {via}",
            riskfactor=10,
            maxfeepercent=1,
            exemptfee=5000,
            retry_for=30,
            maxdelay=500,
            exclude=[],
        )
        assert res["status"] == "complete"
        parts = sendpays(l1, res["payment_hash"])
        assert parts and all(p["label"] == f"my label {via}" for p in parts), parts
        assert all(p["bolt11"] == bare for p in parts), "listsendpays keeps the bare lower-case"
        [listed] = l1.rpc.listpays(bare)["pays"]
        assert listed["status"] == "complete" and listed["label"] == f"my label {via}"

        text = f"the long description of a description-hash invoice ({via}) " * 8
        dh = l3.rpc.invoice(15_000, f"dh-{via}", text, deschashonly=True, exposeprivatechannels=[])[
            "bolt11"
        ]
        err = refused(pay, l1, via, dh, description="not the description")
        assert err["code"] == -32602 and "does not match description" in err["message"], err
        assert pay(l1, via, dh, description=text)["status"] == "complete"

        positional = invoice(l3, 12_000, f"pos-{via}")
        if via == "pay":  # pay's order: bolt11, amount_msat, label
            res = l1.rpc.call("pay", [positional, None, f"pos {via}"])
        else:  # barqpay's: invstring, amount_msat, maxparts, maxfee, ..., label (9th)
            res = l1.rpc.call("barqpay", [positional, None, 4, None, None, None, None, None, "p"])
        assert res["status"] == "complete"
        want = f"pos {via}" if via == "pay" else "p"
        assert all(p["label"] == want for p in sendpays(l1, res["payment_hash"]))


def test_partial_msat(node_factory: Any) -> None:
    """partial_msat: Barq delivers its share of an invoice another payer completes (xpay)."""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[payer(), {}, {}])
    _fund(node_factory, (l1, l2), (l3, l2))
    for via in VIAS:
        label = f"partial-{via}"
        b = invoice(l2, 100_000_000, label)
        h = hash_of(l1, b)
        with ThreadPoolExecutor(1) as ex:
            ours = ex.submit(pay, l1, via, b, partial_msat=40_000_000, retry_for=RETRY_FOR)
            wait_for(lambda h=h: any(p["status"] == "pending" for p in sendpays(l1, h)))
            theirs = l3.rpc.xpay(invstring=b, partial_msat=60_000_000)
            res = ours.result(timeout=120)
        assert res["status"] == "complete" and theirs["payment_preimage"] == res["payment_preimage"]
        done = [p for p in sendpays(l1, h) if p["status"] == "complete"]
        assert sum(p["amount_msat"] for p in done) == 40_000_000
        paid = l2.rpc.listinvoices(label)["invoices"][0]
        assert paid["status"] == "paid" and paid["amount_received_msat"] == 100_000_000


# --------------------------------------------------------------------------- items 3, 4: errors


def test_errors_at_once_before_any_attempt(node_factory: Any) -> None:
    """Fee budget, delay limit, unknown destination, expired: xpay's codes and words, answered
    at once (never after retry_for), nothing sent."""
    l1, _l2, l3 = node_factory.line_graph(
        3,
        opts=[payer(), {"fee-base": 10_000, "fee-per-satoshi": 10_000, "cltv-delta": 40}, {}],
        wait_for_announce=True,
    )
    loner = node_factory.get_node()
    wait_gossip(l1, 4)
    for via in VIAS:
        b = invoice(l3, 100_000_000, f"fee-{via}")
        err, dt = timed_error(pay, l1, via, b, maxfee=10, retry_for=RETRY_FOR)
        assert err["code"] == 206, err
        assert err["message"].startswith("Failed: Could not find route without excessive cost")
        assert err["data"]["detail"], "Barq's own explanation stays beside xpay's words"
        assert dt < AT_ONCE_S and sendpays(l1, hash_of(l1, b)) == []

        b = invoice(l3, 1_000_000, f"delay-{via}")
        err, dt = timed_error(pay, l1, via, b, maxdelay=30, maxfee=10**6, retry_for=RETRY_FOR)
        assert err["code"] == 206, err
        assert err["message"].startswith("Failed: Could not find route without excessive delays")
        # the invoice's final CLTV alone above maxdelay: known at once, same words
        err, dt = timed_error(pay, l1, via, b, maxdelay=2, retry_for=RETRY_FOR)
        assert err["code"] == 206, err
        assert err["message"].startswith("Failed: Could not find route without excessive delays")
        assert dt < AT_ONCE_S and sendpays(l1, hash_of(l1, b)) == []

        b = invoice(loner, 1000, f"unknown-{via}")
        err, dt = timed_error(pay, l1, via, b, retry_for=RETRY_FOR)
        assert err["code"] == 205, err
        assert err["message"].startswith(f"Failed: Unknown destination node {loner.info['id']}")
        assert dt < AT_ONCE_S and sendpays(l1, hash_of(l1, b)) == []

        b = invoice(l3, 1000, f"expired-{via}", expiry=1)
        time.sleep(2)
        err, dt = timed_error(pay, l1, via, b, retry_for=RETRY_FOR)
        assert err["code"] == 207, err
        assert re.fullmatch(r"Invoice expired \d+ seconds ago", err["message"]), err
        assert dt < AT_ONCE_S and sendpays(l1, hash_of(l1, b)) == []


def test_no_connection_at_all_is_answered_at_once(node_factory: Any) -> None:
    """The payee is in the graph but no channel leads there: 205 "Failed: ..." at once."""
    l1, l2, l3, l4 = node_factory.get_nodes(4, opts=[payer(), {}, {}, {}])
    _fund(node_factory, (l1, l2), (l3, l4))
    l2.rpc.connect(l3.info["id"], "localhost", l3.port)  # gossip of l3-l4 reaches l1, no path
    node_factory.bitcoind.generate_block(6)
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 4, timeout=180)
    for via in VIAS:
        b = invoice(l4, 10_000, f"island-{via}")
        err, dt = timed_error(pay, l1, via, b, retry_for=RETRY_FOR)
        assert err["code"] == 205 and err["message"].startswith("Failed: "), err
        assert dt < AT_ONCE_S and sendpays(l1, hash_of(l1, b)) == []


def test_errors_after_attempts_and_from_the_payee(node_factory: Any) -> None:
    """Routing fails after attempts: 209 "Failed after N attempts. ...Then routing failed: ";
    the payee refusing: 203 with xpay's words; listpays says failed once Barq gave up."""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[payer(), {}, {}])
    _fund(node_factory, (l1, l2), (l3, l2))  # l2 -> l3 has nothing to forward
    wait_gossip(l1, 4)
    for via in VIAS:
        b = invoice(l3, 50_000_000, f"after-{via}")
        err = refused(pay, l1, via, b, retry_for=RETRY_FOR)
        assert err["code"] == 209, err
        assert re.match(
            r"Failed after \d+ attempts\. We got temporary_channel_failure for \S+, assuming "
            r"it can't carry \d+msat\. .*Then routing (for remaining \d+msat )?failed: ",
            err["message"],
        ), err["message"]
        assert err["data"]["attempts"] and err["data"]["status"] == "failed"
        assert [p["status"] for p in l1.rpc.listpays(b)["pays"]] == ["failed"]

        gone = invoice(l2, 10_000, f"gone-{via}")
        l2.rpc.delinvoice(f"gone-{via}", "unpaid")
        err = refused(pay, l1, via, gone, retry_for=RETRY_FOR)
        assert err["code"] == 203, err
        assert err["message"] == (
            "Destination said it doesn't know invoice: incorrect_or_unknown_payment_details"
        )


# --------------------------------------------------------------------------- item 5: listpays


def test_listpays_never_failed_while_barq_retries(node_factory: Any) -> None:
    """A payment that needs 3+ attempts: listpays, polled all along, shows one entry that is
    never "failed"; one groupid for the whole call."""
    payee_opts: dict[str, Any] = {}
    mids = 4
    nodes = node_factory.get_nodes(
        mids + 2,
        opts=[payer(**{"barq-strategy": "dijkstra"})]
        + [{}] * (mids - 1)
        + [{"fee-base": 5000, "fee-per-satoshi": 1000}, payee_opts],
    )
    l1, payee, hops = nodes[0], nodes[-1], nodes[1:-1]
    pairs = [(l1, m) for m in hops]
    pairs += [(payee, m) for m in hops[:-1]]  # cheap mids: nothing to forward to the payee
    pairs += [(hops[-1], payee)]  # the expensive one works
    _fund(node_factory, *pairs)
    wait_gossip(l1, 4 * mids)
    # the second payment is smaller: what the first learnt (the cheap mids cannot carry 50,000
    # sat) does not rule them out for it, so it needs several attempts too
    for via, amount in zip(VIAS, (50_000_000, 20_000_000), strict=True):
        b = invoice(payee, amount, f"retry-{via}")
        seen: list[list[str]] = []
        stop = threading.Event()

        def poll(b: str = b, stop: threading.Event = stop, seen: list[list[str]] = seen) -> None:
            while not stop.is_set():
                seen.append([p["status"] for p in l1.rpc.listpays(b)["pays"]])

        with ThreadPoolExecutor(1) as ex:
            watcher = ex.submit(poll)
            try:
                res = pay(l1, via, b, retry_for=RETRY_FOR)
            finally:
                stop.set()
                watcher.result(timeout=30)
        assert res["status"] == "complete"
        # answered at the first preimage: let the other parts settle before reading them
        h = res["payment_hash"]
        wait_for(lambda h=h: not any(p["status"] == "pending" for p in sendpays(l1, h)))
        parts = sendpays(l1, res["payment_hash"])
        assert len(parts) >= 3, parts
        assert len({p["groupid"] for p in parts}) == 1
        assert ["pending"] in seen, "the poller saw the payment in flight"
        distinct = sorted({tuple(s) for s in seen})
        assert all("failed" not in s and len(s) <= 1 for s in distinct), distinct
        assert [p["status"] for p in l1.rpc.listpays(b)["pays"]] == ["complete"]
