"""Forwarding: real fees, HTLC limits, CLTV deltas, BOLT 4 failures, the fault hook."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from sim_helpers import (
    EPOCH,
    SAT,
    SIM_BUDGET_S,
    invoice,
    opened,
    route_of,
    rows_of_path,
    send_and_wait,
    with_hop,
)

from barq.errors import PartFailed
from barq.graph.synthetic import line_network
from barq.model import FailCode, Hop, RouteFailure, SendpayStatus
from barq.sim import PartInfo


@pytest.mark.trio
async def test_multihop_exact_fees_succeed_and_underpaying_fails(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(4, 1_000_000, fee_base_msat=1000, fee_ppm=100, cltv_delta=40)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            amount = 50_000 * SAT
            route = route_of(g, [0, 1, 2, 3], amount)
            # node 2 charges 1000 + 50_000_000*100//1e6 = 6000 for the last hop, node 1 a bit more
            assert route.hops[1].amount_msat - route.hops[2].amount_msat == 6000
            assert route.hops[0].delay == 18 + 80
            inv = await invoice(net, node, g.nodes[3], amount)
            res = await send_and_wait(node, route, inv)
            assert res.status == SendpayStatus.COMPLETE
            assert res.amount_msat == amount and res.amount_sent_msat == route.sent_msat
            # every forwarding node kept its fee: node 1 gained exactly its fee on net
            assert (
                net.liquidity_of("102x1x0", int(g.direction[rows_of_path(g, [1, 2])[0]]))
                == 500_000 * SAT - route.hops[1].amount_msat
            )
            # One msat short of node 2's fee.
            inv2 = await invoice(net, node, g.nodes[3], amount)
            short = with_hop(
                route_of(g, [0, 1, 2, 3], amount), 1, amount_msat=route.hops[1].amount_msat - 1
            )
            short = with_hop(short, 0, amount_msat=route.hops[0].amount_msat - 1)
            err = await send_and_wait(node, short, inv2)
            assert isinstance(err, PartFailed) and err.rpc_code == 204
            f = err.failure
            assert f.failcode == FailCode.FEE_INSUFFICIENT
            assert f.erring_index == 2 and f.erring_node == g.nodes[2]
            assert f.erring_channel == "103x1x0"
            assert f.channel_update is not None and f.channel_update.fee_base_msat == 1000
            assert "WIRE_FEE_INSUFFICIENT" in err.message
            # the failed part released everything it locked
            for scid in ("101x1x0", "102x1x0", "103x1x0"):
                assert net.locked_msat(scid, 0) == net.locked_msat(scid, 1) == 0


@pytest.mark.trio
async def test_insufficient_liquidity_names_the_channel(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(4, 1_000_000)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            e = rows_of_path(g, [2, 3])[0]
            net.set_balance("103x1x0", int(g.direction[e]), 10_000 * SAT)
            inv = await invoice(net, node, g.nodes[3], 20_000 * SAT)
            err = await send_and_wait(node, route_of(g, [0, 1, 2, 3], 20_000 * SAT), inv)
            assert isinstance(err, PartFailed)
            f = err.failure
            assert (f.failcode, f.erring_index, f.erring_channel, f.erring_direction) == (
                FailCode.TEMPORARY_CHANNEL_FAILURE,
                2,
                "103x1x0",
                int(g.direction[e]),
            )
            assert f.channel_update is not None
            # a smaller amount passes
            inv2 = await invoice(net, node, g.nodes[3], 9_000 * SAT)
            ok = await send_and_wait(node, route_of(g, [0, 1, 2, 3], 9_000 * SAT), inv2)
            assert ok.status == SendpayStatus.COMPLETE
            assert net.liquidity_of("103x1x0", int(g.direction[e])) == 1_000 * SAT


@pytest.mark.trio
async def test_hidden_policy_changes_htlc_min_max_cltv(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3, 1_000_000, cltv_delta=40)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            e = rows_of_path(g, [1, 2])[0]
            d = int(g.direction[e])
            path = [0, 1, 2]
            net.set_policy("102x1x0", d, htlc_min_msat=5_000 * SAT)
            inv = await invoice(net, node, g.nodes[2], 1_000 * SAT)
            err = await send_and_wait(node, route_of(g, path, 1_000 * SAT), inv)
            assert err.failure.failcode == FailCode.AMOUNT_BELOW_MINIMUM
            assert err.failure.erring_index == 1
            assert err.failure.channel_update.htlc_min_msat == 5_000 * SAT

            net.set_policy("102x1x0", d, htlc_min_msat=1000, htlc_max_msat=100_000 * SAT)
            inv = await invoice(net, node, g.nodes[2], 200_000 * SAT)
            err = await send_and_wait(node, route_of(g, path, 200_000 * SAT), inv)
            assert err.failure.failcode == FailCode.TEMPORARY_CHANNEL_FAILURE
            assert err.failure.channel_update.htlc_max_msat == 100_000 * SAT

            net.set_policy("102x1x0", d, cltv_delta=100)
            inv = await invoice(net, node, g.nodes[2], 1_000 * SAT)
            err = await send_and_wait(node, route_of(g, path, 1_000 * SAT), inv)
            f = err.failure
            assert (f.failcode, f.erring_index, f.erring_channel) == (
                FailCode.INCORRECT_CLTV_EXPIRY,
                1,
                "102x1x0",
            )
            assert f.channel_update.cltv_delta == 100 and f.channel_update.timestamp > EPOCH

            net.set_policy("102x1x0", d, cltv_delta=40, enabled=False)
            err = await send_and_wait(node, route_of(g, path, 1_000 * SAT), inv)
            assert err.failure.failcode == FailCode.CHANNEL_DISABLED
            assert err.failure.channel_update.disabled

            # gossip never learnt any of it
            gossip = await node.gossip_graph()
            assert int(gossip.cltv_delta[e]) == 40 and bool(gossip.enabled[e])
            assert int(gossip.htlc_max_msat[e]) == 1_000_000 * SAT


@pytest.mark.trio
async def test_unknown_channels(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            inv = await invoice(net, node, g.nodes[2], 1_000 * SAT)
            good = route_of(g, [0, 1, 2], 1_000 * SAT)
            # a forwarding node asked for a channel it does not have
            err = await send_and_wait(node, with_hop(good, 1, channel="999x9x9"), inv)
            f = err.failure
            assert (f.failcode, f.erring_index, f.erring_node, f.erring_channel) == (
                FailCode.UNKNOWN_NEXT_PEER,
                1,
                g.nodes[1],
                "999x9x9",
            )
            assert f.channel_update is None
            # our own first hop unknown: sendpay itself refuses, the part is recorded failed
            bad = with_hop(good, 0, channel="102x1x0")
            with pytest.raises(PartFailed) as ei:
                await node.sendpay(
                    bad,
                    inv.payment_hash,
                    partid=0,
                    groupid=2,
                    total_msat=1_000 * SAT,
                    payment_secret=inv.payment_secret,
                )
            assert ei.value.rpc_code == 204 and ei.value.method == "sendpay"
            assert ei.value.failure.erring_index == 0
            assert ei.value.failure.failcode == FailCode.UNKNOWN_NEXT_PEER
            assert ei.value.failure.erring_node == g.nodes[0]
            with pytest.raises(PartFailed):
                await node.waitsendpay(inv.payment_hash, partid=0, groupid=2)
            parts = await node.listsendpays(inv.payment_hash)
            assert [(p.groupid, p.status) for p in parts] == [
                (1, SendpayStatus.FAILED),
                (2, SendpayStatus.FAILED),
            ]


@pytest.mark.trio
async def test_fault_hook_injects_failures(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(4)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            seen: list[tuple[int, str]] = []

            def hook(k: int, hop: Hop, part: PartInfo) -> RouteFailure | None:
                seen.append((k, hop.id))
                if hop.id == g.nodes[2]:
                    return RouteFailure(failcode=FailCode.PERMANENT_NODE_FAILURE, erring_index=-1)
                return None

            net.fault_hook = hook
            inv = await invoice(net, node, g.nodes[3], 1_000 * SAT)
            err = await send_and_wait(node, route_of(g, [0, 1, 2, 3], 1_000 * SAT), inv)
            f = err.failure
            assert (f.failcode, f.erring_index, f.erring_node) == (
                FailCode.PERMANENT_NODE_FAILURE,
                2,
                g.nodes[2],
            )
            assert err.rpc_code == 204
            assert seen == [(1, g.nodes[1]), (2, g.nodes[2])]
            # a hook failing the destination makes it a destination failure
            net.fault_hook = lambda k, hop, part: (
                RouteFailure(failcode=FailCode.PERMANENT_CHANNEL_FAILURE, erring_index=0)
                if k == len(part.route.hops)
                else None
            )
            err = await send_and_wait(node, route_of(g, [0, 1, 2, 3], 1_000 * SAT), inv, partid=1)
            assert err.failure.erring_index == 3 and err.rpc_code == 203
            net.fault_hook = None
            ok = await send_and_wait(node, route_of(g, [0, 1, 2, 3], 1_000 * SAT), inv, partid=2)
            assert ok.status == SendpayStatus.COMPLETE
            assert net.counters["WIRE_PERMANENT_NODE_FAILURE"] == 1


@pytest.mark.trio
async def test_a_full_channel_refuses_one_more_htlc(autojump_clock: Any) -> None:
    """max_accepted_htlcs: with 2 of our parts held at the payee over 1 -> 2, a third is
    refused by node 1 with temporary_channel_failure; once they settle, slots are free."""
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3, 1_000_000)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            d = int(g.direction[rows_of_path(g, [1, 2])[0]])
            net.set_max_htlcs("102x1x0", d, 2)
            part = 10_000 * SAT
            inv = await invoice(net, node, g.nodes[2], 3 * part)
            route = route_of(g, [0, 1, 2], part)
            for pid in (1, 2):  # held by the payee: the set is not complete yet
                await node.sendpay(
                    route,
                    inv.payment_hash,
                    partid=pid,
                    groupid=1,
                    total_msat=3 * part,
                    payment_secret=inv.payment_secret,
                )
            await trio.sleep(1)
            assert net.htlcs_of("102x1x0", d) == 2
            err = await send_and_wait(node, route, inv, partid=3, total_msat=3 * part)
            assert isinstance(err, PartFailed)
            f = err.failure
            assert (f.failcode, f.erring_index, f.erring_channel) == (
                FailCode.TEMPORARY_CHANNEL_FAILURE,
                1,
                "102x1x0",
            )
            assert f.message == "Too many HTLCs"
            # the payee gives the held set up (mpp timeout): both slots come back
            for pid in (1, 2):
                with pytest.raises(PartFailed):
                    await node.waitsendpay(inv.payment_hash, partid=pid, groupid=1)
            assert net.htlcs_of("102x1x0", d) == 0
            inv2 = await invoice(net, node, g.nodes[2], part)
            ok = await send_and_wait(node, route, inv2, partid=1)
            assert ok.status == SendpayStatus.COMPLETE
            assert net.htlcs_of("102x1x0", d) == 0
