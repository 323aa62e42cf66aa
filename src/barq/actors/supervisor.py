"""The payment supervisor: one per payment, a short program read top-down (renepay's payment.c).

::

    validate(params, invoice)           fix amount, fee budget, maxdelay, maxparts, deadline
    adopt(listsendpays)                 already paid? parts still pending? which groupid/partid
    open at the router                  refresh our channels; is the destination reachable?
    ┌ until delivered, stopped or the retry_for deadline:
    │   plan: ask the router for routes for the unassigned amount
    │         (single-path strategies: one route per piece, halving on "no route";
    │         the router sets aside liquidity learnt before the payment started
    │         before it answers "no route")
    │   send: one shard worker per route
    │   learn: read each ShardResult (success, retry the amount, exclude, or stop)
    │   no route and nothing in flight: stop (205/206), unless other payments'
    │   reservations hold liquidity: then wait for them and ask again
    └
    wait for every part already sent, then report (view, or an error with every attempt)

The payment is complete as soon as one part succeeds: the preimage proves
payment (a payee releases it only once all parts arrived), so nothing more
is sent; the parts still in flight are awaited (they succeed too).

Money rules, checked on every route before a worker is spawned (and by the
property tests at every ``sendpay``): parts in flight + delivered never
exceed the amount; fees of parts in flight + succeeded never exceed
``maxfee_msat``; each route's delay is at most ``maxdelay``; parts in flight
+ succeeded never exceed ``maxparts`` (like xpay, ``maxparts`` bounds the
parts *at once*, not the attempts); a ``(groupid, partid)`` is never reused.

MPP rules as CLN's ``sendpay``: all parts of one attempt share a ``groupid``;
``partid`` s are unique within it and never reused, even across restarts
(:meth:`PaymentBook.adopt`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from barq.actors._mailbox import ask
from barq.actors.failures import FailureKind, Verdict, classify
from barq.actors.messages import (
    ClosePayment,
    EstimatorMsg,
    FindRoutes,
    FindRoutesReply,
    NoRoutes,
    OpenPayment,
    PartOutcome,
    PaymentOpened,
    PlannedRoute,
    ReleaseRoute,
    RouterMsg,
    RoutesFound,
    ShardOrder,
    ShardResult,
    SupervisorMsg,
)
from barq.actors.shard import shard_worker
from barq.errors import (
    JSONRPC2_INVALID_PARAMS,
    PAY_RHASH_ALREADY_USED,
    PAY_ROUTE_NOT_FOUND,
    PAY_ROUTE_TOO_EXPENSIVE,
    AlreadyPaid,
    BarqError,
    DestinationPermanentFailure,
    InvalidInvoice,
    InvalidParams,
    InvoiceExpired,
    NodeError,
    RouteNotFound,
    RouteTooExpensive,
    StoppedRetrying,
)
from barq.model import (
    Invoice,
    NodeId,
    NodeInfo,
    PartStatus,
    Route,
    RouteInput,
    ScidDir,
    SendpayStatus,
    is_node_id,
    parse_scid_dir,
)
from barq.model.payment import (
    EngineConfig,
    PartEnded,
    PartStarted,
    PartState,
    PartView,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
    PayParams,
)
from barq.node.base import NodeInterface
from barq.strategies import Strategy, get_strategy

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_STRIKES",
    "PaymentBook",
    "PaymentPlan",
    "Publish",
    "decode_invoice",
    "payment_supervisor",
    "validate",
]

log = logging.getLogger(__name__)

#: failures one half-channel may cause in one payment before the payment stops using it
MAX_STRIKES = 3
#: sendpay refusals (no failure message) one payment tolerates before it stops
MAX_REFUSALS = 3
#: parts one payment may send in all (a payee failing every part at once with
#: MPP_TIMEOUT would otherwise be retried as fast as it answers until retry_for)
MAX_ATTEMPTS = 500
#: with no route, nothing of ours in flight but other payments holding reservations:
#: wait this long for them to resolve, then ask again (until the deadline)
BUSY_RETRY_S = 1.0
MAXPARTS_LIMIT = 1000

Publish = Callable[[PaymentEvent, PaymentView], None]
"""The runtime's sink for a payment's events; the view is the supervisor's own (read-only)."""


