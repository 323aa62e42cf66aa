"""The payer node: a NodeInterface answering as lightningd does."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from sim_helpers import (
    SAT,
    SIM_BUDGET_S,
    invoice,
    opened,
    route_of,
    send_and_wait,
    with_hop,
)

from barq.errors import InvalidParams, PartFailed, RpcError
from barq.graph.synthetic import line_network
from barq.model import Route, SendpayStatus
from barq.node.base import NodeInterface


@pytest.mark.trio
async def test_node_satisfies_interface_and_getinfo() -> None:
    with trio.fail_after(5):
        g, keys = line_network(2)
        async with opened(g, keys, network="regtest", blockheight=800_123) as net:
            node = net.node(g.nodes[0])
            assert isinstance(node, NodeInterface)
            assert net.node(g.nodes[0]) is node
            info = await node.get_info()
            assert (info.id, info.network, info.blockheight) == (g.nodes[0], "regtest", 800_123)
            with pytest.raises(InvalidParams):
                net.node("02" + "00" * 32)


@pytest.mark.trio
async def test_sendpay_refusals_mirror_lightningd(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            inv = await invoice(net, node, g.nodes[2], 1_000 * SAT)
            route = route_of(g, [0, 1, 2], 1_000 * SAT)
            kw: dict[str, Any] = dict(total_msat=1_000 * SAT, payment_secret=inv.payment_secret)
            with pytest.raises(RpcError) as ei:
                await node.sendpay(Route(hops=()), inv.payment_hash, partid=0, groupid=1, **kw)
            assert ei.value.rpc_code == -32602
            await node.sendpay(route, inv.payment_hash, partid=1, groupid=1, **kw)
            with pytest.raises(RpcError) as ei:  # same part still in flight
                await node.sendpay(route, inv.payment_hash, partid=1, groupid=1, **kw)
            assert ei.value.rpc_code == 200
            with pytest.raises(RpcError) as ei:  # reusing the part id with another route
                await node.sendpay(
                    with_hop(route, 1, channel="101x1x0"),
                    inv.payment_hash,
                    partid=1,
                    groupid=1,
                    **kw,
                )
            assert ei.value.rpc_code == 200
            with pytest.raises(RpcError) as ei:  # another group while one is in flight
                await node.sendpay(route, inv.payment_hash, partid=2, groupid=2, **kw)
            assert ei.value.rpc_code == 200
            with pytest.raises(RpcError) as ei:  # a parallel part with another total
                await node.sendpay(
                    route,
                    inv.payment_hash,
                    partid=2,
                    groupid=1,
                    total_msat=2_000 * SAT,
                    payment_secret=inv.payment_secret,
                )
            assert ei.value.rpc_code == 203
            with pytest.raises(RpcError) as ei:
                await node.waitsendpay(inv.payment_hash, partid=9, groupid=1)
            assert ei.value.rpc_code == 208
            st = await node.waitsendpay(inv.payment_hash, partid=1, groupid=1)
            assert st.status == SendpayStatus.COMPLETE
            with pytest.raises(RpcError) as ei:
                await node.sendpay(route, inv.payment_hash, partid=5, groupid=3, **kw)
            assert ei.value.rpc_code == 201
            # waitsendpay on a finished part answers at once, again
            st2 = await node.waitsendpay(inv.payment_hash, partid=1, groupid=1, timeout_s=0)
            assert st2 == st


@pytest.mark.trio
async def test_failed_part_id_can_be_reused(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            inv = await invoice(net, node, g.nodes[2], 1_000 * SAT)
            route = route_of(g, [0, 1, 2], 1_000 * SAT)
            err = await send_and_wait(node, with_hop(route, 1, channel="5x5x5"), inv)
            assert isinstance(err, PartFailed)
            ok = await send_and_wait(node, route, inv)
            assert ok.status == SendpayStatus.COMPLETE
            parts = await node.listsendpays()
            assert len(parts) == 1 and parts[0].status == SendpayStatus.COMPLETE  # replaced
