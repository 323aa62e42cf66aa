"""The engine against the simulated network (hidden balances, real MPP at the payee).

Everything runs under ``MockClock(autojump_threshold=0)`` with strategies inline,
so simulated minutes take milliseconds.
"""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest
import trio
from actor_helpers import CONFIG, diamond

from barq.actors import open_runtime
from barq.bench.oracle import max_flow_msat
from barq.errors import RouteNotFound, StoppedRetrying
from barq.graph.synthetic import builtin_network
from barq.model.payment import EngineConfig, PaymentStatus, PayParams
from barq.sim import SimulatedNetwork
from barq.testing import CheckedNode, Limits

SIM_CONFIG = EngineConfig(strategies_in_thread=False, min_part_msat=100_000, slow_mode=True)


def limits(cfg: EngineConfig, amount: int) -> Limits:
    return Limits(
        maxfee_msat=max(cfg.maxfee_base_msat, amount * cfg.maxfee_ppm // 10**6),
        maxdelay=cfg.maxdelay,
        maxparts=cfg.maxparts,
    )


def direction(g: Any, scid: str, src: str) -> int:
    e = next(e for e in range(g.num_edges) if g.scid[e] == scid and g.nodes[int(g.src[e])] == src)
    return int(g.direction[e])


@pytest.mark.trio
async def test_payments_of_many_sizes_succeed_with_mpp(autojump_clock: Any) -> None:
    graph, keys = builtin_network(1)
    amounts = [10_000, 1_000_000, 100_000_000, 1_000_000_000, 3_000_000_000, 6_000_000_000]
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=1, keys=keys) as net:
            node = CheckedNode(net.node(graph.nodes[0]))
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                views = []
                for i, amount in enumerate(amounts):
                    b = net.create_invoice(graph.nodes[5 + i], amount)
                    node.expect(net.decode(b).payment_hash, amount, limits(SIM_CONFIG, amount))
                    views.append(await rt.pay(PayParams(invstring=b)))
            assert [v.status for v in views] == [PaymentStatus.COMPLETE] * len(amounts)
            for v, amount in zip(views, amounts, strict=True):
                assert net.received_msat(v.payment_hash) == amount == v.delivered_msat
                assert v.payment_preimage == net.preimage_of(v.payment_hash)
            assert max(sum(p.state == "succeeded" for p in v.parts) for v in views) > 1  # MPP
            assert net.overpayments == [] and node.violations == []


@pytest.mark.parametrize("strategy", ["dijkstra", "probabilistic"])
@pytest.mark.trio
async def test_single_path_strategy_splits_adaptively(autojump_clock: Any, strategy: str) -> None:
    """Every path holds 500,000 sat; 1,400,000 sat only passes as halves over three paths."""
    d = diamond()
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(d.graph, seed=3, liquidity="half") as net:
            node = CheckedNode(net.node(d.us))
            async with open_runtime(node, CONFIG, clock=net.now) as rt:
                b = net.create_invoice(d.dest, 1_400_000_000)
                node.expect(
                    net.decode(b).payment_hash, 1_400_000_000, limits(CONFIG, 1_400_000_000)
                )
                view = await rt.pay(PayParams(invstring=b, strategy=strategy))
                ok = [p for p in view.parts if p.state == "succeeded"]
                assert len(ok) >= 3 and all(p.amount_msat < 500_000_000 for p in ok)
                with pytest.raises(RouteNotFound):  # the same with a never-splitting baseline
                    await rt.pay(
                        PayParams(
                            invstring=net.create_invoice(d.dest, 1_400_000_000),
                            strategy="singlepath",
                        )
                    )
            assert net.received_msat(view.payment_hash) == 1_400_000_000
            assert node.violations == [] and net.overpayments == []


@pytest.mark.trio
async def test_depleted_channel_is_learnt_and_avoided_by_the_next_payment(
    autojump_clock: Any,
) -> None:
    d = diamond()
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(d.graph, seed=3, liquidity="half") as net:
            net.set_balance("103x1x0", direction(d.graph, "103x1x0", d.a), 1_000)
            node = CheckedNode(net.node(d.us))
            async with open_runtime(node, CONFIG, clock=net.now) as rt:
                v1 = await rt.pay(PayParams(invstring=net.create_invoice(d.dest, 100_000_000)))
                v2 = await rt.pay(PayParams(invstring=net.create_invoice(d.dest, 100_000_000)))
    first = [
        [h.channel for h in p.route.hops] for p in node.sent if p.payment_hash == v1.payment_hash
    ]
    second = [
        [h.channel for h in p.route.hops] for p in node.sent if p.payment_hash == v2.payment_hash
    ]
    assert first == [["101x1x0", "103x1x0"], ["102x1x0", "104x1x0"]]
    f = v1.parts[0].failure
    assert f is not None and f.failcodename == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert second == [["102x1x0", "104x1x0"]]


