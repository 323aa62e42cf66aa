"""Every message that crosses an actor boundary, grouped by the inbox that consumes it.

The data path of one part reads top-down::

    runtime.pay ─▶ supervisor ──OpenPayment/FindRoutes──▶ router ──GetSnapshot──▶ estimator
                       │  ▲                                  ▲                        ▲
               spawns  │  │ ShardResult          ReleaseRoute│      PartSent/PartResolved
                       ▼  │                                  │                        │
                     shard worker ── sendpay/waitsendpay (NodeInterface) ─────────────┘

All messages are frozen, keyword-only, tagged :class:`msgspec.Struct` s. A
request that expects an answer carries ``reply``: the send end of a one-shot
memory stream (buffer 0) that the requester reads exactly once; the
responder tolerates a requester that went away (the stream is then closed
and the send raises ``BrokenResourceError``). Nothing live (graphs, node
clients) ever travels in a message; reply streams are the only exception.

The knowledge records (:data:`KnowledgeEntry`) are also the export/import
format of the estimator (persisted by the plugin; timestamps are UNIX seconds).
"""

from __future__ import annotations

from typing import Any

import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from barq.model import NodeId, PartId, PaymentHash, Route, RouteHintHop, RouteInput, ScidDir
from barq.model.payment import PartOutcome  # re-exported: part of the actor protocol

__all__ = [
    "ChannelKnowledge",
    "ClosePayment",
    "DisabledChannel",
    "DisabledNode",
    "EstimatorMsg",
    "ExportKnowledge",
    "FindRoutes",
    "FindRoutesReply",
    "GetSnapshot",
    "GraphRefreshed",
    "ImportKnowledge",
    "KnowledgeEntry",
    "KnowledgeSnapshot",
    "NoRoutes",
    "OpenPayment",
    "PartOutcome",
    "PartResolved",
    "PartSent",
    "PaymentOpened",
    "PlannedRoute",
    "RefreshGraph",
    "ReleaseRoute",
    "RouterMsg",
    "RoutesFound",
    "ShardOrder",
    "ShardResult",
    "SupervisorMsg",
]


# -- shared payloads ------------------------------------------------------------------------


