"""Part slots (``maxparts``) on retries: a failed part takes its share, then all it needs."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import trio
from actor_helpers import CONFIG, Scripted, diamond, fails_at_channel, through

from barq.actors import open_runtime
from barq.errors import RouteNotFound
from barq.graph import Graph
from barq.model import Route, RouteInput
from barq.model.payment import PaymentStatus, PayParams
from barq.routing import RoutingContext, build_route
from barq.strategies import register_strategy
from barq.testing import Limits, ScriptedNode, Succeed

AMOUNT = 40_000_000
PATHS = (
    ("101x1x0", "103x1x0"),
    ("102x1x0", "104x1x0"),
    ("105x1x0", "106x1x0"),
    ("101x1x0", "103x1x0"),
)


def _rows(g: Graph, scids: tuple[str, ...], source: str) -> list[int]:
    rows, at = [], g.node_index[source]
    for scid in scids:
        e = next(e for e in range(g.num_edges) if g.scid[e] == scid and int(g.src[e]) == at)
        rows.append(e)
        at = int(g.dst[e])
    return rows


class NeedsTwoParts:
    """The whole amount in four parts; any later amount in two, never in one."""

    name: ClassVar[str] = "needs-two-parts"
    description: ClassVar[str] = "test strategy: refuses maxparts < 2"
    splits: ClassVar[bool] = True
    min_part_msat: ClassVar[int | None] = None
    halve_on_failure: ClassVar[bool] = False
    asked: ClassVar[list[int]] = []

    def find_routes(self, request: RouteInput, ctx: RoutingContext) -> list[Route]:
        self.asked.append(request.maxparts)
        if request.maxparts < 2:
            raise RouteNotFound("needs two parts")
        n = 4 if request.amount_msat == AMOUNT else 2
        share, extra = divmod(request.amount_msat, n)
        return [
            build_route(
                ctx.graph,
                _rows(ctx.graph, PATHS[i], request.source),
                share + (extra if i == 0 else 0),
                request.final_cltv,
            )
            for i in range(n)
        ]


register_strategy(NeedsTwoParts.name, NeedsTwoParts)


@pytest.mark.trio
async def test_a_retry_widens_to_the_free_slots_when_its_share_is_too_small(
    autojump_clock: Any,
) -> None:
    """maxparts=5: four parts sent, the one over 104 fails at once while three are held for
    30 s. Its share of the two free slots is one; the strategy needs two, so it is asked
    again with both and the retry goes out at once, not after the held parts resolve."""
    d = diamond()
    failed: list[int] = []

    def first_over_104_fails(p: Any) -> Any:
        if not failed:
            failed.append(p.seq)
            return fails_at_channel("104x1x0")(p)
        return Succeed(after_s=1.0)

    node = ScriptedNode(
        graph=d.graph,
        our_id=d.us,
        handler=Scripted(default=lambda p: Succeed(after_s=30.0)).when(
            through("104x1x0"), first_over_104_fails
        ),
    )
    b = node.add_invoice(payee=d.dest, amount_msat=AMOUNT)
    node.expect(b, Limits(maxfee_msat=1_000_000, maxdelay=CONFIG.maxdelay, maxparts=5))
    NeedsTwoParts.asked.clear()
    with trio.fail_after(300):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(
                PayParams(
                    invstring=b, strategy=NeedsTwoParts.name, maxparts=5, maxfee_msat=1_000_000
                )
            )
    assert view.status is PaymentStatus.COMPLETE and view.delivered_msat == AMOUNT
    assert NeedsTwoParts.asked == [5, 1, 2]  # all, then the share, then widened
    assert len(node.sent) == 6 and all(p.at < 30.0 for p in node.sent)
    assert node.violations == []
