"""The liquidity estimator: pure update rules (no event loop), knowledge, persistence, actor."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import numpy as np
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from barq.actors._mailbox import ask
from barq.actors.estimator import (
    UNBOUNDED_MSAT,
    LiquidityKnowledge,
    can_forward,
    cannot_forward,
    decayed,
    decayed_arrays,
    liquidity_estimator,
    moved,
)
from barq.actors.messages import (
    ChannelKnowledge,
    DisabledChannel,
    DisabledNode,
    EstimatorMsg,
    ExportKnowledge,
    GetSnapshot,
    ImportKnowledge,
    KnowledgeEntry,
    KnowledgeSnapshot,
    PartOutcome,
    PartResolved,
    PartSent,
)
from barq.model import FailCode, Hop, Route, RouteFailure
from barq.model.payment import PartState

US, A, B, C = ("02" + "00" * 32, "02" + "aa" * 32, "02" + "bb" * 32, "03" + "cc" * 32)
CAP = 1_000_000
CAPS = (CAP, CAP, CAP)
ROUTE = Route(
    hops=(
        Hop(id=A, channel="1x1x1", direction=0, amount_msat=3002, delay=98),  # ours
        Hop(id=B, channel="2x2x2", direction=1, amount_msat=3001, delay=58),
        Hop(id=C, channel="3x3x3", direction=0, amount_msat=3000, delay=18),
    )
)


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def knowledge(clock: Clock | None = None, half_life_s: float = 3600.0) -> LiquidityKnowledge:
    return LiquidityKnowledge(half_life_s=half_life_s, clock=clock or Clock())


def failed(code: FailCode, index: int) -> PartOutcome:
    return PartOutcome(
        state=PartState.FAILED,
        sent=True,
        failure=RouteFailure(failcode=int(code), erring_index=index),
    )


SUCCEEDED = PartOutcome(state=PartState.SUCCEEDED, sent=True, preimage="11" * 32)


# -- pure rules ---------------------------------------------------------------------------


def test_cannot_forward_lowers_hi_below_the_amount() -> None:
    assert cannot_forward(0, 1000, 600) == (0, 599)
    assert cannot_forward(100, 500, 600) == (100, 500)  # already tighter


def test_can_forward_raises_lo_to_the_amount() -> None:
    assert can_forward(0, 1000, 1000, 600) == (600, 1000)
    assert can_forward(700, 1000, 1000, 600) == (700, 1000)


def test_contradictions_reset_to_the_newest_observation() -> None:
    assert cannot_forward(800, 1000, 600) == (0, 599)  # lo said >= 800, now < 600
    assert can_forward(0, 500, 1000, 600) == (600, 1000)  # hi said <= 500, now >= 600


def test_moved_shifts_and_clamps() -> None:
    assert moved(300, 800, 1000, -500) == (0, 300)
    assert moved(300, 800, 1000, +500) == (800, 1000)
    assert moved(0, UNBOUNDED_MSAT, None, -10) == (0, UNBOUNDED_MSAT)


def test_decay_halves_the_distance_to_the_prior_per_half_life() -> None:
    assert decayed(400, 600, 1000, 0, 100) == (400, 600)
    assert decayed(400, 600, 1000, 24.9, 100) == (400, 600)  # fresh knowledge holds
    assert decayed(400, 600, 1000, 25, 100) == (336, 664)  # one quarter step: 2**-0.25
    assert decayed(400, 600, 1000, 100, 100) == (200, 800)
    lo, hi = decayed(400, 600, 1000, 1000, 100)
    assert lo == 0 and hi >= 999
    # no capacity: the upper bound survives one half-life, then is dropped
    assert decayed(0, 600, None, 50, 100) == (0, 600)
    assert decayed(0, 600, None, 150, 100) == (0, UNBOUNDED_MSAT)


@given(
    lo=st.integers(0, CAP),
    hi=st.integers(0, CAP),
    amount=st.integers(1, 3 * CAP),
    delta=st.integers(-CAP, CAP),
    dt=st.floats(0, 1e6),
)
def test_rules_keep_bounds_ordered(lo: int, hi: int, amount: int, delta: int, dt: float) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    for a, b in (
        cannot_forward(lo, hi, amount),
        can_forward(lo, hi, CAP, amount),
        moved(lo, hi, CAP, delta),
        decayed(lo, hi, CAP, dt, 3600.0),
    ):
        assert 0 <= a <= b
    a, b = can_forward(lo, hi, CAP, amount)
    assert b <= CAP


@given(
    st.lists(
        st.tuples(st.integers(0, CAP), st.integers(0, CAP), st.booleans(), st.floats(0, 50_000)),
        min_size=1,
        max_size=30,
    )
)
def test_vectorised_decay_matches_the_scalar_rule(rows: list[tuple[int, int, bool, float]]) -> None:
    lo = np.asarray([min(a, b) for a, b, _, _ in rows], dtype=np.int64)
    hi = np.asarray([max(a, b) for a, b, _, _ in rows], dtype=np.int64)
    cap = np.asarray([CAP if known else 0 for _, _, known, _ in rows], dtype=np.int64)
    age = np.asarray([t for *_, t in rows], dtype=np.float64)
    los, his = decayed_arrays(lo, hi, cap, age, 3600.0)
    for i in range(len(rows)):
        c = int(cap[i]) or None
        assert (int(los[i]), int(his[i])) == decayed(
            int(lo[i]), int(hi[i]), c, float(age[i]), 3600.0
        )


# -- knowledge ----------------------------------------------------------------------------


def test_temporary_channel_failure_at_hop_k() -> None:
    k = knowledge()
    k.part_resolved(ROUTE, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2))
    assert k.bounds("3x3x3/0") == (0, 2999)  # could not forward 3000
    assert k.bounds("2x2x2/1") == (3001, CAP)  # forwarded 3001 before
    assert k.bounds("1x1x1/0") is None  # our own channel is never learnt


def test_failure_counts_our_other_parts_in_flight() -> None:
    k = knowledge()
    other = Route(
        hops=(
            ROUTE.hops[0],
            ROUTE.hops[1],
            Hop(id=C, channel="3x3x3", direction=0, amount_msat=5000, delay=18),
        )
    )
    k.part_sent(other, CAPS)
    k.part_sent(ROUTE, CAPS)
    assert k.inflight_msat("3x3x3/0") == 8000
    k.part_resolved(ROUTE, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2))
    assert k.inflight_msat("3x3x3/0") == 5000
    assert k.bounds("3x3x3/0") == (0, 3000 + 5000 - 1)  # L < 3000 + our 5000 held there
    assert k.bounds("2x2x2/1") == (3001 + 3001, CAP)


def test_success_raises_lo_and_moves_liquidity_to_the_reverse_side_only() -> None:
    k = knowledge()
    k.part_resolved(ROUTE, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2))
    before = k.bounds("2x2x2/1")
    assert before == (3001, CAP)  # forwarded the failed part
    k.part_sent(ROUTE, CAPS)
    k.part_resolved(ROUTE, CAPS, SUCCEEDED)
    assert k.bounds("2x2x2/1") == before  # forwarded 3001 again, not lowered after
    assert k.bounds("2x2x2/0") == (3001, CAP)  # 3001 arrived on the other side
    assert k.bounds("3x3x3/1") == (3000, CAP)
    assert k.bounds("3x3x3/0") == (3000, CAP)  # forwarded 3000: the old bound was wrong
    assert k.inflight_msat("2x2x2/1") == 0


def test_learning_tightens_with_observations() -> None:
    k = knowledge()
    big = Route(
        hops=(ROUTE.hops[0], Hop(id=B, channel="2x2x2", direction=1, amount_msat=600_000, delay=18))
    )
    small = Route(
        hops=(ROUTE.hops[0], Hop(id=B, channel="2x2x2", direction=1, amount_msat=200_000, delay=18))
    )
    k.part_resolved(big, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 1))
    k.part_resolved(small, CAPS, failed(FailCode.MPP_TIMEOUT, 2))
    assert k.bounds("2x2x2/1") == (200_000, 599_999)


@pytest.mark.parametrize(
    ("code", "index", "channel", "node"),
    [
        (FailCode.PERMANENT_CHANNEL_FAILURE, 1, "2x2x2/1", None),
        (FailCode.UNKNOWN_NEXT_PEER, 2, "3x3x3/0", None),
        (FailCode.CHANNEL_DISABLED, 1, "2x2x2/1", None),
        (FailCode.PERMANENT_NODE_FAILURE, 2, None, B),
        (FailCode.TEMPORARY_NODE_FAILURE, 1, None, A),
    ],
)
def test_disabling_failures(
    code: FailCode, index: int, channel: str | None, node: str | None
) -> None:
    clock = Clock()
    k = knowledge(clock)
    k.part_resolved(ROUTE, CAPS, failed(code, index))
    snap = k.snapshot()
    assert snap.disabled_channels == ({channel} if channel else set())
    assert snap.disabled_nodes == ({node} if node else set())
    clock.t += 601  # temporary ones (10 min) expire, permanent ones (1 day) do not
    snap = k.snapshot()
    permanent = code in (
        FailCode.PERMANENT_CHANNEL_FAILURE,
        FailCode.UNKNOWN_NEXT_PEER,
        FailCode.PERMANENT_NODE_FAILURE,
    )
    assert bool(snap.disabled_channels or snap.disabled_nodes) is permanent


def test_update_and_destination_failures_disable_nothing() -> None:
    k = knowledge()
    for code, i in (
        (FailCode.FEE_INSUFFICIENT, 1),
        (FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, 3),
        (FailCode.TEMPORARY_CHANNEL_FAILURE, 0),
    ):
        k.part_resolved(ROUTE, CAPS, failed(code, i))
    snap = k.snapshot()
    assert not snap.disabled_channels and not snap.disabled_nodes
    # the destination failure proves the whole path (but our own hop) forwarded
    assert k.bounds("3x3x3/0") == (3000, CAP)


def test_snapshot_decays_lazily_and_forgets_old_entries() -> None:
    clock = Clock()
    k = knowledge(clock, half_life_s=100.0)
    k.part_resolved(ROUTE, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2))
    snap = k.snapshot()
    assert dict(zip(snap.channels, zip(snap.lo_msat, snap.hi_msat, strict=True), strict=True)) == {
        "3x3x3/0": (0, 2999),
        "2x2x2/1": (3001, CAP),
    }
    clock.t += 100
    snap = k.snapshot()
    got = dict(zip(snap.channels, snap.hi_msat, strict=True))
    assert got["3x3x3/0"] == CAP - (CAP - 2999) // 2
    clock.t += 100 * 9
    assert k.snapshot().channels == ()
    assert k.export() == []


def test_export_import_round_trip_through_msgpack() -> None:
    clock = Clock()
    k = knowledge(clock)
    k.part_resolved(ROUTE, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2))
    k.part_resolved(ROUTE, CAPS, failed(FailCode.PERMANENT_NODE_FAILURE, 1))
    entries = k.export()
    kinds = {type(e) for e in entries}
    assert kinds == {ChannelKnowledge, DisabledNode}
    blob = msgspec.msgpack.encode(entries)
    back = msgspec.msgpack.decode(blob, type=list[KnowledgeEntry])
    assert back == entries
    k2 = knowledge(clock)
    assert k2.load(back) == len(entries)
    assert k2.export() == entries
    assert k2.snapshot() == k.snapshot()


def test_import_keeps_newer_and_skips_malformed() -> None:
    clock = Clock()
    k = knowledge(clock)
    k.part_resolved(ROUTE, CAPS, failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2))
    taken = k.load(
        [
            ChannelKnowledge(scid_dir="3x3x3/0", lo_msat=0, hi_msat=10, updated_at=clock.t - 5),
            ChannelKnowledge(scid_dir="not-a-channel", lo_msat=0, hi_msat=10, updated_at=clock.t),
            ChannelKnowledge(scid_dir="9x9x9/1", lo_msat=50, hi_msat=10, updated_at=clock.t),
            ChannelKnowledge(scid_dir="8x8x8/1", lo_msat=5, hi_msat=10, updated_at=clock.t),
            DisabledChannel(scid_dir="7x7x7/0", until=clock.t + 10),
        ]
    )
    assert taken == 2
    assert k.bounds("3x3x3/0") == (0, 2999)
    assert k.bounds("8x8x8/1") == (5, 10)
    assert "7x7x7/0" in k.snapshot().disabled_channels


# -- the actor ----------------------------------------------------------------------------


@pytest.mark.trio
async def test_actor_serves_snapshots_in_inbox_order() -> None:
    with trio.fail_after(5):
        tx, rx = anyio.create_memory_object_stream[EstimatorMsg](4)
        k = knowledge()
        async with anyio.create_task_group() as tg:
            await tg.start(_run, rx, k)
            await tx.send(PartSent(route=ROUTE, capacities_msat=CAPS))
            await tx.send(
                PartResolved(
                    route=ROUTE,
                    capacities_msat=CAPS,
                    outcome=failed(FailCode.TEMPORARY_CHANNEL_FAILURE, 2),
                )
            )
            snap: KnowledgeSnapshot = await ask(tx, lambda r: GetSnapshot(reply=r))
            assert "3x3x3/0" in snap.channels
            await tx.send(ImportKnowledge(entries=(DisabledNode(node_id=C, until=k.clock() + 60),)))
            exported: list[Any] = await ask(tx, lambda r: ExportKnowledge(reply=r))
            assert DisabledNode(node_id=C, until=k.clock() + 60) in exported
            await tx.aclose()


async def _run(rx: Any, k: LiquidityKnowledge, *, task_status: Any) -> None:
    await liquidity_estimator(inbox=rx, knowledge=k, task_status=task_status)
