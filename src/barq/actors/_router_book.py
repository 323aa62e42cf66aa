"""The router's state: graph, our balances, reservations, contexts (sans-IO; one writer).

:class:`RouterBook` is everything the router actor owns, as synchronous
operations with no I/O: the graph with our channels and learnt channel updates
overlaid, the route-hint overlays, our exact balances, the reservations of the
routes handed out, and the :class:`~barq.routing.RoutingContext` built from an
estimator snapshot for each request. Only the router's event-loop task calls it
(strategies in worker threads get read-only contexts, never the book).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from barq.actors._htlc_slots import HtlcSlots
from barq.actors.messages import KnowledgeSnapshot, PartOutcome, PlannedRoute
from barq.graph import Graph
from barq.graph.overlay import overlay_local_channels, overlay_route_hints
from barq.graph.signatures import signed_by
from barq.model import (
    ChannelUpdate,
    HalfChannel,
    LocalChannel,
    NodeId,
    PaymentHash,
    Route,
    RouteHintHop,
    Scid,
    ScidDir,
    direction_of,
    scid_dir,
)
from barq.model.payment import PartState
from barq.payment.failures import FailureKind, classify
from barq.routing import RoutingContext

__all__ = ["RouterBook"]

log = logging.getLogger(__name__)

Hints = tuple[tuple[RouteHintHop, ...], ...]

#: how many invoices' route-hint overlays are kept
HINT_CACHE_SIZE = 64

I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class _Reservation:
    payment_hash: PaymentHash
    route: Route
    local: ScidDir | None  # the first hop, when it is one of our channels


class _GraphIndex:
    """Lookups on one graph that every context needs: ``scid/dir`` -> row, our channels' rows.

    The row map is built once per graph; our channels' rows once per ``listpeerchannels``.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.row_of = graph.edge_by_scid_dir  # the graph's own row index (built once per graph)
        self._learnt: tuple[ScidDir, ...] = ()
        self._learnt_rows = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self._spendable: dict[ScidDir, int] | None = None
        self.local_pos: dict[ScidDir, int] = {}
        self.local_rows = np.zeros(0, dtype=np.int64)
        self.local_spendable = np.zeros(0, dtype=np.int64)

    def learnt_rows(self, channels: tuple[ScidDir, ...]) -> tuple[I64, I64]:
        """Rows of ``channels`` in the graph, and which of ``channels`` they are."""
        if channels != self._learnt:
            pairs = [(i, e) for i, e in enumerate(map(self.row_of, channels)) if e is not None]
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
        rows = ((sd, self.row_of(sd), v) for sd, v in spendable.items())
        local = [(sd, e, v) for sd, e, v in rows if e is not None]
        self.local_pos = {sd: i for i, (sd, _, _) in enumerate(local)}
        self.local_rows = np.asarray([e for _, e, _ in local], dtype=np.int64)
        self.local_spendable = np.asarray([v for _, _, v in local], dtype=np.int64)