# -- 1. validate ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """A validated payment: everything fixed before the first part is sent."""

    invoice: Invoice
    our_id: NodeId
    amount_msat: int
    maxfee_msat: int
    maxdelay: int
    maxparts: int
    retry_for_s: float
    strategy_name: str
    strategy: Strategy
    min_part_msat: int | None
    exclude_channels: frozenset[ScidDir]
    exclude_nodes: frozenset[NodeId]
    label: str | None

    @property
    def payment_hash(self) -> str:
        return self.invoice.payment_hash

    @property
    def destination(self) -> NodeId:
        return self.invoice.payee


async def decode_invoice(node: NodeInterface, invstring: str) -> Invoice:
    """``node.decode_invoice`` with every non-Barq surprise turned into :class:`InvalidInvoice`."""
    try:
        return await node.decode_invoice(invstring)
    except BarqError:
        raise
    except Exception as exc:
        raise InvalidInvoice(f"cannot decode invoice {invstring[:24]!r}...: {exc}") from exc


def validate(
    params: PayParams,
    invoice: Invoice,
    info: NodeInfo,
    config: EngineConfig,
    now: float,
    *,
    strategies: Callable[[str], Strategy] = get_strategy,
) -> PaymentPlan:
    """Check ``params`` against the invoice and our node; fix every limit (pure).

    Args:
        now: UNIX seconds (the runtime's clock) for the expiry check.
        strategies: name -> strategy (default :func:`barq.strategies.get_strategy`;
            the runtime passes its cached lookup).

    Raises:
        InvalidInvoice: the invoice is for another network.
        InvoiceExpired: it expired.
        InvalidParams: amount rules (an amountless invoice needs ``amount_msat``;
            for one with an amount it must be equal), maxparts outside 1..1000,
            negative maxfee, non-positive retry_for, maxdelay below the
            invoice's final CLTV, a malformed ``exclude`` entry, or paying ourselves.
        UnknownStrategy: no strategy has that name.
    """
    if invoice.network != info.network:
        raise InvalidInvoice(
            f"invoice is for network {invoice.network!r} but this node runs on {info.network!r}"
        )
    if invoice.expires_at <= now:
        raise InvoiceExpired(
            f"invoice expired at UNIX {invoice.expires_at} ({int(now - invoice.expires_at)} s ago)",
            data={"expires_at": invoice.expires_at},
        )
    if invoice.payee == info.id:
        raise InvalidParams("this invoice is our own: a node cannot pay itself")
    if invoice.amount_msat is None:
        if params.amount_msat is None:
            raise InvalidParams("the invoice has no amount: amount_msat is required")
        amount = params.amount_msat
    else:
        if params.amount_msat is not None and params.amount_msat != invoice.amount_msat:
            raise InvalidParams(
                f"amount_msat {params.amount_msat} differs from the invoice's "
                f"amount {invoice.amount_msat} msat; leave it out"
            )
        amount = invoice.amount_msat
    if amount <= 0:
        raise InvalidParams(f"amount must be positive, got {amount} msat")
    maxparts = config.maxparts if params.maxparts is None else params.maxparts
    if not 1 <= maxparts <= MAXPARTS_LIMIT:
        raise InvalidParams(f"maxparts must be between 1 and {MAXPARTS_LIMIT}, got {maxparts}")
    if params.maxfee_msat is None:
        maxfee = config.default_maxfee_msat(amount)
    else:
        maxfee = params.maxfee_msat
    if maxfee < 0:
        raise InvalidParams(f"maxfee_msat must be >= 0, got {maxfee}")
    retry_for = config.retry_for_s if params.retry_for_s is None else params.retry_for_s
    if not retry_for > 0:
        raise InvalidParams(f"retry_for must be > 0 seconds, got {retry_for}")
    maxdelay = config.maxdelay if params.maxdelay is None else params.maxdelay
    if maxdelay < invoice.min_final_cltv_expiry:
        raise InvalidParams(
            f"maxdelay {maxdelay} is below the invoice's final CLTV {invoice.min_final_cltv_expiry}"
        )
    channels: set[ScidDir] = set()
    nodes: set[NodeId] = set()
    for entry in params.exclude:
        if is_node_id(entry):
            nodes.add(entry)
            continue
        try:
            parse_scid_dir(entry)
        except ValueError:
            raise InvalidParams(
                f"exclude entry {entry!r} is neither a short_channel_id/direction "
                f"(like 103x1x0/1) nor a node id (66 hex characters)"
            ) from None
        channels.add(entry)
    name = params.strategy or config.default_strategy
    strategy = strategies(name)
    floor = strategy.min_part_msat
    if floor is not None:
        floor = max(floor, config.min_part_msat)
    return PaymentPlan(
        invoice=invoice,
        our_id=info.id,
        amount_msat=amount,
        maxfee_msat=maxfee,
        maxdelay=maxdelay,
        maxparts=maxparts,
        retry_for_s=retry_for,
        strategy_name=name,
        strategy=strategy,
        min_part_msat=floor,
        exclude_channels=frozenset(channels),
        exclude_nodes=frozenset(nodes),
        label=params.label,
    )


