"""Hostile inputs against every Barq command and the ``pay`` redirect (issue 17 items 3-5, 7).

One network (l1 pays, l2 is paid over a direct channel); every case is sent to
l1 and must get a clear JSON-RPC error with the right code and a bounded
message, with no part sent (``listsendpays`` unchanged), lightningd and the
plugin still up and ``barqstatus`` answering. Strings that a well-behaved
client cannot send (a lone UTF-16 surrogate, invalid UTF-8) are written on the
socket by hand (:func:`_contract_net.raw_call`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from typing import Any
from unittest import mock

import pytest
from regtest_env import MISSING, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import msgspec
from _contract_net import barq_alive, invoice, pay, payer, raw_call, sendpays

from barq.invoice import InvoiceFields, bolt11, encode
from barq.plugin.params import barqpay_params

#: a message is "bounded": a few KB at most, whatever the input
MESSAGE_LIMIT = 4096
_BARQPAY_ARITY = len(inspect.signature(barqpay_params).parameters)
BIG = 400_000  # lightningd v26.06 aborts on a log line over 256 KB


class Case(msgspec.Struct, frozen=True):
    name: str
    method: str
    params: Any
    codes: tuple[int, ...]
    words: str = ""


def _forged(network: str, payee: str | None, *, amount_msat: int | None = 10_000) -> str:
    """A well-formed bolt11 signed by a random key (``payee`` written in ``n``: bad signature)."""
    key = os.urandom(32)
    fields = InvoiceFields(
        network=network,
        payment_hash=hashlib.sha256(key).hexdigest(),
        created_at=int(time.time()),
        amount_msat=amount_msat,
        payment_secret="42" * 32,
        description="forged",
        expiry=3600,
        min_final_cltv_expiry=18,
        payee=payee,
        features="024100",
    )
    return encode(fields, key, signer_is_payee=payee is None)


def _zero_amount() -> str:
    """A bolt11 whose amount is written as ``0`` (Barq's encoder refuses to write one)."""
    with mock.patch.object(bolt11, "_amount_to_hrp", lambda amount_msat: "0"):
        return _forged("regtest", None, amount_msat=0)


def _cases(l1: Any, l2: Any) -> list[Case]:
    fixed = invoice(l2, 50_000, "h-fixed")
    anyamt = invoice(l2, "any", "h-any")
    expired = invoice(l2, 1000, "h-expired", expiry=1)
    paid_any = invoice(l2, "any", "h-paid-any")
    assert pay(l1, "barqpay", paid_any, amount_msat=7_000)["status"] == "complete"
    time.sleep(2)  # h-expired expires
    huge = "lnbcrt" + "q" * BIG
    node = l2.info["id"]
    bp, p32602 = "barqpay", (-32602,)
    return [
        # -- types, ranges, 2^64, negative, empty
        Case("maxparts wrong type", bp, {"invstring": fixed, "maxparts": "x"}, p32602, "maxparts"),
        Case("maxparts 2^64", bp, {"invstring": fixed, "maxparts": 2**64}, p32602, "maxparts"),
        Case("maxparts 0", bp, {"invstring": fixed, "maxparts": 0}, p32602, "between 1 and 1000"),
        Case("amount 2^64", bp, {"invstring": anyamt, "amount_msat": 2**64}, p32602, "amount_msat"),
        Case(
            "amount above 21M BTC",
            bp,
            {"invstring": anyamt, "amount_msat": 21_000_000 * 10**11 + 1},
            p32602,
            "amount_msat: must be between 1 and",
        ),
        Case(
            "amount negative", bp, {"invstring": anyamt, "amount_msat": -1}, p32602, "amount_msat"
        ),
        Case(
            "amount a list", bp, {"invstring": anyamt, "amount_msat": [1]}, p32602, "not an amount"
        ),
        Case("maxfee 2^64", bp, {"invstring": fixed, "maxfee": 2**64}, p32602, "maxfee"),
        Case("maxfee negative", bp, {"invstring": fixed, "maxfee": -5}, p32602, "maxfee"),
        Case("retry_for nan", bp, {"invstring": fixed, "retry_for": "nan"}, p32602, "retry_for"),
        Case("retry_for zero", bp, {"invstring": fixed, "retry_for": 0}, p32602, "retry_for"),
        Case("maxdelay 2^32", bp, {"invstring": fixed, "maxdelay": 2**32}, p32602, "maxdelay"),
        Case("maxdelay a dict", bp, {"invstring": fixed, "maxdelay": {}}, p32602, "maxdelay"),
        Case("invstring empty", bp, {"invstring": ""}, p32602, "invstring"),
        Case("invstring a number", bp, {"invstring": 12}, p32602, "invstring"),
        Case("invstring null", bp, {"invstring": None}, p32602, "invstring"),
        Case(
            "maxfeepercent 101", bp, {"invstring": fixed, "maxfeepercent": 101}, p32602, "maxfeep"
        ),
        Case("riskfactor negative", bp, {"invstring": fixed, "riskfactor": -1}, p32602, "riskf"),
        Case("partial above total", bp, {"invstring": fixed, "partial_msat": 60_000}, p32602),
        Case(
            "maxfee with maxfeepercent",
            bp,
            {"invstring": fixed, "maxfee": 10, "maxfeepercent": 1},
            p32602,
            "If you specify maxfee, cannot specify maxfeepercent or exemptfee",
        ),
        # -- huge strings
        Case("invstring 400 KB", bp, {"invstring": huge}, p32602, "too long"),
        Case("label 400 KB", bp, {"invstring": fixed, "label": "l" * BIG}, p32602, "label"),
        Case("strategy 400 KB", bp, {"invstring": fixed, "strategy": "s" * BIG}, p32602, "strat"),
        Case("exclude 400 KB", bp, {"invstring": fixed, "exclude": ["x" * BIG]}, p32602, "exclude"),
        Case(
            "exclude 20k entries", bp, {"invstring": fixed, "exclude": ["1x1x1/0"] * 20_000}, p32602
        ),
        Case("description 400 KB", bp, {"invstring": fixed, "description": "d" * BIG}, p32602),
        # -- odd strings: surrogates and NUL (sent raw: no well-behaved client writes them)
        Case("label lone surrogate", bp, {"invstring": fixed, "label": "x\ud800y"}, p32602, "surr"),
        Case("label NUL", bp, {"invstring": fixed, "label": "x\u0000y"}, p32602, "NUL"),
        Case("invstring NUL", bp, {"invstring": fixed + "\u0000"}, p32602, "invstring"),
        Case("description surrogate", bp, {"invstring": fixed, "description": "\udfff"}, p32602),
        Case("strategy surrogate", bp, {"invstring": fixed, "strategy": "\ud83d"}, p32602),
        # -- unknown parameters, positional/keyword mixes
        Case("unknown parameter", bp, {"invstring": fixed, "foo": 1}, p32602, "unknown parameter"),
        Case(
            "too many positional",
            bp,
            # one more than barqpay takes, whatever it takes today
            [fixed, *([None] * (_BARQPAY_ARITY - 1)), 1],
            p32602,
            "too many",
        ),
        Case("positional wrong type", bp, [fixed, None, "x"], p32602, "maxparts"),
        Case("bolt11 name to barqpay", bp, {"bolt11": fixed}, p32602, "parameter"),
        # -- wrong invoices
        Case("expired", bp, {"invstring": expired}, (207,), "Invoice expired"),
        Case("wrong network", bp, {"invstring": _forged("bitcoin", None)}, p32602, "network"),
        Case("bad signature", bp, {"invstring": _forged("regtest", node)}, p32602),
        Case("zero amount", bp, {"invstring": _zero_amount()}, p32602),
        Case("not an invoice", bp, {"invstring": "lnbcrt1notaninvoice"}, p32602),
        Case(
            "paid with another amount",
            bp,
            {"invstring": paid_any, "amount_msat": 8_000},
            (201,),
            "already paid",
        ),
        Case("amount for a fixed invoice", bp, {"invstring": fixed, "amount_msat": 50_000}, p32602),
        Case("amount missing", bp, {"invstring": anyamt}, p32602, "amount_msat parameter required"),
        # -- the other commands
        Case("barqstatus hash 400 KB", "barqstatus", {"payment_hash": "a" * BIG}, p32602),
        Case("barqstatus hash number", "barqstatus", {"payment_hash": 5}, p32602, "payment_hash"),
        Case("barqlistpays status", "barqlistpays", {"status": "x" * BIG}, p32602, "status"),
        Case("barqlistpays unknown", "barqlistpays", {"bogus": 1}, p32602, "unknown parameter"),
        Case(
            "barqroute amount 2^64",
            "barqroute",
            {"destination": node, "amount_msat": 2**64},
            p32602,
            "amount_msat",
        ),
        Case("barqroute bad node", "barqroute", {"destination": "02xx", "amount_msat": 1}, p32602),
        Case(
            "barqroute maxparts",
            "barqroute",
            {"destination": node, "amount_msat": 1000, "maxparts": "x"},
            p32602,
            "maxparts",
        ),
        Case("barqroute missing", "barqroute", {"destination": node}, p32602, "missing required"),
        Case("barqstrategies param", "barqstrategies", [1], p32602, "too many"),
        # -- lightningd's check: validates, does nothing
        Case(
            "check bad maxparts",
            "check",
            {"command_to_check": bp, "invstring": fixed, "maxparts": "x"},
            p32602,
        ),
        Case("check surrogate", "check", {"command_to_check": bp, "invstring": "\ud800"}, p32602),
        # -- the pay redirect
        Case("pay 400 KB", "pay", {"bolt11": huge}, p32602, "too long"),
        Case("pay amount 2^64", "pay", {"bolt11": anyamt, "amount_msat": 2**64}, p32602),
        Case("pay maxfeepercent NaN", "pay", {"bolt11": fixed, "maxfeepercent": "NaN"}, p32602),
        Case("pay label surrogate", "pay", {"bolt11": fixed, "label": "\ud800"}, p32602, "surr"),
        Case(
            "pay unknown param", "pay", {"bolt11": fixed, "bogus": 1}, p32602, "unknown parameter"
        ),
        Case(
            "pay amount unnecessary", "pay", {"bolt11": fixed, "amount_msat": 1}, p32602, "unnecess"
        ),
        Case("pay expired", "pay", {"bolt11": expired}, (207,), "Invoice expired"),
        Case(
            "pay exemptfee with maxfee",
            "pay",
            {"bolt11": fixed, "exemptfee": 1, "maxfee": 1},
            p32602,
        ),
        Case("pay too many positional", "pay", [fixed, *([None] * 13)], (-32602, -32601)),
    ]


def _run(l1: Any, case: Case, sent_before: int) -> None:
    answer = raw_call(l1, case.method, case.params)
    assert answer is not None and "error" in answer, f"answered {str(answer)[:200]}"
    err = answer["error"]
    assert err["code"] in case.codes, f"code {err['code']}: {err['message'][:300]}"
    assert case.words in err["message"], err["message"][:300]
    assert len(err["message"].encode()) <= MESSAGE_LIMIT, f"{len(err['message'])} chars"
    assert len(json.dumps(err)) <= 16 * MESSAGE_LIMIT
    assert len(sendpays(l1)) == sent_before, "a part was sent"
    barq_alive(l1)


def test_hostile_inputs(node_factory: Any) -> None:
    l1, l2 = node_factory.line_graph(2, opts=[payer(), {}], wait_for_announce=True)
    cases = _cases(l1, l2)
    assert len(cases) >= 40
    sent = len(sendpays(l1))
    failures: list[str] = []
    for case in cases:
        try:
            _run(l1, case, sent)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}")
    assert not failures, "\n".join(failures)


