"""Restarts with a payment in flight (issue 17 item 2 and its restart matrix).

Every case: ``l1`` (Barq) pays ``l3`` through ``l2``; ``l3`` holds the HTLC
(``hold_htlcs.py``) while one of three restarts happens to ``l1``:

    plugin-restart       plugin stop, plugin start
    lightningd-restart   lightningd stops and starts again (Barq with it)
    plugin-kill          the plugin is killed with SIGKILL, then started again

Then the invoice is paid again: the call adopts the part in flight (the log
says the restart's watcher handed it over) and the payee

    fails      fails it (mpp_timeout): its amount is sent again and the payment completes
    succeeds   releases it: the payment completes with that part alone
    held       holds it past the call's retry_for, then fails it: the call fails
               cleanly (210), nothing was sent after the deadline

Throughout, a poller reads ``listsendpays``: never more than the amount is in
flight or delivered. Afterwards nothing is pending, part ids are unique, and
the history (``barqlistpays``, ``barqstatus``) tells how it ended, part by
part as the node does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
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
AMOUNT = 30_000_000
HELD_RETRY_FOR = 12
RESTARTS = ("plugin-restart", "lightningd-restart", "plugin-kill")
ENDS = ("fails", "succeeds", "held")


def hold_plugin(tmp_path: Path) -> str:
    dst = tmp_path / "hold_htlcs.py"
    dst.write_text(f"#!{sys.executable}\n" + HOLD_SRC.read_text().split("\n", 1)[1])
    dst.chmod(0o755)
    return str(dst)


def barqpay(node: Any, bolt11: str, **kw: Any) -> dict[str, Any]:
    res: dict[str, Any] = node.rpc.call("barqpay", {"invstring": bolt11, **kw})
    return res


def sendpays(node: Any, payment_hash: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = node.rpc.listsendpays(payment_hash=payment_hash)["payments"]
    return out


class InFlightWatch:
    """Polls ``listsendpays`` in a thread; :attr:`most` is the largest amount ever pending or
    delivered at once (a read may fail while lightningd restarts: skipped)."""

    def __init__(self, node: Any, payment_hash: str) -> None:
        self.node, self.hash = node, payment_hash
        self.most = 0
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                parts = sendpays(self.node, self.hash)
            except Exception:  # lightningd is restarting
                time.sleep(0.2)
                continue
            live = [p for p in parts if p["status"] in ("pending", "complete")]
            self.most = max(self.most, sum(int(p["amount_msat"]) for p in live))
            self.reads += 1
            time.sleep(0.1)

    def __enter__(self) -> InFlightWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def plugin_pid(node: Any) -> int:
    """The Barq plugin process: lightningd's child running barq-plugin."""
    pid = node.daemon.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    [barq] = [c for c in children if b"barq-plugin" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return int(barq)


def restart(l1: Any, how: str) -> None:
    """Take Barq away (and lightningd with it for ``lightningd-restart``), then bring it back."""
    if how == "plugin-restart":
        l1.rpc.plugin_stop("barq-plugin")
        l1.rpc.plugin_start(PLUGIN)
    elif how == "plugin-kill":
        os.kill(plugin_pid(l1), signal.SIGKILL)
        wait_for(lambda: "barqpay" not in commands(l1))
        l1.rpc.plugin_start(PLUGIN)
    else:
        l1.restart()
    assert "barqpay" in commands(l1)


def commands(node: Any) -> set[str]:
    return {c["command"].split()[0] for c in node.rpc.help()["help"]}


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("how", RESTARTS)
def test_restart_with_a_part_in_flight(
    node_factory: Any, tmp_path: Path, how: str, end: str
) -> None:
    opts = {"may_reconnect": True}
    l1, l2, l3 = node_factory.line_graph(
        3,
        opts=[{**opts, "plugin": PLUGIN}, opts, {**opts, "plugin": hold_plugin(tmp_path)}],
        wait_for_announce=True,
    )
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 4, timeout=120)
    label = f"{how}-{end}"
    bolt11 = l3.rpc.invoice(AMOUNT, label, label, exposeprivatechannels=[])["bolt11"]
    h = l1.rpc.decode(bolt11)["payment_hash"]
    kw = {"retry_for": HELD_RETRY_FOR} if end == "held" else {}
    with InFlightWatch(l1, h) as watch, ThreadPoolExecutor(2) as ex:
        first = ex.submit(barqpay, l1, bolt11)
        wait_for(lambda: l3.rpc.call("heldhtlcs")["held"] >= 1)
        restart(l1, how)
        with pytest.raises((RpcError, OSError, ValueError)):
            first.result(timeout=60)  # its plugin (or lightningd) went away under it
        before = sendpays(l1, h)
        assert [p["status"] for p in before] == ["pending"]
        if how == "lightningd-restart":
            wait_for(lambda: l1.rpc.listpeers(l2.info["id"])["peers"][0]["connected"])
        again = ex.submit(barqpay, l1, bolt11, **kw)
        l1.daemon.wait_for_log("taken over by a new call")
        if end == "succeeds":
            l3.rpc.call("holdhtlcs", {"mode": "off"})
        elif end == "fails":
            assert l3.rpc.call("failhtlcs")["failed"] == 1
        else:
            time.sleep(HELD_RETRY_FOR + 3)  # past the call's retry_for, still held
            assert len(sendpays(l1, h)) == 1  # nothing sent beside the adopted part
            assert l3.rpc.call("failhtlcs")["failed"] == 1
        try:
            res: dict[str, Any] | None = again.result(timeout=120)
            err: dict[str, Any] | None = None
        except RpcError as exc:
            res, err = None, exc.error
    after = sendpays(l1, h)
    assert watch.reads > 0 and watch.most <= AMOUNT, watch.most
    assert not [p for p in after if p["status"] == "pending"]
    ids = [(p["groupid"], p["partid"]) for p in after]
    assert len(ids) == len(set(ids))
    paid = l3.rpc.listinvoices(label)["invoices"][0]
    if end == "held":
        assert res is None and err is not None and err["code"] == 210, err
        assert len(after) == 1 and after[0]["status"] == "failed"
        assert paid["status"] == "unpaid"
        expected = "failed"
    else:
        assert res is not None and res["status"] == "complete", err
        assert res["amount_msat"] == AMOUNT and paid["amount_received_msat"] == AMOUNT
        assert res["payment_preimage"] == paid["payment_preimage"]
        assert len(after) == (2 if end == "fails" else 1)
        if end == "fails":
            assert [p["status"] for p in after] == ["failed", "complete"]
            assert after[1]["partid"] > after[0]["partid"]
        expected = "complete"
    [hist] = l1.rpc.call("barqlistpays", {"payment_hash": h})["pays"]
    [status] = l1.rpc.call("barqstatus", {"payment_hash": h})["payments"]
    for shown in (hist, status):
        assert shown["status"] == expected
        parts = {(a["groupid"], a["partid"]): _status(a["state"]) for a in shown["attempts"]}
        assert parts == {(p["groupid"], p["partid"]): p["status"] for p in after}


