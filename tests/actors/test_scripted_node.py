"""barq.testing: the scripted node behaves like a node, and its money-rule checks do fire."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from actor_helpers import diamond

from barq.errors import PartFailed, RpcError
from barq.model import FailCode, Hop, Route, SendpayStatus
from barq.node.base import NodeInterface
from barq.testing import CheckedNode, Limits, Refuse, ScriptedNode, Succeed, fail_at

D = diamond()


def route(amount: int, fee: int = 1000, delay: int = 58) -> Route:
    return Route(
        hops=(
            Hop(
                id=D.a,
                channel="101x1x0",
                direction=int(D.sd("101x1x0", D.us)[-1]),
                amount_msat=amount + fee,
                delay=delay,
            ),
            Hop(
                id=D.dest,
                channel="103x1x0",
                direction=int(D.sd("103x1x0", D.a)[-1]),
                amount_msat=amount,
                delay=18,
            ),
        )
    )


async def send(node: Any, h: str, partid: int, r: Route, total: int = 10_000_000) -> Any:
    return await node.sendpay(
        r, h, partid=partid, groupid=1, total_msat=total, payment_secret="55" * 32
    )


@pytest.mark.trio
async def test_parts_follow_their_scripts(autojump_clock: Any) -> None:
    def handler(p: Any) -> Any:
        if p.partid == 1:
            return Succeed(after_s=2)
        if p.partid == 2:
            return fail_at(p.route, 1, FailCode.TEMPORARY_CHANNEL_FAILURE, after_s=1)
        return Refuse(message="no", rpc_code=204)

    node = ScriptedNode(graph=D.graph, our_id=D.us, handler=handler)
    assert isinstance(node, NodeInterface)
    h = node.invoice(node.add_invoice(payee=D.dest, amount_msat=10_000_000)).payment_hash
    with trio.fail_after(60):
        st = await send(node, h, 1, route(5_000_000))
        assert st.status is SendpayStatus.PENDING
        await send(node, h, 2, route(5_000_000))
        spend = {c.scid: c.spendable_msat for c in await node.list_peer_channels()}
        assert spend["101x1x0"] == 10**9 - 2 * 5_001_000
        with pytest.raises(PartFailed) as info:
            await node.waitsendpay(h, partid=2, groupid=1)
        assert info.value.failure.erring_index == 1
        done = await node.waitsendpay(h, partid=1, groupid=1)
        assert done.status is SendpayStatus.COMPLETE and done.payment_preimage
        spend = {c.scid: c.spendable_msat for c in await node.list_peer_channels()}
        assert spend["101x1x0"] == 10**9 - 5_001_000  # the failed part's amount came back
        with pytest.raises(RpcError) as refused:
            await send(node, h, 3, route(1))
        assert refused.value.rpc_code == 201  # already paid
        assert [p.status for p in await node.listsendpays(h)] == [
            SendpayStatus.COMPLETE,
            SendpayStatus.FAILED,
            SendpayStatus.FAILED,
        ]


@pytest.mark.trio
async def test_money_rule_breaches_are_recorded(autojump_clock: Any) -> None:
    node = ScriptedNode(graph=D.graph, our_id=D.us, handler=lambda p: Succeed(after_s=10))
    b = node.add_invoice(payee=D.dest, amount_msat=10_000_000)
    h = node.invoice(b).payment_hash
    node.expect(b, Limits(maxfee_msat=1500, maxdelay=50, maxparts=2))
    with trio.fail_after(60):
        await send(node, h, 1, route(6_000_000, fee=1000, delay=40))
        assert node.violations == []
        await send(node, h, 2, route(6_000_000, fee=1000, delay=60))
        with pytest.raises(RpcError, match="already in flight"):  # refused, as CLN does
            await send(node, h, 1, route(1_000_000, fee=0, delay=40), total=9)
    text = "\n".join(node.violations)
    for words in (
        "in flight + delivered 12000000 > amount 10000000",
        "fees 2000 > maxfee 1500",
        "delay 60 > maxdelay 50",
        "3 parts > maxparts 2",
        "reused for another route",
        "total_msat 9 != amount",
    ):
        assert words in text


@pytest.mark.trio
async def test_checked_node_wraps_any_node(autojump_clock: Any) -> None:
    inner = ScriptedNode(graph=D.graph, our_id=D.us, handler=lambda p: Succeed(after_s=1))
    h = inner.invoice(inner.add_invoice(payee=D.dest, amount_msat=10_000_000)).payment_hash
    node = CheckedNode(inner)
    node.expect(h, 10_000_000, Limits(maxfee_msat=10_000, maxdelay=2016, maxparts=16))
    with trio.fail_after(60):
        await send(node, h, 1, route(6_000_000))
        await send(node, h, 2, route(6_000_000))
    assert node.violations == ["" + h[:8] + ": in flight + delivered 12000000 > amount 10000000"]
    assert len(node.sent) == 2 and (await node.get_info()).id == D.us
