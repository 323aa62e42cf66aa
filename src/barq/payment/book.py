"""One payment's book: its accounts and every decision made from them (pure, synchronous).

The supervisor (``barq.actors.supervisor``) asks the book what to route next,
tells it which routes came back and how each part ended; the book decides
(split, merge, retry, exclude, stop) and tells the world through events. Its
view is the fold (:func:`barq.payment.fold`) of the events it published, so
what it decides from and what everyone else reads cannot differ.

Money rules, checked on every route before a part is started (and by the
property tests at every ``sendpay``): parts in flight + delivered never exceed
the amount; fees of parts in flight + succeeded never exceed ``maxfee_msat``;
each route's delay is at most ``maxdelay``; parts in flight + succeeded never
exceed ``maxparts`` (like xpay, ``maxparts`` bounds the parts *at once*, not
the attempts); a ``(groupid, partid)`` is never reused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from barq.errors import (
    PAY_RHASH_ALREADY_USED,
    AlreadyPaid,
    BarqError,
    DestinationPermanentFailure,
    NodeError,
    StoppedRetrying,
)
from barq.model import NodeId, PartId, PaymentHash, Route, RouteInput, ScidDir
from barq.model.payment import (
    PartAdopted,
    PartEnded,
    PartOutcome,
    PartStarted,
    PartState,
    PartView,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
)
from barq.payment.failures import FailureKind, Verdict, classify
from barq.payment.fold import fold
from barq.payment.patience import RELAX_STEPS, Relax, ended_by_default
from barq.payment.plan import PaymentPlan
from barq.payment.prior import Resume
from barq.payment.wording import attempt_detail, destination_refused, gave_up

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_REFUSALS",
    "MAX_STRIKES",
    "PartOrder",
    "PaymentBook",
    "Publish",
    "attempt_detail",
]

#: failures one half-channel may cause in one payment before the payment stops using it
MAX_STRIKES = 3
TAUGHT_SHARE = 0.9  # a liquidity failure refusing at most this share of the least before: no strike
#: sendpay refusals (no failure message) one payment tolerates before it stops
MAX_REFUSALS = 3
#: parts one payment may send in all (a payee failing every part at once with
#: MPP_TIMEOUT would otherwise be retried as fast as it answers until retry_for)
MAX_ATTEMPTS = 500

Publish = Callable[[PaymentEvent], None]
"""Where a payment's events go (the runtime's sink); called synchronously, in order."""


class PartOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What ``sendpay`` needs for part ``partid`` of ``groupid`` (besides its route)."""

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    amount_msat: int
    total_msat: int
    payment_secret: str | None = None
    bolt11: str | None = None
    label: str | None = None