# -- 2. the books ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    view: PartView
    planned: PlannedRoute | None


@dataclass
class PaymentBook:
    """One payment's accounts and decisions (plain, synchronous; single writer: its supervisor).

    Amount invariant: ``delivered + inflight + lost + sum(pool) == amount``.
    The pool holds the unassigned pieces (one piece for strategies that split
    by themselves, unless they halve on failure).
    """

    plan: PaymentPlan
    clock: Callable[[], float]
    publish: Publish
    view: PaymentView = field(init=False)
    groupid: int = 1
    next_partid: int = 1
    pool: list[int] = field(default_factory=list)
    parts: dict[int, _Part] = field(default_factory=dict)
    exclude_channels: set[ScidDir] = field(default_factory=set)
    exclude_nodes: set[NodeId] = field(default_factory=set)
    strikes: Counter[ScidDir] = field(default_factory=Counter)
    refusals: int = 0
    lost_msat: int = 0
    lost_parts: int = 0
    stop_error: BarqError | None = None
    routing_error: BarqError | None = None
    blocked_by_others: bool = False  # the routing error may go away as other payments end
    adopted: list[PartView] = field(default_factory=list)

    def __post_init__(self) -> None:
        inv = self.plan.invoice
        self.view = PaymentView(
            payment_hash=inv.payment_hash,
            destination=inv.payee,
            amount_msat=self.plan.amount_msat,
            status=PaymentStatus.PENDING,
            strategy=self.plan.strategy_name,
            created_at=self.clock(),
            bolt11=inv.bolt11,
            label=self.plan.label,
            maxfee_msat=self.plan.maxfee_msat,
        )
        self.pool = [self.plan.amount_msat]
        self.exclude_channels = set(self.plan.exclude_channels)
        self.exclude_nodes = set(self.plan.exclude_nodes)

    # -- totals ---------------------------------------------------------------------------

    def _in(self, *states: PartState) -> list[PartView]:
        return [p.view for p in self.parts.values() if p.view.state in states]

    @property
    def delivered_msat(self) -> int:
        return sum(p.amount_msat for p in self._in(PartState.SUCCEEDED))

    @property
    def inflight_msat(self) -> int:
        return sum(p.amount_msat for p in self._in(PartState.INFLIGHT))

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

    def stop(self, error: BarqError) -> None:
        """Send nothing more; the first reason given is the one reported."""
        if self.stop_error is None:
            self.stop_error = error

    # -- restarts (listsendpays) ----------------------------------------------------------

    def adopt(self, previous: Sequence[PartStatus]) -> bool:
        """Take over what earlier runs sent for this payment hash.

        * a complete part: the payment is already paid; returns True (send nothing);
        * parts pending in group G (the highest such): adopt G; they count in
          flight (their routes are unknown), next partid = max partid in G + 1;
        * otherwise a fresh group: max existing groupid + 1 (1 if none).
        """
        done = [p for p in previous if p.status is SendpayStatus.COMPLETE]
        if done:
            g = max(p.groupid for p in done)
            group = [p for p in done if p.groupid == g]
            self.groupid = g
            v = self.view
            v.groupid = g
            v.status = PaymentStatus.COMPLETE
            v.payment_preimage = next(
                (p.payment_preimage for p in group if p.payment_preimage), None
            )
            v.delivered_msat = sum(p.amount_msat for p in group)
            v.amount_sent_msat = sum(p.amount_sent_msat for p in group)
            v.fee_msat = v.amount_sent_msat - v.delivered_msat
            v.completed_at = self.clock()
            self.pool = []
            return True
        pending = [p for p in previous if p.status is SendpayStatus.PENDING]
        if pending:
            g = max(p.groupid for p in pending)
            self.groupid = g
            self.next_partid = max(p.partid for p in previous if p.groupid == g) + 1
            for p in sorted(pending, key=lambda p: p.partid):
                if p.groupid != g:
                    continue
                pv = PartView(
                    partid=p.partid,
                    groupid=g,
                    amount_msat=p.amount_msat,
                    amount_sent_msat=p.amount_sent_msat,
                    fee_msat=p.amount_sent_msat - p.amount_msat,
                    route=Route(hops=()),
                    state=PartState.INFLIGHT,
                    started_at=float(p.created_at) or self.clock(),
                    reason="adopted: sent by an earlier run (route unknown)",
                )
                self.parts[p.partid] = _Part(view=pv, planned=None)
                self.adopted.append(pv)
            self._take_from_pool(sum(p.amount_msat for p in self.adopted))
        elif previous:
            self.groupid = max(p.groupid for p in previous) + 1
        self.view.groupid = self.groupid
        self._sync()
        return False

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
        fee_left = self.plan.maxfee_msat - self.fees_committed_msat
        budget = max(fee_left, 0) * amount // self.unassigned_msat
        return amount, (self.slot_share(amount, parts_left) if s.splits else 1), budget

    def slot_share(self, amount: int, parts_left: int) -> int:
        """How many of the ``parts_left`` free part slots a piece of ``amount`` may take.

        With nothing in flight, all of them. Otherwise the piece's own slot plus
        its share, by amount, of the rest: the parts still in flight may fail
        and need slots for their own re-routing, so a retry of one failed part
        does not take every free slot (on a large payment that left later
        retries without slots while earlier parts sat at the payee). When the
        share is too small for any route, :func:`_plan_and_send` asks again with
        all ``parts_left``.
        """
        inflight = self.inflight_msat
        if inflight <= 0 or parts_left <= 1:
            return parts_left
        return 1 + (parts_left - 1) * amount // (amount + inflight)

    def halve(self, amount: int) -> bool:
        """After "no route" for the first piece: split it in two if allowed (single-path only)."""
        floor = self.plan.min_part_msat
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
        self, planned: Sequence[PlannedRoute], amount: int, maxparts: int, maxfee: int
    ) -> str | None:
        """Why these routes break the money rules (``None``: they are fine).

        Guards against a strategy that breaks its contract; the rules are the
        module's (amount, fee, delay, parts; the destination is the payee).
        """
        routes = [p.route for p in planned]
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

    def start_part(self, planned: PlannedRoute) -> ShardOrder:
        """Assign the next partid to ``planned`` (its amount leaves the pool's first piece)."""
        r = planned.route
        partid = self.next_partid
        self.next_partid += 1
        now = self.clock()
        pv = PartView(
            partid=partid,
            groupid=self.groupid,
            amount_msat=r.amount_msat,
            amount_sent_msat=r.sent_msat,
            fee_msat=r.fee_msat,
            route=r,
            state=PartState.INFLIGHT,
            started_at=now,
        )
        self.parts[partid] = _Part(view=pv, planned=planned)
        self.view.attempts += 1
        self._sync()
        self.publish(
            PartStarted(
                payment_hash=self.plan.payment_hash,
                partid=partid,
                groupid=self.groupid,
                amount_msat=r.amount_msat,
                route=r,
                at=now,
            ),
            self.view,
        )
        inv = self.plan.invoice
        return ShardOrder(
            payment_hash=inv.payment_hash,
            partid=partid,
            groupid=self.groupid,
            amount_msat=r.amount_msat,
            total_msat=self.plan.amount_msat,
            planned=planned,
            payment_secret=inv.payment_secret,
            bolt11=inv.bolt11,
            label=self.plan.label,
        )

    def adopted_order(self, pv: PartView) -> ShardOrder:
        inv = self.plan.invoice
        return ShardOrder(
            payment_hash=inv.payment_hash,
            partid=pv.partid,
            groupid=pv.groupid,
            amount_msat=pv.amount_msat,
            total_msat=self.plan.amount_msat,
            planned=None,
        )

    def part_ended(self, result: ShardResult) -> None:
        """Book a worker's result and decide what it means for the payment."""
        part = self.parts[result.partid]
        pv = part.view
        out = result.outcome
        pv.finished_at = self.clock()
        pv.failure = out.failure
        pv.reason = out.reason
        if out.state is PartState.SUCCEEDED:
            pv.state = PartState.SUCCEEDED
            self.view.payment_preimage = self.view.payment_preimage or out.preimage
        elif out.lost:
            pv.state = PartState.FAILED
            self.lost_msat += pv.amount_msat
            self.lost_parts += 1
            self.stop(
                NodeError(f"lost track of part {pv.partid} ({pv.amount_msat} msat): {out.reason}")
            )
        else:
            pv.state = self._failed(pv, out)
        self._sync()
        self.publish(
            PartEnded(
                payment_hash=self.plan.payment_hash,
                partid=pv.partid,
                groupid=pv.groupid,
                amount_msat=pv.amount_msat,
                state=pv.state,
                at=pv.finished_at,
                failure=out.failure,
                reason=out.reason,
            ),
            self.view,
        )

    def _failed(self, pv: PartView, out: PartOutcome) -> PartState:
        """A failed part: its amount goes back to the pool; learn what to avoid (or stop)."""
        route = pv.route
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
                    f"the destination refused part {pv.partid}: {out.failure.failcodename}",
                    data={
                        "failcode": out.failure.failcode,
                        "failcodename": out.failure.failcodename,
                    },
                )
            )
            return PartState.FAILED
        self._avoid(v)
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

    def _avoid(self, v: Verdict) -> None:
        """This payment's share of a failure's lesson: exclusions and strikes.

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
            case FailureKind.OTHER if v.node is not None:
                self.exclude_nodes.add(v.node)
            case FailureKind.NODE_PERMANENT | FailureKind.NODE_TEMPORARY if v.node is not None:
                self.exclude_nodes.add(v.node)
            case FailureKind.POLICY if v.channel is not None and (v.update is None or v.local):
                self.exclude_channels.add(v.channel)
            case _:
                pass
        if v.channel is not None:
            self.strikes[v.channel] += 1
            if self.strikes[v.channel] >= MAX_STRIKES:
                self.exclude_channels.add(v.channel)

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
            first = pv.route.channels()[0]
            self.strikes[first] += 1
            if self.strikes[first] >= MAX_STRIKES:
                self.exclude_channels.add(first)

    def _sync(self) -> None:
        """Recompute the view's totals from the parts."""
        v = self.view
        ok = self._in(PartState.SUCCEEDED)
        v.parts = [p.view for p in self.parts.values()]
        v.delivered_msat = sum(p.amount_msat for p in ok)
        v.amount_sent_msat = sum(p.amount_sent_msat for p in ok)
        v.fee_msat = sum(p.fee_msat for p in ok)
        v.inflight_msat = self.inflight_msat

    # -- the end --------------------------------------------------------------------------

    def finish(self) -> PaymentView:
        """Close the books: the view on success.

        Raises:
            BarqError: why the payment failed; ``.data`` is the view (as builtins)
                with ``attempts`` replaced by one entry per part sent.
        """
        v = self.view
        v.completed_at = self.clock()
        self._sync()
        if self.complete:
            v.status = PaymentStatus.COMPLETE
            self.publish(
                PaymentEnded(payment_hash=v.payment_hash, status=v.status, at=v.completed_at), v
            )
            return v
        err = self.stop_error or self.routing_error or StoppedRetrying("gave up")
        v.status = PaymentStatus.FAILED
        v.error = err.message
        v.error_code = err.code
        self.publish(
            PaymentEnded(
                payment_hash=v.payment_hash, status=v.status, at=v.completed_at, error=err.message
            ),
            v,
        )
        data: dict[str, Any] = msgspec.to_builtins(v)
        data["attempts"] = [attempt_detail(p) for p in v.parts]
        data.update({k: val for k, val in err.data.items() if k not in data})
        if self.routing_error is not None and self.routing_error is not err:
            data["last_routing_error"] = self.routing_error.message
        err.data = data
        raise err