@pytest.mark.trio
async def test_twelve_concurrent_payments_all_correct(autojump_clock: Any) -> None:
    """Twelve payments at once to destinations the (omniscient) oracle says can take 20x the
    amount: reservations keep them from planning over each other's sats."""
    graph, keys = builtin_network(2)
    results: list[Any] = []
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=2, keys=keys) as net:
            liquidity = net.true_liquidity_msat()
            amounts: list[tuple[int, int]] = []
            for dest in range(1, graph.num_nodes):
                amount = 1_000_000 * (1 + 7 * len(amounts))
                if (
                    max_flow_msat(graph, liquidity, graph.nodes[0], graph.nodes[dest])
                    >= 20 * amount
                ):
                    amounts.append((dest, amount))
            amounts = amounts[:12]
            assert len(amounts) == 12
            node = CheckedNode(net.node(graph.nodes[0]))
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                async with anyio.create_task_group() as tg:
                    for dest, amount in amounts:
                        b = net.create_invoice(graph.nodes[dest], amount)
                        node.expect(net.decode(b).payment_hash, amount, limits(SIM_CONFIG, amount))

                        async def one(b: str = b) -> None:
                            results.append(await rt.pay(PayParams(invstring=b)))

                        tg.start_soon(one)
                assert len(rt.status()) == 12
            assert len(results) == 12
            for v in results:
                assert v.status is PaymentStatus.COMPLETE
                assert net.received_msat(v.payment_hash) == v.amount_msat
            assert node.violations == [] and net.overpayments == []


@pytest.mark.trio
async def test_deadline_stops_sending_and_awaits_held_parts(autojump_clock: Any) -> None:
    """Half the amount can reach the payee, the rest cannot: the held half waits for the
    payee's MPP timeout (60 s) although retry_for is 10 s; then 210."""
    d = diamond()
    amount = 600_000_000
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(d.graph, seed=3, liquidity="half") as net:
            net.set_balance("104x1x0", direction(d.graph, "104x1x0", d.b), 0)
            net.set_balance("106x1x0", direction(d.graph, "106x1x0", d.c), 0)
            node = CheckedNode(net.node(d.us))
            cfg = msgspec.structs.replace(CONFIG, retry_for_s=10.0)
            async with open_runtime(node, cfg, clock=net.now) as rt:
                b = net.create_invoice(d.dest, amount)
                node.expect(net.decode(b).payment_hash, amount, limits(cfg, amount))
                t0 = trio.current_time()
                with pytest.raises(StoppedRetrying) as info:
                    await rt.pay(PayParams(invstring=b))
                took = trio.current_time() - t0
                sent_before = len(node.sent)
                await trio.sleep(30)
                assert len(node.sent) == sent_before  # nothing sent after it reported
            assert took >= 60
            data = info.value.data
            assert data["inflight_msat"] == 0 and data["attempts"]
            assert "WIRE_MPP_TIMEOUT" in {a["failcodename"] for a in data["attempts"]}
            for scid in ("101x1x0", "102x1x0", "105x1x0"):
                assert net.locked_msat(scid, direction(d.graph, scid, d.us)) == 0
            assert not net.is_paid(net.decode(b).payment_hash)
            assert node.violations == []


@pytest.mark.trio
async def test_restart_adopts_parts_still_in_flight(autojump_clock: Any) -> None:
    """The runtime shuts down with parts in flight; a new runtime paying the same invoice
    adopts them (same group, awaited) instead of sending the amount again."""
    graph, keys = builtin_network(1)
    amount = 3_000_000_000
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=1, keys=keys, hop_latency_s=5.0) as net:
            node = CheckedNode(net.node(graph.nodes[0]))
            b = net.create_invoice(graph.nodes[7], amount)
            h = net.decode(b).payment_hash
            node.expect(h, amount, limits(SIM_CONFIG, amount))
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                with trio.move_on_after(3):  # one flow of parts that all pass: all in flight
                    await rt.pay(PayParams(invstring=b, strategy="mincostflow"))
                assert rt.status(h)[0].status is PaymentStatus.PENDING
            sent_before = len(node.sent)
            pending = [p for p in await node.listsendpays(h) if p.status == "pending"]
            assert pending and sent_before >= 1
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                view = await rt.pay(PayParams(invstring=b, strategy="mincostflow"))
            assert view.status is PaymentStatus.COMPLETE
            assert {p.partid for p in view.parts} >= {p.partid for p in pending}
            new = node.sent[sent_before:]
            assert sum(p.amount_msat for p in pending) == amount  # all of it was in flight
            assert new == []  # ... so nothing is sent again
            assert net.received_msat(h) == amount and net.overpayments == []
            assert node.violations == []
