"""HTLC slots: how many parts each half-channel can still take at once (issue 12 item 7).

A channel accepts a limited number of concurrent HTLCs in each direction (the
receiving side's ``max_accepted_htlcs``: ``max-concurrent-htlcs``, 30 by
default in Core Lightning, 483 in LND). Gossip does not tell it, so every
half-channel is assumed to take :data:`DEFAULT_HTLC_SLOTS` until a failure
says less. :class:`HtlcSlots` (part of the router's book, no I/O) counts

* the parts the router has reserved over each half-channel (every hop);
* the HTLCs ``listpeerchannels`` shows in flight out of each of our channels
  (other payments' included);
* limits learnt from failures: a ``temporary_channel_failure`` at the payee's
  last hop while :data:`CROWD` or more of our parts were on that half-channel
  is read as "too many HTLCs" when liquidity is an unlikely reason: our parts
  there held at most :data:`CROWD_SHARE` of the channel's capacity (or the
  capacity is unknown). Its limit becomes the parts that were there minus
  one, so the next plan merges parts into fewer, larger ones. Above that
  share the failure is read as liquidity only (the estimator's lesson): on
  the mainnet bench, where no channel runs out of slots, reading it as "full"
  left the payee's busiest channels without a free slot while the parts held
  there waited for the rest, and the payment timed out with the rest routable.

:meth:`HtlcSlots.room` is the most parts a new plan may add between us and a
destination: the free slots into the destination and out of us (each summed
over the usable half-channels). The router caps a request's ``maxparts`` with
it, so no strategy floods a payee. Every other half-channel counts too: what a
plan may send over it is capped at its free slots times its ``htlc_max``
(:meth:`HtlcSlots.carry_limit`, in the strategies' ``max_msat``: none with no
free slot), and a plan that still puts more new parts on a half-channel than it
has free (:meth:`HtlcSlots.overfilled`) is made again with fewer parts.

**The assumed limit is lifted when it alone stops a payment.** Gossip's
``htlc_maximum_msat`` can force more parts than 30: a payee whose one channel
takes at most 2,169,420 msat per HTLC needs 47 parts for 100,000 sat (mainnet
bench, seed 4), which LND's default (483) and xpay (no slot limit at all)
accept. When a plan finds no route, the router plans once more with
``lifted=True``: every half-channel without a learnt limit takes
:data:`MAX_HTLC_SLOTS` (BOLT 2's largest ``max_accepted_htlcs``), except our own
channels (``listpeerchannels`` does not show the peer's limit, and a refusal
there teaches nothing: they keep :data:`DEFAULT_HTLC_SLOTS`). A payee that
really takes 30 then refuses the 31st part, :meth:`HtlcSlots.crowded` learns
its limit, and the next plan makes fewer, larger parts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from barq.graph import Graph
from barq.model import LocalChannel, NodeId, Route, RouteInput, ScidDir, direction_of, scid_dir

__all__ = ["CROWD", "CROWD_SHARE", "DEFAULT_HTLC_SLOTS", "MAX_HTLC_SLOTS", "HtlcSlots"]

log = logging.getLogger(__name__)

#: concurrent HTLCs a half-channel is assumed to take (Core Lightning's default
#: ``max-concurrent-htlcs``; the smallest common default)
DEFAULT_HTLC_SLOTS = 30
#: ... when that assumption alone leaves a payment without a route (BOLT 2's largest
#: ``max_accepted_htlcs``, LND's default): see the module doc
MAX_HTLC_SLOTS = 483
#: parts of ours on the payee's last hop at a temporary_channel_failure that make it
#: read as "too many HTLCs" rather than liquidity
CROWD = 5
#: ... and when they held at most this share of its capacity (more: read as liquidity)
CROWD_SHARE = 0.25


class HtlcSlots:
    """Per half-channel: parts reserved, our HTLCs in flight, learnt limits."""

    def __init__(self) -> None:
        self._parts: dict[ScidDir, int] = {}
        self._htlcs_out: dict[ScidDir, int] = {}
        self._limit: dict[ScidDir, int] = {}

    def set_local(self, our_id: NodeId, channels: Sequence[LocalChannel]) -> None:
        """Our channels' HTLCs in flight as ``listpeerchannels`` says now."""
        out: dict[ScidDir, int] = {}
        for ch in channels:
            if ch.scid is None:
                continue
            d = ch.direction if ch.direction is not None else direction_of(our_id, ch.peer_id)
            out[scid_dir(ch.scid, d)] = ch.htlcs_out
        self._htlcs_out = out

    def hold(self, route: Route) -> None:
        for hop in route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            self._parts[sd] = self._parts.get(sd, 0) + 1

    def unhold(self, route: Route) -> None:
        for hop in route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            left = self._parts.get(sd, 0) - 1
            if left > 0:
                self._parts[sd] = left
            else:
                self._parts.pop(sd, None)

    def parts(self, sd: ScidDir) -> int:
        """Parts reserved over ``sd`` now."""
        return self._parts.get(sd, 0)

    def limit(self, sd: ScidDir, *, lifted: bool = False) -> int:
        """The learnt limit of ``sd``, else the assumed one (:data:`MAX_HTLC_SLOTS` when
        ``lifted`` and ``sd`` is not ours, :data:`DEFAULT_HTLC_SLOTS` otherwise)."""
        learnt = self._limit.get(sd)
        if learnt is not None:
            return learnt
        return MAX_HTLC_SLOTS if lifted and sd not in self._htlcs_out else DEFAULT_HTLC_SLOTS

    def free(self, sd: ScidDir, *, lifted: bool = False) -> int:
        """Slots of ``sd`` not taken by our parts nor by HTLCs in flight on our channel."""
        used = max(self._parts.get(sd, 0), self._htlcs_out.get(sd, 0))
        return max(self.limit(sd, lifted=lifted) - used, 0)

    def tracked(self, *, lifted: bool = False) -> dict[ScidDir, int]:
        """Free slots of every half-channel with parts, HTLCs or a learnt limit (the
        others have their assumed limit, :meth:`limit`)."""
        known = self._parts.keys() | self._htlcs_out.keys() | self._limit.keys()
        return {sd: self.free(sd, lifted=lifted) for sd in known}

    def carry_limit(
        self, graph: Graph, max_msat: npt.NDArray[np.int64], *, lifted: bool = False
    ) -> None:
        """Cap ``max_msat`` (per row of ``graph``, in place) at what the free slots can
        carry: each new part over a half-channel is at most its ``htlc_max``."""
        hmax = graph.htlc_max_msat
        slots = MAX_HTLC_SLOTS if lifted else DEFAULT_HTLC_SLOTS
        binds = hmax < max_msat // slots  # (no overflow: hmax * slots < max)
        max_msat[binds] = hmax[binds] * slots
        for sd, free in self.tracked(lifted=lifted).items():
            e = graph.edge_by_scid_dir(sd)
            if e is not None:
                max_msat[e] = min(int(max_msat[e]), free * int(hmax[e]))

    def overfilled(self, routes: Iterable[Route], *, lifted: bool = False) -> int:
        """The most parts ``routes`` (a new plan) add to a half-channel beyond its free
        slots (0: each has room)."""
        count, _ = _per_half_channel(routes)
        return max((k - self.free(sd, lifted=lifted) for sd, k in count.items()), default=0)

    def overfill_caps(self, routes: Iterable[Route], *, lifted: bool = False) -> dict[ScidDir, int]:
        """What each half-channel ``routes`` overfill may carry in the next plan: its free
        slots times the plan's mean part over it (the rest must take other channels; our
        own channels, whose ``htlc_max`` rarely binds, are where a plan piles its parts)."""
        count, carried = _per_half_channel(routes)
        caps: dict[ScidDir, int] = {}
        for sd, k in count.items():
            free = self.free(sd, lifted=lifted)
            if k > free:
                caps[sd] = free * (carried[sd] // k)
        return caps

    def crowded(
        self,
        route: Route,
        on_last_hop: int,
        *,
        held_msat: int = 0,
        capacity_msat: int | None = None,
    ) -> None:
        """A temporary_channel_failure at the payee's last hop with ``on_last_hop`` of our
        parts on it (this one included), holding ``held_msat`` of the half-channel's
        ``capacity_msat`` (``None``: unknown): at :data:`CROWD` or more parts holding at
        most :data:`CROWD_SHARE` of the capacity, learn a lower limit."""
        if on_last_hop < CROWD or not route.hops:
            return
        if capacity_msat is not None and held_msat > capacity_msat * CROWD_SHARE:
            return  # liquidity explains it as well: the estimator learns that
        hop = route.hops[-1]
        sd = scid_dir(hop.channel, hop.direction)
        limit = min(self.limit(sd), on_last_hop - 1)
        if limit < self.limit(sd):
            log.info(
                "router: %s looks full at %d HTLCs: planning at most %d", sd, on_last_hop, limit
            )
            self._limit[sd] = limit

    def lift_changes(self, graph: Graph, request: RouteInput) -> bool:
        """Whether ``lifted=True`` lets a plan for ``request`` do more: more parts between its
        ends than now (and ``maxparts`` allows), or more over some half-channel whose
        assumed free slots bind (times its ``htlc_max``, below its capacity)."""
        room = self.room(graph, request.source, request.destination)
        if room is not None and room < request.maxparts:
            wider = self.room(graph, request.source, request.destination, lifted=True)
            if wider is not None and wider > room:
                return True
        hmax, cap = graph.htlc_max_msat, graph.capacity_msat
        for sd in self._parts.keys() - self._limit.keys() - self._htlcs_out.keys():
            e = graph.edge_by_scid_dir(sd)
            if e is not None and self.free(sd) * int(hmax[e]) < int(cap[e]):
                return True
        own = self._htlcs_out.keys()
        binds = hmax < cap // DEFAULT_HTLC_SLOTS
        return any(graph.scid_dir(int(e)) not in own for e in np.flatnonzero(binds))

    def room(
        self, graph: Graph, source: NodeId, destination: NodeId, *, lifted: bool = False
    ) -> int | None:
        """The most parts a new plan may add from ``source`` to ``destination`` (``None``:
        either end is not in ``graph``, no limit known)."""
        s, t = graph.node_index.get(source), graph.node_index.get(destination)
        if s is None or t is None:
            return None
        into = np.flatnonzero((graph.dst == t) & graph.enabled)
        out = np.flatnonzero((graph.src == s) & graph.enabled)
        room_in = sum(self.free(graph.scid_dir(int(e)), lifted=lifted) for e in into)
        room_out = sum(self.free(graph.scid_dir(int(e)), lifted=lifted) for e in out)
        return min(room_in, room_out)


def _per_half_channel(routes: Iterable[Route]) -> tuple[dict[ScidDir, int], dict[ScidDir, int]]:
    """Parts and msat ``routes`` put on each half-channel."""
    count: dict[ScidDir, int] = {}
    carried: dict[ScidDir, int] = {}
    for route in routes:
        for hop in route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            count[sd] = count.get(sd, 0) + 1
            carried[sd] = carried.get(sd, 0) + hop.amount_msat
    return count, carried