def _status(state: str) -> str:
    """A part's state as ``listsendpays`` says it."""
    return {"succeeded": "complete", "resplit": "failed", "inflight": "pending"}.get(state, state)


def test_a_deleted_store_is_recreated_and_the_history_rebuilt(node_factory: Any) -> None:
    """issue 17 item 7: the database deleted while Barq runs is reported by ``barqstatus``;
    at the next start it is created again, with a warning in the log and in ``barqstatus``,
    and the payment history is rebuilt from ``listsendpays``."""
    l1, l2 = node_factory.line_graph(2, opts=[{"plugin": PLUGIN}, {}], wait_for_announce=True)
    bolt11 = l2.rpc.invoice(AMOUNT, "kept", "kept", exposeprivatechannels=[])["bolt11"]
    paid = barqpay(l1, bolt11)
    store = l1.rpc.call("barqstatus")["store"]
    Path(store["path"]).unlink()
    gone = l1.rpc.call("barqstatus")["store"]
    assert "deleted or replaced while barq runs" in gone["deleted"]
    l1.rpc.plugin_stop("barq-plugin")
    l1.rpc.plugin_start(PLUGIN)
    l1.daemon.wait_for_log("did not exist: created it")
    l1.daemon.wait_for_log(r"rebuilt 1 payment\(s\) from listsendpays")
    again = l1.rpc.call("barqstatus")["store"]
    assert again["created"] is True and again["rebuilt_from_listsendpays"] == 1
    assert "deleted" not in again
    [hist] = l1.rpc.call("barqlistpays", {"payment_hash": paid["payment_hash"]})["pays"]
    assert hist["status"] == "complete" and hist["payment_preimage"] == paid["payment_preimage"]
    assert hist["amount_msat"] == AMOUNT
