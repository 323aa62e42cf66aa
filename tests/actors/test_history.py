"""The payment history and memory (issue 17 item 7).

A journal that was just created (a new file, or one deleted since the last
run) gets the history rebuilt from ``listsendpays``; an existing one is not
filled with groups it never recorded. Finished payments leave memory: with a
journal they are read back from it, without one only the last
:data:`~barq.actors.coordinator.RECENT_PAYMENTS` are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from actor_helpers import CONFIG, StoreJournal, diamond

from barq.actors import open_runtime
from barq.actors.coordinator import RECENT_PAYMENTS
from barq.model import PartStatus, SendpayStatus
from barq.model.payment import PaymentStatus, PayParams
from barq.payment import RECOVERED_STRATEGY
from barq.store import open_store
from barq.testing import ScriptedNode, Succeed

PAID, FAILED, FLYING, LATER = "aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32


def part(h: str, status: SendpayStatus, *, partid: int = 1, groupid: int = 1) -> PartStatus:
    return PartStatus(
        payment_hash=h,
        partid=partid,
        groupid=groupid,
        status=status,
        amount_msat=5_000_000,
        amount_sent_msat=5_000_100,
        created_at=1_700_000_000,
        completed_at=None if status is SendpayStatus.PENDING else 1_700_000_005,
        payment_preimage="11" * 32 if status is SendpayStatus.COMPLETE else None,
    )


@pytest.mark.trio
async def test_a_created_journal_gets_the_history_rebuilt(
    autojump_clock: Any, tmp_path: Path
) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us, handler=lambda p: Succeed(after_s=3))
    node.preload(
        [
            part(PAID, SendpayStatus.FAILED),
            part(PAID, SendpayStatus.COMPLETE, partid=1, groupid=2),
            part(FAILED, SendpayStatus.FAILED),
            part(FLYING, SendpayStatus.PENDING),
        ]
    )
    with open_store(tmp_path / "db") as store, trio.fail_after(100):
        assert store.created
        async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:
            await trio.sleep(1)
            assert [v.payment_hash for v in rt.status()] == [FLYING]  # awaited
            await trio.sleep(5)
            assert rt.status() == []
            recent = {(v.payment_hash, v.groupid): v.status for v in await rt.astatus()}
        got = {(v.payment_hash, v.groupid): v for v in store.get_payments()}
        assert store.health() == {"created": True, "rebuilt_from_listsendpays": 3}
    assert (
        {k: v.status for k, v in got.items()}
        == recent
        == {
            (PAID, 1): PaymentStatus.FAILED,
            (PAID, 2): PaymentStatus.COMPLETE,
            (FAILED, 1): PaymentStatus.FAILED,
            (FLYING, 1): PaymentStatus.COMPLETE,
        }
    )
    assert all(v.strategy == RECOVERED_STRATEGY for v in got.values())
    assert got[(PAID, 2)].payment_preimage == "11" * 32


@pytest.mark.trio
async def test_an_existing_journal_is_not_filled_with_groups_it_never_recorded(
    autojump_clock: Any, tmp_path: Path
) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us)
    open_store(tmp_path / "db").close()
    node.preload([part(LATER, SendpayStatus.COMPLETE)])  # another plugin's payment
    with open_store(tmp_path / "db") as store, trio.fail_after(100):
        async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:
            await trio.sleep(1)
        assert store.get_payments() == [] and store.health() == {}
        assert rt is not None


@pytest.mark.trio
async def test_finished_payments_leave_memory(autojump_clock: Any, tmp_path: Path) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us)
    invoices = [node.add_invoice(payee=d.dest, amount_msat=1_000_000) for _ in range(3)]
    with open_store(tmp_path / "db") as store, trio.fail_after(100):
        async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:
            views = [await rt.pay(PayParams(invstring=b)) for b in invoices]
            assert rt.status() == []
            assert await rt.astatus() == views  # read back from the journal, oldest first
            assert await rt.astatus(views[1].payment_hash) == [views[1]]


@pytest.mark.trio
async def test_without_a_journal_only_the_last_payments_are_kept(autojump_clock: Any) -> None:
    d = diamond()
    node = ScriptedNode(graph=d.graph, our_id=d.us)
    invoices = [node.add_invoice(payee=d.dest, amount_msat=100_000) for _ in range(70)]
    with trio.fail_after(1000):
        async with open_runtime(node, CONFIG) as rt:
            views = [await rt.pay(PayParams(invstring=b)) for b in invoices]
            assert rt.status() == views[-RECENT_PAYMENTS:]
            assert await rt.astatus() == views[-RECENT_PAYMENTS:]
