"""Helpers shared by the actor tests (imported as ``actor_helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from barq.graph import Graph
from barq.graph.synthetic import ChannelSpec, network_from_channels
from barq.model import FailCode, NodeId, Route, scid_dir
from barq.model.payment import EngineConfig, PaymentEvent, PaymentView
from barq.store import Store
from barq.testing import Fail, PartScript, SentPart, Succeed, fail_at

SAT = 1000

#: engine settings for tests: strategies inline (MockClock), small parts allowed
CONFIG = EngineConfig(
    strategies_in_thread=False,
    slow_mode=True,  # the tests read the payment once every part settled
    default_strategy="dijkstra",
    min_part_msat=1_000_000,
    retry_for_s=60.0,
)


@dataclass(frozen=True)
class Diamond:
    """``us(0) -> 1 -> dest(3)`` (cheap) and ``us -> 2 -> dest`` (dearer), plus ``us -> 4 -> dest``
    (dearest). Scids: 0-1 ``101x1x0``, 0-2 ``102x1x0``, 1-3 ``103x1x0``, 2-3 ``104x1x0``,
    0-4 ``105x1x0``, 4-3 ``106x1x0``."""

    graph: Graph
    us: NodeId
    a: NodeId
    b: NodeId
    dest: NodeId
    c: NodeId

    def sd(self, scid: str, src: NodeId) -> str:
        """``scid/dir`` of the direction of ``scid`` leaving ``src``."""
        e = next(
            e
            for e in range(self.graph.num_edges)
            if self.graph.scid[e] == scid and self.graph.nodes[int(self.graph.src[e])] == src
        )
        return scid_dir(scid, int(self.graph.direction[e]))


def diamond(cap_sat: int = 1_000_000, *, private_last: bool = False) -> Diamond:
    chans = [
        ChannelSpec(a=0, b=1, capacity_sat=cap_sat, scid="101x1x0"),
        ChannelSpec(a=0, b=2, capacity_sat=cap_sat, scid="102x1x0"),
        ChannelSpec(
            a=1,
            b=3,
            capacity_sat=cap_sat,
            scid="103x1x0",
            fee_base_msat=(1000, 1000),
            fee_ppm=(100, 100),
        ),
        ChannelSpec(
            a=2,
            b=3,
            capacity_sat=cap_sat,
            scid="104x1x0",
            fee_base_msat=(2000, 2000),
            fee_ppm=(500, 500),
        ),
        ChannelSpec(a=0, b=4, capacity_sat=cap_sat, scid="105x1x0"),
        ChannelSpec(
            a=4,
            b=3,
            capacity_sat=cap_sat,
            scid="106x1x0",
            fee_base_msat=(3000, 3000),
            fee_ppm=(900, 900),
            private=private_last,
        ),
    ]
    g, _ = network_from_channels(5, chans, seed=7)
    n = g.nodes
    return Diamond(graph=g, us=n[0], a=n[1], b=n[2], dest=n[3], c=n[4])


def uses(route: Route, scid: str) -> bool:
    return any(h.channel == scid for h in route.hops)


@dataclass
class Scripted:
    """A handler built from rules: the first rule whose predicate matches decides."""

    rules: list[tuple[Callable[[SentPart], bool], Callable[[SentPart], PartScript]]] = field(
        default_factory=list
    )
    default: Callable[[SentPart], PartScript] = lambda p: Succeed(after_s=1.0)

    def when(
        self, pred: Callable[[SentPart], bool], then: Callable[[SentPart], PartScript]
    ) -> Scripted:
        self.rules.append((pred, then))
        return self

    def __call__(self, part: SentPart) -> PartScript:
        for pred, then in self.rules:
            if pred(part):
                return then(part)
        return self.default(part)


def through(scid: str) -> Callable[[SentPart], bool]:
    return lambda p: uses(p.route, scid)


def fails_at_channel(
    scid: str, code: FailCode = FailCode.TEMPORARY_CHANNEL_FAILURE, **kw: object
) -> Callable[[SentPart], Fail]:
    """A part through ``scid`` fails at the node that should forward over it."""

    def make(p: SentPart) -> Fail:
        k = next(i for i, h in enumerate(p.route.hops) if h.channel == scid)
        return fail_at(p.route, k, code, **kw)  # type: ignore[arg-type]

    return make


class StoreJournal:
    """A :class:`barq.store.Store` as the engine's journal, read without a worker thread.

    Under trio's autojump clock a read that waits for a thread lets mock time
    jump to the next deadline; this one blocks the loop for the (millisecond)
    read instead.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, event: PaymentEvent) -> None:
        self.store.record(event)

    def put_payment(self, view: PaymentView) -> None:
        self.store.put_payment(view)

    def put_history(self, views: Sequence[PaymentView]) -> None:
        self.store.put_history(views)

    @property
    def created(self) -> bool:
        return self.store.created

    async def aget_payments(
        self,
        payment_hash: str | None = None,
        status: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[PaymentView]:
        return self.store.get_payments(payment_hash, status, limit=limit)
