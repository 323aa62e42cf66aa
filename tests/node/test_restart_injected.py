"""After a restart, a failed injected part leaves "pending" (issue 14, lightningd's answers).

The restart watcher of :class:`~barq.actors.coordinator.PaymentCoordinator`
waits for a group left in flight with the node's ``waitsendpay``. For a part
sent with ``injectpaymentonion`` lightningd keeps the error onion it cannot
read and answers 202 (``PAY_UNPARSEABLE_ONION``, ``lightningd/pay.c``
``wait_payment``): that must end the part as failed, as a 204 does for a
``sendpay`` part, not leave it pending for ever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from actor_helpers import StoreJournal
from fake_lightningd import Reply, running

from barq.actors.coordinator import PaymentCoordinator
from barq.model import Hop, NodeId, PartId, PaymentHash, Route, Scid
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView
from barq.store import Store, open_store

H = PaymentHash("54ae8ca922c132a11e92fc46269fdc0be7b8c2ee6459fe8ebcca3099acb4483e")
PAYEE = NodeId("03cecbfdc68544cc596223b68ce0710c9e5d2c9cb317ee07822d95079acc703d31")
PEER = NodeId("033845802d25b4e074ccfd7cd8b339a41dc75bf9978a034800444b51d42b07799a")
TIMEOUT_S = 10


class _Journal(StoreJournal):
    """The store as the journal; ``ended`` is set once a payment is recorded as ended."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.ended = anyio.Event()

    def put_payment(self, view: PaymentView) -> None:
        super().put_payment(view)
        if view.status is not PaymentStatus.PENDING:
            self.ended.set()


def _pending() -> PaymentView:
    route = Route(
        hops=(
            Hop(id=PEER, channel=Scid("103x1x0"), direction=0, amount_msat=10_000_202, delay=20),
            Hop(id=PAYEE, channel=Scid("105x1x0"), direction=1, amount_msat=10_000_000, delay=0),
        )
    )
    part = PartView(
        partid=PartId(1),
        groupid=1,
        amount_msat=10_000_000,
        amount_sent_msat=10_000_202,
        fee_msat=202,
        route=route,
        state=PartState.INFLIGHT,
        started_at=1000.0,
    )
    return PaymentView(
        payment_hash=H,
        destination=PAYEE,
        amount_msat=10_000_000,
        status=PaymentStatus.PENDING,
        strategy="dijkstra",
        created_at=1000.0,
        groupid=1,
        bolt11="lni1x",
        parts=(part,),
    )


def _injected_part(status: str) -> dict[str, Any]:
    """``listsendpays``' row of an injected part (bolt12, partid 1)."""
    return {
        "created_index": 4,
        "id": 4,
        "payment_hash": H,
        "groupid": 1,
        "partid": 1,
        "destination": PAYEE,
        "amount_msat": 10_000_000,
        "amount_sent_msat": 10_000_202,
        "created_at": 1000,
        "status": status,
        "bolt12": "lni1x",
    }


async def _never(*args: Any, **kwargs: Any) -> object:
    raise AssertionError("no payment is run here")


@pytest.mark.trio
async def test_a_failed_injected_part_found_after_a_restart_is_recorded_failed(
    sock: Path, tmp_path: Path
) -> None:
    db = tmp_path / "barq.sqlite3"
    first = open_store(db)
    first.put_payment(_pending())
    first.close()
    waited: list[Any] = []

    def waitsendpay(req: Any) -> Reply:
        waited.append(req.params)
        return Reply(
            error={
                "code": 202,
                "message": "Malformed error reply",
                "data": {**_injected_part("failed"), "onionreply": "ab" * 292},
            }
        )

    handlers = {
        "listsendpays": Reply(result={"payments": [_injected_part("pending")]}),
        "waitsendpay": waitsendpay,
    }
    store = open_store(db)
    journal = _Journal(store)
    try:
        with trio.fail_after(TIMEOUT_S):
            async with running(sock, handlers) as (_, node), anyio.create_task_group() as tg:
                coordinator = PaymentCoordinator(
                    node=node, execute=_never, tg=tg, clock=lambda: 2000.0, journal=journal
                )
                coordinator.start()
                await journal.ended.wait()
                tg.cancel_scope.cancel()
        [view] = store.get_payments(H)
    finally:
        store.close()
    assert view.status is PaymentStatus.FAILED
    assert [p.state for p in view.parts] == [PartState.FAILED]
    assert view.inflight_msat == 0
    assert waited and waited[0]["partid"] == 1