class PaymentBook:
    """One payment's accounts and decisions (single writer: its supervisor).

    Amount invariant: ``delivered + inflight + lost + sum(pool) == amount``.
    The pool holds the unassigned pieces (one piece for strategies that split
    by themselves, unless they halve on failure).

    Args:
        plan: the validated payment.
        clock: UNIX seconds.
        publish: the event sink; nothing is published before :meth:`open`.
        resume: the group and part ids to use, and the parts adopted from an
            earlier run (:func:`barq.payment.decide_prior`).
        created_at: the payment's creation time (default: now).
    """

    def __init__(
        self,
        plan: PaymentPlan,
        clock: Callable[[], float],
        publish: Publish,
        *,
        resume: Resume | None = None,
        created_at: float | None = None,
    ) -> None:
        resume = resume or Resume()
        inv = plan.invoice
        self.plan = plan
        self.clock = clock
        self.publish = publish
        self.groupid = resume.groupid
        self.next_partid = resume.next_partid
        self.pool: list[int] = [plan.amount_msat]
        self.exclude_channels: set[ScidDir] = set(plan.exclude_channels)
        self.exclude_nodes: set[NodeId] = set(plan.exclude_nodes)
        self.strikes: Counter[ScidDir] = Counter()
        self.refused_msat: dict[ScidDir, int] = {}  # least refused per half-channel
        self.refusals = 0
        self.lost_msat = self.lost_parts = 0
        self.compute_s = 0.0
        self.stop_error: BarqError | None = None
        self.routing_error: BarqError | None = None
        self.blocked_by_others = False  # the routing error may go away as other payments end
        self.relax: Relax = RELAX_STEPS[0]  # what planning relaxes (barq.payment.patience)
        self.ended_by: str | None = None  # why a failed payment stopped (data["ended_by"])
        self._lasting: tuple[set[ScidDir], set[NodeId]] = (set(), set())  # permanent failures
        self.adopted = resume.adopted
        #: an adopted part failed: our channels' balances must be read again before planning
        self.balances_stale = False
        opening: list[PaymentEvent] = [
            PaymentStarted(
                payment_hash=inv.payment_hash,
                destination=inv.payee,
                amount_msat=plan.amount_msat,
                strategy=plan.strategy_name,
                at=clock() if created_at is None else created_at,
                groupid=self.groupid,
                bolt11=inv.bolt11,
                label=plan.label,
                maxfee_msat=plan.maxfee_msat,
            ),
            *(ev for pv in resume.ended for ev in _ended_earlier(inv.payment_hash, pv)),
            *resume.adopted,
        ]
        view: PaymentView | None = None
        for ev in opening:
            view = fold(view, ev)
        assert view is not None
        self.view: PaymentView = view
        self._unpublished = opening
        self._take_from_pool(resume.adopted_msat)

    def open(self) -> None:
        """Publish the payment's start (and its adopted parts): sending begins."""
        for ev in self._unpublished:
            self.publish(ev)
        self._unpublished = []

    def _emit(self, event: PaymentEvent) -> None:
        self.view = fold(self.view, event)
        self.publish(event)

    # -- totals ---------------------------------------------------------------------------

    def _in(self, *states: PartState) -> list[PartView]:
        return [p for p in self.view.parts if p.state in states]

    def _part(self, partid: PartId) -> PartView:
        return next(p for p in self.view.parts if p.partid == partid)

    @property
    def delivered_msat(self) -> int:
        return self.view.delivered_msat

    @property
    def inflight_msat(self) -> int:
        return self.view.inflight_msat

    @property
    def parts_in_flight(self) -> int:
        return len(self._in(PartState.INFLIGHT))

    @property
    def parts_in_use(self) -> int:
        """Parts that count against ``maxparts``: in flight + succeeded (+ lost)."""
        return len(self._in(PartState.INFLIGHT, PartState.SUCCEEDED)) + self.lost_parts

    @property
    def parts_free(self) -> int:
        """Part slots the first piece of the pool may use (one kept for each other piece)."""
        return self.plan.maxparts - self.parts_in_use - (len(self.pool) - 1)

    @property
    def fees_committed_msat(self) -> int:
        """Fees of the parts that may still succeed (in flight) or did."""
        return sum(p.fee_msat for p in self._in(PartState.INFLIGHT, PartState.SUCCEEDED))

    @property
    def unassigned_msat(self) -> int:
        return sum(self.pool)

    @property
    def attempts(self) -> int:
        """Parts this run sent (adopted ones not counted)."""
        return self.view.attempts

    @property
    def complete(self) -> bool:
        """A part succeeded: we hold the preimage, the proof of payment.

        A payee releases it only once the parts it holds add up to the total,
        so nothing more is sent from then on (parts in flight are awaited).
        """
        return bool(self._in(PartState.SUCCEEDED))

    @property
    def sending(self) -> bool:
        """Keep planning/sending: not stopped and not yet delivered."""
        return self.stop_error is None and not self.complete

    def stop(self, error: BarqError, ended_by: str | None = None) -> None:
        """Send nothing more; the first reason given is the one reported (``ended_by``: one
        of :data:`barq.payment.patience.ENDED_BY`, by default read from ``error``'s kind)."""
        if self.stop_error is None:
            self.stop_error = error
            self.ended_by = ended_by or ended_by_default(error)

    def relax_more(self) -> bool:
        """Plan with the next relaxation step (``False``: none left). Forgiving drops the
        exclusions this payment added after temporary failures (and its strikes)."""
        if self.relax.step + 1 >= len(RELAX_STEPS):
            return False
        self.relax = RELAX_STEPS[self.relax.step + 1]
        if self.relax.forgive:
            self.exclude_channels = set(self.plan.exclude_channels) | self._lasting[0]
            self.exclude_nodes = set(self.plan.exclude_nodes) | self._lasting[1]
            self.strikes.clear()
        return True

    def _take_from_pool(self, amount: int) -> None:
        left = min(amount, self.unassigned_msat)
        self.pool = [self.unassigned_msat - left] if self.unassigned_msat > left else []

    # -- planning -------------------------------------------------------------------------

    def next_piece(self) -> tuple[int, int, int] | None:
        """``(amount, maxparts, maxfee)`` of the next piece, or ``None`` when no part is left.

        Strategies that split by themselves get the whole unassigned amount at
        once (unless they halve on failure: then each piece separately); pieces
        that would not fit in ``maxparts`` are merged. The fee budget left is
        shared in proportion to amounts.
        """
        if not self.pool:
            return None
        s = self.plan.strategy
        crowded = self.parts_in_use + len(self.pool) > self.plan.maxparts
        if len(self.pool) > 1 and (crowded or (s.splits and not s.halve_on_failure)):
            self.pool = [sum(self.pool)]
        parts_left = self.parts_free
        if parts_left < 1:
            return None
        amount = self.pool[0]
        fee_left = max(self.plan.maxfee_msat - self.fees_committed_msat, 0)
        # the next piece's budget is computed after this one's parts started: never over maxfee
        budget = fee_left if self.relax.whole_fee else fee_left * amount // self.unassigned_msat
        if not s.splits:
            return amount, 1, budget
        share = parts_left if self.relax.all_slots else self.slot_share(amount, parts_left)
        return amount, share, budget

    def slot_share(self, amount: int, parts_left: int) -> int:
        """How many of the ``parts_left`` free part slots a piece of ``amount`` may take.

        With nothing in flight, all of them. Otherwise the piece's own slot plus
        its share, by amount, of the rest: the parts still in flight may fail
        and need slots for their own re-routing, so a retry of one failed part
        does not take every free slot (on a large payment that left later
        retries without slots while earlier parts sat at the payee). When the
        share is too small for any route, the supervisor asks again with all
        ``parts_left``.
        """
        inflight = self.inflight_msat
        if inflight <= 0 or parts_left <= 1:
            return parts_left
        return 1 + (parts_left - 1) * amount // (amount + inflight)

    def halve(self, amount: int) -> bool:
        """After "no route" for the first piece: split it in two if allowed (single-path only)."""
        floor = self.plan.min_part_msat
        if floor is not None:
            floor = max(floor // self.relax.floor_divisor, 1)
        if self.plan.strategy.splits or floor is None or amount // 2 < floor:
            return False
        if self.parts_in_use + len(self.pool) + 1 > self.plan.maxparts:
            return False
        assert self.pool and self.pool[0] == amount
        half = amount // 2
        self.pool[0:1] = [amount - half, half]
        return True

    def route_input(self, amount: int, maxparts: int, maxfee: int) -> RouteInput:
        inv = self.plan.invoice
        return RouteInput(
            source=self.plan.our_id,
            destination=inv.payee,
            amount_msat=amount,
            final_cltv=inv.min_final_cltv_expiry,
            maxfee_msat=maxfee,
            maxdelay=self.plan.maxdelay,
            maxparts=maxparts,
            exclude_channels=frozenset(self.exclude_channels),
            exclude_nodes=frozenset(self.exclude_nodes),
            route_hints=inv.route_hints,
        )

    def check_routes(
        self, routes: Sequence[Route], amount: int, maxparts: int, maxfee: int
    ) -> str | None:
        """Why these routes break the money rules (``None``: they are fine).

        Guards against a strategy that breaks its contract; the rules are the
        module's (amount, fee, delay, parts; the destination is the payee).
        """
        if not routes:
            return "no routes"
        if len(routes) > maxparts:
            return f"{len(routes)} routes, at most {maxparts} allowed"
        for r in routes:
            if not r.hops:
                return "an empty route"
            if r.destination != self.plan.destination:
                return f"a route ends at {r.destination}, not at the payee"
            if r.delay > self.plan.maxdelay:
                return f"a route needs delay {r.delay} > maxdelay {self.plan.maxdelay}"
            try:
                r.check()
            except ValueError as exc:
                return str(exc)
        got = sum(r.amount_msat for r in routes)
        if got != amount:
            return f"routes deliver {got} msat, {amount} asked"
        fees = sum(r.fee_msat for r in routes)
        if fees > maxfee:
            return f"routes cost {fees} msat in fees, budget {maxfee}"
        return None

    # -- parts ----------------------------------------------------------------------------

    def _order(self, partid: PartId, amount_msat: int) -> PartOrder:
        inv = self.plan.invoice
        return PartOrder(
            payment_hash=inv.payment_hash,
            partid=partid,
            groupid=self.groupid,
            amount_msat=amount_msat,
            total_msat=self.plan.total_msat,
            payment_secret=inv.payment_secret,
            bolt11=inv.bolt11,
            label=self.plan.label,
        )

    def start_part(self, route: Route) -> PartOrder:
        """Assign the next partid to ``route`` (its amount leaves the pool's first piece)."""
        partid = self.next_partid
        self.next_partid = PartId(partid + 1)
        self._emit(
            PartStarted(
                payment_hash=self.plan.payment_hash,
                partid=partid,
                groupid=self.groupid,
                amount_msat=route.amount_msat,
                route=route,
                at=self.clock(),
                compute_s=self.compute_s,
            )
        )
        return self._order(partid, route.amount_msat)

    def adopted_orders(self) -> list[PartOrder]:
        """The parts adopted from an earlier run (already sent: only to be awaited)."""
        return [self._order(a.partid, a.amount_msat) for a in self.adopted]

    def part_ended(self, partid: PartId, outcome: PartOutcome) -> None:
        """Book how part ``partid`` ended and decide what it means for the payment."""
        pv = self._part(partid)
        if outcome.state is PartState.SUCCEEDED:
            state = PartState.SUCCEEDED
        elif outcome.lost:
            state = PartState.FAILED
            self.lost_msat += pv.amount_msat
            self.lost_parts += 1
            self.stop(
                NodeError(
                    f"lost track of part {pv.partid} ({pv.amount_msat} msat): {outcome.reason}"
                )
            )
        else:
            state = self._failed(pv, outcome)
        self._emit(
            PartEnded(
                payment_hash=self.plan.payment_hash,
                partid=pv.partid,
                groupid=pv.groupid,
                amount_msat=pv.amount_msat,
                state=state,
                at=self.clock(),
                failure=outcome.failure,
                reason=outcome.reason,
                preimage=outcome.preimage,
            )
        )

    def _failed(self, pv: PartView, out: PartOutcome) -> PartState:
        """A failed part: its amount goes back to the pool; learn what to avoid (or stop).

        A part adopted from an earlier run is first-class: its amount is
        re-planned like any other's, and its failure is read on the route its
        run recorded (when known). Its HTLC no longer holds our channel, which
        the router cannot know (it never reserved it): :attr:`balances_stale`.
        """
        route = pv.route
        if any(a.partid == pv.partid for a in self.adopted):
            self.balances_stale = True
        if out.failure is None or not route.hops:
            self.pool.append(pv.amount_msat)
            if not out.sent and out.rpc_code is not None:
                self._refused(pv, out)
            return PartState.FAILED
        v = classify(route, out.failure)
        if v.final:
            self.pool.append(pv.amount_msat)
            self.stop(
                DestinationPermanentFailure(
                    destination_refused(out.failure, pv.partid),
                    data={
                        "failcode": out.failure.failcode,
                        "failcodename": out.failure.failcodename,
                    },
                )
            )
            return PartState.FAILED
        self._avoid(v, route.hops[v.index].amount_msat if v.index < len(route.hops) else 0)
        if (
            v.kind is FailureKind.LIQUIDITY
            and self.plan.strategy.halve_on_failure
            and self.plan.min_part_msat is not None
            and pv.amount_msat // 2 >= self.plan.min_part_msat
            and self.parts_in_use + len(self.pool) + 2 <= self.plan.maxparts
        ):
            half = pv.amount_msat // 2
            self.pool.extend([pv.amount_msat - half, half])
            return PartState.RESPLIT
        self.pool.append(pv.amount_msat)
        return PartState.FAILED

    def _avoid(self, v: Verdict, amount_msat: int) -> None:
        """This payment's share of a failure's lesson: exclusions and strikes.

        A liquidity failure strikes unless it refused at most TAUGHT_SHARE of all before it.

        Our own channel failing (``local``) is excluded for the rest of the
        payment, as xpay does: the router refreshes its balances for later
        payments, but whatever made it fail (HTLC slots, reserve, a flaky
        peer) is not visible in ``listpeerchannels``.
        """
        if v.local and v.channel is not None:
            self.exclude_channels.add(v.channel)
        match v.kind:
            case FailureKind.CHANNEL | FailureKind.OTHER if v.channel is not None:
                self.exclude_channels.add(v.channel)
                self._lasting[0].add(v.channel)
            case FailureKind.OTHER if v.node is not None:
                self.exclude_nodes.add(v.node)
            case FailureKind.NODE_PERMANENT | FailureKind.NODE_TEMPORARY if v.node is not None:
                self.exclude_nodes.add(v.node)
                if v.kind is FailureKind.NODE_PERMANENT:
                    self._lasting[1].add(v.node)
            case FailureKind.POLICY if v.channel is not None and (v.update is None or v.local):
                self.exclude_channels.add(v.channel)
            case _:
                pass
        if v.channel is not None and not self._taught(v, amount_msat):
            self._strike(v.channel)

    def _taught(self, v: Verdict, amount_msat: int) -> bool:
        """A liquidity failure at most TAUGHT_SHARE of every earlier one there (not the first)."""
        if v.kind is not FailureKind.LIQUIDITY or v.channel is None:
            return False
        earlier = self.refused_msat.setdefault(v.channel, amount_msat)  # the first strikes
        self.refused_msat[v.channel] = min(earlier, amount_msat)
        return amount_msat <= earlier * TAUGHT_SHARE

    def _strike(self, channel: ScidDir) -> None:
        self.strikes[channel] += 1
        if self.strikes[channel] >= MAX_STRIKES:
            self.exclude_channels.add(channel)

    def _refused(self, pv: PartView, out: PartOutcome) -> None:
        """``sendpay`` refused the part without a failure message."""
        self.refusals += 1
        if out.rpc_code == PAY_RHASH_ALREADY_USED:
            self.stop(
                AlreadyPaid(f"the node says this payment hash was already paid: {out.reason}")
            )
        elif self.refusals >= MAX_REFUSALS:
            self.stop(
                NodeError(
                    f"the node refused {self.refusals} parts; last: {out.reason}",
                    data={"rpc_code": out.rpc_code},
                )
            )
        if pv.route.hops:
            self._strike(pv.route.channels()[0])

    # -- the end --------------------------------------------------------------------------

    def finish(self) -> PaymentView:
        """Close the books: the view on success.

        Raises:
            BarqError: why the payment failed, in xpay's words
                (:func:`barq.payment.wording.gave_up`); ``.data`` is the view (as
                builtins) with ``attempts`` replaced by one entry per part sent.
        """
        at = self.clock()
        h, g = self.plan.payment_hash, self.groupid
        if self.complete:
            self._emit(
                PaymentEnded(
                    payment_hash=h,
                    status=PaymentStatus.COMPLETE,
                    at=at,
                    groupid=g,
                    compute_s=self.compute_s,
                )
            )
            return self.view
        cause = self.stop_error or self.routing_error or StoppedRetrying("gave up")
        err = gave_up(
            cause,
            self.view.parts,
            attempts=self.attempts,
            amount_msat=self.plan.amount_msat,
            unassigned_msat=self.unassigned_msat,
        )
        self._emit(
            PaymentEnded(
                payment_hash=h,
                status=PaymentStatus.FAILED,
                at=at,
                error=err.message,
                error_code=err.code,
                groupid=g,
                compute_s=self.compute_s,
            )
        )
        data: dict[str, Any] = msgspec.to_builtins(self.view)
        data["attempts"] = [attempt_detail(p) for p in self.view.parts]
        data.update({k: val for k, val in err.data.items() if k not in data})
        data["ended_by"] = self.ended_by or ended_by_default(cause)
        if self.routing_error is not None and self.routing_error is not cause:
            data["last_routing_error"] = self.routing_error.message
        err.data = data
        raise err


def _ended_earlier(payment_hash: PaymentHash, pv: PartView) -> tuple[PartAdopted, PartEnded]:
    """A part of the group that ended before this payment, told as events (for its record)."""
    return (
        PartAdopted(
            payment_hash=payment_hash,
            partid=pv.partid,
            groupid=pv.groupid,
            amount_msat=pv.amount_msat,
            amount_sent_msat=pv.amount_sent_msat,
            at=pv.started_at,
            route=pv.route,
            reason="sent by an earlier run",
        ),
        PartEnded(
            payment_hash=payment_hash,
            partid=pv.partid,
            groupid=pv.groupid,
            amount_msat=pv.amount_msat,
            state=pv.state,
            at=pv.finished_at if pv.finished_at is not None else pv.started_at,
            failure=pv.failure,
            reason=pv.reason or "ended before this call (an earlier run sent it)",
        ),
    )