def attempt_detail(p: PartView) -> dict[str, Any]:
    """One part for an error's ``data``: what was tried and why it failed."""
    f = p.failure
    erring_channel: str | None = None
    if f is not None and f.erring_channel is not None:
        erring_channel = (
            f"{f.erring_channel}/{f.erring_direction}"
            if f.erring_direction is not None
            else f.erring_channel
        )
    elif f is not None and p.route.hops and f.erring_index < len(p.route.hops):
        erring_channel = p.route.channels()[max(f.erring_index, 0)]
    return {
        "partid": p.partid,
        "groupid": p.groupid,
        "route": p.route.channels(),
        "amount_msat": p.amount_msat,
        "amount_sent_msat": p.amount_sent_msat,
        "fee_msat": p.fee_msat,
        "outcome": str(p.state),
        "failcode": None if f is None else f.failcode,
        "failcodename": None if f is None else f.failcodename,
        "erring_index": None if f is None else f.erring_index,
        "erring_channel": erring_channel,
        "erring_node": None if f is None else f.erring_node,
        "reason": p.reason,
    }


def _routing_error(answer: NoRoutes, amount: int, destination: NodeId) -> BarqError:
    msg = f"no route for {amount} msat to {destination}: {answer.message}"
    if answer.code == PAY_ROUTE_TOO_EXPENSIVE:
        return RouteTooExpensive(msg, data=answer.data)
    if answer.code == PAY_ROUTE_NOT_FOUND:
        return RouteNotFound(msg, data=answer.data)
    if answer.code == JSONRPC2_INVALID_PARAMS:
        return InvalidParams(answer.message, data=answer.data)
    return BarqError(msg, data=answer.data)