def test_bytes_that_are_not_json_rpc(node_factory: Any) -> None:
    """Invalid UTF-8 and broken JSON never reach Barq; lightningd refuses them, Barq stays up."""
    l1, l2 = node_factory.line_graph(2, opts=[payer(), {}], wait_for_announce=True)
    fixed = invoice(l2, 10_000, "bytes")
    bad_utf8 = (
        b'{"jsonrpc":"2.0","id":"x","method":"barqpay","params":{"invstring":"'
        + fixed.encode()
        + b'","label":"\xff\xfe"}}'
    )
    answer = raw_call(l1, "", body=bad_utf8)
    assert answer is None or "error" in answer, answer
    barq_alive(l1)
    assert sendpays(l1) == []
    assert pay(l1, "pay", fixed)["status"] == "complete"  # and it still pays


def test_check_validates_and_does_nothing(node_factory: Any) -> None:
    """lightningd's ``check`` for every Barq command: parameters checked, nothing paid."""
    l1, l2 = node_factory.line_graph(2, opts=[payer(), {}], wait_for_announce=True)
    fixed = invoice(l2, 10_000, "check")
    checks: list[tuple[str, dict[str, Any]]] = [
        ("barqpay", {"invstring": fixed, "maxparts": 4, "label": "c"}),
        ("barqstatus", {}),
        ("barqlistpays", {"status": "complete"}),
        ("barqroute", {"destination": l2.info["id"], "amount_msat": 1000}),
        ("barqstrategies", {}),
    ]
    for name, params in checks:
        assert l1.rpc.call("check", {"command_to_check": name, **params}) == {
            "command_to_check": name
        }
    assert l1.rpc.call("check", ["barqpay", fixed]) == {"command_to_check": "barqpay"}
    assert sendpays(l1) == []
    assert l1.rpc.call("barqstatus")["payments"] == []
    assert l2.rpc.listinvoices("check")["invoices"][0]["status"] == "unpaid"
