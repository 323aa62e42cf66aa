"""The router: the one actor that owns the graph and hands out routes (renepay's routebuilder).

It owns, and nobody else touches:

* the gossip graph (``node.gossip_graph()`` at start, :class:`RefreshGraph` later)
  with our own channels overlaid and the ``channel_update`` s that UPDATE
  failures carried applied on top (the new policy counts from then on);
* our channels' exact balances (``node.list_peer_channels()``, refreshed when a
  payment opens and after a failure at our own first hop);
* the route-hint overlay of each invoice (cached, rebuilt when the base graph changes);
* the **reservations**: the amounts of every route it handed out and that is
  not yet released, so concurrent shards and payments never plan over the same
  sats (subtracted from the liquidity bounds when a routing context is built).

Each :class:`FindRoutes` builds a :class:`~barq.strategies.RoutingContext` from
the estimator's snapshot (asked for with :class:`GetSnapshot`), our balances,
the reservations and what is disabled, runs the payment's strategy (in a
worker thread when ``config.strategies_in_thread``), reserves the routes and
replies. Requests are served one at a time, so a reservation is always in
place before the next context is built.

Local balances: ``listpeerchannels``' ``spendable_msat`` already excludes
HTLCs in flight, so each of our channels carries ``spendable + delta`` where
``delta`` (reset by every refresh) is lowered by reservations made since and
raised again when a part fails or is not sent. A part reserved but not yet
sent when a refresh happens is counted once too few until the next refresh;
a failure at our first hop triggers that refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import anyio
import numpy as np
import numpy.typing as npt
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from barq.actors._mailbox import ask, reply
from barq.actors.failures import classify
from barq.actors.messages import (
    ClosePayment,
    EstimatorMsg,
    FindRoutes,
    GetSnapshot,
    GraphRefreshed,
    KnowledgeSnapshot,
    NoRoutes,
    OpenPayment,
    PartOutcome,
    PaymentOpened,
    PlannedRoute,
    RefreshGraph,
    ReleaseRoute,
    RouterMsg,
    RoutesFound,
)
from barq.errors import BarqError, RouteNotFound, UnknownStrategy
from barq.graph import Graph
from barq.graph.overlay import overlay_local_channels, overlay_route_hints
from barq.model import (
    ChannelUpdate,
    HalfChannel,
    LocalChannel,
    NodeId,
    NodeInfo,
    Route,
    RouteHintHop,
    RouteInput,
    Scid,
    ScidDir,
    direction_of,
    scid_dir,
)
from barq.model.payment import EngineConfig, PartState
from barq.node.base import NodeInterface
from barq.routing import RoutingContext, Strategy
from barq.strategies import get_strategy

__all__ = ["RouterBook", "router"]

log = logging.getLogger(__name__)

Hints = tuple[tuple[RouteHintHop, ...], ...]

#: how many invoices' route-hint overlays are kept
HINT_CACHE_SIZE = 64

I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class _Reservation:
    payment_hash: str
    route: Route
    local: ScidDir | None  # the first hop, when it is one of our channels


class _GraphIndex:
    """Lookups on one graph that every context needs: ``scid/dir`` -> row, our channels' rows.

    The row map is built once per graph; our channels' rows once per ``listpeerchannels``.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        dirs = graph.direction.tolist()
        self.row_of: dict[ScidDir, int] = {
            f"{s}/{d}": e for e, (s, d) in enumerate(zip(graph.scid, dirs, strict=True))
        }
        self._learnt: tuple[ScidDir, ...] = ()
        self._learnt_rows = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self._spendable: dict[ScidDir, int] | None = None
        self.local_pos: dict[ScidDir, int] = {}
        self.local_rows = np.zeros(0, dtype=np.int64)
        self.local_spendable = np.zeros(0, dtype=np.int64)

    def learnt_rows(self, channels: tuple[ScidDir, ...]) -> tuple[I64, I64]:
        """Rows of ``channels`` in the graph, and which of ``channels`` they are."""
        if channels != self._learnt:
            pairs = [(i, e) for i, e in enumerate(map(self.row_of.get, channels)) if e is not None]
            self._learnt = channels
            self._learnt_rows = (
                np.asarray([e for _, e in pairs], dtype=np.int64),
                np.asarray([i for i, _ in pairs], dtype=np.int64),
            )
        return self._learnt_rows

    def use_local(self, spendable: dict[ScidDir, int]) -> None:
        """Our channels' rows and balances (recomputed when a refresh brought new ones)."""
        if spendable is self._spendable:
            return
        self._spendable = spendable
        local = [(sd, self.row_of[sd], v) for sd, v in spendable.items() if sd in self.row_of]
        self.local_pos = {sd: i for i, (sd, _, _) in enumerate(local)}
        self.local_rows = np.asarray([e for _, e, _ in local], dtype=np.int64)
        self.local_spendable = np.asarray([v for _, _, v in local], dtype=np.int64)