def _lessons(
    index: _GraphIndex, snapshot: KnowledgeSnapshot, cap: I64, hi: I64, since: float | None
) -> I64:
    """``hi`` (every learnt upper bound) keeping only those observed at or after ``since``.

    O(rows) only when some bound is older than ``since`` (else ``hi`` itself).
    """
    fresh = snapshot if since is None else snapshot.learnt_since(since)
    if fresh is snapshot:
        return hi
    out = cap.copy()
    for sd, h in zip(fresh.channels, fresh.hi_msat, strict=True):
        e = index.row_of(sd)
        if e is not None:
            out[e] = min(h, int(cap[e]))
    return out


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
        #: our channels' commitment fee per further HTLC (``LocalChannel.htlc_fee_msat``)
        self._htlc_fee: dict[ScidDir, int] = {}
        self._updates: dict[tuple[Scid, int], ChannelUpdate] = {}
        self._base: Graph | None = None
        self._hint_graphs: dict[tuple[NodeId, Hints], Graph] = {}
        self._reservations: dict[int, _Reservation] = {}
        self._inflight: dict[ScidDir, int] = {}
        self.slots = HtlcSlots()
        self._next_reservation = 1
        self._indexes: list[_GraphIndex] = []
        #: bumped whenever liquidity may have been taken (a reservation, fresh balances):
        #: a context built at an older version may promise room that is gone
        self.version = 0
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
        """A fresh gossip graph (an incremental refresh: called before every payment).

        The very same graph object again (nothing appended to the store) changes
        nothing. Otherwise the overlaid graph is rebuilt lazily; an applied
        channel update is kept while gossip's row for its half-channel is
        unchanged (gossip has not caught up with it yet) and dropped when gossip
        changed that row (gossip's policy is now at least as new).
        """
        if gossip is self._gossip:
            return
        old = self._gossip
        self._updates = {
            k: u for k, u in self._updates.items() if _same_row(old, gossip, k[0], k[1])
        }
        self._gossip = gossip
        self._base = None

    @property
    def gossip(self) -> Graph:
        return self._gossip

    @property
    def available(self) -> dict[ScidDir, int]:
        """What each of our channels can send now (:meth:`local_available` of each)."""
        return {sd: max(v + self._delta.get(sd, 0), 0) for sd, v in self._spendable.items()}

    def set_channels(self, channels: Sequence[LocalChannel]) -> None:
        """Fresh ``listpeerchannels``: exact balances; the graph changes only if channels did."""
        spendable: dict[ScidDir, int] = {}
        self._htlc_fee = {}
        for ch in channels:
            if ch.scid is None:
                continue
            d = ch.direction if ch.direction is not None else direction_of(self.our_id, ch.peer_id)
            sd = scid_dir(ch.scid, d)
            spendable[sd] = ch.spendable_msat if ch.usable else 0
            if ch.htlc_fee_msat > 0:
                self._htlc_fee[sd] = ch.htlc_fee_msat
        self._spendable = spendable
        self.slots.set_local(self.our_id, channels)
        self._delta = {}
        self.version += 1
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

    def apply_update(self, update: ChannelUpdate) -> bool:
        """Use ``update``'s policy for its half-channel from now on; returns whether it was taken.

        Refused: an update older than (or as old as, but different from) the one
        applied already, one for a half-channel the graph does not know, and one
        that came off the wire (``update.signed``) without a valid signature of
        the node that forwards over that direction (BOLT 7; a failure message
        can carry anything an intermediate node likes). An update that never
        crossed the wire (the simulator, tests) has nothing to check.
        """
        key = (update.scid, update.direction)
        old = self._updates.get(key)
        if old == update:
            return True
        if old is not None and old.timestamp >= update.timestamp:
            return False
        e = self.graph.edge(update.scid, update.direction)
        if e is None:
            return False
        if update.signed and not signed_by(update, self.graph.half_channel(e).source):
            log.warning(
                "router: ignoring a channel_update for %s/%d: bad signature",
                update.scid,
                update.direction,
            )
            return False
        self._updates[key] = update
        self._base = None
        return True

    @property
    def usable_channels(self) -> int:
        return sum(1 for v in self._spendable.values() if v > 0)

    # -- contexts -------------------------------------------------------------------------

    def context(
        self,
        graph: Graph,
        snapshot: KnowledgeSnapshot,
        destination: NodeId | None = None,
        deadline: float | None = None,
        *,
        lessons_since: float | None = None,
        lifted_slots: bool = False,
        caps_msat: Mapping[ScidDir, int] | None = None,
    ) -> RoutingContext:
        """The :class:`RoutingContext` for one request on ``graph``.

        ``min``/``max`` are the estimator's bounds (clamped to capacity) minus
        the reservations; our own channels get ``spendable + delta`` exactly;
        ``usable`` drops disabled half-channels and nodes (never ``destination``
        nor us); ``max`` is capped at what the free HTLC slots can carry
        (:meth:`HtlcSlots.carry_limit`: 0 with none free; the assumed limit lifted
        with ``lifted_slots``), and at ``caps_msat`` (a re-plan's, per half-channel:
        :meth:`HtlcSlots.overfill_caps`). ``deadline``
        (``time.monotonic()``) is passed on to the context. ``learnt_max_msat`` holds
        the bounds observed at or after ``lessons_since`` (the estimator's clock: the
        payment's start, what it has learnt itself), capacity elsewhere; every learnt
        bound when ``None``.
        Cost: O(rows) numpy plus O(learnt + reserved + disabled) dict lookups
        (the row index of a graph is built once; an unchanged set of learnt
        channels reuses its rows).
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
        off = [e for e in map(index.row_of, snapshot.disabled_channels) if e is not None]
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
            e = index.row_of(sd)
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
        self.slots.carry_limit(graph, mx, lifted=lifted_slots)
        for sd, cap_msat in (caps_msat or {}).items():
            e = index.row_of(sd)
            if e is not None:
                mx[e] = min(int(mx[e]), cap_msat)
        mn = np.minimum(mn, mx)
        return RoutingContext(
            graph=graph,
            min_msat=mn,
            max_msat=mx,
            usable=usable,
            inflight_msat=inflight,
            deadline=deadline,
            learnt_max_msat=_lessons(index, snapshot, cap, hi, lessons_since),
        )

    def conflicts(
        self,
        planned_on: RoutingContext,
        snapshot: KnowledgeSnapshot,
        destination: NodeId | None,
        routes: Sequence[Route],
        *,
        lifted_slots: bool = False,
    ) -> list[ScidDir]:
        """Half-channels where ``routes`` no longer fit: room taken since they were planned.

        ``routes`` were planned on ``planned_on`` (built from ``snapshot``, ``lifted_slots``); the
        same knowledge with the reservations and balances of now is compared
        with it on every half-channel the routes use. A half-channel conflicts
        when its room shrank and what the routes put on it together exceeds
        what is left (two solves that ran at once planned over the same sats).
        """
        graph = planned_on.graph
        total: dict[int, int] = defaultdict(int)
        for r in routes:
            for hop in r.hops:
                e = graph.edge(hop.channel, hop.direction)
                if e is not None:
                    total[e] += hop.amount_msat
        now = self.context(graph, snapshot, destination, lifted_slots=lifted_slots).max_msat
        then = planned_on.max_msat
        return [graph.scid_dir(e) for e, a in total.items() if now[e] < then[e] and a > int(now[e])]

    def _index(self, graph: Graph) -> _GraphIndex:
        """The row index of ``graph`` (kept for the base graph and the last few hint graphs)."""
        gi = next((x for x in self._indexes if x.graph is graph), None)
        if gi is None:
            gi = _GraphIndex(graph)
            self._indexes = [gi, *self._indexes][:4]
        gi.use_local(self._spendable)
        return gi

    # -- reservations ---------------------------------------------------------------------

    def reserve(self, payment_hash: PaymentHash, graph: Graph, route: Route) -> PlannedRoute:
        """Hold ``route``'s amounts as in flight; returns it with its reservation id."""
        rid = self._next_reservation
        self._next_reservation += 1
        self.version += 1
        first = scid_dir(route.hops[0].channel, route.hops[0].direction)
        local = first if first in self._spendable else None
        self._reservations[rid] = _Reservation(payment_hash=payment_hash, route=route, local=local)
        self.slots.hold(route)
        for hop in route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            if sd == local:
                # lightningd's spendable covers one more HTLC's commitment fee, a second
                # part of ours needs its fee on top (askrene reserves it likewise)
                taken = hop.amount_msat + self._htlc_fee.get(sd, 0)
                self._delta[sd] = self._delta.get(sd, 0) - taken
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
        last = r.route.hops[-1]
        last_sd = scid_dir(last.channel, last.direction)
        on_last_hop = self.slots.parts(last_sd)
        held_msat = self._inflight.get(last_sd, 0)
        self._unhold(r, returned=outcome.state is not PartState.SUCCEEDED)
        if outcome.failure is None:
            return not outcome.sent and outcome.rpc_code is not None  # our node refused it
        v = classify(r.route, outcome.failure)
        if v.update is not None and not v.local:
            self.apply_update(v.update)
        if v.kind is FailureKind.LIQUIDITY and v.index == len(r.route.hops) - 1:
            e = self.graph.edge(last.channel, last.direction)
            cap = int(self.graph.capacity_msat[e]) if e is not None else 0
            self.slots.crowded(
                r.route, on_last_hop, held_msat=held_msat, capacity_msat=cap if cap > 0 else None
            )
        return v.local

    def close(self, payment_hash: PaymentHash) -> int:
        """Drop every reservation ``payment_hash`` still holds (lost parts); returns how many.

        Our channels' balances are left as they are (the part may have gone
        through) until the next refresh.
        """
        left = [k for k, r in self._reservations.items() if r.payment_hash == payment_hash]
        for k in left:
            self._unhold(self._reservations.pop(k), returned=False)
        return len(left)

    def _unhold(self, r: _Reservation, *, returned: bool) -> None:
        self.slots.unhold(r.route)
        for hop in r.route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            if sd == r.local:
                # the HTLC is gone either way: its commitment fee is free again
                back = self._htlc_fee.get(sd, 0) + (hop.amount_msat if returned else 0)
                self._delta[sd] = self._delta.get(sd, 0) + back
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

    def reserved_by_others(self, payment_hash: PaymentHash) -> int:
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


def _same_row(old: Graph, new: Graph, scid: Scid, direction: int) -> bool:
    a, b = old.edge(scid, direction), new.edge(scid, direction)
    if a is None or b is None:
        return a is b
    return old.half_channel(a) == new.half_channel(b)


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
