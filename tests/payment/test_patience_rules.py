"""The book's relaxation steps and the give-up rules of :mod:`barq.payment.patience` (pure)."""

from __future__ import annotations

from test_book import book, route

from barq.errors import DestinationPermanentFailure, NodeError, StoppedRetrying
from barq.model import FailCode, RouteFailure
from barq.model.payment import PartOutcome, PartState
from barq.payment import MAX_STRIKES
from barq.payment.patience import (
    FLOOR_DIVISOR,
    RELAX_STEPS,
    capacity_short,
    ended_by_default,
    replan_wait_s,
)


def test_relaxing_gives_the_whole_fee_budget_and_every_slot_to_the_piece() -> None:
    b, _ = book(strategy="mincostflow", maxparts=16, maxfee_msat=10_000)
    b.start_part(route(60_000_000))
    b.pool = [40_000_000]
    amount, slots, fee = b.next_piece() or (0, 0, 0)
    assert (amount, fee) == (40_000_000, 9_000) and slots < 15  # its share by amount
    assert b.relax_more() and b.relax.step == 1
    assert b.next_piece() == (40_000_000, 15, 9_000)  # every free slot
    b2, _ = book(strategy="dijkstra", maxfee_msat=10_000)
    b2.pool = [50_000_000, 50_000_000]
    assert b2.next_piece() == (50_000_000, 1, 5_000)
    b2.relax_more()
    assert b2.next_piece() == (50_000_000, 1, 10_000)  # the next piece's share is taken after


def test_the_floor_is_lowered_and_temporary_exclusions_are_forgiven_last() -> None:
    b, _ = book(maxparts=50, exclude=["9x9x9/0"])
    assert not b.halve(1_500_000)  # floor CONFIG.min_part_msat = 1_000_000
    fail = RouteFailure(failcode=int(FailCode.TEMPORARY_CHANNEL_FAILURE), erring_index=1)
    for _ in range(MAX_STRIKES):
        o = b.start_part(route(100_000_000))
        b.pool.pop(0)
        b.part_ended(o.partid, PartOutcome(state=PartState.FAILED, sent=True, failure=fail))
    perm = RouteFailure(failcode=int(FailCode.PERMANENT_CHANNEL_FAILURE), erring_index=0)
    o = b.start_part(route(100_000_000))
    b.pool.pop(0)
    b.part_ended(o.partid, PartOutcome(state=PartState.FAILED, sent=True, failure=perm))
    assert {"2x2x2/1", "1x1x1/0", "9x9x9/0"} <= b.exclude_channels
    while b.relax.step < len(RELAX_STEPS) - 1:
        assert "2x2x2/1" in b.exclude_channels
        assert b.relax_more()
    assert not b.relax_more()  # nothing left to relax
    # the user's exclusion and the permanent failure stay; the strikes are forgiven
    assert b.exclude_channels == {"9x9x9/0", "1x1x1/0"} and not b.strikes
    b.pool = [1_500_000]
    assert b.halve(1_500_000)  # floor / FLOOR_DIVISOR
    assert FLOOR_DIVISOR > 1


def test_waits_double_up_to_a_cap() -> None:
    waits = [replan_wait_s(n) for n in range(8)]
    assert waits[0] == 0.5 and waits == sorted(waits) and max(waits) == 8.0


def test_capacity_short_names_the_side_that_is_short() -> None:
    assert capacity_short(left_msat=10, our_spendable_msat=10, payee_capacity_msat=10) is None
    assert capacity_short(left_msat=10, our_spendable_msat=None, payee_capacity_msat=None) is None
    ours = capacity_short(left_msat=11, our_spendable_msat=10, payee_capacity_msat=None)
    assert ours is not None and "our channels" in ours
    payee = capacity_short(left_msat=11, our_spendable_msat=None, payee_capacity_msat=10)
    assert payee is not None and "payee's channels" in payee


def test_ended_by_is_read_from_the_stop_and_reported() -> None:
    assert ended_by_default(DestinationPermanentFailure("x")) == "destination"
    assert ended_by_default(NodeError("x")) == "node"
    assert ended_by_default(StoppedRetrying("x")) == "retry_for"
    b, _ = book()
    b.stop(StoppedRetrying("late"), "retry_for")
    b.stop(NodeError("second reason"), "node")  # the first one stays
    assert b.ended_by == "retry_for"
    try:
        b.finish()
    except StoppedRetrying as exc:
        assert exc.data["ended_by"] == "retry_for"
    else:  # pragma: no cover
        raise AssertionError("finish() must raise")