class RouterBook:
    """The router's state and its synchronous operations (no I/O; one writer: the router).

    Args:
        our_id: our node id.
        gossip: the public graph.
        channels: our channels (``listpeerchannels``).
    """

    def __init__(self, *, our_id: NodeId, gossip: Graph, channels: Sequence[LocalChannel]) -> None:
        self.our_id = our_id
        self._gossip = gossip
        self._channels: list[LocalChannel] = []
        self._channels_key: tuple[object, ...] | None = None
        self._spendable: dict[ScidDir, int] = {}
        self._delta: dict[ScidDir, int] = {}
        self._updates: dict[tuple[Scid, int], ChannelUpdate] = {}
        self._base: Graph | None = None
        self._hint_graphs: dict[tuple[NodeId, Hints], Graph] = {}
        self._reservations: dict[int, _Reservation] = {}
        self._inflight: dict[ScidDir, int] = {}
        self._next_reservation = 1
        self._indexes: list[_GraphIndex] = []
        self.set_channels(channels)

    # -- the graph ------------------------------------------------------------------------

    @property
    def graph(self) -> Graph:
        """Gossip + our channels + applied channel updates (rebuilt lazily after a change)."""
        if self._base is None:
            g = overlay_local_channels(self._gossip, self.our_id, self._channels)
            self._base = _apply_updates(g, self._updates.values(), self.our_id)
            self._hint_graphs.clear()
        return self._base

    def payment_graph(self, destination: NodeId, hints: Hints) -> Graph:
        """:attr:`graph` with an invoice's route hints (cached per destination and hints)."""
        base = self.graph
        if not hints:
            return base
        g = self._hint_graphs.get((destination, hints))
        if g is None:
            g = overlay_route_hints(base, destination, hints, our_id=self.our_id)
            if len(self._hint_graphs) >= HINT_CACHE_SIZE:
                self._hint_graphs.pop(next(iter(self._hint_graphs)))
            self._hint_graphs[(destination, hints)] = g
        return g

    def set_gossip(self, gossip: Graph) -> None:
        """A fresh gossip graph (forgets applied channel updates: gossip has them now).

        The very same graph object again (the node's cache: its gossip store has not
        changed) changes nothing: the overlaid graph, its row indexes and the applied
        updates are kept (gossip does not have those updates yet).
        """
        if gossip is self._gossip:
            return
        self._gossip = gossip
        self._updates.clear()
        self._base = None

    def set_channels(self, channels: Sequence[LocalChannel]) -> None:
        """Fresh ``listpeerchannels``: exact balances; the graph changes only if channels did."""
        spendable: dict[ScidDir, int] = {}
        for ch in channels:
            if ch.scid is None:
                continue
            d = ch.direction if ch.direction is not None else direction_of(self.our_id, ch.peer_id)
            sd = scid_dir(ch.scid, d)
            spendable[sd] = ch.spendable_msat if ch.usable else 0
        self._spendable = spendable
        self._delta = {}
        key = tuple(
            (
                c.scid,
                c.direction,
                c.peer_id,
                c.usable,
                c.capacity_msat,
                c.htlc_min_msat,
                c.htlc_max_msat,
                c.private,
            )
            for c in channels
        )
        if key != self._channels_key:
            self._channels_key = key
            self._channels = list(channels)
            self._base = None

    def apply_update(self, update: ChannelUpdate) -> None:
        """Use ``update``'s policy for its half-channel from now on (newest timestamp wins)."""
        key = (update.scid, update.direction)
        old = self._updates.get(key)
        if old is not None and old.timestamp > update.timestamp:
            return
        if old == update:
            return
        self._updates[key] = update
        self._base = None

    @property
    def usable_channels(self) -> int:
        return sum(1 for v in self._spendable.values() if v > 0)

    # -- contexts -------------------------------------------------------------------------

    def context(
        self, graph: Graph, snapshot: KnowledgeSnapshot, destination: NodeId | None = None
    ) -> RoutingContext:
        """The :class:`RoutingContext` for one request on ``graph``.

        ``min``/``max`` are the estimator's bounds (clamped to capacity) minus
        the reservations; our own channels get ``spendable + delta`` exactly;
        ``usable`` drops disabled half-channels and nodes (never ``destination``
        nor us). Cost: O(rows) numpy plus O(learnt + reserved + disabled) dict
        lookups (the row index of a graph is built once; an unchanged set of
        learnt channels reuses its rows).
        """
        index = self._index(graph)
        n = graph.num_edges
        cap = graph.capacity_msat
        lo = np.zeros(n, dtype=np.int64)
        hi = cap.copy()
        idx, keep = index.learnt_rows(snapshot.channels)
        if idx.size:
            his = np.asarray(snapshot.hi_msat, dtype=np.int64)[keep]
            los = np.asarray(snapshot.lo_msat, dtype=np.int64)[keep]
            hi[idx] = np.minimum(his, cap[idx])
            lo[idx] = np.minimum(los, hi[idx])
        usable = graph.enabled.copy()
        off = [e for e in map(index.row_of.get, snapshot.disabled_channels) if e is not None]
        if off:
            usable[np.asarray(off, dtype=np.int64)] = False
        bad = [
            graph.node_index[x]
            for x in snapshot.disabled_nodes
            if x in graph.node_index and x not in (destination, self.our_id)
        ]
        if bad:
            node_off = np.zeros(graph.num_nodes, dtype=np.bool_)
            node_off[np.asarray(bad, dtype=np.int64)] = True
            usable &= ~(node_off[graph.src] | node_off[graph.dst])
        inflight = np.zeros(n, dtype=np.int64)
        for sd, amount in self._inflight.items():
            e = index.row_of.get(sd)
            if e is not None:
                inflight[e] = amount
        mn = np.maximum(lo - inflight, 0)
        mx = np.maximum(hi - inflight, 0)
        rows, spend = index.local_rows, index.local_spendable
        if rows.size:
            exact = spend.copy()
            for sd, delta in self._delta.items():
                i = index.local_pos.get(sd)
                if i is not None:
                    exact[i] += delta
            exact = np.minimum(np.maximum(exact, 0), cap[rows])
            mn[rows] = exact
            mx[rows] = exact
        return RoutingContext(
            graph=graph, min_msat=mn, max_msat=mx, usable=usable, inflight_msat=inflight
        )

    def _index(self, graph: Graph) -> _GraphIndex:
        """The row index of ``graph`` (kept for the base graph and the last few hint graphs)."""
        gi = next((x for x in self._indexes if x.graph is graph), None)
        if gi is None:
            gi = _GraphIndex(graph)
            self._indexes = [gi, *self._indexes][:4]
        gi.use_local(self._spendable)
        return gi

    # -- reservations ---------------------------------------------------------------------

    def reserve(self, payment_hash: str, graph: Graph, route: Route) -> PlannedRoute:
        """Hold ``route``'s amounts as in flight; returns it with its reservation id."""
        rid = self._next_reservation
        self._next_reservation += 1
        first = scid_dir(route.hops[0].channel, route.hops[0].direction)
        local = first if first in self._spendable else None
        self._reservations[rid] = _Reservation(payment_hash=payment_hash, route=route, local=local)
        for hop in route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            if sd == local:
                self._delta[sd] = self._delta.get(sd, 0) - hop.amount_msat
            else:
                self._inflight[sd] = self._inflight.get(sd, 0) + hop.amount_msat
        caps: list[int] = []
        for hop in route.hops:
            e = graph.edge(hop.channel, hop.direction)
            caps.append(0 if e is None else int(graph.capacity_msat[e]))
        return PlannedRoute(reservation=rid, route=route, capacities_msat=tuple(caps))

    def release(self, reservation: int, outcome: PartOutcome) -> bool:
        """Drop a reservation and learn policy facts from ``outcome``.

        Returns:
            True when our channels must be refreshed (failure at our first hop,
            or a refusal by our own node).
        """
        r = self._reservations.pop(reservation, None)
        if r is None:
            return False
        self._unhold(r, returned=outcome.state is not PartState.SUCCEEDED)
        if outcome.failure is None:
            return not outcome.sent and outcome.rpc_code is not None  # our node refused it
        v = classify(r.route, outcome.failure)
        if v.update is not None and not v.local:
            self.apply_update(v.update)
        return v.local

    def close(self, payment_hash: str) -> int:
        """Drop every reservation ``payment_hash`` still holds (lost parts); returns how many.

        Our channels' balances are left as they are (the part may have gone
        through) until the next refresh.
        """
        left = [k for k, r in self._reservations.items() if r.payment_hash == payment_hash]
        for k in left:
            self._unhold(self._reservations.pop(k), returned=False)
        return len(left)

    def _unhold(self, r: _Reservation, *, returned: bool) -> None:
        for hop in r.route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            if sd == r.local:
                if returned:
                    self._delta[sd] = self._delta.get(sd, 0) + hop.amount_msat
                continue
            left = self._inflight.get(sd, 0) - hop.amount_msat
            if left > 0:
                self._inflight[sd] = left
            else:
                self._inflight.pop(sd, None)

    @property
    def reserved(self) -> dict[ScidDir, int]:
        """What the reservations hold on each remote half-channel (a copy)."""
        return dict(self._inflight)

    def reserved_by_others(self, payment_hash: str) -> int:
        """What reservations of payments other than ``payment_hash`` hold (first hops)."""
        return sum(
            r.route.sent_msat for r in self._reservations.values() if r.payment_hash != payment_hash
        )

    @property
    def reservations(self) -> int:
        return len(self._reservations)

    def local_available(self, sd: ScidDir) -> int | None:
        """What we believe our channel ``sd`` can send now (``None``: not ours)."""
        if sd not in self._spendable:
            return None
        return max(self._spendable[sd] + self._delta.get(sd, 0), 0)


