"""The network as a whole: lifetime, nodes, gossip, determinism, the mainnet snapshot."""

from __future__ import annotations

import os
from pathlib import Path
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
    send_and_wait,
)

from barq.errors import PartFailed, RpcConnectionError
from barq.graph.synthetic import ChannelSpec, builtin_network, line_network, network_from_channels
from barq.model import SendpayStatus
from barq.routing import build_route
from barq.sim import SimulatedNetwork


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


def test_public_surface() -> None:
    """What tests, the bench and the CLI import from barq.sim (and barq.testing re-exports)."""
    import barq.sim
    import barq.testing

    assert sorted(barq.sim.__all__) == [
        "FaultHook",
        "Overpayment",
        "PartInfo",
        "SimulatedNetwork",
        "SimulatedNode",
    ]
    for name in (*barq.sim.__all__, *barq.testing.__all__):
        module = barq.sim if name in barq.sim.__all__ else barq.testing
        assert getattr(module, name) is not None, name
    assert barq.testing.SimulatedNetwork is SimulatedNetwork
