"""A pay call is answered at the first preimage (as xpay); ``slow_mode`` waits for every part.

The diamond's paths hold 1,000,000 sat each: 1,500,000 sat goes in two parts or more.
The part over ``a`` (``103x1x0``) settles after 1 s, the others after 10 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from actor_helpers import CONFIG, Scripted, StoreJournal, diamond, through

from barq.actors import open_runtime
from barq.model.payment import PartState, PaymentStatus, PayParams
from barq.store import open_store
from barq.testing import Limits, ScriptedNode, Succeed

AMOUNT = 1_500_000_000


def _node() -> tuple[ScriptedNode, str]:
    d = diamond()
    handler = Scripted(default=lambda p: Succeed(after_s=10.0)).when(
        through("103x1x0"), lambda p: Succeed(after_s=1.0)
    )
    node = ScriptedNode(graph=d.graph, our_id=d.us, handler=handler)
    b = node.add_invoice(payee=d.dest, amount_msat=AMOUNT)
    fee = max(CONFIG.maxfee_base_msat, AMOUNT * CONFIG.maxfee_ppm // 10**6)
    node.expect(b, Limits(maxfee_msat=fee, maxdelay=CONFIG.maxdelay, maxparts=CONFIG.maxparts))
    return node, b


@pytest.mark.trio
async def test_answered_at_the_first_preimage_and_followed_to_the_end(
    autojump_clock: Any, tmp_path: Path
) -> None:
    cfg = msgspec.structs.replace(CONFIG, slow_mode=False, default_strategy="mincostflow")
    node, b = _node()
    with open_store(tmp_path / "db") as store, trio.fail_after(100):
        async with open_runtime(node, cfg, journal=StoreJournal(store)) as rt:
            t0 = trio.current_time()
            out = await rt.pay_outcome(PayParams(invstring=b))
            answered_s = trio.current_time() - t0
            view = out.view
            [live] = rt.status()
            assert live.status is PaymentStatus.PENDING  # still settling
            await trio.sleep(20)
            [settled] = await rt.astatus()
        stored = store.get_payments()
    assert out.answer_at == "preimage" and answered_s < 5
    assert view.status is PaymentStatus.COMPLETE and view.payment_preimage
    states = [p.state for p in view.parts]
    assert PartState.SUCCEEDED in states and PartState.INFLIGHT in states
    # every part's amount and fee count, as xpay's amount_sent_msat does
    assert view.amount_sent_msat == sum(p.amount_sent_msat for p in view.parts)
    # the store and status followed the parts to the end
    assert settled.status is PaymentStatus.COMPLETE
    assert all(p.state is PartState.SUCCEEDED for p in settled.parts)
    assert stored == [settled]
    assert settled.amount_sent_msat == view.amount_sent_msat
    assert {"decode", "graph_refresh", "plan", "first_sendpay", "total"} <= set(out.timings_ms)
    assert node.violations == []


@pytest.mark.trio
async def test_slow_mode_answers_once_every_part_settled(autojump_clock: Any) -> None:
    cfg = msgspec.structs.replace(CONFIG, slow_mode=True, default_strategy="mincostflow")
    node, b = _node()
    with trio.fail_after(100):
        async with open_runtime(node, cfg) as rt:
            t0 = trio.current_time()
            out = await rt.pay_outcome(PayParams(invstring=b))
            answered_s = trio.current_time() - t0
    assert out.answer_at == "end" and answered_s >= 10
    assert len(out.view.parts) >= 2
    assert all(p.state is PartState.SUCCEEDED for p in out.view.parts)
    assert out.view.delivered_msat == AMOUNT
    assert out.timings_ms["waits"] > 0
