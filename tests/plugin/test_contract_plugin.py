"""The plugin's contract with its callers, without lightningd (issue 12 items 2, 5; issue 17
items 3, 4, 5, 7): parameters, bounded messages and logs, lightningd's ``check``, and
``listpays`` answered while Barq pays."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from plugin_driver import FakeNode, FakeWorld, PluginDriver, make_invoice

from barq.errors import MESSAGE_BYTES, InvalidParams, bounded, shown
from barq.limits import (
    LABEL,
    MAXFEEPERCENT,
    STRATEGY,
    check_percent_ppm,
    check_text,
)
from barq.model import PartStatus, SendpayStatus
from barq.plugin.app import LOG_LINES
from barq.plugin.params import barqpay_params, canonical_invstring
from barq.plugin.results import rpc_error

BIG = 400_000


# -- bounded messages ----------------------------------------------------------------------


def test_bounded_cuts_escapes_and_says_the_size() -> None:
    assert bounded("short") == "short"
    out = bounded("é" * BIG)
    assert len(out.encode()) <= MESSAGE_BYTES and out.endswith(f"… ({2 * BIG} bytes)")
    assert bounded("x\ud800y\x00z") == "x\\ud800y\\x00z"
    bounded("x\ud800" * BIG).encode("utf-8")  # always valid UTF-8
    assert shown("q" * BIG).endswith(f"... ({BIG + 2} chars)") and len(shown("q" * BIG)) < 100


def test_every_error_message_is_bounded() -> None:
    assert len(InvalidParams("x" * BIG).message.encode()) <= MESSAGE_BYTES
    code, message, _ = rpc_error(ValueError("y" * BIG), method="barqpay")
    assert code == 209 and len(message.encode()) <= MESSAGE_BYTES
    for bad in (
        {"invstring": "lnbcrt" + "q" * BIG},
        {"invstring": "lnbcrt1", "label": "l" * BIG},
        {"invstring": "lnbcrt1", "strategy": "s" * BIG},
        {"invstring": "lnbcrt1", "exclude": ["e" * BIG]},
        {"invstring": "lnbcrt1", "exclude": "e" * BIG},
        {"invstring": "lnbcrt1", "amount_msat": "9" * BIG},
        {"invstring": "lnbcrt1", "maxparts": "9" * BIG},
        {"invstring": "lnbcrt1", "maxfeepercent": "1" * BIG},
        {"invstring": "lnbcrt1", "description": "d" * BIG},
    ):
        with pytest.raises(InvalidParams) as err:
            barqpay_params(**bad)
        assert len(err.value.message) < 300, err.value.message[:300]
        assert len(repr(err.value.data)) < 600


# -- strings and numbers -------------------------------------------------------------------


def test_text_limits() -> None:
    assert check_text(LABEL, "a label") == "a label"
    assert check_text(LABEL, 7) == "7"
    for bad, words in (
        (True, "must be a string or an integer"),
        ("x\ud800y", "lone UTF-16 surrogate"),
        ("x\udfff", "lone UTF-16 surrogate"),
        ("x\x00y", "NUL"),
        ("l" * (LABEL.max_chars + 1), "too long"),
        ([1], "must be a string"),
    ):
        with pytest.raises(InvalidParams, match=words):
            check_text(LABEL, bad)
    with pytest.raises(InvalidParams, match="must be ASCII"):
        check_text(STRATEGY, "stratégie")


def test_percentages_are_exact_and_ranged() -> None:
    assert check_percent_ppm(MAXFEEPERCENT, "0.5") == 5000
    assert check_percent_ppm(MAXFEEPERCENT, 1) == 10_000
    assert check_percent_ppm(MAXFEEPERCENT, "2.5%") == 25_000
    for bad in ("NaN", "inf", "-1", 101, True, None, "1e999999", "lots"):
        with pytest.raises(InvalidParams, match=r"^maxfeepercent: must be"):
            check_percent_ppm(MAXFEEPERCENT, bad)


def test_invstrings_are_read_as_cln_reads_them() -> None:
    assert canonical_invstring("LIGHTNING:LNBCRT1ABC") == "lnbcrt1abc"
    assert canonical_invstring(" lightning:lnbcrt1abc ") == "lnbcrt1abc"
    assert canonical_invstring("LnBcRt1AbC") == "lnbcrt1abc"
    for bad in ("", "lightning:", 5, None, "lnbcrt1\x00", "lnbcrté"):
        with pytest.raises(InvalidParams, match="invstring"):
            canonical_invstring(bad)


def test_barqpay_takes_pays_parameters() -> None:
    p = barqpay_params(
        "lnbcrt1x",
        label=42,
        maxfeepercent="0.25",
        exemptfee="3sat",
        riskfactor=10,
        description="desc",
        partial_msat="1000msat",
    )
    assert (p.label, p.maxfee_ppm, p.exemptfee_msat, p.description, p.partial_msat) == (
        "42",
        2500,
        3000,
        "desc",
        1000,
    )
    for bad, words in (
        ({"riskfactor": -1}, "riskfactor"),
        ({"partial_msat": 0}, "partial_msat"),
        ({"exemptfee": 2**64}, "exemptfee"),
        ({"label": "a\ud800"}, "surrogate"),
        ({"exclude": ["1x1x1/0"] * 10_001}, "at most 10000"),
    ):
        with pytest.raises(InvalidParams, match=words):
            barqpay_params("lnbcrt1x", **bad)


# -- over the wire -------------------------------------------------------------------------


def test_check_validates_and_does_nothing(
    world: FakeWorld, running: PluginDriver, tmp_path: Path
) -> None:
    inv = world.node.add_invoice(make_invoice("c1" * 32))
    d = running
    assert d.call("check", {"command_to_check": "barqpay", "invstring": inv, "maxparts": 3}) == {
        "command_to_check": "barqpay"
    }
    assert d.call("check", ["barqpay", inv, None, 3]) == {"command_to_check": "barqpay"}
    assert d.call("check", {"command_to_check": "barqstrategies"}) == {
        "command_to_check": "barqstrategies"
    }
    for params, words in (
        ({"command_to_check": "barqpay", "invstring": inv, "maxparts": "x"}, "maxparts"),
        (["barqpay", inv, None, "x"], "maxparts"),
        ({"command_to_check": "barqroute", "destination": "02", "amount_msat": 1}, "destination"),
        ({"command_to_check": "barqstatus", "bogus": 1}, "unknown parameter: bogus"),
        ({"command_to_check": "nope"}, "command_to_check must be one of"),
        ({}, "command_to_check"),
    ):
        err = d.error("check", params)
        assert err.code == -32602 and words in err.message, err.message
    assert world.runtime.pay_calls == 0 and world.node.sendpays == []
    assert d.call("barqstatus")["payments"] == []


def test_wrong_shapes_are_invalid_params_not_internal_errors(running: PluginDriver) -> None:
    d = running
    for method in ("barqpay", "barqstatus", "barqstrategies"):
        err = d.error(method, "a string")
        assert err.code == -32602 and "parameters must be a JSON object or array" in err.message
    err = d.error("barqpay", {"invstring": "lnbcrt1x", "maxparts": "x"})
    assert err.code == -32602
    err = d.error("barqroute", {"destination": "02" + "11" * 32})
    assert err.code == -32602 and err.message == "missing required parameter: amount_msat"
    err = d.error("barqpay", ["lnbcrt1x", *([None] * 16)])
    assert err.code == -32602 and err.message == "too many parameters"


def test_log_lines_are_bounded(running: PluginDriver) -> None:
    d = running
    before = len(d.notes("log"))
    d.plugin.barq_log("x" * BIG, "info")
    d.plugin.barq_log("\n".join(["line"] * (LOG_LINES + 50)), "info")
    d.plugin.barq_log("bad \ud800 text", "info")
    d.wait_for(lambda: len(d.notes("log")) >= before + LOG_LINES + 3, what="log lines")
    logs = [n["params"]["message"] for n in d.notes("log")[before:]]
    assert all(len(m.encode()) <= MESSAGE_BYTES for m in logs)
    assert logs[0].endswith(f"({BIG} bytes)")
    assert "… (50 more lines)" in logs
    assert "bad \\ud800 text" in logs


def test_a_lone_surrogate_never_stops_an_answer(running: PluginDriver) -> None:
    # pyln writes with ensure_ascii=False and would raise (the request never answered)
    running.plugin._write_locked({"jsonrpc": "2.0", "id": "w1", "result": {"label": "x\ud800y"}})
    assert running.wait("w1")["result"] == {"label": "x\ud800y"}  # the JSON escape, read back
    assert running.call("barqstatus")["engine"]["state"] == "running"


def test_a_line_that_is_not_json_is_skipped(running: PluginDriver) -> None:
    running._to_plugin.write(b"this is not json\n\n[1, 2]\n\n")
    assert running.call("barqstatus")["engine"]["state"] == "running"
    running.wait_for(
        lambda: any("not JSON-RPC" in n["params"]["message"] for n in running.notes("log")),
        what="the skipped line is logged",
    )


# -- listpays while Barq pays --------------------------------------------------------------


class ListingNode(FakeNode):
    """A FakeNode that answers ``listsendpays`` as lightningd's JSON (for the listpays hook)."""

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        assert method == "listsendpays"
        params = params or {}
        by_hash = {inv.payment_hash: b for b, inv in self.invoices.items()}
        out = []
        for i, p in enumerate(self.sendpays):
            bolt11 = by_hash.get(p.payment_hash)
            if params.get("payment_hash") not in (None, p.payment_hash):
                continue
            if params.get("bolt11") not in (None, bolt11):
                continue
            out.append(
                {
                    "created_index": i + 1,
                    "payment_hash": p.payment_hash,
                    "groupid": p.groupid,
                    "partid": p.partid,
                    "status": str(p.status),
                    "amount_msat": p.amount_msat,
                    "amount_sent_msat": p.amount_sent_msat,
                    "destination": p.destination,
                    "created_at": p.created_at,
                    "bolt11": bolt11,
                    "label": "lbl",
                }
            )
        return {"payments": out}


