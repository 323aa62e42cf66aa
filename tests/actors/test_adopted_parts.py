"""Parts adopted after a restart are first-class (issue 17 item 2), on the simulated network.

The network: ``us -> a -> payee`` and ``us -> b -> payee``, every channel
1,000,000 sat with all of it on the sending side; 1,800,000 sat must split
over both paths, so while the first run's parts are in flight our channels
have little left. Hops take 5 s each way, so a part sent at t=0 reaches the
payee at t=10 and its failure is back at t=20. The payee holds the parts
until their MPP set is complete (60 s timeout), as a real one does.

The first engine sends both parts and stops (a restart); a second engine,
on the same node and journal, is asked to pay again and adopts them. Then
the payee fails one adopted part: its amount must be re-planned on fresh
balances and sent again, within the in-flight cap, and the payment completes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from actor_helpers import StoreJournal

from barq.actors import open_runtime
from barq.errors import PaymentInProgress
from barq.graph.synthetic import ChannelSpec, network_from_channels
from barq.model import FailCode, Hop, RouteFailure, SendpayStatus
from barq.model.payment import EngineConfig, PartState, PaymentStatus, PayParams
from barq.payment import PaymentJournal
from barq.sim import PartInfo, SimulatedNetwork
from barq.store import open_store
from barq.testing import CheckedNode, Limits

SAT = 1000
AMOUNT = 1_800_000 * SAT
CFG = EngineConfig(
    strategies_in_thread=False,
    default_strategy="mincostflow",
    min_part_msat=1_000_000,
    retry_for_s=300.0,
    slow_mode=True,  # the tests read the payment once every part settled
)
US, A, B, PAYEE = 0, 1, 2, 3
CHANNELS = [
    ChannelSpec(a=US, b=A, capacity_sat=1_000_000, scid="101x1x0"),
    ChannelSpec(a=US, b=B, capacity_sat=1_000_000, scid="102x1x0"),
    ChannelSpec(a=A, b=PAYEE, capacity_sat=1_000_000, scid="103x1x0"),
    ChannelSpec(a=B, b=PAYEE, capacity_sat=1_000_000, scid="104x1x0"),
]
GRAPH, KEYS = network_from_channels(4, CHANNELS, seed=3)


def fail_at_payee(partids: set[int]) -> Any:
    """A fault hook: the payee fails these part ids with MPP_TIMEOUT (a retryable failure)."""

    def hook(index: int, hop_in: Hop, part: PartInfo) -> RouteFailure | None:
        if index == len(part.route.hops) and part.partid in partids:
            return RouteFailure(
                failcode=int(FailCode.MPP_TIMEOUT), erring_index=index, message="scripted"
            )
        return None

    return hook


class World:
    """The network, our node (money rules checked) and the invoice being paid."""

    def __init__(self, net: SimulatedNetwork) -> None:
        self.net = net
        for c in CHANNELS:  # all of each channel on the side that sends toward the payee
            e = next(
                e
                for e in range(GRAPH.num_edges)
                if GRAPH.scid[e] == c.scid and int(GRAPH.src[e]) == c.a
            )
            net.set_balance(GRAPH.scid[e], int(GRAPH.direction[e]), c.capacity_sat * SAT)
        self.node = CheckedNode(net.node(GRAPH.nodes[US]))
        self.bolt11 = net.create_invoice(GRAPH.nodes[PAYEE], AMOUNT)
        self.hash = net.decode(self.bolt11).payment_hash
        fee = CFG.default_maxfee_msat(AMOUNT)
        self.node.expect(
            self.hash, AMOUNT, Limits(maxfee_msat=fee, maxdelay=CFG.maxdelay, maxparts=CFG.maxparts)
        )

    async def first_run_stops_with_parts_in_flight(self, journal: PaymentJournal | None) -> None:
        """The first engine sends every part, then stops before any resolves (a restart)."""
        async with open_runtime(self.node, CFG, clock=self.net.now, journal=journal) as rt:
            with trio.move_on_after(2):
                await rt.pay(PayParams(invstring=self.bolt11))
        parts = await self.net.node(GRAPH.nodes[US]).listsendpays(self.hash)
        assert len(parts) >= 2 and all(p.status is SendpayStatus.PENDING for p in parts)
        assert sum(p.amount_msat for p in parts) == AMOUNT

    def check_paid_once(self) -> None:
        assert self.net.received_msat(self.hash) == AMOUNT and self.net.is_paid(self.hash)
        assert self.node.violations == [] and self.net.overpayments == []


def net_open() -> Any:
    return SimulatedNetwork.open(GRAPH, seed=3, keys=KEYS, hop_latency_s=5.0, latency_jitter_s=0)


@pytest.mark.trio
@pytest.mark.parametrize("with_journal", [True, False], ids=["watcher-waiting", "no-journal"])
async def test_an_adopted_part_that_fails_is_sent_again(
    autojump_clock: Any, tmp_path: Path, with_journal: bool
) -> None:
    """With a journal the restart's watcher is still waiting on the parts when the call comes:
    it hands them over. Before the fix the failed part's liquidity stayed invisible to the
    router (it never reserved an adopted part): no route, and the payment failed."""
    with open_store(tmp_path / "db") as store, trio.fail_after(1000):
        journal = StoreJournal(store) if with_journal else None
        async with net_open() as net:
            w = World(net)
            await w.first_run_stops_with_parts_in_flight(journal)
            before = await net.node(GRAPH.nodes[US]).listsendpays(w.hash)
            first, last = min(p.partid for p in before), max(p.partid for p in before)
            net.fault_hook = fail_at_payee({first})
            async with open_runtime(w.node, CFG, clock=net.now, journal=journal) as rt:
                view = await rt.pay(PayParams(invstring=w.bolt11))
                if with_journal:
                    assert rt.status(w.hash) == []  # it left memory, and no watcher is left
            w.check_paid_once()
        assert view.status is PaymentStatus.COMPLETE and view.delivered_msat == AMOUNT
        states = {p.partid: p.state for p in view.parts}
        assert states[first] is PartState.FAILED
        assert any(s is PartState.SUCCEEDED for pid, s in states.items() if pid > last)
        again = [(s.groupid, s.partid) for s in w.node.sent[len(before) :]]
        assert again and all(g == 1 and pid > last for g, pid in again)
        assert len(again) == len(set(again))
        if with_journal:
            [stored] = store.get_payments(w.hash)
            assert stored == view  # the payment recorded it; the watcher did not write over it


@pytest.mark.trio
async def test_a_part_that_failed_before_the_call_is_paid_by_it(
    autojump_clock: Any, tmp_path: Path
) -> None:
    """The watcher saw one part fail before the call: the call adopts the one still pending
    and pays the failed amount itself."""
    with open_store(tmp_path / "db") as store, trio.fail_after(1000):
        async with net_open() as net:
            w = World(net)
            await w.first_run_stops_with_parts_in_flight(StoreJournal(store))
            first = min(p.partid for p in await net.node(GRAPH.nodes[US]).listsendpays(w.hash))
            net.fault_hook = fail_at_payee({first})
            async with open_runtime(w.node, CFG, clock=net.now, journal=StoreJournal(store)) as rt:
                await trio.sleep(25)  # the failure is back at t=20
                [recovering] = rt.status(w.hash)
                assert {p.partid: p.state for p in recovering.parts}[first] is PartState.FAILED
                view = await rt.pay(PayParams(invstring=w.bolt11))
            w.check_paid_once()
        assert view.status is PaymentStatus.COMPLETE
        # part 2 adopted (not sent again), part 1's amount paid by new parts; the group's
        # record (and the answer) keep part 1 as it ended
        parts = {p.partid: p for p in view.parts}
        assert parts[first].state is PartState.FAILED
        assert parts[first + 1].state is PartState.SUCCEEDED
        assert sorted(s.partid for s in w.node.sent) == sorted(parts)
        [stored] = store.get_payments(w.hash)
        assert stored == view and stored.delivered_msat == AMOUNT


@pytest.mark.trio
async def test_adopting_parts_for_another_amount_is_refused(
    autojump_clock: Any, tmp_path: Path
) -> None:
    """An amountless invoice: parts of 1,800,000 sat are in flight; a call for another amount
    must not add parts of its own (200), the one for the same amount completes."""
    with open_store(tmp_path / "db") as store, trio.fail_after(1000):
        async with net_open() as net:
            w = World(net)
            w.bolt11 = net.create_invoice(GRAPH.nodes[PAYEE], None)
            w.hash = net.decode(w.bolt11).payment_hash
            async with open_runtime(w.node, CFG, clock=net.now, journal=StoreJournal(store)) as rt:
                with trio.move_on_after(2):
                    await rt.pay(PayParams(invstring=w.bolt11, amount_msat=AMOUNT))
            async with open_runtime(w.node, CFG, clock=net.now, journal=StoreJournal(store)) as rt:
                with pytest.raises(PaymentInProgress) as info:
                    await rt.pay(PayParams(invstring=w.bolt11, amount_msat=AMOUNT + SAT))
                view = await rt.pay(PayParams(invstring=w.bolt11, amount_msat=AMOUNT))
            assert net.received_msat(w.hash) == AMOUNT
    assert info.value.code == 200 and "in progress" in info.value.message
    assert info.value.data["in_progress"]["amount_msat"] == AMOUNT
    assert view.status is PaymentStatus.COMPLETE
    assert len(w.node.sent) == 2  # the first run's parts only
