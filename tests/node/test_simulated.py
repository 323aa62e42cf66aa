"""The simulated network: forwarding rules, MPP receiver, locking, lightningd-like RPC shapes."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import trio

from barq.errors import InvalidInvoice, InvalidParams, PartFailed, RpcConnectionError, RpcError
from barq.graph import Graph
from barq.graph.synthetic import ChannelSpec, builtin_network, line_network, network_from_channels
from barq.invoice import bolt11
from barq.model import FailCode, Hop, Invoice, Route, RouteFailure, SendpayStatus
from barq.node.base import NodeInterface
from barq.node.simulated import PartInfo, SimulatedNetwork, SimulatedNode
from barq.routing import build_route

EPOCH = 1_700_000_000
SAT = 1000
# Under the autojump MockClock, fail_after counts simulated seconds (a deadlock jumps to it).
SIM_BUDGET_S = 600


def rows_of_path(g: Graph, path: Sequence[int]) -> list[int]:
    """Graph rows along node indexes ``path`` (the first channel found per pair)."""
    out = []
    for a, b in itertools.pairwise(path):
        es = [e for e in g.out_edges(g.nodes[a]) if int(g.dst[e]) == b]
        assert es, f"no channel {a}->{b}"
        out.append(es[0])
    return out


def route_of(g: Graph, path: Sequence[int], amount_msat: int, final_cltv: int = 18) -> Route:
    return build_route(g, rows_of_path(g, path), amount_msat, final_cltv)


def with_hop(route: Route, i: int, **changes: Any) -> Route:
    hops = list(route.hops)
    hops[i] = msgspec.structs.replace(hops[i], **changes)
    return Route(hops=tuple(hops))


@asynccontextmanager
async def opened(
    graph: Graph, keys: dict[str, bytes] | None = None, **kw: Any
) -> AsyncIterator[SimulatedNetwork]:
    kw.setdefault("liquidity", "half")
    kw.setdefault("epoch_s", EPOCH)
    async with SimulatedNetwork.open(graph, keys=keys, **kw) as net:
        yield net


async def invoice(
    net: SimulatedNetwork, payer: SimulatedNode, payee: str, amount_msat: int | None, **kw: Any
) -> Invoice:
    return await payer.decode_invoice(net.create_invoice(payee, amount_msat, **kw))


async def send_and_wait(
    node: SimulatedNode,
    route: Route,
    inv: Invoice,
    *,
    partid: int = 0,
    groupid: int = 1,
    total_msat: int | None = None,
    secret: str | None = "",
) -> Any:
    """The part's final PartStatus, or the PartFailed it raised."""
    total = total_msat if total_msat is not None else (inv.amount_msat or route.amount_msat)
    try:
        await node.sendpay(
            route,
            inv.payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total,
            payment_secret=inv.payment_secret if secret == "" else secret,
        )
        return await node.waitsendpay(inv.payment_hash, partid=partid, groupid=groupid)
    except PartFailed as e:
        return e


# -- synthetic networks ---------------------------------------------------------------