# -- 3. the actor ---------------------------------------------------------------------------


async def payment_supervisor(
    *,
    params: PayParams,
    invoice: Invoice,
    node: NodeInterface,
    router: MemoryObjectSendStream[RouterMsg],
    estimator: MemoryObjectSendStream[EstimatorMsg],
    config: EngineConfig,
    clock: Callable[[], float],
    publish: Publish,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    info: NodeInfo | None = None,
    previous: Sequence[PartStatus] | None = None,
    strategies: Callable[[str], Strategy] = get_strategy,
) -> PaymentView:
    """Pay ``invoice``; one supervisor per payment.

    Reports ready (``task_status.started()``) once the payment is validated
    and about to send; every error before that is raised to whoever started
    it. Its inbox is private: only its own shard workers hold the send end.

    Args:
        info: our node's ``getinfo`` (asked for when ``None``).
        previous: ``listsendpays`` of the payment hash, taken just before by the
            caller (asked for when ``None``); what :meth:`PaymentBook.adopt` reads.
        strategies: name -> strategy, for :func:`validate`.

    Consumes:
        ShardResult: from its workers, one per part.
    Emits:
        OpenPayment, FindRoutes (requests) and ReleaseRoute (routes it will not
        send), ClosePayment (last, shielded) to the router; ShardOrders to the
        workers it spawns; events through ``publish``.

    Returns:
        the payment's view (status complete).

    Raises:
        InvalidParams, InvalidInvoice, InvoiceExpired, UnknownStrategy: before ready.
        RouteNotFound: the destination is unknown (before ready), or no route
            (205) with nothing left in flight.
        RouteTooExpensive: (206) likewise.
        DestinationPermanentFailure: the payee refused a part (203).
        StoppedRetrying: ``retry_for`` passed, or the invoice expired, first (210).
        AlreadyPaid, NodeError: the node refused parts or lost track of one.
    """
    # 1. validate
    if info is None:
        info = await node.get_info()
    plan = validate(params, invoice, info, config, clock(), strategies=strategies)
    # sending stops at retry_for, or when the invoice expires if that comes first
    window_s = min(plan.retry_for_s, max(invoice.expires_at - clock(), 0.0))
    deadline = anyio.current_time() + window_s
    book = PaymentBook(plan=plan, clock=clock, publish=publish)

    # 2. adopt what earlier runs sent
    if previous is None:
        previous = await node.listsendpays(plan.payment_hash)
    if book.adopt(previous):
        task_status.started()
        book.publish(
            PaymentEnded(payment_hash=plan.payment_hash, status=PaymentStatus.COMPLETE, at=clock()),
            book.view,
        )
        return book.view

    # 3. open at the router
    opened: PaymentOpened = await ask(
        router,
        lambda r: OpenPayment(
            payment_hash=plan.payment_hash,
            destination=plan.destination,
            route_hints=invoice.route_hints,
            reply=r,
        ),
    )
    if not opened.destination_known and not book.adopted:
        await router.send(ClosePayment(payment_hash=plan.payment_hash))
        raise RouteNotFound(
            f"destination {plan.destination} is unknown: not in the gossip graph, not one of "
            f"our peers, and the invoice carries no usable route hint",
            data={"destination": plan.destination},
        )
    task_status.started()
    publish(
        PaymentStarted(
            payment_hash=plan.payment_hash,
            destination=plan.destination,
            amount_msat=plan.amount_msat,
            strategy=plan.strategy_name,
            at=clock(),
        ),
        book.view,
    )

    # 4. send until delivered, stopped or the deadline; then wait for what is in flight
    results_tx, inbox = anyio.create_memory_object_stream[SupervisorMsg](0)
    spawn = partial(
        _spawn,
        node=node,
        router=router,
        estimator=estimator,
        results=results_tx,
        config=config,
        send_before=deadline,
    )
    try:
        with inbox, results_tx:
            async with anyio.create_task_group() as workers:
                for pv in book.adopted:
                    spawn(workers, book.adopted_order(pv))
                with anyio.CancelScope(deadline=deadline) as sending:
                    await _send_until_done(book, workers, spawn, inbox, router)
                if sending.cancelled_caught:
                    why = (
                        f"retry_for ({plan.retry_for_s:g} s) reached"
                        if window_s == plan.retry_for_s
                        else "the invoice expired"
                    )
                    book.stop(
                        StoppedRetrying(
                            f"{why} after {book.view.attempts} attempt(s); "
                            f"{book.delivered_msat} of {plan.amount_msat} msat delivered"
                            + (
                                f"; last routing error: {book.routing_error.message}"
                                if book.routing_error
                                else ""
                            ),
                        )
                    )
                await _wait_for_parts_in_flight(book, inbox)
    finally:
        # final bookkeeping, even when cancelled (the runtime may be shutting down: the
        # router may be gone, and must not be waited for long)
        with (
            anyio.move_on_after(1.0, shield=True),
            contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError),
        ):
            await router.send(ClosePayment(payment_hash=plan.payment_hash))

    # 5. report
    return book.finish()


