"""Channel state: hidden balances, the oracle, HTLC locks, what the payer sees of its channels."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
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
)

from barq.errors import InvalidParams, PartFailed
from barq.graph.synthetic import builtin_network, line_network
from barq.model import FailCode, SendpayStatus
from barq.sim import SimulatedNetwork


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