def test_builtin_network_shape_and_determinism() -> None:
    g, keys = builtin_network(seed=1)
    g2, keys2 = builtin_network(seed=1)
    g3, _ = builtin_network(seed=2)
    assert g.nodes == g2.nodes and g.scid == g2.scid and keys == keys2
    assert np.array_equal(g.fee_ppm, g2.fee_ppm) and np.array_equal(
        g.capacity_msat, g2.capacity_msat
    )
    assert g.nodes != g3.nodes
    assert g.num_nodes == 40 and len(keys) == 40
    for i, n in enumerate(g.nodes):
        assert keys[n] == hashlib.sha256(f"barq-sim-1-{i}".encode()).digest()
        assert bolt11.pubkey_of(keys[n]) == n
    # BOLT 7 directions, policies in range, parallel channels, hubs
    for e in range(g.num_edges):
        s, d = g.nodes[int(g.src[e])], g.nodes[int(g.dst[e])]
        assert int(g.direction[e]) == (0 if s < d else 1)
    assert g.capacity_msat.min() >= 500_000 * SAT and g.capacity_msat.max() <= 20_000_000 * SAT
    assert g.fee_base_msat.min() >= 0 and g.fee_base_msat.max() <= 1000
    assert g.fee_ppm.min() >= 1 and g.fee_ppm.max() <= 2000
    assert g.cltv_delta.min() >= 18 and g.cltv_delta.max() <= 144
    assert (g.htlc_min_msat == 1000).all() and (g.htlc_max_msat <= g.capacity_msat).all()
    assert (g.htlc_max_msat < g.capacity_msat).any()
    pairs = [tuple(sorted((int(g.src[e]), int(g.dst[e])))) for e in range(0, g.num_edges)]
    assert len(set(pairs)) < len(set(g.scid))  # some pair has parallel channels
    degree = np.bincount(g.src, minlength=g.num_nodes)
    assert degree.max() >= 8 and degree.min() >= 1
    assert len(set(g.scid)) * 2 == g.num_edges


def test_line_and_grid_builders() -> None:
    g, _ = line_network(3, 2_000_000)
    assert g.num_edges == 4 and sorted(set(g.scid)) == ["101x1x0", "102x1x0"]
    assert (g.capacity_msat == 2_000_000 * SAT).all()
    from barq.graph.synthetic import grid_network

    grid, _ = grid_network(2, 3)
    assert grid.num_nodes == 6 and grid.num_edges == 2 * 7
    with pytest.raises(InvalidParams):
        network_from_channels(2, [ChannelSpec(a=0, b=0, capacity_sat=1)])