Spawn = Callable[[TaskGroup, ShardOrder], None]


def _spawn(
    workers: TaskGroup,
    order: ShardOrder,
    *,
    node: NodeInterface,
    router: MemoryObjectSendStream[RouterMsg],
    estimator: MemoryObjectSendStream[EstimatorMsg],
    results: MemoryObjectSendStream[SupervisorMsg],
    config: EngineConfig,
    send_before: float,
) -> None:
    # start_soon, not start: no checkpoint between receiving a route and owning it
    workers.start_soon(
        partial(
            shard_worker,
            order=order,
            node=node,
            router=router,
            estimator=estimator,
            supervisor=results,
            config=config,
            send_before=send_before,
        )
    )


async def _send_until_done(
    book: PaymentBook,
    workers: TaskGroup,
    spawn: Spawn,
    inbox: MemoryObjectReceiveStream[SupervisorMsg],
    router: MemoryObjectSendStream[RouterMsg],
) -> None:
    """Plan, send, learn, until delivered or stopped (the deadline cancels it from outside)."""
    while book.sending:
        if book.view.attempts >= MAX_ATTEMPTS:
            book.stop(StoppedRetrying(f"gave up after {book.view.attempts} attempts"))
            return
        if book.pool:
            await _plan_and_send(book, workers, spawn, router)
        if not book.sending:
            return
        if book.parts_in_flight == 0 and book.blocked_by_others:
            # other payments hold the liquidity we need: wait for them (deadline permitting)
            await anyio.sleep(BUSY_RETRY_S)
            continue
        if book.parts_in_flight == 0:
            # nothing in flight, something unassigned, and planning made no progress
            book.stop(
                book.routing_error
                or RouteNotFound(
                    f"maxparts ({book.plan.maxparts}) reached with "
                    f"{book.unassigned_msat} msat unassigned"
                )
            )
            return
        match await inbox.receive():
            case ShardResult() as result:
                book.part_ended(result)