def _apply_updates(graph: Graph, updates: Iterable[ChannelUpdate], our_id: NodeId) -> Graph:
    """``graph`` with each update's policy on its half-channel (unknown ones and ours skipped)."""
    extra: list[HalfChannel] = []
    for u in updates:
        e = graph.edge(u.scid, u.direction)
        if e is None:
            continue
        h = graph.half_channel(e)
        if h.source == our_id:
            continue
        hmax = h.htlc_max_msat if u.htlc_max_msat is None else min(u.htlc_max_msat, h.capacity_msat)
        extra.append(
            HalfChannel(
                scid=h.scid,
                direction=h.direction,
                source=h.source,
                destination=h.destination,
                capacity_msat=h.capacity_msat,
                fee_base_msat=u.fee_base_msat,
                fee_ppm=u.fee_ppm,
                cltv_delta=u.cltv_delta,
                htlc_min_msat=u.htlc_min_msat,
                htlc_max_msat=hmax,
                enabled=not u.disabled,
                private=h.private,
            )
        )
    return graph.with_half_channels(extra)


# -- the actor ------------------------------------------------------------------------------


async def router(
    *,
    inbox: MemoryObjectReceiveStream[RouterMsg],
    estimator: MemoryObjectSendStream[EstimatorMsg],
    node: NodeInterface,
    config: EngineConfig,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    info: NodeInfo | None = None,
) -> None:
    """The one shared router actor; returns when every sender has closed ``inbox``.

    Loads our id (unless ``info`` gives it), the gossip graph and our channels
    before it reports ready (errors there propagate: the runtime cannot start
    without a graph).

    Consumes:
        OpenPayment: refresh our channels, and the gossip graph when it is older than
            ``config.gossip_refresh_s`` or does not know the destination; reply
            :class:`PaymentOpened`.
        FindRoutes: run the strategy; reply :class:`RoutesFound` (reserved) or :class:`NoRoutes`.
            When it finds no route (not "too expensive") and the snapshot holds
            bounds observed before ``since``, run it once more on a snapshot that
            keeps only those observed since (plus everything disabled, our
            balances and the reservations): ``RoutesFound.relaxed``.
        ReleaseRoute: drop a reservation; apply a ``channel_update``; refresh our
            channels after a failure at our first hop.
        ClosePayment: drop the payment's leftover reservations.
        RefreshGraph: reload the gossip graph; reply :class:`GraphRefreshed`.
    Emits:
        GetSnapshot to the estimator (one per FindRoutes), and replies.
    """
    if info is None:
        info = await node.get_info()
    book = RouterBook(
        our_id=info.id, gossip=await node.gossip_graph(), channels=await node.list_peer_channels()
    )
    book.graph  # noqa: B018  (build the base graph before reporting ready)
    gossip_loaded_at = time.monotonic()
    strategies: dict[str, Strategy] = {}
    task_status.started()
    async with inbox, estimator:
        async for msg in inbox:
            match msg:
                case OpenPayment(destination=dest, route_hints=hints, reply=r):
                    await _refresh_channels(book, node)
                    known = dest in book.payment_graph(dest, hints).node_index
                    stale = time.monotonic() - gossip_loaded_at >= config.gossip_refresh_s
                    if not known or stale:
                        # gossip grows while we run: reload it (the node keeps it cheap
                        # when nothing changed) before calling a destination unknown
                        await _refresh_graph(book, node, None)
                        gossip_loaded_at = time.monotonic()
                        known = dest in book.payment_graph(dest, hints).node_index
                    await reply(
                        r,
                        PaymentOpened(
                            our_id=book.our_id,
                            destination_known=known,
                            usable_channels=book.usable_channels,
                        ),
                    )
                case FindRoutes():
                    await _find_routes(book, msg, estimator, strategies, config)
                case ReleaseRoute(reservation=rid, outcome=outcome):
                    if book.release(rid, outcome):
                        await _refresh_channels(book, node)
                case ClosePayment(payment_hash=h):
                    book.close(h)
                case RefreshGraph(reply=r):
                    await _refresh_graph(book, node, r)


