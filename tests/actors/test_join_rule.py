"""Two calls, one payment hash: the join rule end to end (issue 17 item 1).

A call that finds a payment of its hash running joins it only if it agrees on
what is paid (:func:`barq.payment.join_refusal`); otherwise it is refused with
200 and sends nothing. Only calls that asked for what was paid answer
"complete".
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
from actor_helpers import CONFIG, Diamond, diamond

from barq.actors import open_runtime
from barq.errors import AlreadyPaid, BarqError, PaymentInProgress, UnknownStrategy
from barq.model import PartStatus
from barq.model.payment import PaymentStatus, PayOutcome, PayParams
from barq.testing import ScriptedNode, Succeed

AMOUNT = 1_000_000_000


class SlowNode(ScriptedNode):
    """``listsendpays`` takes a second: a call is still deciding when the next one comes."""

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        await anyio.sleep(1)
        return await super().listsendpays(payment_hash)


def setup(node_type: type[ScriptedNode] = ScriptedNode) -> tuple[Diamond, ScriptedNode, str]:
    d = diamond()
    node = node_type(graph=d.graph, our_id=d.us, handler=lambda p: Succeed(after_s=5))
    return d, node, node.add_invoice(payee=d.dest, amount_msat=None)


async def call(rt: Any, out: dict[str, Any], name: str, params: PayParams) -> None:
    try:
        out[name] = await rt.pay_outcome(params)
    except BarqError as exc:
        out[name] = exc


@pytest.mark.trio
async def test_two_amounts_for_one_invoice_give_one_complete(autojump_clock: Any) -> None:
    """The hostile run's case: 1,000,000 and 2,000,000 msat for one amountless invoice at
    once both answered "complete" while the payee got the smaller amount."""
    _, node, b = setup()
    out: dict[str, Any] = {}
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt, anyio.create_task_group() as tg:
            tg.start_soon(call, rt, out, "first", PayParams(invstring=b, amount_msat=AMOUNT))
            await trio.sleep(0.5)
            tg.start_soon(call, rt, out, "other", PayParams(invstring=b, amount_msat=2 * AMOUNT))
            tg.start_soon(call, rt, out, "same", PayParams(invstring=b, amount_msat=AMOUNT))
        async with open_runtime(node, CONFIG) as rt:
            await call(rt, out, "later", PayParams(invstring=b, amount_msat=2 * AMOUNT))
    first, other, same, later = out["first"], out["other"], out["same"], out["later"]
    assert isinstance(first, PayOutcome) and first.view.status is PaymentStatus.COMPLETE
    assert first.view.delivered_msat == AMOUNT and not first.joined
    assert isinstance(other, PaymentInProgress) and other.code == 200
    assert "in progress" in other.message and f"asks for {2 * AMOUNT} msat" in other.message
    assert other.data["in_progress"]["amount_msat"] == AMOUNT
    assert isinstance(same, PayOutcome) and same.joined and same.view == first.view
    assert isinstance(later, AlreadyPaid) and later.code == 201
    assert sum(p.route.amount_msat for p in node.sent) == AMOUNT
    assert node.violations == []


@pytest.mark.trio
async def test_a_joining_call_may_not_set_tighter_limits(autojump_clock: Any) -> None:
    _, node, b = setup()
    out: dict[str, Any] = {}
    base = PayParams(invstring=b, amount_msat=AMOUNT)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt, anyio.create_task_group() as tg:
            tg.start_soon(call, rt, out, "first", base)
            await trio.sleep(0.5)
            for name, kw in {
                "cheaper": {"maxfee_msat": 1},
                "richer": {"maxfee_msat": 10**9},
                "fewer": {"maxparts": 1},
                "strategy": {"strategy": "direct"},  # how, not what: joins
            }.items():
                params = PayParams(invstring=b, amount_msat=AMOUNT, **kw)
                tg.start_soon(call, rt, out, name, params)
    assert isinstance(out["first"], PayOutcome) and not out["first"].joined
    for refused in ("cheaper", "fewer"):
        assert isinstance(out[refused], PaymentInProgress), refused
    for joined in ("richer", "strategy"):
        assert isinstance(out[joined], PayOutcome) and out[joined].joined, joined
    assert sum(p.route.amount_msat for p in node.sent) == AMOUNT  # one payment only


@pytest.mark.trio
async def test_a_joining_call_is_validated_as_its_own(autojump_clock: Any) -> None:
    _, node, b = setup()
    out: dict[str, Any] = {}
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt, anyio.create_task_group() as tg:
            tg.start_soon(call, rt, out, "first", PayParams(invstring=b, amount_msat=AMOUNT))
            await trio.sleep(0.5)
            bad = PayParams(invstring=b, amount_msat=AMOUNT, strategy="no-such-strategy")
            tg.start_soon(call, rt, out, "bad", bad)
    assert isinstance(out["bad"], UnknownStrategy)
    assert isinstance(out["first"], PayOutcome)


@pytest.mark.trio
async def test_a_call_waiting_on_a_payment_that_never_started_decides_for_itself(
    autojump_clock: Any,
) -> None:
    """The first call fails its validation after the second came: the second does not get
    the first's error, it pays."""
    _, node, b = setup(SlowNode)
    out: dict[str, Any] = {}
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt, anyio.create_task_group() as tg:
            bad = PayParams(invstring=b, amount_msat=AMOUNT, maxdelay=1)
            tg.start_soon(call, rt, out, "bad", bad)
            await trio.sleep(0.5)
            tg.start_soon(call, rt, out, "good", PayParams(invstring=b, amount_msat=AMOUNT))
    assert isinstance(out["bad"], BarqError) and "above maxdelay 1" in out["bad"].message
    assert isinstance(out["good"], PayOutcome) and not out["good"].joined
    assert out["good"].view.status is PaymentStatus.COMPLETE
