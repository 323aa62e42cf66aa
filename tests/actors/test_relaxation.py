"""Stale knowledge is set aside before a payment gives up with "no route" (and only stale).

The line ``us -> a -> dest`` (``101x1x0`` then ``102x1x0``) has one path: when
old knowledge claims ``a -> dest`` is nearly empty, the router retries once
without the bounds observed before the payment started.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from actor_helpers import CONFIG, fails_at_channel

from barq.actors import open_runtime
from barq.actors.messages import ChannelKnowledge, KnowledgeEntry, KnowledgeSnapshot
from barq.errors import RouteNotFound
from barq.graph import Graph
from barq.graph.synthetic import line_network
from barq.model import NodeId, scid_dir
from barq.model.payment import PaymentStatus, PayParams
from barq.testing import Limits, ScriptedNode, Succeed

AMOUNT = 50_000_000
T0 = 1_700_000_000.0


class _UnixClock:
    """UNIX-like seconds that follow trio's (mock) clock, from ``T0``."""

    def __init__(self) -> None:
        self.t0: float | None = None

    def __call__(self) -> float:
        now = trio.current_time()
        if self.t0 is None:
            self.t0 = now
        return T0 + now - self.t0


def _sd(g: Graph, scid: str, src: NodeId) -> str:
    e = next(e for e in range(g.num_edges) if g.scid[e] == scid and g.nodes[int(g.src[e])] == src)
    return scid_dir(scid, int(g.direction[e]))


def _line(handler: Any) -> tuple[Graph, ScriptedNode, _UnixClock]:
    g, _ = line_network(3)
    clock = _UnixClock()
    node = ScriptedNode(graph=g, our_id=g.nodes[0], handler=handler, clock=clock)
    return g, node, clock


def _invoice(node: ScriptedNode, g: Graph) -> str:
    b = node.add_invoice(payee=g.nodes[2], amount_msat=AMOUNT)
    fee = max(CONFIG.maxfee_base_msat, AMOUNT * CONFIG.maxfee_ppm // 10**6)
    node.expect(b, Limits(maxfee_msat=fee, maxdelay=CONFIG.maxdelay, maxparts=CONFIG.maxparts))
    return b


def _old_tiny(g: Graph, *, reverse: bool = False) -> list[KnowledgeEntry]:
    """A minute-old claim: ``a -> dest`` (or ``dest -> a``) holds 1 sat at most."""
    src = g.nodes[2] if reverse else g.nodes[1]
    return [
        ChannelKnowledge(
            scid_dir=_sd(g, "102x1x0", src),
            lo_msat=0,
            hi_msat=1000,
            updated_at=T0 - 60,
            capacity_msat=int(g.capacity_msat[0]),
        )
    ]


# -- the router's retry, end to end ---------------------------------------------------------


@pytest.mark.trio
@pytest.mark.parametrize("strategy", ["dijkstra", "mincostflow"])
async def test_stale_knowledge_is_relaxed_when_no_route_is_found(
    autojump_clock: Any, strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    g, node, clock = _line(lambda p: Succeed(after_s=1.0))
    caplog.set_level(logging.INFO, logger="barq.actors")
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG, clock=clock, knowledge=_old_tiny(g)) as rt:
            view = await rt.pay(PayParams(invstring=_invoice(node, g), strategy=strategy))
            # the success taught the estimator a fresh bound
            learnt = {
                e.scid_dir: e
                for e in await rt.export_knowledge()
                if isinstance(e, ChannelKnowledge)
            }
    assert view.status is PaymentStatus.COMPLETE and view.delivered_msat == AMOUNT
    assert [p.route.amount_msat for p in node.sent] == [AMOUNT]  # whole, not halved
    assert any("retrying with the 0 observed since" in r.getMessage() for r in caplog.records)
    assert any("set aside" in r.getMessage() for r in caplog.records)
    assert learnt[_sd(g, "102x1x0", g.nodes[1])].updated_at >= T0
    assert node.violations == []


@pytest.mark.trio
async def test_without_a_payment_start_nothing_is_relaxed(autojump_clock: Any) -> None:
    """``Runtime.route`` (no payment, ``since`` unset) still sees the stale bound: 205."""
    g, node, clock = _line(lambda p: Succeed(after_s=1.0))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG, clock=clock, knowledge=_old_tiny(g)) as rt:
            with pytest.raises(RouteNotFound):
                await rt.route(g.nodes[2], AMOUNT, strategy="dijkstra")