# -- the payer's view -----------------------------------------------------------------


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
async def test_direct_payment_moves_balances(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(2, 1_000_000)
        async with opened(g, keys, hop_latency_s=0.05, latency_jitter_s=0) as net:
            a, b = g.nodes
            node = net.node(a)
            d = int(g.direction[g.edge("101x1x0", 0) if a < b else g.edge("101x1x0", 1)])
            before = net.liquidity_of("101x1x0", d)
            assert before == 500_000 * SAT
            inv = await invoice(net, node, b, 100_000 * SAT)
            assert inv.payee == b and inv.network == "regtest"
            t0 = trio.current_time()
            res = await send_and_wait(node, route_of(g, [0, 1], inv.amount_msat or 0), inv)
            assert res.status == SendpayStatus.COMPLETE
            assert (
                hashlib.sha256(bytes.fromhex(res.payment_preimage)).hexdigest() == inv.payment_hash
            )
            assert trio.current_time() - t0 == pytest.approx(0.1)  # one hop there and back
            assert net.liquidity_of("101x1x0", d) == before - 100_000 * SAT
            assert net.liquidity_of("101x1x0", 1 - d) == 500_000 * SAT + 100_000 * SAT
            assert net.received_msat(inv.payment_hash) == 100_000 * SAT
            assert net.is_paid(inv.payment_hash) and net.overpayments == []
            chans = await node.list_peer_channels()
            assert len(chans) == 1
            assert chans[0].spendable_msat == 400_000 * SAT
            assert chans[0].receivable_msat == 600_000 * SAT
            assert chans[0].peer_id == b and chans[0].scid == "101x1x0" and chans[0].usable
            assert chans[0].direction == d and chans[0].capacity_msat == 1_000_000 * SAT


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
async def test_final_node_checks(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            details = FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
            amount = 1_000 * SAT
            inv = await invoice(net, node, g.nodes[2], amount, min_final_cltv=30)
            assert inv.min_final_cltv_expiry == 30
            # final CLTV too small
            err = await send_and_wait(node, route_of(g, [0, 1, 2], amount, final_cltv=18), inv)
            assert err.failure.failcode == details and err.failure.erring_index == 2
            assert err.rpc_code == 203  # destination PERM failure, as lightningd
            assert err.failure.erring_channel == "102x1x0"
            route = route_of(g, [0, 1, 2], amount, final_cltv=30)
            # wrong and missing payment_secret
            for i, secret in enumerate(("00" * 32, None)):
                err = await send_and_wait(node, route, inv, partid=i + 1, secret=secret)
                assert err.failure.failcode == details and err.rpc_code == 203
            # total below the invoice amount, above twice it
            for i, total in enumerate((amount - 1, 2 * amount + 1)):
                err = await send_and_wait(node, route, inv, partid=10 + i, total_msat=total)
                assert err.failure.failcode == details
            # unknown payment hash
            fake = msgspec.structs.replace(inv, payment_hash="11" * 32)
            err = await send_and_wait(node, route, fake)
            assert err.failure.failcode == details
            # nothing was received, nothing is locked
            assert net.received_msat(inv.payment_hash) == 0
            assert net.locked_msat("101x1x0", 0) + net.locked_msat("101x1x0", 1) == 0
            # and then the right payment works
            ok = await send_and_wait(node, route, inv, partid=20)
            assert ok.status == SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_expired_invoice_fails_at_destination(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(2)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            inv = await invoice(net, node, g.nodes[1], 1_000 * SAT, expiry_s=10)
            await trio.sleep(11)
            err = await send_and_wait(node, route_of(g, [0, 1], 1_000 * SAT), inv)
            assert err.failure.failcode == FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS


def diamond() -> tuple[Graph, dict[str, bytes]]:
    """0 -> 1 -> 3 and 0 -> 2 -> 3, every channel 1M sat."""
    chans = [
        ChannelSpec(a=0, b=1, capacity_sat=1_000_000),
        ChannelSpec(a=1, b=3, capacity_sat=1_000_000),
        ChannelSpec(a=0, b=2, capacity_sat=1_000_000),
        ChannelSpec(a=2, b=3, capacity_sat=1_000_000),
    ]
    return network_from_channels(4, chans, seed=7)


@pytest.mark.trio
async def test_mpp_two_paths_reach_the_total(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = diamond()
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            total = 800_000 * SAT  # more than any single path holds (500k per side)
            inv = await invoice(net, node, g.nodes[3], total)
            r1 = route_of(g, [0, 1, 3], 450_000 * SAT)
            r2 = route_of(g, [0, 2, 3], 350_000 * SAT)
            for pid, r in ((1, r1), (2, r2)):
                st = await node.sendpay(
                    r,
                    inv.payment_hash,
                    partid=pid,
                    groupid=1,
                    total_msat=total,
                    payment_secret=inv.payment_secret,
                )
                assert st.status == SendpayStatus.PENDING
            # while both are in flight our spendable balances show the locks
            spend = {c.scid: c.spendable_msat for c in await node.list_peer_channels()}
            assert sorted(spend.values()) == sorted(500_000 * SAT - r.sent_msat for r in (r1, r2))
            res = [await node.waitsendpay(inv.payment_hash, partid=p, groupid=1) for p in (1, 2)]
            assert all(r.status == SendpayStatus.COMPLETE for r in res)
            assert res[0].payment_preimage == res[1].payment_preimage
            assert net.received_msat(inv.payment_hash) == total
            assert net.overpayments == []
            parts = await node.listsendpays(inv.payment_hash)
            assert [(p.partid, p.status) for p in parts] == [
                (1, SendpayStatus.COMPLETE),
                (2, SendpayStatus.COMPLETE),
            ]
            # paying again is refused by our own node
            with pytest.raises(RpcError) as ei:
                await node.sendpay(
                    r1,
                    inv.payment_hash,
                    partid=3,
                    groupid=2,
                    total_msat=total,
                    payment_secret=inv.payment_secret,
                )
            assert ei.value.rpc_code == 201


@pytest.mark.trio
async def test_mpp_timeout_after_60_simulated_seconds(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = diamond()
        async with opened(g, keys, hop_latency_s=0.05, latency_jitter_s=0) as net:
            node = net.node(g.nodes[0])
            total = 800_000 * SAT
            inv = await invoice(net, node, g.nodes[3], total)
            r1 = route_of(g, [0, 1, 3], 300_000 * SAT)
            t0 = trio.current_time()
            await node.sendpay(
                r1,
                inv.payment_hash,
                partid=1,
                groupid=1,
                total_msat=total,
                payment_secret=inv.payment_secret,
            )
            with pytest.raises(RpcError) as pending:
                await node.waitsendpay(inv.payment_hash, partid=1, groupid=1, timeout_s=30)
            assert pending.value.rpc_code == 200 and not isinstance(pending.value, PartFailed)
            # the HTLCs stay locked while the receiver holds the part
            e01 = rows_of_path(g, [0, 1])[0]
            assert net.locked_msat(g.scid[e01], int(g.direction[e01])) == r1.sent_msat
            with pytest.raises(PartFailed) as ei:
                await node.waitsendpay(inv.payment_hash, partid=1, groupid=1)
            f = ei.value.failure
            assert f.failcode == FailCode.MPP_TIMEOUT and f.erring_index == len(r1.hops)
            assert ei.value.rpc_code == 204  # MPP_TIMEOUT is not PERM
            elapsed = trio.current_time() - t0
            assert elapsed == pytest.approx(0.1 + 60 + 0.1, abs=1e-6)  # there, held, back
            assert net.received_msat(inv.payment_hash) == 0
            assert net.locked_msat(g.scid[e01], 0) + net.locked_msat(g.scid[e01], 1) == 0
            # a new set can still complete the payment after the timeout
            r2 = route_of(g, [0, 2, 3], 400_000 * SAT)
            r3 = route_of(g, [0, 1, 3], 400_000 * SAT)
            for pid, r in ((2, r2), (3, r3)):
                await node.sendpay(
                    r,
                    inv.payment_hash,
                    partid=pid,
                    groupid=1,
                    total_msat=total,
                    payment_secret=inv.payment_secret,
                )
            for pid in (2, 3):
                st = await node.waitsendpay(inv.payment_hash, partid=pid, groupid=1)
                assert st.status == SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_htlcs_lock_liquidity_concurrently(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3, 1_000_000)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            e12 = rows_of_path(g, [1, 2])[0]
            net.set_balance("102x1x0", int(g.direction[e12]), 150_000 * SAT)
            invs = [await invoice(net, node, g.nodes[2], 100_000 * SAT) for _ in range(2)]
            route = route_of(g, [0, 1, 2], 100_000 * SAT)
            results: list[Any] = [None, None]

            async def one(i: int) -> None:
                results[i] = await send_and_wait(node, route, invs[i])

            async with trio.open_nursery() as nursery:
                for i in range(2):
                    nursery.start_soon(one, i)
            outcomes = sorted(type(r).__name__ for r in results)
            assert outcomes == ["PartFailed", "PartStatus"]
            failed = next(r for r in results if isinstance(r, PartFailed))
            assert failed.failure.failcode == FailCode.TEMPORARY_CHANNEL_FAILURE
            assert failed.failure.erring_channel == "102x1x0"
            assert net.liquidity_of("102x1x0", int(g.direction[e12])) == 50_000 * SAT

            # At our own first hop the lock is visible synchronously: the 2nd sendpay refuses.
            e01 = rows_of_path(g, [0, 1])[0]
            net.set_balance("101x1x0", int(g.direction[e01]), 150_000 * SAT)
            net.set_balance("102x1x0", int(g.direction[e12]), 900_000 * SAT)
            invs = [await invoice(net, node, g.nodes[2], 100_000 * SAT) for _ in range(2)]
            await node.sendpay(
                route,
                invs[0].payment_hash,
                partid=0,
                groupid=1,
                total_msat=100_000 * SAT,
                payment_secret=invs[0].payment_secret,
            )
            chans = await node.list_peer_channels()
            assert chans[0].spendable_msat == 150_000 * SAT - route.sent_msat
            with pytest.raises(PartFailed) as ei:
                await node.sendpay(
                    route,
                    invs[1].payment_hash,
                    partid=0,
                    groupid=1,
                    total_msat=100_000 * SAT,
                    payment_secret=invs[1].payment_secret,
                )
            assert ei.value.failure.failcode == FailCode.TEMPORARY_CHANNEL_FAILURE
            assert ei.value.failure.erring_index == 0
            st = await node.waitsendpay(invs[0].payment_hash, partid=0, groupid=1)
            assert st.status == SendpayStatus.COMPLETE


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
async def test_invoices_for_nodes_without_keys() -> None:
    with trio.fail_after(5):
        g, _ = line_network(2)
        async with opened(g, None) as net:  # no private keys known
            node = net.node(g.nodes[0])
            text = net.create_invoice(g.nodes[1], 5_000, description="x")
            inv = await node.decode_invoice(text)
            assert inv.payee == g.nodes[1] and inv.amount_msat == 5_000
            with pytest.raises(InvalidInvoice):
                bolt11.decode(text)  # a strict decoder sees the simulator's signature
            with pytest.raises(InvalidInvoice):
                await node.decode_invoice(text[:-1] + ("q" if text[-1] != "q" else "p"))
            assert net.preimage_of(inv.payment_hash) is not None


@pytest.mark.trio
async def test_private_channels_are_hinted_not_gossiped(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        chans = [
            ChannelSpec(a=0, b=1, capacity_sat=1_000_000),
            ChannelSpec(a=1, b=2, capacity_sat=1_000_000, private=True, scid="5x1x0"),
        ]
        g, keys = network_from_channels(3, chans)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            gossip = await node.gossip_graph()
            assert gossip.num_edges == 2 and "5x1x0" not in gossip.scid
            inv = await invoice(net, node, g.nodes[2], 1_000 * SAT)
            assert len(inv.route_hints) == 1
            hint = inv.route_hints[0][0]
            assert (hint.node_id, hint.scid) == (g.nodes[1], "5x1x0")
            ok = await send_and_wait(node, route_of(g, [0, 1, 2], 1_000 * SAT), inv)
            assert ok.status == SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_not_running_network_refuses_sendpay(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(2)
        net = SimulatedNetwork(g, keys=keys, epoch_s=EPOCH)
        node = net.node(g.nodes[0])
        inv = await node.decode_invoice(net.create_invoice(g.nodes[1], 1_000))
        with pytest.raises(RpcConnectionError):
            await node.sendpay(
                route_of(g, [0, 1], 1_000),
                inv.payment_hash,
                partid=0,
                groupid=1,
                total_msat=1_000,
                payment_secret=inv.payment_secret,
            )
        assert await node.listsendpays() == []
        # run() under a nursery works too
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            ok = await send_and_wait(node, route_of(g, [0, 1], 1_000), inv)
            assert ok.status == SendpayStatus.COMPLETE
            nursery.cancel_scope.cancel()


# -- balances, oracle, determinism ----------------------------------------------------


def test_uniform_balances_oracle_and_setters() -> None:
    g, _ = builtin_network(seed=3)
    net = SimulatedNetwork(g, seed=5, epoch_s=EPOCH)
    liq = net.true_liquidity_msat()
    assert liq.dtype == np.int64 and liq.shape == (g.num_edges,)
    assert (liq >= 0).all() and (liq <= g.capacity_msat).all()
    # both directions of a channel share its capacity
    for scid in g.scid[:10]:
        assert net.liquidity_of(scid, 0) + net.liquidity_of(scid, 1) == int(
            g.capacity_msat[g.edge(scid, 0)]
        )
    # uniform: not all at one end, not all halves
    frac = liq / g.capacity_msat
    assert 0.3 < float(frac.mean()) < 0.7 and float(frac.std()) > 0.15
    e = 0
    net.set_balance(g.scid[e], int(g.direction[e]), 1234)
    assert (
        int(net.true_liquidity_msat()[e])
        == 1234
        == net.liquidity_of(g.scid[e], int(g.direction[e]))
    )
    with pytest.raises(InvalidParams):
        net.set_balance(g.scid[e], 0, int(g.capacity_msat[e]) + 1)
    with pytest.raises(InvalidParams):
        net.liquidity_of("1x1x1", 0)
    same = SimulatedNetwork(g, seed=5, epoch_s=EPOCH).true_liquidity_msat()
    other = SimulatedNetwork(g, seed=6, epoch_s=EPOCH).true_liquidity_msat()
    assert np.array_equal(same, liq) and not np.array_equal(other, same)
    assert not np.array_equal(net.true_liquidity_msat(), same)  # row 0 was set above


async def _payment_round(seed: int) -> tuple[list[Any], list[int]]:
    g, keys = builtin_network(seed=1)
    outcomes: list[Any] = []
    async with SimulatedNetwork.open(g, keys=keys, seed=seed, epoch_s=EPOCH) as net:
        payer = net.node(g.nodes[0])
        nxg = g.to_networkx()
        import networkx as nx

        async def pay(i: int, dest: int) -> None:
            path = nx.shortest_path(nxg, g.nodes[0], g.nodes[dest])
            idx = [g.node_index[n] for n in path]
            inv = await invoice(net, payer, g.nodes[dest], 300_000 * SAT)
            r = await send_and_wait(payer, route_of(g, idx, 300_000 * SAT), inv)
            outcomes.append(
                (i, r.failure.failcode, r.failure.erring_index)
                if isinstance(r, PartFailed)
                else (i, "ok")
            )

        async with trio.open_nursery() as nursery:
            for i, dest in enumerate(range(5, 30, 3)):
                nursery.start_soon(pay, i, dest)
        liq = net.true_liquidity_msat().tolist()
    return sorted(outcomes, key=lambda o: o[0]), liq


@pytest.mark.trio
async def test_same_seed_same_outcomes(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        a = await _payment_round(11)
        b = await _payment_round(11)
        c = await _payment_round(12)
        assert a == b
        assert a[1] != c[1]
        assert any(o[1] == "ok" for o in a[0]) and any(o[1] != "ok" for o in a[0] + c[0])


def _snapshot() -> Path | None:
    env = os.environ.get("BARQ_GRAPH")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if p.is_dir():
        p = p / "gossip-store-2024-09-22.compressed"
    return p if p.is_file() else None


@pytest.mark.trio
async def test_mainnet_snapshot_network(autojump_clock: Any) -> None:
    path = _snapshot()
    if path is None:
        pytest.skip("mainnet snapshot not found (../shared/data or $BARQ_GRAPH)")
    from barq.graph import load_compressed

    g = load_compressed(path)
    with trio.fail_after(SIM_BUDGET_S):
        async with opened(g, None, liquidity="uniform", seed=3) as net:
            liq = net.true_liquidity_msat()
            assert liq.shape == (g.num_edges,) and (liq >= 0).all()
            assert (liq <= g.capacity_msat).all()
            hub = int(np.bincount(g.src, minlength=g.num_nodes).argmax())
            node = net.node(g.nodes[hub])
            chans = await node.list_peer_channels()
            assert len(chans) > 100
            best = max((c for c in chans if c.spendable_msat > 0), key=lambda c: c.spendable_msat)
            e = g.edge(best.scid or "", best.direction or 0)
            assert e is not None and int(g.src[e]) == hub
            amount = min(best.spendable_msat, int(g.htlc_max_msat[e])) // 2
            inv = await invoice(net, node, g.nodes[int(g.dst[e])], amount)
            ok = await send_and_wait(node, build_route(g, [e], amount, 18), inv)
            assert ok.status == SendpayStatus.COMPLETE
            assert net.received_msat(inv.payment_hash) == amount
