"""The plugin driven over JSON-RPC as lightningd would, with a scripted node and engine.

These tests pin the plugin's own mechanics: manifest, init, background
commands and their exactly-once answers, notifications, error shapes,
persistence, restart reconciliation and the ``pay`` takeover hook. The same
commands against the real engine on the simulated network are in
``test_plugin_sim.py``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from plugin_driver import (
    PAYEE,
    PEER,
    FakeWorld,
    PluginDriver,
    make_invoice,
)

from barq.errors import RouteNotFound, RpcConnectionError
from barq.model import PartStatus, SendpayStatus
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView
from barq.payment import Resume
from barq.store import open_store

PAY_FIELDS = {
    "payment_preimage",
    "payment_hash",
    "destination",
    "amount_msat",
    "amount_sent_msat",
    "parts",
    "created_at",
    "status",
}


def _invoice(world: FakeWorld, tag: str, **kw: Any) -> str:
    return world.node.add_invoice(make_invoice(tag * 32, **kw))


# -- handshake ---------------------------------------------------------------------------------


def opts_multi(manifest: dict[str, Any]) -> set[str]:
    return {o["name"] for o in manifest["options"] if o.get("multi")}


def test_manifest_declares_methods_options_hook_and_topics(driver: PluginDriver) -> None:
    m = driver.manifest()
    methods = {r["name"]: r for r in m["rpcmethods"]}
    assert set(methods) == {
        "barqpay",
        "barqkeysend",
        "barqstatus",
        "barqlistpays",
        "barqroute",
        "barqstrategies",
        "barqexperiments",
    }
    assert opts_multi(m) == {"barq-experiment"}
    assert methods["barqkeysend"]["usage"].startswith(
        "destination amount_msat [maxfee] [retry_for] [maxdelay] [exclude] [extratlvs] "
        "[strategy] [maxparts]"
    )
    assert methods["barqpay"]["usage"].startswith(
        "invstring [amount_msat] [maxparts] [maxfee] [retry_for] [maxdelay] [exclude] "
        "[strategy] [label]"
    )
    assert methods["barqroute"]["usage"].startswith("destination amount_msat [strategy] [maxparts]")
    assert "Pay a bolt11 invoice" in methods["barqpay"]["description"]
    opts = {o["name"]: o for o in m["options"]}
    assert all(name.startswith("barq-") for name in opts)
    assert opts["barq-maxfee-msat"]["default"] == 5000
    assert opts["barq-retry-for"]["default"] == 60
    assert opts["barq-maxdelay"]["default"] == 2016
    assert opts["barq-handle-pay"] == {**opts["barq-handle-pay"], "type": "bool", "default": False}
    assert {
        "barq-strategy",
        "barq-maxparts",
        "barq-db",
        "barq-estimator-half-life",
        "barq-maxfee-percent",
    } <= set(opts)
    assert m["hooks"] == [
        {
            "name": "rpc_command",
            "before": [],
            "after": [],
            "filters": ["pay", "listpays", "keysend"],
        }
    ]
    assert m["cancheck"] is True
    assert {"method": "barq_part_start"} in m["notifications"]
    assert {"method": "barq_part_end"} in m["notifications"]
    assert "shutdown" in m["subscriptions"]
    assert m["dynamic"] is True  # `lightning-cli plugin stop/start` works


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"barq-maxparts": 0}, "barq-maxparts"),
        ({"barq-maxparts": 5000}, "barq-maxparts"),
        ({"barq-maxfee-percent": "lots"}, "barq-maxfee-percent"),
        ({"barq-maxfee-percent": "150"}, "barq-maxfee-percent"),
        ({"barq-retry-for": 0}, "barq-retry-for"),
        ({"barq-strategy": "teleport"}, "barq-strategy"),
    ],
)
def test_bad_option_disables_plugin_with_reason(
    driver: PluginDriver, tmp_path: Path, options: dict[str, Any], needle: str
) -> None:
    result = driver.init(tmp_path, options)
    assert needle in result["disable"]


def test_options_reach_the_engine_config(
    world: FakeWorld, driver: PluginDriver, tmp_path: Path
) -> None:
    driver.init(
        tmp_path,
        {
            "barq-strategy": "dijkstra",
            "barq-maxfee-msat": 1234,
            "barq-maxfee-percent": "0.25",
            "barq-retry-for": 9,
            "barq-maxdelay": 144,
            "barq-maxparts": 7,
            "barq-estimator-half-life": 60,
            "barq-db": "other.db",
        },
    )
    driver.wait_engine()
    cfg = world.runtime.config
    assert (
        cfg.default_strategy,
        cfg.maxfee_base_msat,
        cfg.maxfee_ppm,
        cfg.retry_for_s,
        cfg.maxdelay,
        cfg.maxparts,
        cfg.estimator_half_life_s,
    ) == ("dijkstra", 1234, 2500, 9.0, 144, 7, 60.0)
    assert (tmp_path / "other.db").exists()


# -- barqpay -----------------------------------------------------------------------------------


def test_barqpay_keyword_and_positional_forms(world: FakeWorld, running: PluginDriver) -> None:
    a, b = _invoice(world, "a1"), _invoice(world, "b2")
    r1 = running.call("barqpay", [a, None, 4, "2000msat", 30, 500, ["1x2x3/0"], "dijkstra", "pos"])
    r2 = running.call("barqpay", {"invstring": b, "maxparts": 4, "label": "kw"})
    for r in (r1, r2):
        assert set(r) >= PAY_FIELDS
        assert r["status"] == "complete" and r["payment_preimage"] == "77" * 32
        assert r["destination"] == PAYEE and r["amount_msat"] == 100_000
        assert r["amount_sent_msat"] == 100_001 and r["fee_msat"] == 1
        assert r["parts"] == 1 and len(r["attempts"]) == 1
        part = r["attempts"][0]
        assert part["state"] == "succeeded" and part["fee_msat"] == 1
        assert part["route"][-1]["id"] == PAYEE and part["path"] == "100x1x0/0 -> 200x1x0/1"
    assert r1["strategy"] == "dijkstra" and r1["label"] == "pos"
    assert r2["strategy"] == "adaptive" and r2["label"] == "kw"


def test_barqpay_params_reach_the_engine(world: FakeWorld, running: PluginDriver) -> None:
    seen: list[Any] = []
    inv = _invoice(world, "c3", amount_msat=None)
    orig = world.runtime.pay_outcome

    async def spy(params: Any, **kw: Any) -> Any:
        seen.append(params)
        return await orig(params, **kw)

    world.runtime.pay_outcome = spy  # type: ignore[method-assign]
    running.call(
        "barqpay",
        {
            "invstring": "lightning:" + inv,
            "amount_msat": "1.500sat",
            "maxfee": "0.00000001btc",
            "retry_for": 12.5,
            "maxdelay": "99",
            "exclude": [PAYEE.upper(), "5x6x7/1"],
            "strategy": "direct",
        },
    )
    p = seen[0]
    assert p.invstring == inv and p.amount_msat == 1500 and p.maxfee_msat == 1000
    assert p.retry_for_s == 12.5 and p.maxdelay == 99 and p.strategy == "direct"
    assert p.exclude == (PAYEE, "5x6x7/1") and p.maxparts is None


def test_barqpay_decodes_and_lists_sendpays_once(world: FakeWorld, running: PluginDriver) -> None:
    """One ``decode`` and one ``listsendpays`` per barqpay; the payment gets what they said."""
    running.call("barqpay", [_invoice(world, "c5")])  # after the restart reconciliation
    inv = _invoice(world, "c4")
    world.node.calls.clear()
    running.call("barqpay", [inv])
    assert world.node.calls.count("decode") == 1
    assert world.node.calls.count("listsendpays") == 1
    ran = world.runtime.executed[-1]
    assert ran["invoice"].bolt11 == inv
    assert ran["resume"] == Resume()  # nothing sent before for this hash: group 1, part 1


def test_progress_notifications_and_topics(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "d4")
    world.runtime.script[inv] = ["fail", "ok"]
    rid = running.send("barqpay", [inv])
    result = running.wait(rid)["result"]
    msgs = [n["params"]["message"] for n in running.notes("message", req_id=rid)]
    assert msgs[0].startswith("paying 100000 msat to " + PAYEE)
    assert msgs[1] == "part 1: sending 100000 msat over 100x1x0/0 -> 200x1x0/1"
    assert msgs[2] == "part 1: failed: WIRE_TEMPORARY_CHANNEL_FAILURE at 200x1x0"
    assert msgs[3].startswith("part 2: sending") and msgs[4] == "part 2: succeeded"
    assert msgs[5] == "payment complete"
    starts = [n["params"]["barq_part_start"] for n in running.notes("barq_part_start")]
    ends = [n["params"]["barq_part_end"] for n in running.notes("barq_part_end")]
    assert [s["partid"] for s in starts] == [1, 2]
    assert starts[0]["payment_hash"] == result["payment_hash"]
    assert starts[0]["amount_msat"] == 100_000 and len(starts[0]["route"]) == 2
    assert [(e["partid"], e["outcome"]) for e in ends] == [(1, "failed"), (2, "succeeded")]
    assert ends[0]["failure"]["failcodename"] == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert ends[0]["route"] == starts[0]["route"]
    assert result["parts"] == 2 and [a["state"] for a in result["attempts"]] == [
        "failed",
        "succeeded",
    ]
    prog = [n["params"] for n in running.notes("progress", req_id=rid)]
    assert prog == [{"id": rid, "num": 100_000, "total": 100_000}]


def test_failure_is_pay_code_with_what_was_tried(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "e5")
    world.runtime.script[inv] = ["fail", "fail", "fail"]
    err = running.error("barqpay", [inv])
    assert err.code == 210 and "gave up after 3 attempts" in err.message
    assert err.data is not None and err.data["status"] == "failed"
    assert len(err.data["attempts"]) == 3
    for a in err.data["attempts"]:
        assert a["state"] == "failed"
        assert a["failure"]["failcodename"] == "WIRE_TEMPORARY_CHANNEL_FAILURE"
        assert a["failure"]["erring_channel"] == "200x1x0"
        assert a["reason"] == "WIRE_TEMPORARY_CHANNEL_FAILURE at 200x1x0/1"
        assert a["route"]
    # and it is in the history
    pays = running.call("barqlistpays", {"status": "failed"})["pays"]
    assert [p["payment_hash"] for p in pays] == ["e5" * 32]


def test_engine_error_keeps_its_code(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "f6")
    world.runtime.script[inv] = RouteNotFound("no route to " + PAYEE, data={"tried": 0})
    err = running.error("barqpay", [inv])
    assert (err.code, err.message, err.data) == (205, "no route to " + PAYEE, {"tried": 0})


def test_unexpected_exception_is_209_logged_and_plugin_stays_up(
    world: FakeWorld, running: PluginDriver
) -> None:
    inv = _invoice(world, "a7")
    world.runtime.script[inv] = ZeroDivisionError("kaboom")
    err = running.error("barqpay", [inv])
    assert err.code == 209 and "ZeroDivisionError: kaboom" in err.message
    logs = "\n".join(n["params"]["message"] for n in running.notes("log"))
    assert "unexpected error in barqpay" in logs and "ZeroDivisionError" in logs
    assert running.call("barqstatus")["engine"]["state"] == "running"
    assert running.call("barqpay", [_invoice(world, "a8")])["status"] == "complete"


def test_barqstatus_answers_while_a_payment_runs(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "b9")
    world.runtime.script[inv] = "hold"
    rid = running.send("barqpay", [inv])
    running.wait_for(lambda: bool(running.notes("message", req_id=rid)), what="pay started")
    t0 = time.monotonic()
    st = running.call("barqstatus")
    assert time.monotonic() - t0 < 5
    assert not running.answered(rid)
    [p] = st["payments"]
    assert p["payment_hash"] == "b9" * 32 and p["status"] == "pending"
    assert running.call("barqstatus", ["b9" * 32])["payments"][0]["status"] == "pending"
    assert running.call("barqstatus", {"payment_hash": "00" * 32})["payments"] == []
    # the DB already has it as pending
    assert running.call("barqlistpays", ["b9" * 32])["pays"][0]["status"] == "pending"
    world.runtime.released.set()
    assert running.wait(rid)["result"]["status"] == "complete"
    assert running.call("barqlistpays", ["b9" * 32, "complete"])["pays"][0]["status"] == "complete"


def test_same_invoice_twice_at_once_pays_once(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "c0")
    world.runtime.script[inv] = "hold"
    r1 = running.send("barqpay", [inv])
    running.wait_for(lambda: bool(running.notes("message", req_id=r1)), what="pay started")
    r2 = running.send("barqpay", {"invstring": inv})
    time.sleep(0.1)
    assert not running.answered(r2)
    world.runtime.released.set()
    a, b = running.wait(r1)["result"], running.wait(r2)["result"]
    assert a["payment_preimage"] == b["payment_preimage"] == "77" * 32
    assert world.runtime.pay_calls == 1


def test_already_paid_invoice_returns_that_payment(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "d1")
    first = running.call("barqpay", [inv])
    again = running.call("barqpay", [inv])
    assert world.runtime.pay_calls == 1
    assert again["already_paid"] is True and "already_paid" not in first
    assert again["payment_preimage"] == first["payment_preimage"]
    assert again["attempts"][0]["route"] == first["attempts"][0]["route"]  # from the DB


def test_already_paid_with_another_amount_is_201(world: FakeWorld, running: PluginDriver) -> None:
    inv = _invoice(world, "d2", amount_msat=None)
    running.call("barqpay", [inv, 5000])
    err = running.error("barqpay", [inv, 6000])
    assert err.code == 201 and "already paid with 5000 msat" in err.message
    assert err.data is not None and err.data["status"] == "complete"
    assert running.call("barqpay", [inv, "5sat"])["already_paid"] is True
    assert world.runtime.pay_calls == 1


# -- parameter checks (each a -32602 naming the parameter; the plugin stays up) -----------------


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({}, "invstring"),
        ({"invstring": ""}, "invstring"),
        ({"invstring": 42}, "invstring"),
        ({"invstring": "lnbcrt1", "maxparts": 0}, "maxparts"),
        ({"invstring": "lnbcrt1", "maxparts": -3}, "maxparts"),
        ({"invstring": "lnbcrt1", "maxparts": 1001}, "maxparts"),
        ({"invstring": "lnbcrt1", "maxparts": "many"}, "maxparts"),
        ({"invstring": "lnbcrt1", "maxparts": 2.5}, "maxparts"),
        ({"invstring": "lnbcrt1", "maxfee": -1}, "maxfee"),
        ({"invstring": "lnbcrt1", "maxfee": "cheap"}, "maxfee"),
        ({"invstring": "lnbcrt1", "maxfee": True}, "maxfee"),
        ({"invstring": "lnbcrt1", "retry_for": 0}, "retry_for"),
        ({"invstring": "lnbcrt1", "retry_for": -5}, "retry_for"),
        ({"invstring": "lnbcrt1", "retry_for": "soon"}, "retry_for"),
        ({"invstring": "lnbcrt1", "maxdelay": 0}, "maxdelay"),
        ({"invstring": "lnbcrt1", "amount_msat": -5}, "amount_msat"),
        ({"invstring": "lnbcrt1", "amount_msat": 0}, "amount_msat"),
        ({"invstring": "lnbcrt1", "amount_msat": "12 apples"}, "amount_msat"),
        ({"invstring": "lnbcrt1", "exclude": ["nope"]}, "exclude[0]"),
        ({"invstring": "lnbcrt1", "exclude": ["1x2x3/0", "1x2x3/2"]}, "exclude[1]"),
        ({"invstring": "lnbcrt1", "exclude": ["1x2x3"]}, "exclude[0]"),
        ({"invstring": "lnbcrt1", "exclude": ["02" + "a" * 63]}, "exclude[0]"),
        ({"invstring": "lnbcrt1", "exclude": [7]}, "exclude[0]"),
        ({"invstring": "lnbcrt1", "exclude": {"a": 1}}, "exclude"),
        ({"invstring": "lnbcrt1", "exclude": "[not json"}, "exclude"),
        ({"invstring": "lnbcrt1", "strategy": "teleport"}, "unknown strategy 'teleport'"),
        ({"invstring": "lnbcrt1", "strategy": 3}, "strategy"),
        ({"invstring": "lnbcrt1", "label": ["x"]}, "label"),
        ({"invstring": "lnbcrt1", "bogus": 1}, "unknown parameter: bogus"),
        (["lnbcrt1", *([None] * 15), "extra"], "too many parameters"),
    ],
)
def test_bad_parameters(world: FakeWorld, running: PluginDriver, params: Any, needle: str) -> None:
    err = running.error("barqpay", params)
    assert err.code == -32602, err.error
    assert needle in err.message
    assert world.runtime.pay_calls == 0
    assert running.call("barqstrategies")["strategies"]  # still up


def test_malformed_bolt11_is_invalid_params(running: PluginDriver) -> None:
    err = running.error("barqpay", ["lnbcrt1notaninvoice"])
    assert err.code == -32602 and "invalid bolt11" in err.message


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("barqstatus", ["xyz"], "payment_hash"),
        ("barqlistpays", {"payment_hash": "12"}, "payment_hash"),
        ("barqlistpays", {"status": "lost"}, "status"),
        ("barqroute", ["nobody", 1000], "destination"),
        ("barqroute", [PAYEE, "much"], "amount_msat"),
        ("barqroute", [PAYEE, 1000, "teleport"], "unknown strategy"),
        ("barqroute", [PAYEE, 1000, None, 0], "maxparts"),
        ("barqroute", [PAYEE], "amount_msat"),
    ],
)
def test_bad_parameters_of_other_commands(
    running: PluginDriver, method: str, params: Any, needle: str
) -> None:
    err = running.error(method, params)
    assert err.code == -32602 and needle in err.message


# -- other commands ---------------------------------------------------------------------------


def test_barqroute_and_barqstrategies(world: FakeWorld, running: PluginDriver) -> None:
    r = running.call("barqroute", [PAYEE, "100sat"])
    assert r["amount_msat"] == 100_000 and r["fee_msat"] == 1
    assert r["routes"][0]["hops"][-1]["id"] == PAYEE and r["probability"] == 0.5
    r = running.call(
        "barqroute",
        {"destination": PAYEE, "amount_msat": 5000, "strategy": "dijkstra", "maxparts": 2},
    )
    assert r["strategy"] == "dijkstra"
    assert running.error("barqroute", ["03" + "44" * 32, 1000]).code == 209
    names = {s["name"] for s in running.call("barqstrategies")["strategies"]}
    assert {"direct", "dijkstra", "mincostflow"} <= names


def test_barqlistpays_history(world: FakeWorld, running: PluginDriver) -> None:
    for tag in ("e1", "e2"):
        running.call("barqpay", [_invoice(world, tag)])
    world.runtime.script[_invoice(world, "e3")] = ["fail"]
    running.error("barqpay", [_invoice(world, "e3")])
    pays = running.call("barqlistpays")["pays"]
    assert [(p["payment_hash"][:2], p["status"]) for p in pays] == [
        ("e1", "complete"),
        ("e2", "complete"),
        ("e3", "failed"),
    ]
    assert pays[0]["attempts"][0]["route"]
    assert (
        running.call("barqlistpays", {"status": "complete"})["pays"][1]["payment_hash"] == "e2" * 32
    )


# -- persistence and the database's failures ----------------------------------------------------


def test_knowledge_is_saved_and_handed_back_after_restart(world: FakeWorld, tmp_path: Path) -> None:
    with world.driver() as d:
        d.init(tmp_path)
        d.wait_engine()
        assert world.runtime.knowledge_in is None
        d.call("barqpay", [_invoice(world, "f1")])
        exported = list(world.runtime.knowledge_out)
    with open_store(tmp_path / "barq.sqlite3") as store:
        rows = store.get_knowledge()
    assert [(r.kind, r.key) for r in rows] == [
        ("channel", "100x1x0/0"),
        ("disabled_channel", "200x1x0/1"),
        ("disabled_node", PEER),
    ]
    assert (rows[0].lo_msat, rows[0].hi_msat, rows[0].capacity_msat) == (5, 10**9, 2 * 10**9)
    with world.driver() as d:
        d.init(tmp_path)
        d.wait_engine()
        assert world.runtime.knowledge_in == exported


def _assert_store_refused(world: FakeWorld, d: PluginDriver, db: Path, needle: str) -> None:
    st = d.call("barqstatus")
    assert st["engine"]["state"] == "running"
    assert st["store"]["state"] == "unavailable" and str(db) in st["store"]["error"]
    err = d.error("barqpay", [_invoice(world, "ab")])
    assert err.code == -1 and str(db) in err.message and needle in err.message
    assert world.runtime.pay_calls == 0
    assert d.error("barqlistpays").code == -1
    assert d.call("barqstrategies")["strategies"]
    assert d.call("barqroute", [PAYEE, 1000])["routes"]


def test_corrupt_database(world: FakeWorld, driver: PluginDriver, tmp_path: Path) -> None:
    db = tmp_path / "barq.sqlite3"
    db.write_bytes(b"definitely not a database\n" * 100)
    driver.init(tmp_path)
    driver.wait_engine()
    _assert_store_refused(world, driver, db, "not a valid SQLite database")


def test_unreadable_database(world: FakeWorld, driver: PluginDriver, tmp_path: Path) -> None:
    db = tmp_path / "is-a-dir"
    db.mkdir()
    driver.init(tmp_path, {"barq-db": str(db)})
    driver.wait_engine()
    _assert_store_refused(world, driver, db, "is a directory")


def test_database_from_newer_barq(world: FakeWorld, driver: PluginDriver, tmp_path: Path) -> None:
    db = tmp_path / "barq.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    driver.init(tmp_path)
    driver.wait_engine()
    _assert_store_refused(world, driver, db, "newer")


def test_locked_database(world: FakeWorld, driver: PluginDriver, tmp_path: Path) -> None:
    db = tmp_path / "barq.sqlite3"
    open_store(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        driver.init(tmp_path)
        driver.wait_engine()
        _assert_store_refused(world, driver, db, "locked")
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_engine_that_cannot_start_is_reported(
    world: FakeWorld, driver: PluginDriver, tmp_path: Path
) -> None:
    world.fail_start = ExceptionGroup(
        "nursery",
        [  # as a task group raises it
            RpcConnectionError("cannot connect to /x/lightning-rpc: refused")
        ],
    )
    driver.init(tmp_path)
    st = driver.wait_engine()
    assert st["engine"] == {
        "state": "failed",
        "error": "cannot connect to /x/lightning-rpc: refused",
    }
    err = driver.error("barqpay", ["lnbcrt1"])
    assert err.code == -1 and "lightning-rpc" in err.message
    assert driver.error("barqroute", [PAYEE, 1000]).code == -1


# -- restart safety -------------------------------------------------------------------------


def _pending_record(h: str, *, groupid: int = 1) -> PaymentView:
    from plugin_driver import route_to

    return PaymentView(
        payment_hash=h,
        destination=PAYEE,
        amount_msat=100_000,
        status=PaymentStatus.PENDING,
        strategy="mincostflow",
        created_at=1000.0,
        groupid=groupid,
        bolt11="lnbcrt-x",
        parts=(
            PartView(
                partid=1,
                groupid=groupid,
                amount_msat=100_000,
                amount_sent_msat=100_001,
                fee_msat=1,
                route=route_to(100_000),
                state=PartState.INFLIGHT,
                started_at=1000.0,
            ),
        ),
    )


def _sendpay(h: str, status: SendpayStatus, *, partid: int = 1, groupid: int = 1) -> PartStatus:
    return PartStatus(
        payment_hash=h,
        partid=partid,
        groupid=groupid,
        status=status,
        amount_msat=100_000,
        amount_sent_msat=100_001,
        destination=PAYEE,
        created_at=1000,
        completed_at=None if status == "pending" else 1001,
        payment_preimage="77" * 32 if status == "complete" else None,
    )


def test_restart_awaits_parts_in_flight_and_never_resends(world: FakeWorld, tmp_path: Path) -> None:
    h = "aa" * 32
    inv = world.node.add_invoice(make_invoice(h))
    with open_store(tmp_path / "barq.sqlite3") as store:
        store.put_payment(_pending_record(h))
    world.node.sendpays = [_sendpay(h, SendpayStatus.PENDING)]
    world.node.hold.add((h, 1))
    with world.driver() as d:
        d.init(tmp_path)
        d.wait_engine()
        d.wait_for(lambda: bool(d.call("barqstatus")["payments"]), what="recovered listed")
        [p] = d.call("barqstatus")["payments"]
        assert p["status"] == "pending" and p["strategy"] == "mincostflow"
        assert p["attempts"][0]["state"] == "inflight" and p["attempts"][0]["route"]
        rid = d.send("barqpay", [inv])
        time.sleep(0.2)
        assert not d.answered(rid)  # the engine adopted the part in flight: it waits for it
        world.node.hold.clear()
        r = d.wait(rid)["result"]
        assert r["status"] == "complete" and r["payment_preimage"] == "77" * 32
        assert world.runtime.pay_calls == 1
        [rec] = d.call("barqlistpays")["pays"]
        assert rec["status"] == "complete" and rec["groupid"] == 1
        assert rec["attempts"][0]["route"]  # the route recorded before the restart is kept
        # and a later barqpay returns the payment without asking the engine
        again = d.call("barqpay", [inv])
        assert again["already_paid"] is True and world.runtime.pay_calls == 1
    assert [(p.partid, p.status) for p in world.node.sendpays] == [(1, "complete")]


def test_restart_records_payments_that_ended_while_down(world: FakeWorld, tmp_path: Path) -> None:
    done, failed, foreign = "bb" * 32, "cc" * 32, "dd" * 32
    with open_store(tmp_path / "barq.sqlite3") as store:
        store.put_payment(_pending_record(done))
        store.put_payment(_pending_record(failed))
    world.node.sendpays = [
        _sendpay(done, SendpayStatus.COMPLETE),
        _sendpay(failed, SendpayStatus.FAILED),
        _sendpay(foreign, SendpayStatus.COMPLETE),
    ]
    with world.driver() as d:
        d.init(tmp_path)
        d.wait_engine()

        def statuses() -> dict[str, str]:
            return {p["payment_hash"]: p["status"] for p in d.call("barqlistpays")["pays"]}

        d.wait_for(lambda: statuses() == {done: "complete", failed: "failed"}, what="reconciled")
        pays = {p["payment_hash"]: p for p in d.call("barqlistpays")["pays"]}
        assert pays[done]["payment_preimage"] == "77" * 32
        assert pays[done]["attempts"][0]["state"] == "succeeded"
        assert pays[failed]["attempts"][0]["state"] == "failed"


def test_restart_part_in_flight_that_fails_is_sent_again_under_a_new_partid(
    world: FakeWorld, tmp_path: Path
) -> None:
    """The pending group is adopted; its part fails; the amount goes out again as part 2."""
    h = "ee" * 32
    inv = world.node.add_invoice(make_invoice(h))
    world.node.sendpays = [_sendpay(h, SendpayStatus.PENDING)]
    world.node.hold.add((h, 1))
    world.node.fail.add((h, 1))
    with world.driver() as d:
        d.init(tmp_path)
        d.wait_engine()
        rid = d.send("barqpay", [inv])
        time.sleep(0.1)
        assert not d.answered(rid)
        world.node.hold.clear()
        r = d.wait(rid)["result"]
        assert r["status"] == "complete" and "already_paid" not in r
        assert r["strategy"] == "adaptive"  # the call's strategy (the default) re-sends
        assert r["groupid"] == 1  # the group adopted; part 1 of group 1 is never reused
        assert [(a["partid"], a["state"]) for a in r["attempts"]] == [
            (1, "failed"),
            (2, "succeeded"),
        ]
        assert world.runtime.pay_calls == 1
        [rec] = d.call("barqlistpays", [h])["pays"]
        assert (rec["groupid"], rec["status"]) == (1, "complete")
        assert [a["state"] for a in rec["attempts"]] == ["failed", "succeeded"]
    ids = [(p.groupid, p.partid) for p in world.node.sendpays]
    assert ids == [(1, 1), (1, 2)]


# -- pay takeover (rpc_command hook) -------------------------------------------------------------


def _hook(d: PluginDriver, method: str, params: Any, rid: Any = 17) -> Any:
    return d.call("rpc_command", {"rpc_command": {"id": rid, "method": method, "params": params}})


def test_handle_pay_off_by_default(world: FakeWorld, running: PluginDriver) -> None:
    assert _hook(running, "pay", {"bolt11": "lnbcrt1"}) == {"result": "continue"}


def test_handle_pay_redirects_pay_to_barqpay(
    world: FakeWorld, driver: PluginDriver, tmp_path: Path
) -> None:
    driver.init(tmp_path, {"barq-handle-pay": True})
    driver.wait_engine()
    inv = _invoice(world, "f7", amount_msat=2_000_000)
    assert _hook(driver, "pay", {"bolt11": inv, "retry_for": 5, "riskfactor": 3}) == {
        "replace": {
            "jsonrpc": "2.0",
            "id": 17,
            "method": "barqpay",
            "params": {"invstring": inv, "retry_for": 5, "riskfactor": 3},
        }
    }
    assert _hook(driver, "pay", [inv, None, "lbl"], rid="cli:pay#3")["replace"] == {
        "jsonrpc": "2.0",
        "id": "cli:pay#3",
        "method": "barqpay",
        "params": {"invstring": inv, "label": "lbl"},
    }
    # pay's own parameters keep their names: barqpay takes them (maxfeepercent/exemptfee
    # become xpay's fee budget in the engine; a bad one is barqpay's -32602)
    assert _hook(driver, "pay", {"bolt11": inv, "maxfeepercent": 1})["replace"]["params"] == {
        "invstring": inv,
        "maxfeepercent": 1,
    }
    # what Barq does not do stays with pay
    assert _hook(driver, "pay", {"bolt11": inv, "localinvreqid": "00"}) == {"result": "continue"}
    # BOLT 12 goes to barqpay too (issue 14); keysend stays CLN's without barq-handle-keysend
    assert _hook(driver, "pay", {"bolt11": "lni1qqq"})["replace"]["method"] == "barqpay"
    assert _hook(driver, "keysend", {"destination": "02" + "11" * 32, "amount_msat": 1}) == {
        "result": "continue"
    }
    assert _hook(driver, "listfunds", {}) == {"result": "continue"}
    # and the replaced call is an ordinary barqpay
    r = driver.call("barqpay", {"invstring": inv, "retry_for": 5})
    assert r["status"] == "complete"


def test_handle_keysend_redirects_keysend_to_barqkeysend(
    world: FakeWorld, driver: PluginDriver, tmp_path: Path
) -> None:
    driver.init(tmp_path, {"barq-handle-keysend": True})
    driver.wait_engine()
    dest = "02" + "11" * 32
    assert _hook(driver, "keysend", [dest, 1000, "lbl", None, 5])["replace"] == {
        "jsonrpc": "2.0",
        "id": 17,
        "method": "barqkeysend",
        "params": {"destination": dest, "amount_msat": 1000, "label": "lbl", "retry_for": 5},
    }
    # what barqkeysend does not take stays with keysend
    assert _hook(driver, "keysend", {"destination": dest, "amount_msat": 1, "exemptfee": 5}) == {
        "result": "continue"
    }
    # pay is not redirected by this option
    assert _hook(driver, "pay", {"bolt11": "lnbcrt1"}) == {"result": "continue"}


def test_handle_pay_leaves_pay_alone_when_database_is_broken(
    world: FakeWorld, driver: PluginDriver, tmp_path: Path
) -> None:
    (tmp_path / "barq.sqlite3").write_bytes(b"garbage" * 500)
    driver.init(tmp_path, {"barq-handle-pay": True})
    driver.wait_engine()
    assert _hook(driver, "pay", {"bolt11": _invoice(world, "f8")}) == {"result": "continue"}


# -- lifetime ------------------------------------------------------------------------------------


def test_shutdown_notification_stops_the_plugin(world: FakeWorld, tmp_path: Path) -> None:
    d = world.driver()
    d.init(tmp_path)
    d.wait_engine()
    d.notify_plugin("shutdown", {})
    d._server.join(10)
    assert not d._server.is_alive()
    assert world.node.closed  # the node was closed with the engine
    d.close()


def test_commands_before_init_are_refused_cleanly(driver: PluginDriver) -> None:
    err = driver.error("barqstatus")
    assert err.code == 209 and "not initialised" in err.message
    assert driver.call("barqstrategies")["strategies"]


def test_barqpay_right_after_init_waits_for_the_engine(
    world: FakeWorld, driver: PluginDriver, tmp_path: Path
) -> None:
    driver.manifest()
    init = driver.send(
        "init",
        {
            "options": {},
            "configuration": {
                "lightning-dir": str(tmp_path),
                "rpc-file": "lightning-rpc",
                "startup": True,
                "network": "regtest",
            },
        },
    )
    rid = driver.send("barqpay", [_invoice(world, "aa")])  # no wait in between
    assert driver.wait(init)["result"] is None
    assert driver.wait(rid)["result"]["status"] == "complete"
