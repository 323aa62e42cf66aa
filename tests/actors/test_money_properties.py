"""Money invariants under random failure sequences and random simulated networks (hypothesis).

At every ``sendpay`` the fake node checks (``barq.testing.money_rule_violations``):
(1) parts in flight + delivered never exceed the invoice amount; (2) fees of parts
in flight + succeeded never exceed ``maxfee``; (3) every part's delay is at most
``maxdelay`` and parts in flight + succeeded never exceed ``maxparts``; (4) no
``(groupid, partid)`` is reused for a different route. After ``pay`` returns
nothing of the payment is still pending, and the result agrees with the node.
The same rules hold across a restart: a second engine adopts the parts the
first left in flight, and whatever becomes of them (the scripts fail or
settle them), the cap holds and no part id is used twice.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from barq.actors import open_runtime
from barq.errors import BarqError
from barq.graph.synthetic import builtin_network
from barq.model import ChannelUpdate, FailCode, SendpayStatus
from barq.model.payment import EngineConfig, PaymentStatus, PayParams
from barq.sim import SimulatedNetwork
from barq.store import open_store
from barq.testing import CheckedNode, Limits, Refuse, ScriptedNode, SentPart, Succeed, fail_at

try:
    from actor_helpers import StoreJournal
except ImportError:  # pragma: no cover - run from another directory
    from tests.actors.actor_helpers import StoreJournal

GRAPH, _KEYS = builtin_network(1)
STRATEGIES = ["dijkstra", "probabilistic", "presplit", "mincostflow"]
KINDS = [
    "ok",
    "ok",
    "ok",
    "tcf",
    "tcf",
    "perm_chan",
    "node_perm",
    "node_temp",
    "fee",
    "disabled",
    "dest",
    "mpp",
    "refuse",
    "refuse_local",
]

outcome = st.tuples(st.sampled_from(KINDS), st.floats(0, 0.999), st.floats(0, 30))


def script(spec: tuple[str, float, float], p: SentPart) -> Any:
    kind, frac, lat = spec
    n = len(p.route.hops)
    k = int(frac * n)  # 0 (our own hop) .. n-1
    r = p.route
    match kind:
        case "ok":
            return Succeed(after_s=lat)
        case "tcf":
            return fail_at(r, k, FailCode.TEMPORARY_CHANNEL_FAILURE, after_s=lat)
        case "perm_chan":
            return fail_at(r, k, FailCode.UNKNOWN_NEXT_PEER, after_s=lat)
        case "node_perm":
            return fail_at(r, max(k, 1), FailCode.PERMANENT_NODE_FAILURE, after_s=lat)
        case "node_temp":
            return fail_at(r, max(k, 1), FailCode.TEMPORARY_NODE_FAILURE, after_s=lat)
        case "fee":
            h = r.hops[k]
            upd = ChannelUpdate(
                scid=h.channel,
                direction=h.direction,
                fee_base_msat=2000,
                fee_ppm=1000,
                cltv_delta=40,
                htlc_min_msat=1000,
                timestamp=1,
            )
            return fail_at(r, k, FailCode.FEE_INSUFFICIENT, update=upd, after_s=lat)
        case "disabled":
            return fail_at(r, k, FailCode.CHANNEL_DISABLED, after_s=lat)
        case "dest":
            return fail_at(r, n, FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, after_s=lat)
        case "mpp":
            return fail_at(r, n, FailCode.MPP_TIMEOUT, after_s=lat)
        case "refuse":
            return Refuse(message="scripted refusal", rpc_code=-1)
        case _:
            return Refuse(
                message="first peer not ready",
                failure=fail_at(r, 0, FailCode.TEMPORARY_CHANNEL_FAILURE).failure,
            )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dest=st.integers(1, GRAPH.num_nodes - 1),
    amount=st.integers(1_000_000, 3_000_000_000),
    strategy=st.sampled_from(STRATEGIES),
    maxparts=st.integers(1, 20),
    maxfee=st.one_of(st.none(), st.integers(0, 2_000_000)),
    retry_for=st.floats(5, 120),
    outcomes=st.lists(outcome, min_size=1, max_size=40),
)
def test_money_rules_hold_under_random_failures(
    dest: int,
    amount: int,
    strategy: str,
    maxparts: int,
    maxfee: int | None,
    retry_for: float,
    outcomes: list[tuple[str, float, float]],
) -> None:
    def handler(p: SentPart) -> Any:
        return script(outcomes[(p.partid - 1) % len(outcomes)], p)

    node = ScriptedNode(graph=GRAPH, our_id=GRAPH.nodes[0], handler=handler)
    bolt11 = node.add_invoice(payee=GRAPH.nodes[dest], amount_msat=amount)
    cfg = EngineConfig(strategies_in_thread=False, min_part_msat=100_000, slow_mode=True)
    fee = (
        maxfee
        if maxfee is not None
        else max(cfg.maxfee_base_msat, amount * cfg.maxfee_ppm // 10**6)
    )
    node.expect(bolt11, Limits(maxfee_msat=fee, maxdelay=cfg.maxdelay, maxparts=maxparts))
    h = node.invoice(bolt11).payment_hash

    async def main() -> None:
        with trio.fail_after(100_000):
            async with open_runtime(node, cfg) as rt:
                try:
                    view = await rt.pay(
                        PayParams(
                            invstring=bolt11,
                            strategy=strategy,
                            maxparts=maxparts,
                            maxfee_msat=maxfee,
                            retry_for_s=retry_for,
                        )
                    )
                except BarqError as exc:
                    assert exc.data.get("status") in (None, "failed")
                    tried = [a for a in exc.data.get("attempts", [])]
                    assert len(tried) == sum(1 for p in node.sent if p.payment_hash == h)
                else:
                    # complete = a part succeeded (the scripts may fail its siblings, which
                    # a real payee never does, so delivered may fall short of the amount)
                    assert view.status is PaymentStatus.COMPLETE
                    assert view.payment_preimage is not None
                    assert 0 < view.delivered_msat == node.delivered_msat(h) <= amount
                pending = [
                    p for p in await node.listsendpays(h) if p.status is SendpayStatus.PENDING
                ]
                assert pending == []

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert node.violations == []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    payments=st.lists(
        st.tuples(st.integers(1, 39), st.integers(10_000, 2_000_000_000)), min_size=1, max_size=4
    ),
    strategy=st.sampled_from(STRATEGIES),
)
def test_money_rules_hold_on_random_simulated_networks(
    seed: int, payments: list[tuple[int, int]], strategy: str
) -> None:
    graph, keys = builtin_network(seed % 4 + 1)
    cfg = EngineConfig(
        strategies_in_thread=False, min_part_msat=100_000, retry_for_s=30.0, slow_mode=True
    )

    async def main() -> None:
        with trio.fail_after(100_000):
            async with SimulatedNetwork.open(graph, seed=seed, keys=keys) as net:
                node = CheckedNode(net.node(graph.nodes[0]))
                async with (
                    open_runtime(node, cfg, clock=net.now) as rt,
                    trio.open_nursery() as nursery,
                ):
                    for dest, amount in payments:
                        b = net.create_invoice(graph.nodes[dest], amount)
                        inv = net.decode(b)
                        fee = max(cfg.maxfee_base_msat, amount * cfg.maxfee_ppm // 10**6)
                        node.expect(
                            inv.payment_hash,
                            amount,
                            Limits(maxfee_msat=fee, maxdelay=cfg.maxdelay, maxparts=cfg.maxparts),
                        )
                        nursery.start_soon(one, rt, net, b, inv.payment_hash, amount)
                assert node.violations == []
                assert net.overpayments == []

    async def one(rt: Any, net: SimulatedNetwork, b: str, h: str, amount: int) -> None:
        try:
            view = await rt.pay(PayParams(invstring=b, strategy=strategy))
        except BarqError as exc:
            assert not net.is_paid(h), msgspec.json.encode(exc.data)[:300]
        else:
            assert view.delivered_msat == amount and net.received_msat(h) == amount

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dest=st.integers(1, GRAPH.num_nodes - 1),
    amount=st.integers(1_000_000, 3_000_000_000),
    strategy=st.sampled_from(STRATEGIES),
    maxparts=st.integers(2, 20),
    cut=st.floats(0.0, 20),
    journal=st.booleans(),
    outcomes=st.lists(outcome, min_size=1, max_size=40),
)
# found by hypothesis: the restart at 0.955 s makes the fake node's clock wake a rounding
# error short of the adopted part's failure at 3.004 s; the part is re-sent right away
@example(1, 1_000_000, "dijkstra", 2, 0.9552752869410048, False, [("tcf", 0.0, 3.00436238020565)])
@example(
    1, 1_000_000, "dijkstra", 2, 0.9552752869410048, False, [("node_temp", 0.0, 3.00436238020565)]
)
def test_money_rules_hold_when_adopted_parts_fail(
    dest: int,
    amount: int,
    strategy: str,
    maxparts: int,
    cut: float,
    journal: bool,
    outcomes: list[tuple[str, float, float]],
) -> None:
    """An engine stops ``cut`` seconds into a payment (a restart); a second one pays the same
    invoice, adopting what is still in flight. The parts' scripts fail or settle them, the
    adopted ones included: the amount of a failed adopted part is sent again, within the cap,
    under new part ids only."""

    def handler(p: SentPart) -> Any:
        return script(outcomes[(p.partid - 1) % len(outcomes)], p)

    node = ScriptedNode(graph=GRAPH, our_id=GRAPH.nodes[0], handler=handler)
    bolt11 = node.add_invoice(payee=GRAPH.nodes[dest], amount_msat=amount)
    cfg = EngineConfig(
        strategies_in_thread=False, min_part_msat=100_000, retry_for_s=60, slow_mode=True
    )
    fee = max(cfg.maxfee_base_msat, amount * cfg.maxfee_ppm // 10**6)
    node.expect(bolt11, Limits(maxfee_msat=fee, maxdelay=cfg.maxdelay, maxparts=maxparts))
    h = node.invoice(bolt11).payment_hash
    params = PayParams(invstring=bolt11, strategy=strategy, maxparts=maxparts)

    async def main(db: Path) -> None:
        with open_store(db) as store, trio.fail_after(100_000):
            j = StoreJournal(store) if journal else None
            async with open_runtime(node, cfg, journal=j) as rt:
                with trio.move_on_after(cut), contextlib.suppress(BarqError):
                    await rt.pay(params)  # it may end before the restart
            first = len(node.sent)
            listed = await node.listsendpays(h)
            pend = [p for p in listed if p.status is SendpayStatus.PENDING]
            # a part that succeeded alone makes the invoice paid: its siblings are not awaited
            paid_before = any(p.status is SendpayStatus.COMPLETE for p in listed)
            async with open_runtime(node, cfg, journal=j) as rt:
                try:
                    view = await rt.pay(params)
                except BarqError as exc:
                    # 201: a part of the first run succeeded alone (the scripts settle parts
                    # one by one, which a real payee never does)
                    assert exc.data.get("status") in (None, "failed") or exc.code == 201
                else:
                    # complete = a part succeeded (delivered may fall short: see above)
                    assert view.status is PaymentStatus.COMPLETE
                    assert 0 < view.delivered_msat == node.delivered_msat(h) <= amount
                left = [p for p in await node.listsendpays(h) if p.status is SendpayStatus.PENDING]
                assert paid_before or left == []
            ids = [(p.groupid, p.partid) for p in node.sent]
            assert len(ids) == len(set(ids)), "a part id was used twice"
            before = {(p.groupid, p.partid) for p in node.sent[:first]}
            assert not before & set(ids[first:])
            after = {(p.groupid, p.partid): p.status for p in await node.listsendpays(h)}
            failed_adopted = sum(
                after.get((p.groupid, p.partid)) is SendpayStatus.FAILED for p in pend
            )
            if failed_adopted and node.delivered_msat(h) == amount:
                # what the failed adopted parts carried was sent again, under new ids
                assert len(ids) > first

    with tempfile.TemporaryDirectory() as d:
        trio.run(main, Path(d) / "db", clock=trio.testing.MockClock(autojump_threshold=0))
    assert node.violations == []
