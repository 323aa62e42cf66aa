"""The liquidity estimator: what every part taught us, shared by all payments.

Like renepay's uncertainty network and LDK's probabilistic scorer, it keeps
per directed half-channel bounds on the liquidity ``L`` available in that
direction (in total, our own HTLCs included)::

    0 <= lo_msat <= L <= hi_msat <= capacity_msat

Update rules (pure functions below, tested without an event loop). ``I`` is
what our *other* parts in flight hold on the channel when the part resolves:

* a hop that forwarded ``a`` (any failure further along, an MPP timeout, a
  final failure at the destination, a success): ``lo >= a + I``;
* the hop that could not forward ``a`` (``TEMPORARY_CHANNEL_FAILURE``):
  ``hi <= a + I - 1``;
* a success moves ``a`` across every hop: both bounds rise by ``a`` in the
  reverse direction. The forward direction is *not* lowered by ``a`` (xpay
  tells askrene nothing on success): the liquidity we took is soon replaced by
  other traffic, rebalancing or the payee spending it, and bounds lowered by
  our own payments made every later payment over the same channels avoid
  them or fail (on the regtest benchmark's network, whose balances are
  restored after each payment, in its simulator replica: 3 of 15 payments
  failed and 800k sat payments took 4-10 attempts with the forward shift;
  without it none failed and every payment after the first round took at
  most 5 attempts, all of them successful parts). A channel we did drain
  fails once and is learnt by the rule above: the cost shows when nothing
  else moves liquidity (the same replica, balances not restored: a 1.5M sat
  payment after three others took 22 attempts instead of 7);
* permanent channel failures / ``UNKNOWN_NEXT_PEER`` disable the channel,
  ``CHANNEL_DISABLED`` for a while; ``PERMANENT_NODE_FAILURE`` disables the
  node, ``TEMPORARY_NODE_FAILURE`` for a while;
* an observation that contradicts the bounds resets them to the newest one;
* knowledge decays toward the prior ``[0, capacity]`` with half-life
  ``half_life_s`` (in quarter half-life steps), applied lazily when read
  (:meth:`LiquidityKnowledge.snapshot`).

Our own first hop is never learnt: the router knows our balances exactly.
Timestamps come from an injectable ``clock`` (UNIX-like seconds), so the
simulator's fake clock and persistence (UNIX seconds) both work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence

import anyio
import numpy as np
import numpy.typing as npt
from anyio.streams.memory import MemoryObjectReceiveStream

from barq.actors._mailbox import reply
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
from barq.model import FailCode, NodeId, Route, RouteFailure, ScidDir, parse_scid_dir, scid_dir
from barq.model.payment import PartState
from barq.payment.failures import FailureKind, classify

__all__ = [
    "DECAY_STEPS",
    "UNBOUNDED_MSAT",
    "LiquidityKnowledge",
    "can_forward",
    "cannot_forward",
    "decayed",
    "decayed_arrays",
    "liquidity_estimator",
    "moved",
]

log = logging.getLogger(__name__)

#: ``hi_msat`` of a half-channel whose capacity is unknown and no upper bound is known.
UNBOUNDED_MSAT = 2**62
#: knowledge decays in this many steps per half-life
DECAY_STEPS = 4

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


# -- pure update rules ----------------------------------------------------------------------


def _cap(capacity_msat: int | None) -> int:
    return UNBOUNDED_MSAT if capacity_msat is None else capacity_msat


def cannot_forward(lo: int, hi: int, amount_msat: int) -> tuple[int, int]:
    """Bounds after "``L < amount_msat``" (a forward of that total failed).

    Contradicting ``lo`` resets to the newest observation: ``[0, amount - 1]``.
    """
    new_hi = max(amount_msat - 1, 0)
    if new_hi < lo:
        return 0, new_hi
    return lo, min(hi, new_hi)


def can_forward(lo: int, hi: int, capacity_msat: int | None, amount_msat: int) -> tuple[int, int]:
    """Bounds after "``L >= amount_msat``" (a forward of that total passed).

    Contradicting ``hi`` resets to the newest observation: ``[amount, capacity]``.
    """
    cap = _cap(capacity_msat)
    new_lo = min(amount_msat, cap)
    if new_lo > hi:
        return new_lo, cap
    return max(lo, new_lo), hi


def moved(lo: int, hi: int, capacity_msat: int | None, delta_msat: int) -> tuple[int, int]:
    """Bounds after ``delta_msat`` settled across the channel (negative: left this direction)."""
    cap = _cap(capacity_msat)
    lo2 = min(max(lo + delta_msat, 0), cap)
    hi2 = min(max(hi + delta_msat, 0), cap) if hi < UNBOUNDED_MSAT else hi
    return lo2, max(lo2, hi2)


def decayed(
    lo: int, hi: int, capacity_msat: int | None, elapsed_s: float, half_life_s: float
) -> tuple[int, int]:
    """Bounds relaxed toward the prior ``[0, capacity]`` after ``elapsed_s``.

    Each bound moves halfway to its prior value every ``half_life_s``, in
    :data:`DECAY_STEPS` equal steps per half-life (so a fresh observation holds
    as is for the first step: strategies that use ``max_msat`` as a hard
    limit must not retry, a second later, the amount a channel just refused).
    Without a capacity the upper bound is kept for one half-life, then dropped.
    """
    if elapsed_s <= 0 or half_life_s <= 0:
        return lo, hi
    steps = math.floor(elapsed_s / half_life_s * DECAY_STEPS)
    if steps == 0:
        return lo, hi
    f = 0.5 ** (steps / DECAY_STEPS)
    lo2 = round(lo * f)  # to the nearest msat: a few ms of decay must not loosen a bound
    if capacity_msat is None:
        hi2 = hi if f > 0.5 else UNBOUNDED_MSAT
    else:
        hi2 = capacity_msat - round((capacity_msat - min(hi, capacity_msat)) * f)
    return lo2, max(lo2, hi2)


def decayed_arrays(
    lo: I64, hi: I64, capacity: I64, elapsed_s: F64, half_life_s: float
) -> tuple[I64, I64]:
    """:func:`decayed` for many half-channels at once (``capacity`` 0: unknown)."""
    if half_life_s <= 0:
        return lo, hi
    steps = np.floor(np.maximum(elapsed_s, 0.0) / half_life_s * DECAY_STEPS)
    f = 0.5 ** (steps / DECAY_STEPS)
    lo2 = np.rint(lo * f).astype(np.int64)
    known = capacity > 0
    capf = np.where(known, capacity, 0)
    hi_known = capf - np.rint((capf - np.minimum(hi, capf)) * f).astype(np.int64)
    hi_unknown = np.where(f > 0.5, hi, UNBOUNDED_MSAT)
    hi2 = np.where(known, hi_known, hi_unknown)
    return lo2, np.maximum(lo2, hi2)


# -- the knowledge (single writer: the estimator actor) -------------------------------------


class _Table:
    """Learnt bounds in numpy columns, one slot per half-channel (vectorised reads)."""

    def __init__(self) -> None:
        self.slot: dict[ScidDir, int] = {}
        self.names: list[ScidDir] = []
        self.free: list[int] = []
        self.lo = np.zeros(64, dtype=np.int64)
        self.hi = np.zeros(64, dtype=np.int64)
        self.cap = np.zeros(64, dtype=np.int64)  # 0: unknown
        self.at = np.zeros(64, dtype=np.float64)
        self.alive = np.zeros(64, dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.slot)

    def get(self, sd: ScidDir) -> tuple[int, int, int | None, float] | None:
        i = self.slot.get(sd)
        if i is None:
            return None
        cap = int(self.cap[i])
        return int(self.lo[i]), int(self.hi[i]), cap if cap > 0 else None, float(self.at[i])

    def put(self, sd: ScidDir, lo: int, hi: int, cap: int | None, at: float) -> None:
        i = self.slot.get(sd)
        if i is None:
            if self.free:
                i = self.free.pop()
                self.names[i] = sd
            else:
                i = len(self.names)
                self.names.append(sd)
                if i >= self.lo.size:
                    for col in ("lo", "hi", "cap", "at", "alive"):
                        a = getattr(self, col)
                        setattr(self, col, np.concatenate([a, np.zeros_like(a)]))
            self.slot[sd] = i
            self.alive[i] = True
        self.lo[i], self.hi[i], self.cap[i], self.at[i] = lo, hi, cap or 0, at

    def drop(self, slots: Sequence[int]) -> None:
        for i in slots:
            del self.slot[self.names[i]]
            self.alive[i] = False
            self.free.append(i)

    def live(self) -> I64:
        out: I64 = np.flatnonzero(self.alive[: len(self.names)]).astype(np.int64)
        return out


class LiquidityKnowledge:
    """Liquidity bounds, our in-flight HTLCs and disabled channels/nodes (plain, no I/O).

    Args:
        half_life_s: decay half-life of bounds toward the prior.
        clock: UNIX-like seconds (``time.time`` or the simulator's clock).
        temporary_disable_s: how long ``TEMPORARY_NODE_FAILURE`` / ``CHANNEL_DISABLED``
            keep a node/channel off.
        permanent_disable_s: how long permanent failures keep them off (gossip
            catches up with closed channels within a day).
        forget_after_half_lives: entries older than this many half-lives are dropped.

    Invariant: for every entry ``0 <= lo <= hi <= capacity`` (capacity when known).
    """

    def __init__(
        self,
        *,
        half_life_s: float,
        clock: Callable[[], float],
        temporary_disable_s: float = 600.0,
        permanent_disable_s: float = 86_400.0,
        forget_after_half_lives: float = 8.0,
    ) -> None:
        self.half_life_s = half_life_s
        self.clock = clock
        self.temporary_disable_s = temporary_disable_s
        self.permanent_disable_s = permanent_disable_s
        self.forget_after_s = forget_after_half_lives * half_life_s
        self._table = _Table()
        self._inflight: dict[ScidDir, int] = {}
        self._disabled_channels: dict[ScidDir, DisabledChannel] = {}
        self._disabled_nodes: dict[NodeId, DisabledNode] = {}

    # -- observations ---------------------------------------------------------------------

    def part_sent(self, route: Route, capacities_msat: Sequence[int]) -> None:
        """Count a part's HTLCs as ours in flight on every hop."""
        for hop in route.hops:
            sd = scid_dir(hop.channel, hop.direction)
            self._inflight[sd] = self._inflight.get(sd, 0) + hop.amount_msat

    def part_resolved(
        self, route: Route, capacities_msat: Sequence[int], outcome: PartOutcome
    ) -> None:
        """Stop counting the part in flight (if it was sent), then learn from ``outcome``."""
        if outcome.sent and not outcome.lost:
            for hop in route.hops:
                sd = scid_dir(hop.channel, hop.direction)
                left = self._inflight.get(sd, 0) - hop.amount_msat
                if left > 0:
                    self._inflight[sd] = left
                else:
                    self._inflight.pop(sd, None)
        if outcome.state is PartState.SUCCEEDED:
            self.learn_success(route, capacities_msat)
        elif outcome.failure is not None:
            self.learn_failure(route, capacities_msat, outcome.failure)

    def learn_success(self, route: Route, capacities_msat: Sequence[int]) -> None:
        """Every hop forwarded its amount, which then settled across the channel.

        The forward direction learns that it could forward it, and is not
        lowered by it afterwards (module doc); the reverse direction gained it."""
        for i in range(1, len(route.hops)):
            hop = route.hops[i]
            cap = _capacity(capacities_msat, i)
            self._forwarded(scid_dir(hop.channel, hop.direction), cap, hop.amount_msat)
            self._moved(scid_dir(hop.channel, 1 - hop.direction), cap, hop.amount_msat)

    def learn_failure(
        self, route: Route, capacities_msat: Sequence[int], failure: RouteFailure
    ) -> None:
        """Apply the module's rules for one failed part."""
        v = classify(route, failure)
        for i in range(1, min(v.forwarded_hops, len(route.hops))):
            hop = route.hops[i]
            self._forwarded(
                scid_dir(hop.channel, hop.direction), _capacity(capacities_msat, i), hop.amount_msat
            )
        if v.local or (v.channel is None and v.node is None):
            return  # our own channel: the router refreshes it from the node
        now = self.clock()
        if v.kind is FailureKind.LIQUIDITY and v.channel is not None:
            self._not_forwarded(
                v.channel, _capacity(capacities_msat, v.index), route.hops[v.index].amount_msat
            )
        elif v.kind is FailureKind.CHANNEL and v.channel is not None:
            self.disable_channel(v.channel, now + self.permanent_disable_s, failure.failcodename)
        elif (
            v.kind is FailureKind.POLICY
            and v.channel is not None
            and failure.failcode == FailCode.CHANNEL_DISABLED
            and v.update is None
        ):
            self.disable_channel(v.channel, now + self.temporary_disable_s, failure.failcodename)
        elif v.kind is FailureKind.NODE_PERMANENT and v.node is not None:
            self.disable_node(v.node, now + self.permanent_disable_s, failure.failcodename)
        elif v.kind is FailureKind.NODE_TEMPORARY and v.node is not None:
            self.disable_node(v.node, now + self.temporary_disable_s, failure.failcodename)

    def _forwarded(self, sd: ScidDir, capacity: int | None, amount_msat: int) -> None:
        """``sd`` carried ``amount_msat`` on top of our other HTLCs on it."""
        total = amount_msat + self._inflight.get(sd, 0)
        self._observe(sd, capacity, lambda lo, hi, cap: can_forward(lo, hi, cap, total))

    def _not_forwarded(self, sd: ScidDir, capacity: int | None, amount_msat: int) -> None:
        """``sd`` could not carry ``amount_msat`` on top of our other HTLCs on it."""
        total = amount_msat + self._inflight.get(sd, 0)
        self._observe(sd, capacity, lambda lo, hi, cap: cannot_forward(lo, hi, total))

    def disable_channel(self, sd: ScidDir, until: float, reason: str = "") -> None:
        old = self._disabled_channels.get(sd)
        if old is None or old.until < until:
            self._disabled_channels[sd] = DisabledChannel(scid_dir=sd, until=until, reason=reason)

    def disable_node(self, node: NodeId, until: float, reason: str = "") -> None:
        old = self._disabled_nodes.get(node)
        if old is None or old.until < until:
            self._disabled_nodes[node] = DisabledNode(node_id=node, until=until, reason=reason)

    def _moved(self, sd: ScidDir, capacity: int | None, delta_msat: int) -> None:
        """``delta_msat`` settled into (positive) or out of (negative) ``sd``'s direction."""
        self._observe(sd, capacity, lambda lo, hi, cap: moved(lo, hi, cap, delta_msat))

    def _observe(
        self,
        sd: ScidDir,
        capacity: int | None,
        rule: Callable[[int, int, int | None], tuple[int, int]],
    ) -> None:
        """Decay ``sd``'s bounds to now, apply ``rule``, clamp, stamp."""
        now = self.clock()
        old = self._table.get(sd)
        if old is None:
            lo, hi, cap = 0, _cap(capacity), capacity
        else:
            lo, hi, cap, at = old
            cap = capacity if capacity is not None else cap
            lo, hi = decayed(lo, hi, cap, now - at, self.half_life_s)
        lo, hi = rule(lo, hi, cap)
        hi = min(max(hi, 0), _cap(cap)) if hi < UNBOUNDED_MSAT else hi
        lo = min(max(lo, 0), hi)
        self._table.put(sd, lo, hi, cap, now)

    # -- reads ----------------------------------------------------------------------------

    def bounds(self, sd: ScidDir) -> tuple[int, int] | None:
        """``(lo, hi)`` of ``sd`` decayed to now, or ``None`` when nothing is known."""
        b = self._table.get(sd)
        if b is None:
            return None
        lo, hi, cap, at = b
        return decayed(lo, hi, cap, self.clock() - at, self.half_life_s)

    def inflight_msat(self, sd: ScidDir) -> int:
        return self._inflight.get(sd, 0)

    def snapshot(self) -> KnowledgeSnapshot:
        """Decayed bounds of every learnt half-channel (with when each was last
        observed, this knowledge's clock) and what is disabled now.

        Forgets entries older than ``forget_after_half_lives`` and expired
        disables on the way. Cost: vectorised over the learnt entries (numpy),
        plus building the reply's tuples.
        """
        now = self.clock()
        t = self._table
        live = t.live()
        age = now - t.at[live]
        stale = age > self.forget_after_s
        if stale.any():
            t.drop(live[stale].tolist())
            live, age = live[~stale], age[~stale]
        lo, hi = decayed_arrays(t.lo[live], t.hi[live], t.cap[live], age, self.half_life_s)
        cap = np.where(t.cap[live] > 0, t.cap[live], UNBOUNDED_MSAT)
        informative = (lo > 0) | (hi < cap)
        sel = live[informative]
        names = t.names
        self._expire(now)
        return KnowledgeSnapshot(
            taken_at=now,
            channels=tuple([names[i] for i in sel.tolist()]),
            lo_msat=tuple(lo[informative].tolist()),
            hi_msat=tuple(hi[informative].tolist()),
            disabled_channels=frozenset(self._disabled_channels),
            disabled_nodes=frozenset(self._disabled_nodes),
            updated_at=tuple(t.at[sel].tolist()),
        )

    def _expire(self, now: float) -> None:
        for sd in [s for s, d in self._disabled_channels.items() if d.until <= now]:
            del self._disabled_channels[sd]
        for n in [n for n, d in self._disabled_nodes.items() if d.until <= now]:
            del self._disabled_nodes[n]

    # -- persistence ----------------------------------------------------------------------

    def export(self) -> list[KnowledgeEntry]:
        """Every entry as stored (bounds as last observed, with ``updated_at``; not decayed)."""
        self._expire(self.clock())
        out: list[KnowledgeEntry] = []
        for sd in sorted(self._table.slot):
            b = self._table.get(sd)
            assert b is not None
            lo, hi, cap, at = b
            out.append(
                ChannelKnowledge(
                    scid_dir=sd,
                    lo_msat=lo,
                    hi_msat=min(hi, _cap(cap)),
                    updated_at=at,
                    capacity_msat=cap,
                )
            )
        out.extend(self._disabled_channels[k] for k in sorted(self._disabled_channels))
        out.extend(self._disabled_nodes[k] for k in sorted(self._disabled_nodes))
        return out

    def load(self, entries: Iterable[KnowledgeEntry]) -> int:
        """Merge persisted entries; a newer observation already held wins.

        Returns:
            how many entries were taken. Malformed ones (bad ``scid_dir``,
            negative or inverted bounds) are skipped with a warning.
        """
        taken = 0
        for e in entries:
            match e:
                case ChannelKnowledge():
                    try:
                        parse_scid_dir(e.scid_dir)
                    except ValueError:
                        log.warning(
                            "estimator: skipping knowledge for %r: not scid/dir", e.scid_dir
                        )
                        continue
                    cap = e.capacity_msat
                    hi = min(e.hi_msat, _cap(cap))
                    if e.lo_msat < 0 or hi < e.lo_msat:
                        log.warning(
                            "estimator: skipping knowledge for %s: bounds [%d, %d]",
                            e.scid_dir,
                            e.lo_msat,
                            e.hi_msat,
                        )
                        continue
                    old = self._table.get(e.scid_dir)
                    if old is not None and old[3] >= e.updated_at:
                        continue
                    self._table.put(e.scid_dir, e.lo_msat, hi, cap, e.updated_at)
                    taken += 1
                case DisabledChannel():
                    self.disable_channel(e.scid_dir, e.until, e.reason)
                    taken += 1
                case DisabledNode():
                    self.disable_node(e.node_id, e.until, e.reason)
                    taken += 1
        return taken


def _capacity(capacities_msat: Sequence[int], i: int) -> int | None:
    """Hop ``i``'s capacity, ``None`` when unknown (missing or 0)."""
    cap = capacities_msat[i] if i < len(capacities_msat) else 0
    return cap if cap > 0 else None


# -- the actor ------------------------------------------------------------------------------


async def liquidity_estimator(
    *,
    inbox: MemoryObjectReceiveStream[EstimatorMsg],
    knowledge: LiquidityKnowledge,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """The one shared estimator actor; returns when every sender has closed ``inbox``.

    Consumes:
        PartSent: count the part in flight.
        PartResolved: stop counting it, learn from its outcome (workers send
            this *before* telling the router, so the next route sees it).
        GetSnapshot: reply a :class:`KnowledgeSnapshot`.
        ExportKnowledge: reply every :data:`KnowledgeEntry`.
        ImportKnowledge: merge entries.
    Emits: only replies.
    """
    task_status.started()
    async with inbox:
        async for msg in inbox:
            match msg:
                case PartSent(route=route, capacities_msat=caps):
                    knowledge.part_sent(route, caps)
                case PartResolved(route=route, capacities_msat=caps, outcome=outcome):
                    knowledge.part_resolved(route, caps, outcome)
                case GetSnapshot(reply=r):
                    await reply(r, knowledge.snapshot())
                case ExportKnowledge(reply=r):
                    await reply(r, knowledge.export())
                case ImportKnowledge(entries=entries):
                    knowledge.load(entries)
