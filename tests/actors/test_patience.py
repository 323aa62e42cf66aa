"""A payment never gives up while it can still complete (issue 13 item 1), on the simulator.

The diamond (``us -> a|b|c -> dest``, every channel at half its 1,000,000 sat) carries
1,450,000 sat only over all three paths at once. A glitch at ``a`` (temporary channel
failures for parts of any size) teaches the payment that ``a -> dest`` is nearly empty
while the parts over ``b`` and ``c`` sit at the payee: the amount left has no route. Before,
the supervisor waited for the parts in flight, which the payee only fails at its MPP
timeout (60 s = retry_for): the payment failed. Now it waits a while, relaxes what planning
assumed, plans again, and completes.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from actor_helpers import diamond

from barq.actors import open_runtime
from barq.errors import RouteNotFound, StoppedRetrying
from barq.model import FailCode, Hop, RouteFailure
from barq.model.payment import EngineConfig, PartState, PaymentStatus, PayParams
from barq.sim import PartInfo, SimulatedNetwork
from barq.testing import CheckedNode, Limits

CFG = EngineConfig(strategies_in_thread=False, min_part_msat=100_000, slow_mode=True)
AMOUNT = 1_450_000_000


def _limits(amount: int) -> Limits:
    return Limits(
        maxfee_msat=max(CFG.maxfee_base_msat, amount * CFG.maxfee_ppm // 10**6),
        maxdelay=CFG.maxdelay,
        maxparts=CFG.maxparts,
    )


async def _pay_through_glitch(glitches: int, amount: int = AMOUNT) -> tuple[Any, float, Any, Any]:
    """Pay ``amount`` while the first ``glitches`` parts reaching ``a`` fail there.

    Returns (view or the error raised, simulated seconds, the network, the checked node).
    """
    d = diamond()
    async with SimulatedNetwork.open(d.graph, seed=3, liquidity="half") as net:
        failed: list[int] = []

        def glitch(k: int, hop: Hop, part: PartInfo) -> RouteFailure | None:
            if hop.id == d.a and len(failed) < glitches:
                failed.append(part.partid)
                return RouteFailure(failcode=FailCode.TEMPORARY_CHANNEL_FAILURE, erring_index=-1)
            return None

        net.fault_hook = glitch
        node = CheckedNode(net.node(d.us))
        async with open_runtime(node, CFG, clock=net.now) as rt:
            b = net.create_invoice(d.dest, amount)
            node.expect(net.decode(b).payment_hash, amount, _limits(amount))
            t0 = trio.current_time()
            result: Any
            try:
                result = await rt.pay(PayParams(invstring=b, strategy="mincostflow"))
            except (RouteNotFound, StoppedRetrying) as exc:
                result = exc
            return result, trio.current_time() - t0, net, node


@pytest.mark.trio
@pytest.mark.parametrize("glitches", [2, 3])
async def test_amount_without_route_is_planned_again_before_the_mpp_timeout(
    autojump_clock: Any, glitches: int
) -> None:
    """2 glitches: the lesson "a -> dest is nearly empty" is set aside (uncertainty);
    3 glitches: ``a -> dest`` struck out for the payment, then forgiven."""
    with trio.fail_after(600):
        view, took_s, net, node = await _pay_through_glitch(glitches)
    assert not isinstance(view, Exception), view.message
    assert view.status is PaymentStatus.COMPLETE
    assert view.delivered_msat == AMOUNT == net.received_msat(view.payment_hash)
    assert took_s < 30  # well before the payee's MPP timeout (60 s)
    failed = [p for p in view.parts if p.state is PartState.FAILED]
    assert len(failed) == glitches  # the glitches only: no part timed out at the payee
    assert net.overpayments == [] and node.violations == []


@pytest.mark.trio
async def test_a_payment_that_cannot_complete_says_retry_for_ended_it(
    autojump_clock: Any,
) -> None:
    """``a`` fails every part: the payment tries until retry_for, then says so."""
    with trio.fail_after(600):
        err, took_s, net, node = await _pay_through_glitch(10**6)
    assert isinstance(err, StoppedRetrying)
    assert err.data["ended_by"] == "retry_for"
    assert took_s >= CFG.retry_for_s
    assert net.overpayments == [] and node.violations == []


@pytest.mark.trio
async def test_capacity_proven_short_ends_at_once(autojump_clock: Any) -> None:
    """Our three channels hold 1,500,000 sat in all: 2,000,000 sat can never leave."""
    with trio.fail_after(600):
        err, took_s, _net, node = await _pay_through_glitch(0, amount=2_000_000_000)
    assert isinstance(err, RouteNotFound)
    assert err.data["ended_by"] == "capacity"
    assert "our channels can send" in err.message
    assert took_s < 1
    assert node.violations == []