class PlannedRoute(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A route the router handed out, with its reservation.

    ``reservation`` names the in-flight amounts the router now holds for it
    (release it exactly once with :class:`ReleaseRoute`); ``capacities_msat``
    is each hop's channel capacity (the estimator clamps its bounds with it).
    """

    reservation: int
    route: Route
    capacities_msat: tuple[int, ...]


# -- estimator inbox ------------------------------------------------------------------------


class PartSent(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A part's HTLC is out: count ``route`` as our in-flight liquidity on every hop."""

    route: Route
    capacities_msat: tuple[int, ...]


class PartResolved(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A part ended: learn from ``outcome`` and stop counting it in flight (if it was sent)."""

    route: Route
    capacities_msat: tuple[int, ...]
    outcome: PartOutcome


class KnowledgeSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """What the estimator knows now (decayed to ``taken_at``), sparse: learnt channels only.

    ``lo_msat[i]``/``hi_msat[i]`` bound the liquidity of half-channel
    ``channels[i]``; a ``hi_msat`` above the channel's capacity means "no upper
    bound known" (clamp it). ``updated_at[i]`` is when ``channels[i]`` was last
    observed (the estimator's clock); it is either aligned with ``channels`` or
    empty (unknown). ``disabled_*`` must not be used at all.
    """

    taken_at: float
    channels: tuple[ScidDir, ...] = ()
    lo_msat: tuple[int, ...] = ()
    hi_msat: tuple[int, ...] = ()
    disabled_channels: frozenset[ScidDir] = frozenset()
    disabled_nodes: frozenset[NodeId] = frozenset()
    updated_at: tuple[float, ...] = ()

    def learnt_before(self, since: float) -> bool:
        """True when some learnt bounds were last observed before ``since``.

        False when the timestamps are unknown (``updated_at`` not aligned).
        """
        if len(self.updated_at) != len(self.channels):
            return False
        return any(t < since for t in self.updated_at)

    def learnt_since(self, since: float) -> KnowledgeSnapshot:
        """This snapshot without the bounds last observed before ``since``.

        Entries updated at or after ``since`` and everything disabled are
        kept; so is everything when the timestamps are unknown.
        """
        if not self.learnt_before(since):
            return self
        keep = [i for i, t in enumerate(self.updated_at) if t >= since]
        return KnowledgeSnapshot(
            taken_at=self.taken_at,
            channels=tuple(self.channels[i] for i in keep),
            lo_msat=tuple(self.lo_msat[i] for i in keep),
            hi_msat=tuple(self.hi_msat[i] for i in keep),
            disabled_channels=self.disabled_channels,
            disabled_nodes=self.disabled_nodes,
            updated_at=tuple(self.updated_at[i] for i in keep),
        )


class ChannelKnowledge(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Export/import record: liquidity bounds of one half-channel.

    Invariant ``0 <= lo_msat <= hi_msat <= capacity_msat`` (when the capacity is
    known). ``updated_at`` is the UNIX second of the last observation; the
    bounds decay toward ``[0, capacity]`` from there. Without a capacity the
    upper bound is dropped after one half-life.
    """

    scid_dir: ScidDir
    lo_msat: int
    hi_msat: int
    updated_at: float
    capacity_msat: int | None = None


class DisabledChannel(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Export/import record: a half-channel not to be used until ``until`` (UNIX s)."""

    scid_dir: ScidDir
    until: float
    reason: str = ""


class DisabledNode(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Export/import record: a node not to be routed through until ``until`` (UNIX s)."""

    node_id: NodeId
    until: float
    reason: str = ""


KnowledgeEntry = ChannelKnowledge | DisabledChannel | DisabledNode


class GetSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Request: reply with a :class:`KnowledgeSnapshot`."""

    reply: MemoryObjectSendStream[KnowledgeSnapshot]


class ExportKnowledge(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Request: reply with every :data:`KnowledgeEntry` (for persistence)."""

    reply: MemoryObjectSendStream[list[KnowledgeEntry]]


class ImportKnowledge(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Merge persisted entries (newer observations win)."""

    entries: tuple[KnowledgeEntry, ...]


EstimatorMsg = PartSent | PartResolved | GetSnapshot | ExportKnowledge | ImportKnowledge


# -- router inbox ---------------------------------------------------------------------------


class PaymentOpened(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Reply to :class:`OpenPayment`."""

    our_id: NodeId
    destination_known: bool
    usable_channels: int


class OpenPayment(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A payment starts: refresh our channels and say whether ``destination`` is reachable at all
    (in gossip, one of our peers, or the end of a route hint)."""

    payment_hash: PaymentHash
    destination: NodeId
    route_hints: tuple[tuple[RouteHintHop, ...], ...]
    reply: MemoryObjectSendStream[PaymentOpened]


class RoutesFound(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Reply to :class:`FindRoutes`: routes reserved for the requester.

    ``compute_s`` is the wall-clock time the strategy took (both runs when
    relaxed). ``relaxed``: the strategy found nothing with every learnt bound,
    and these routes were found once the bounds observed before the payment
    started (:attr:`FindRoutes.since`) were set aside.
    """

    routes: tuple[PlannedRoute, ...]
    compute_s: float
    relaxed: bool = False


class NoRoutes(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Reply to :class:`FindRoutes`: the strategy found nothing.

    ``code`` is the :mod:`barq.errors` code (205 not found, 206 too expensive,
    -32602 invalid, 209 strategy crashed); ``message``/``data`` as the error's.
    ``others_reserved_msat`` is what other payments' reservations held when
    the strategy ran (their release may make a route appear).
    """

    code: int
    message: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    compute_s: float = 0.0
    others_reserved_msat: int = 0


FindRoutesReply = RoutesFound | NoRoutes


class FindRoutes(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Request: routes for ``request`` by strategy ``strategy``.

    With ``reserve`` the routes' amounts count as in flight until released
    (:class:`ReleaseRoute`) or the payment closes (:class:`ClosePayment`).
    ``since`` is when the payment started (the estimator's clock): when the
    strategy finds no route (205), learnt bounds observed before it may be
    stale, and the router tries once more without them (``None``: never).
    ``opened_at`` is also when the payment started, and stays so when ``since``
    moves (relaxed plans): the strategy's
    :attr:`~barq.routing.RoutingContext.learnt_max_msat` holds only the bounds
    observed from then on, what this payment has learnt (``None``: every bound).
    """

    payment_hash: PaymentHash
    strategy: str
    request: RouteInput
    reply: MemoryObjectSendStream[FindRoutesReply]
    reserve: bool = True
    since: float | None = None
    opened_at: float | None = None


class ReleaseRoute(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A routed part ended (or was never sent): drop its reservation, learn policy/local facts."""

    reservation: int
    outcome: PartOutcome


class ClosePayment(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A payment ended: drop what is cached for it and any reservation it still holds."""

    payment_hash: PaymentHash


class GraphRefreshed(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Reply to :class:`RefreshGraph` (``error`` set when reloading failed; the old graph stays)."""

    nodes: int
    half_channels: int
    error: str | None = None
    error_code: int | None = None


class RefreshGraph(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Reload the gossip graph from the node (reply when ``reply`` is given)."""

    reply: MemoryObjectSendStream[GraphRefreshed] | None = None


RouterMsg = OpenPayment | FindRoutes | ReleaseRoute | ClosePayment | RefreshGraph


# -- shard worker (its orders come at spawn time; it has no inbox) ---------------------------


class ShardOrder(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """What a shard worker is told to do: send ``planned`` as part ``partid`` of ``groupid``.

    ``planned`` is ``None`` for a part adopted from an earlier run (already
    sent, route unknown): the worker only waits for it. ``total_msat``,
    ``payment_secret``, ``bolt11`` and ``label`` go to ``sendpay`` unchanged.
    """

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    amount_msat: int
    total_msat: int
    planned: PlannedRoute | None
    payment_secret: str | None = None
    bolt11: str | None = None
    label: str | None = None


# -- supervisor inbox -----------------------------------------------------------------------


class ShardResult(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A shard worker's last word: part ``partid`` of group ``groupid`` ended with ``outcome``."""

    partid: PartId
    groupid: int
    amount_msat: int
    outcome: PartOutcome


SupervisorMsg = ShardResult
