"""barq.testing: the scripted node behaves like a node, and its money-rule checks do fire."""

from __future__ import annotations

from typing import Any

import msgspec
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


@pytest.mark.trio
async def test_a_part_is_resolved_from_the_instant_waitsendpay_reports_it(
    autojump_clock: Any,
) -> None:
    """Woken a rounding error short of the scripted instant (0.955 s + 2.049 s), the node
    still shows the part failed to the ``sendpay`` that follows its answer."""
    lat = 3.00436238020565
    node = ScriptedNode(
        graph=D.graph,
        our_id=D.us,
        handler=lambda p: fail_at(p.route, 1, FailCode.TEMPORARY_NODE_FAILURE, after_s=lat),
    )
    b = node.add_invoice(payee=D.dest, amount_msat=10_000_000)
    h = node.invoice(b).payment_hash
    node.expect(b, Limits(maxfee_msat=10_000, maxdelay=2016, maxparts=2))
    with trio.fail_after(60):
        await send(node, h, 1, route(10_000_000))
        await trio.sleep(0.9552752869410048)
        with pytest.raises(PartFailed):
            await node.waitsendpay(h, partid=1, groupid=1)
        assert [p.status for p in await node.listsendpays(h)] == [SendpayStatus.FAILED]
        await send(node, h, 2, route(10_000_000))
    assert node.violations == []


# -- what a real node refuses whatever the script says (barq.sim.rules) ---------------------


def scripted(**kw: Any) -> tuple[ScriptedNode, str]:
    node = ScriptedNode(graph=D.graph, our_id=D.us, handler=lambda p: Succeed(after_s=1), **kw)
    return node, node.invoice(node.add_invoice(payee=D.dest, amount_msat=10_000_000)).payment_hash


@pytest.mark.trio
async def test_first_hop_limits_refuse_at_sendpay(autojump_clock: Any) -> None:
    node, h = scripted()
    node.set_spendable("101x1x0", 12_000_000)
    with trio.fail_after(60):
        await send(node, h, 1, route(6_000_000))
        with pytest.raises(PartFailed) as info:  # 6,001,000 more do not fit in what is left
            await send(node, h, 2, route(6_000_000))
        f = info.value.failure
        assert (f.failcode, f.erring_index, f.erring_node, f.erring_channel) == (
            FailCode.TEMPORARY_CHANNEL_FAILURE,
            0,
            D.us,
            "101x1x0",
        )
        assert info.value.method == "sendpay" and "Capacity exceeded" in info.value.message
        unknown = Route(hops=(msgspec.structs.replace(route(1).hops[0], channel="9x9x9"),))
        with pytest.raises(PartFailed) as info:
            await send(node, h, 3, unknown)
        assert info.value.failure.failcode == FailCode.UNKNOWN_NEXT_PEER
        node.channels = [msgspec.structs.replace(c, htlc_min_msat=5_000_000) for c in node.channels]
        with pytest.raises(PartFailed) as info:
            await send(node, h, 4, route(1_000_000))
        assert info.value.failure.failcode == FailCode.AMOUNT_BELOW_MINIMUM
        # refused parts are recorded failed, as lightningd does; the first part is untouched
        assert [(p.partid, p.status) for p in await node.listsendpays(h)] == [
            (1, SendpayStatus.PENDING),
            (2, SendpayStatus.FAILED),
            (3, SendpayStatus.FAILED),
            (4, SendpayStatus.FAILED),
        ]
        assert (await node.waitsendpay(h, partid=1, groupid=1)).status is SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_payee_checks_fail_a_part_scripted_to_succeed(autojump_clock: Any) -> None:
    node, h = scripted()
    with trio.fail_after(60):
        cases = [
            (1, route(10_000_000, delay=58), 9_999_999, "55" * 32),  # total below the amount
            (2, route(10_000_000, delay=58), 10_000_000, "00" * 32),  # wrong secret
        ]
        for partid, r, total, secret in cases:
            await node.sendpay(
                r, h, partid=partid, groupid=partid, total_msat=total, payment_secret=secret
            )
            with pytest.raises(PartFailed) as info:
                await node.waitsendpay(h, partid=partid, groupid=partid)
            f = info.value.failure
            assert f.failcode == FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
            assert (f.erring_index, f.erring_node) == (2, D.dest)
        r = route(10_000_000)  # the final CLTV one block below the invoice's 18
        low_cltv = Route(hops=(r.hops[0], msgspec.structs.replace(r.hops[1], delay=17)))
        await send(node, h, 3, low_cltv)
        with pytest.raises(PartFailed, match="WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS"):
            await node.waitsendpay(h, partid=3, groupid=1)
        done = await send(node, h, 4, route(10_000_000))  # the right part is paid
        assert done.status is SendpayStatus.PENDING
        assert (await node.waitsendpay(h, partid=4, groupid=1)).status is SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_sendpay_refusals_as_the_simulator(autojump_clock: Any) -> None:
    node, h = scripted()
    with trio.fail_after(60):
        with pytest.raises(RpcError) as info:
            await send(node, h, 1, Route(hops=()))
        assert info.value.rpc_code == -32602
        await send(node, h, 2, route(5_000_000))
        with pytest.raises(RpcError) as info:  # another group while one is in flight
            await node.sendpay(
                route(5_000_000), h, partid=3, groupid=2, total_msat=10_000_000, payment_secret=None
            )
        assert info.value.rpc_code == 200 and "groupid=1 still in progress" in info.value.message
        with pytest.raises(RpcError) as info:  # a parallel part with another total
            await send(node, h, 3, route(5_000_000), total=20_000_000)
        assert info.value.rpc_code == 203
        assert not isinstance(info.value, PartFailed)