async def _find_routes(
    book: RouterBook,
    msg: FindRoutes,
    estimator: MemoryObjectSendStream[EstimatorMsg],
    strategies: dict[str, Strategy],
    config: EngineConfig,
) -> None:
    request: RouteInput = msg.request
    try:
        strategy = strategies.get(msg.strategy) or get_strategy(msg.strategy)
    except UnknownStrategy as exc:
        await reply(msg.reply, NoRoutes(code=exc.code, message=exc.message, data=exc.data))
        return
    strategies[msg.strategy] = strategy
    graph = book.payment_graph(request.destination, request.route_hints)
    snapshot: KnowledgeSnapshot = await ask(estimator, lambda r: GetSnapshot(reply=r))
    ctx = book.context(graph, snapshot, request.destination)
    relaxed = False
    t0 = time.perf_counter()
    try:
        try:
            routes = await _run(strategy, request, ctx, config)
        except RouteNotFound as exc:  # not RouteTooExpensive (206): a route exists
            if msg.since is None or not snapshot.learnt_before(msg.since):
                raise
            # the bounds learnt before this payment may be stale (liquidity comes back):
            # try once more with only what this payment observed itself
            fresh = snapshot.learnt_since(msg.since)
            log.info(
                "router: payment %s: no route with %d learnt bounds (%s); retrying with "
                "the %d observed since the payment started",
                msg.payment_hash,
                len(snapshot.channels),
                exc.message,
                len(fresh.channels),
            )
            routes = await _run(
                strategy, request, book.context(graph, fresh, request.destination), config
            )
            relaxed = True
    except BarqError as exc:
        await reply(
            msg.reply,
            NoRoutes(
                code=exc.code,
                message=exc.message,
                data=exc.data,
                compute_s=time.perf_counter() - t0,
                others_reserved_msat=book.reserved_by_others(msg.payment_hash),
            ),
        )
        return
    except Exception as exc:  # a broken (third-party) strategy must not take the router down
        log.exception("router: strategy %r crashed", msg.strategy)
        await reply(
            msg.reply,
            NoRoutes(
                code=BarqError.cln_code,
                message=f"strategy {msg.strategy!r} crashed: {exc!r}",
                compute_s=time.perf_counter() - t0,
            ),
        )
        return
    compute_s = time.perf_counter() - t0
    if msg.reserve:
        planned = tuple(book.reserve(msg.payment_hash, graph, r) for r in routes)
    else:
        planned = tuple(PlannedRoute(reservation=0, route=r, capacities_msat=()) for r in routes)
    delivered = await reply(
        msg.reply, RoutesFound(routes=planned, compute_s=compute_s, relaxed=relaxed)
    )
    if not delivered and msg.reserve:
        for p in planned:
            book.release(
                p.reservation,
                PartOutcome(state=PartState.FAILED, sent=False, reason="requester went away"),
            )