async def _plan_and_send(
    book: PaymentBook, workers: TaskGroup, spawn: Spawn, router: MemoryObjectSendStream[RouterMsg]
) -> None:
    """Route the pool piece by piece; spawn a worker per route. Stops at the first piece
    that finds nothing (``book.routing_error`` says why) and leaves it in the pool."""
    widen = False  # ask again for the same piece with every free slot (its share was too few)
    while book.pool and book.sending and book.view.attempts < MAX_ATTEMPTS:
        piece = book.next_piece()
        if piece is None:
            book.routing_error = RouteNotFound(
                f"maxparts ({book.plan.maxparts}) reached with {book.unassigned_msat} msat "
                f"unassigned"
            )
            return
        amount, maxparts, maxfee = piece
        if widen:
            maxparts, widen = book.parts_free, False
        request = book.route_input(amount, maxparts, maxfee)

        def find(r: MemoryObjectSendStream[FindRoutesReply], q: RouteInput = request) -> FindRoutes:
            return FindRoutes(
                payment_hash=book.plan.payment_hash,
                strategy=book.plan.strategy_name,
                request=q,
                reply=r,
                since=book.view.created_at,
            )

        answer: FindRoutesReply = await ask(router, find)
        match answer:
            case RoutesFound(routes=planned, compute_s=dt, relaxed=relaxed):
                book.view.compute_s += dt
                if relaxed:
                    log.info(
                        "payment %s: routes for %d msat found only once liquidity "
                        "learnt before this payment was set aside",
                        book.plan.payment_hash,
                        amount,
                    )
                problem = book.check_routes(planned, amount, maxparts, maxfee)
                if problem is not None:
                    for p in planned:
                        await router.send(
                            ReleaseRoute(reservation=p.reservation, outcome=_NOT_SENT)
                        )
                    log.error(
                        "payment %s: strategy %r broke its contract: %s",
                        book.plan.payment_hash,
                        book.plan.strategy_name,
                        problem,
                    )
                    book.routing_error = RouteNotFound(
                        f"strategy {book.plan.strategy_name!r} returned unusable routes: {problem}"
                    )
                    return
                book.pool.pop(0)
                for p in planned:
                    spawn(workers, book.start_part(p))
                book.routing_error = None
                book.blocked_by_others = False
            case NoRoutes(compute_s=dt) as no:
                book.view.compute_s += dt
                if no.code == PAY_ROUTE_NOT_FOUND:
                    if book.plan.strategy.splits and maxparts < book.parts_free:
                        widen = True
                        continue
                    if book.halve(amount):
                        continue
                book.routing_error = _routing_error(no, amount, book.plan.destination)
                book.blocked_by_others = no.others_reserved_msat > 0
                if no.code not in (PAY_ROUTE_NOT_FOUND, PAY_ROUTE_TOO_EXPENSIVE):
                    book.stop(book.routing_error)
                return


_NOT_SENT = PartOutcome(
    state=PartState.FAILED, sent=False, reason="not sent: the supervisor rejected the routes"
)


async def _wait_for_parts_in_flight(
    book: PaymentBook, inbox: MemoryObjectReceiveStream[SupervisorMsg]
) -> None:
    """Sending is over; every part already sent is awaited before the payment reports."""
    while book.parts_in_flight:
        match await inbox.receive():
            case ShardResult() as result:
                book.part_ended(result)