def _listpays_hook(d: PluginDriver, params: Any) -> Any:
    return d.call("rpc_command", {"rpc_command": {"id": 9, "method": "listpays", "params": params}})


def test_listpays_says_pending_while_barq_pays(tmp_path: Path) -> None:
    world = FakeWorld()
    world.node = ListingNode()
    with world.driver() as d:
        d.init(tmp_path)
        d.wait_engine()
        held = make_invoice("d1" * 32)
        other = make_invoice("d2" * 32)
        b, b2 = world.node.add_invoice(held), world.node.add_invoice(other)
        cont = {"result": "continue"}
        assert _listpays_hook(d, {"bolt11": b}) == cont  # Barq pays nothing: lightningd answers
        world.runtime.script[b] = "hold"
        rid = d.send("barqpay", {"invstring": b})
        d.wait_for(lambda: bool(d.call("barqstatus")["payments"]), what="payment started")
        # the first attempt failed and the next is not sent yet: lightningd would say "failed"
        world.node.sendpays.append(
            PartStatus(
                payment_hash=held.payment_hash,
                partid=1,
                groupid=1,
                status=SendpayStatus.FAILED,
                amount_msat=100_000,
                amount_sent_msat=100_001,
                destination=held.payee,
                created_at=int(time.time()),
            )
        )
        for params in ({"bolt11": b}, [b], {"payment_hash": held.payment_hash}, {}):
            answer = _listpays_hook(d, params)
            [entry] = answer["return"]["result"]["pays"]
            assert entry["status"] == "pending" and entry["bolt11"] == b, answer
            assert entry["payment_hash"] == held.payment_hash and entry["label"] == "lbl"
        assert _listpays_hook(d, {"bolt11": b, "status": "failed"})["return"]["result"] == {
            "pays": []
        }
        # not about this payment, or paging: lightningd answers
        assert _listpays_hook(d, {"bolt11": b2}) == cont
        assert _listpays_hook(d, {"index": "created", "start": 0}) == cont
        assert _listpays_hook(d, {"bolt11": 5}) == cont
        world.runtime.released.set()
        assert d.wait(rid)["result"]["status"] == "complete"
        assert _listpays_hook(d, {"bolt11": b}) == cont  # done: lightningd's answer is right
