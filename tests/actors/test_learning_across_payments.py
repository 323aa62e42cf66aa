"""What one payment teaches the next, when balances come back (the estimator's success rule)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from actor_helpers import CONFIG, diamond

from barq.actors import open_runtime
from barq.model.payment import PaymentStatus, PayParams
from barq.sim import SimulatedNetwork

SAT = 1000


def _direction(g: Any, scid: str, src: str) -> int:
    e = next(e for e in range(g.num_edges) if g.scid[e] == scid and g.nodes[int(g.src[e])] == src)
    return int(g.direction[e])


@pytest.mark.trio
@pytest.mark.parametrize("strategy", ["mincostflow", "probabilistic"])
async def test_a_success_does_not_hide_the_channel_from_the_next_payment(
    autojump_clock: Any, strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only us -> a -> dest can carry 600k sat. After paying it, the balances are restored
    (other traffic would do the same). The second payment goes the same way at once: the
    success taught ``a -> dest`` carried 600k, and did not lower it by the 600k moved
    (before, its upper bound dropped to 400k: no route, then a relaxation)."""
    d = diamond()
    g = d.graph
    caplog.set_level(logging.INFO, logger="barq.actors")
    with trio.fail_after(600):
        async with SimulatedNetwork.open(g, seed=1, liquidity="half") as net:
            balances = [
                ("101x1x0", d.us, 1_000_000 * SAT),
                ("102x1x0", d.us, 1_000_000 * SAT),
                ("105x1x0", d.us, 1_000_000 * SAT),
                ("103x1x0", d.a, 700_000 * SAT),
                ("104x1x0", d.b, 100_000 * SAT),
                ("106x1x0", d.c, 100_000 * SAT),
            ]

            def restore() -> None:
                for scid, src, msat in balances:
                    net.set_balance(scid, _direction(g, scid, src), msat)

            restore()
            async with open_runtime(net.node(d.us), CONFIG, clock=net.now) as rt:
                first = await rt.pay(
                    PayParams(
                        invstring=net.create_invoice(d.dest, 600_000 * SAT), strategy=strategy
                    )
                )
                restore()
                caplog.clear()
                second = await rt.pay(
                    PayParams(
                        invstring=net.create_invoice(d.dest, 600_000 * SAT), strategy=strategy
                    )
                )
    assert first.status is second.status is PaymentStatus.COMPLETE
    assert second.attempts == 1
    assert [h.channel for h in second.parts[0].route.hops] == ["101x1x0", "103x1x0"]
    assert not any("set aside" in r.getMessage() for r in caplog.records)
