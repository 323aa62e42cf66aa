"""Benchmark planning and the session guard (no engine needed)."""

from __future__ import annotations

import time
from functools import partial

import pytest
import trio
import trio.testing

from barq.bench.runner import BenchConfig, guarded, plan_sessions
from barq.errors import BarqError
from barq.graph import largest_scc
from barq.graph.synthetic import builtin_network


def test_same_seed_same_payments() -> None:
    graph, _ = builtin_network(1)
    scc = [graph.nodes[int(i)] for i in largest_scc(graph)]
    cfg = BenchConfig(strategies=("dijkstra",), amounts_msat=(10_000_000, 5_000_000), payments=4)
    a = plan_sessions(scc, cfg)
    assert a == plan_sessions(scc, cfg)
    assert len(a) == 8 and all(s.payments == 1 for s in a)
    assert all(s.source not in s.batches[0] for s in a)
    # an amount's payments do not depend on the other amounts
    only = plan_sessions(scc, BenchConfig(strategies=("x",), amounts_msat=(5_000_000,), payments=4))
    assert only == a[4:]
    conc = plan_sessions(
        scc, BenchConfig(strategies=("x",), amounts_msat=(1000,), payments=5, concurrency=2)
    )
    assert [s.payments for s in conc] == [2, 2, 1]
    warm = plan_sessions(
        scc,
        BenchConfig(strategies=("x",), amounts_msat=(1000,), payments=5, concurrency=2, warm=True),
    )
    assert len(warm) == 1 and [len(b) for b in warm[0].batches] == [2, 2, 1]


def test_guard_stops_a_livelock_and_a_runaway_clock() -> None:
    async def spin() -> None:
        while True:  # never lets the clock advance
            await trio.lowlevel.checkpoint()

    async def forever() -> None:
        await trio.sleep_forever()

    t0 = time.perf_counter()
    with pytest.raises(BarqError, match="timed out"):
        trio.run(
            partial(guarded, spin, wall_s=0.3, sim_s=1e9),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    assert time.perf_counter() - t0 < 5
    with pytest.raises(BarqError, match="timed out"):
        trio.run(
            partial(guarded, forever, wall_s=60, sim_s=100),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )

    async def quick() -> int:
        await trio.sleep(5)
        return 7

    assert (
        trio.run(
            partial(guarded, quick, wall_s=60, sim_s=100),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        == 7
    )