@pytest.mark.trio
async def test_knowledge_learnt_in_this_payment_is_not_relaxed(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``a -> dest`` refuses the whole amount in this payment: the relaxed retry keeps that
    bound, so the amount is not sent over it again (mincostflow does not split: 205)."""
    g, node, clock = _line(fails_at_channel("102x1x0"))
    caplog.set_level(logging.INFO, logger="barq.actors")
    # stale knowledge on the *other* direction, so that the relaxation does kick in
    with trio.fail_after(100):
        async with open_runtime(
            node, CONFIG, clock=clock, knowledge=_old_tiny(g, reverse=True)
        ) as rt:
            with pytest.raises(RouteNotFound, match="no flow"):
                await rt.pay(PayParams(invstring=_invoice(node, g), strategy="mincostflow"))
    assert [p.route.amount_msat for p in node.sent] == [AMOUNT]
    # the relaxed retry ran (the stale reverse bound went) and kept this payment's bound
    assert any("retrying with the 1 observed since" in r.getMessage() for r in caplog.records)
    assert node.violations == []


# -- the snapshot filter --------------------------------------------------------------------


def test_learnt_since_keeps_only_fresh_bounds_and_everything_disabled() -> None:
    snap = KnowledgeSnapshot(
        taken_at=100.0,
        channels=("1x1x1/0", "2x2x2/1", "3x3x3/0"),
        lo_msat=(1, 2, 3),
        hi_msat=(10, 20, 30),
        updated_at=(49.0, 50.0, 80.0),
        disabled_channels=frozenset({"9x9x9/0"}),
        disabled_nodes=frozenset({"02" + "ab" * 32}),
    )
    assert snap.learnt_before(50.0) and not snap.learnt_before(49.0)
    fresh = snap.learnt_since(50.0)
    assert fresh == KnowledgeSnapshot(
        taken_at=100.0,
        channels=("2x2x2/1", "3x3x3/0"),
        lo_msat=(2, 3),
        hi_msat=(20, 30),
        updated_at=(50.0, 80.0),
        disabled_channels=snap.disabled_channels,
        disabled_nodes=snap.disabled_nodes,
    )
    assert snap.learnt_since(49.0) is snap  # nothing stale: unchanged
    assert snap.learnt_since(1000.0).channels == ()
    assert snap.learnt_since(1000.0).disabled_channels == snap.disabled_channels
    # timestamps unknown (not aligned): nothing is called stale, nothing is dropped
    blind = KnowledgeSnapshot(taken_at=1.0, channels=("1x1x1/0",), lo_msat=(0,), hi_msat=(5,))
    assert not blind.learnt_before(1e12) and blind.learnt_since(1e12) is blind


def test_estimator_snapshot_carries_aligned_timestamps() -> None:
    from barq.actors.estimator import LiquidityKnowledge

    now = [T0]
    k = LiquidityKnowledge(half_life_s=3600, clock=lambda: now[0])
    k.load(
        [
            ChannelKnowledge(
                scid_dir="1x1x1/0", lo_msat=5, hi_msat=10, updated_at=T0 - 60, capacity_msat=100
            ),
            ChannelKnowledge(
                scid_dir="2x2x2/0", lo_msat=0, hi_msat=100, updated_at=T0 - 30, capacity_msat=100
            ),
        ]
    )  # uninformative: not in the snapshot
    now[0] = T0 + 10
    k._not_forwarded("3x3x3/1", 100, 40)
    snap = k.snapshot()
    assert dict(zip(snap.channels, snap.updated_at, strict=True)) == {
        "1x1x1/0": T0 - 60,
        "3x3x3/1": T0 + 10,
    }
    assert snap.learnt_since(T0).channels == ("3x3x3/1",)