async def _run(
    strategy: Strategy, request: RouteInput, ctx: RoutingContext, config: EngineConfig
) -> list[Route]:
    """``strategy.find_routes`` (in a worker thread when ``config.strategies_in_thread``)."""
    if config.strategies_in_thread:
        return await anyio.to_thread.run_sync(strategy.find_routes, request, ctx)
    return strategy.find_routes(request, ctx)


async def _refresh_channels(book: RouterBook, node: NodeInterface) -> None:
    try:
        book.set_channels(await node.list_peer_channels())
    except BarqError as exc:
        log.warning("router: listpeerchannels failed, keeping the old balances: %s", exc)


async def _refresh_graph(
    book: RouterBook, node: NodeInterface, r: MemoryObjectSendStream[GraphRefreshed] | None
) -> None:
    try:
        book.set_gossip(await node.gossip_graph())
        g = book.graph
        answer = GraphRefreshed(nodes=g.num_nodes, half_channels=g.num_edges)
    except BarqError as exc:
        log.warning("router: reloading the gossip graph failed, keeping the old one: %s", exc)
        answer = GraphRefreshed(
            nodes=book.graph.num_nodes,
            half_channels=book.graph.num_edges,
            error=exc.message,
            error_code=exc.code,
        )
    if r is not None:
        await reply(r, answer)
