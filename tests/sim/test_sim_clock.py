"""Simulated time: the epoch, elapsed clock time, and the seeded latency of each hop."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from barq.model import Hop, Route
from barq.sim.clock import SimClock
from barq.sim.parts import PartInfo

EPOCH = 1_700_000_000


def info(partid: int = 1) -> PartInfo:
    hop = Hop(id="02" + "11" * 32, channel="1x1x1", direction=0, amount_msat=1000, delay=18)
    return PartInfo(
        payer="02" + "22" * 32,
        payment_hash="ab" * 32,
        partid=partid,
        groupid=1,
        route=Route(hops=(hop,)),
        total_msat=1000,
    )


@pytest.mark.trio
async def test_now_runs_from_the_epoch_once_started(autojump_clock: Any) -> None:
    clock = SimClock(epoch_s=EPOCH, seed=1, hop_latency_s=0.05, latency_jitter_s=0.02)
    await trio.sleep(5)
    assert clock.now() == EPOCH  # not started: the epoch, whatever the loop's clock says
    clock.start()
    await trio.sleep(2.5)
    assert clock.now() == pytest.approx(EPOCH + 2.5)


def test_latency_is_a_seeded_hash_not_a_random_stream() -> None:
    a = SimClock(epoch_s=EPOCH, seed=1, hop_latency_s=0.05, latency_jitter_s=0.02)
    b = SimClock(epoch_s=EPOCH, seed=1, hop_latency_s=0.05, latency_jitter_s=0.02)
    other = SimClock(epoch_s=EPOCH, seed=2, hop_latency_s=0.05, latency_jitter_s=0.02)
    lat = [a.latency(info(), 0, hop, back) for hop in range(4) for back in (False, True)]
    # the same question gives the same answer, in any order, on any clock of that seed
    assert lat == [b.latency(info(), 0, hop, back) for hop in range(4) for back in (False, True)]
    assert list(reversed(lat)) == [
        a.latency(info(), 0, hop, back) for hop in reversed(range(4)) for back in (True, False)
    ]
    assert all(0.05 <= x < 0.07 for x in lat) and len(set(lat)) == len(lat)
    assert other.latency(info(), 0, 0, False) != lat[0]
    assert a.latency(info(), 1, 0, False) != lat[0]  # a resent part draws anew
    assert a.latency(info(partid=2), 0, 0, False) != lat[0]
    a.latency_jitter_s = 0
    assert a.latency(info(), 0, 0, False) == 0.05
