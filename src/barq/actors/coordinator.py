"""Every payment of one engine: the I/O around the lifecycle rules of :mod:`barq.payment`.

The runtime hands each pay call here. The coordinator reads what the rules
need (the invoice, ``listsendpays``, the stored records), asks
:mod:`barq.payment`, and does what it answers::

    decode ─▶ a payment of this hash running here?   wait until it started; the join
                                                      rule (Flight.refusal): refuse (200)
                                                      or wait, share its result
           ─▶ listsendpays + records ─▶ decide_prior: Paid (answer, nothing sent)
                                                      Resume ─▶ execute (the supervisor)
    every event ─▶ fold (status views) ─▶ journal.record (the store) ─▶ on_event

With a journal (the plugin's store), it also reconciles after a restart
(:func:`barq.payment.plan_recovery`): groups with parts still pending are
shown by :meth:`status` and awaited by a watcher (``waitsendpay``), payments
that ended while Barq was down are recorded, and a journal that was just
created (a new or deleted file) gets the history rebuilt from ``listsendpays``.

A watcher only waits and records. A call that adopts its parts takes them
over the moment its payment starts: the watcher stops and records nothing,
the payment awaits the parts (each adopted part is waited for again, so a
part that ended in between is not lost) and records the group. A watcher
whose parts all ended while a call for the hash is deciding waits for that
call to start its payment (then the call's record wins) or to give up.

A payment runs in the engine's task group, not in the caller's task: a
cancelled caller leaves it running (nothing sent is ever orphaned), later
calls for the hash join it, and :meth:`status` shows how it ends.

Memory: a payment leaves memory when it ends. With a journal, finished
payments are read back from it (:meth:`astatus`); without one, the last
:data:`RECENT_PAYMENTS` are kept.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import anyio
import anyio.abc

from barq.errors import BarqError, InvalidInvoice, InvalidParams, NodeError, PartFailed
from barq.model import Invoice, PartStatus, PaymentHash
from barq.model.payment import (
    EngineConfig,
    PaymentEvent,
    PaymentStatus,
    PaymentView,
    PayOutcome,
    PayParams,
)
from barq.node.base import NodeInterface
from barq.payment import (
    Flight,
    GroupKey,
    Paid,
    PaymentJournal,
    Publish,
    Recovering,
    Resume,
    Terms,
    decide_prior,
    fold,
    hashes_in_flight,
    plan_recovery,
)

__all__ = ["RECENT_PAYMENTS", "Execute", "PaymentCoordinator", "TermsOf"]

log = logging.getLogger(__name__)

#: finished payments :meth:`PaymentCoordinator.status` keeps in memory when there is no
#: journal; with one, :meth:`PaymentCoordinator.astatus` reads this many back from it
RECENT_PAYMENTS = 64

OnEvent = Callable[[PaymentEvent], None]

TermsOf = Callable[[PayParams, Invoice], Terms]
"""A call's terms (:class:`barq.payment.Terms`) once validated; raises its validation errors."""


class Execute(Protocol):
    """Runs one payment (the runtime's supervisor): reports ready, publishes its events.

    Must call ``task_status.started()`` once the payment is validated and about
    to send (errors before that reach the caller), publish the payment's events
    in order through ``publish``, and raise a :class:`BarqError` when it fails.
    """

    async def __call__(
        self,
        params: PayParams,
        invoice: Invoice,
        resume: Resume,
        publish: Publish,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> object: ...


@dataclass(slots=True, eq=False)
class _Held:
    """A flight and its two moments: its payment started (or it ended), it ended."""

    flight: Flight
    started: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)


@dataclass(slots=True, eq=False)
class _Watcher:
    """A group left in flight by an earlier run, awaited until its parts end or a call
    takes it over (``handed_over``: then it records nothing)."""

    rec: Recovering
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    handed_over: bool = False


class PaymentCoordinator:
    """The payments of one engine; the runtime owns one (see the module docstring).

    Args:
        node: the node (``decode``, ``listsendpays``, ``waitsendpay``).
        execute: runs one payment.
        tg: the engine's task group (payments and recovery run in it).
        clock: UNIX seconds.
        journal: where payments are recorded and read back (``None``: nowhere;
            then there is no restart reconciliation either).
        terms: a call's terms for the join rule, validating it (default: the
            parameters as given with :class:`EngineConfig`'s defaults).
    """

    def __init__(
        self,
        *,
        node: NodeInterface,
        execute: Execute,
        tg: anyio.abc.TaskGroup,
        clock: Callable[[], float],
        journal: PaymentJournal | None = None,
        terms: TermsOf | None = None,
    ) -> None:
        self._node = node
        self._execute = execute
        self._tg = tg
        self._clock = clock
        self._journal = journal
        self._terms: TermsOf = terms or partial(_loose_terms, config=EngineConfig())
        self._flights: dict[str, _Held] = {}
        self._live: dict[str, PaymentView] = {}
        self._recent: deque[PaymentView] = deque(maxlen=0 if journal else RECENT_PAYMENTS)
        self._watchers: dict[GroupKey, _Watcher] = {}
        self._reconciled = anyio.Event()

    def start(self) -> None:
        """Begin the restart reconciliation (with a journal); pay calls wait for its plan."""
        if self._journal is None:
            self._reconciled.set()
        else:
            self._tg.start_soon(self._reconcile, name="barq-reconcile")

    # -- paying ------------------------------------------------------------------------------

    async def decode(self, invstring: str) -> Invoice:
        """The node's decoding of ``invstring``.

        Raises:
            InvalidInvoice: it is not an invoice the node can decode (also for
                any non-Barq surprise of the node).
        """
        try:
            return await self._node.decode_invoice(invstring)
        except BarqError:
            raise
        except Exception as exc:
            raise InvalidInvoice(f"cannot decode invoice {invstring[:24]!r}...: {exc}") from exc

    async def pay(
        self,
        params: PayParams,
        *,
        on_event: OnEvent | None = None,
        invoice: Invoice | None = None,
        sendpays: Sequence[PartStatus] | None = None,
    ) -> PayOutcome:
        """Pay ``params.invstring`` once, whatever happened before (see the module docstring).

        Args:
            params: the call.
            on_event: called synchronously with each event of the payment this
                call runs (a joining call sees none); its exceptions are logged.
            invoice: ``params.invstring`` already decoded (saves a ``decode``).
            sendpays: ``listsendpays`` of the payment hash taken just before (saves
                one); only for a caller that makes sure nothing pays the hash meanwhile.

        Raises:
            BarqError: why the payment failed (``.data``: the view as builtins, with
                ``attempts`` the list of every part tried), or ``AlreadyPaid`` (201)
                when an earlier payment delivered another amount.
            PaymentInProgress: (200) a payment of the hash is running (here, or
                left in flight by an earlier run) and this call does not agree
                with it on what is paid.
            InvalidParams: ``invoice`` is not ``params.invstring``'s, or ``sendpays``
                holds parts of another payment hash.
        """
        if invoice is None:
            invoice = await self.decode(params.invstring)
        elif invoice.bolt11 != params.invstring:
            raise InvalidParams("the decoded invoice given is not params.invstring's")
        h = invoice.payment_hash
        if sendpays is not None and any(p.payment_hash != h for p in sendpays):
            raise InvalidParams(f"sendpays must all be of payment hash {h}")
        while (held := self._flights.get(h)) is not None:
            await held.started.wait()
            if held.flight.terms is not None:
                refused = held.flight.refusal(self._terms(params, invoice))
                if refused is not None:
                    raise refused
            await held.done.wait()
            joined = held.flight.answer(joined=True)
            if joined is not None:
                return joined
        held = self._flights[h] = _Held(Flight(payment_hash=h))
        running = False
        try:
            running = await self._lead(held, params, invoice, on_event, sendpays)
        except BarqError as exc:
            held.flight.error = exc
            raise
        finally:
            if not running:
                self._land(held)
        await held.done.wait()
        answer = held.flight.answer(joined=False)
        assert answer is not None, "a payment that ran ends with an outcome or an error"
        return answer

    async def _lead(
        self,
        held: _Held,
        params: PayParams,
        invoice: Invoice,
        on_event: OnEvent | None,
        sendpays: Sequence[PartStatus] | None,
    ) -> bool:
        """Decide what happened before; answer at once, or start the payment (returns True)."""
        await self._reconciled.wait()
        h = invoice.payment_hash
        if sendpays is None:
            sendpays = await self._node.listsendpays(h)
        records = await self._records(h) if sendpays else []
        prior = decide_prior(invoice, params, sendpays, records, self._clock())
        if isinstance(prior, Paid):
            if prior.record:
                self._put(prior.view)
            held.flight.outcome = PayOutcome(view=prior.view, already_paid=True)
            return False
        terms = self._terms(params, invoice)
        await self._tg.start(partial(self._run, held, terms, params, invoice, prior, on_event))
        return True

    async def _run(
        self,
        held: _Held,
        terms: Terms,
        params: PayParams,
        invoice: Invoice,
        resume: Resume,
        on_event: OnEvent | None,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        """The payment's task in the engine's group: runs it, settles the flight.

        Errors before the payment is ready propagate to :meth:`pay` (through
        ``start``); after that nothing escapes: the result lands in the flight.
        Once ready, the payment can be joined and owns the parts it adopted.
        """
        h = invoice.payment_hash
        flight = held.flight
        started = False

        def ready(value: None = None) -> None:
            nonlocal started
            started = True
            flight.terms = terms
            held.started.set()
            self._take_over((h, resume.groupid))
            task_status.started()

        try:
            await self._execute(
                params,
                invoice,
                resume,
                partial(self._publish, h, on_event),
                task_status=_Started(ready),
            )
        except BarqError as exc:
            if not started:
                raise
            flight.error = exc
        except Exception as exc:
            if not started:
                raise
            log.exception("payment %s: supervisor crashed", h)
            flight.error = BarqError(f"internal error while paying: {exc!r}")
        finally:
            if started:
                self._settle(held)

    def _settle(self, held: _Held) -> None:
        """The payment ended (or the engine is stopping): its result, then the flight lands."""
        flight = held.flight
        view = self._live.pop(flight.payment_hash, None)
        if flight.error is None:
            if view is None or view.status is PaymentStatus.PENDING:
                flight.error = BarqError(
                    "the payment engine shut down during the payment; parts in flight stay "
                    "with the node (pay again to adopt them)"
                )
            else:
                flight.outcome = PayOutcome(view=view)
        if view is not None:
            self._recent.append(view)
        self._land(held)

    def _land(self, held: _Held) -> None:
        """The flight is over: the hash is free again, and the calls waiting on it wake."""
        h = held.flight.payment_hash
        if self._flights.get(h) is held:
            del self._flights[h]
        held.started.set()
        held.done.set()

    def _publish(
        self, payment_hash: PaymentHash, on_event: OnEvent | None, event: PaymentEvent
    ) -> None:
        """One event of a running payment: fold it, record it, tell the caller."""
        self._live[payment_hash] = fold(self._live.get(payment_hash), event)
        if self._journal is not None:
            try:
                self._journal.record(event)
            except Exception as exc:
                log.error("cannot record an event of payment %s: %s", payment_hash, exc)
        if on_event is not None:
            try:
                on_event(event)
            except Exception:
                log.exception("payment %s: on_event callback failed", payment_hash)

    # -- reading -----------------------------------------------------------------------------

    def status(self, payment_hash: PaymentHash | None = None) -> list[PaymentView]:
        """What is in memory: live payments, recent finished ones (without a journal; newest
        last), then groups recovering from a restart."""
        views = list(self._live.values())
        live = {v.payment_hash for v in views}
        views += [v for v in self._recent if v.payment_hash not in live]
        seen = {(v.payment_hash, v.groupid) for v in views}
        views += [w.rec.view for key, w in self._watchers.items() if key not in seen]
        if payment_hash is not None:
            views = [v for v in views if v.payment_hash == payment_hash]
        return views

    async def astatus(
        self, payment_hash: PaymentHash | None = None, *, limit: int = RECENT_PAYMENTS
    ) -> list[PaymentView]:
        """:meth:`status`, then the journal's ``limit`` most recent finished payments
        (of ``payment_hash``) that memory does not hold, oldest first."""
        views = self.status(payment_hash)
        if self._journal is None:
            return views
        seen = {(v.payment_hash, v.groupid) for v in views}
        try:
            stored = await self._journal.aget_payments(payment_hash, limit=limit)
        except Exception as exc:
            log.error("cannot read recent payments from the journal: %s", exc)
            return views
        ended = [
            v
            for v in stored
            if v.status is not PaymentStatus.PENDING and (v.payment_hash, v.groupid) not in seen
        ]
        return views + ended

    # -- the journal -------------------------------------------------------------------------

    async def _records(
        self, payment_hash: PaymentHash | None = None, status: str | None = None
    ) -> list[PaymentView]:
        if self._journal is None:
            return []
        try:
            return await self._journal.aget_payments(payment_hash, status)
        except Exception as exc:
            log.error("cannot read the payment records of %s: %s", payment_hash or "all", exc)
            return []

    def _put(self, view: PaymentView) -> None:
        if self._journal is None:
            return
        try:
            self._journal.put_payment(view)
        except Exception as exc:
            log.error("cannot record payment %s: %s", view.payment_hash, exc)

    # -- after a restart ---------------------------------------------------------------------

    async def _reconcile(self) -> None:
        assert self._journal is not None
        try:
            created = self._journal.created
            sendpays = await self._node.listsendpays()
            if created:
                records = await self._records()
            else:
                records = await self._records(status=str(PaymentStatus.PENDING))
                have = {(v.payment_hash, v.groupid) for v in records}
                for h in sorted(hashes_in_flight(sendpays)):
                    records += [v for v in await self._records(h) if (h, v.groupid) not in have]
            plan = plan_recovery(sendpays, records, rebuild=created)
            for view in plan.finished:
                self._put(view)
            if plan.rebuilt:
                self._journal.put_history(plan.rebuilt)
                log.warning(
                    "barq database was created (new, or deleted since the last run): rebuilt "
                    "%d payment(s) from listsendpays",
                    len(plan.rebuilt),
                )
            for rec in plan.recovering:
                watcher = self._watchers[rec.key] = _Watcher(rec)
                self._put(rec.view)
                self._tg.start_soon(self._watch, watcher)
            if plan.recovering or plan.finished:
                log.info(
                    "restart: awaiting %d payment(s) still in flight, recorded %d that "
                    "finished while barq was down",
                    len(plan.recovering),
                    len(plan.finished),
                )
        except Exception as exc:
            log.error("restart reconciliation with listsendpays failed: %s", exc)
        finally:
            self._reconciled.set()

    def _take_over(self, key: GroupKey) -> None:
        """A payment starting in group ``key`` owns its parts now: the watcher stops."""
        watcher = self._watchers.pop(key, None)
        if watcher is not None:
            watcher.handed_over = True
            watcher.scope.cancel()
            log.info("restart: payment %s (group %d) taken over by a new call", *key)

    async def _watch(self, watcher: _Watcher) -> None:
        """Wait for a recovered group's pending parts; record how it ended (if not taken over)."""
        key = watcher.rec.key
        h, groupid = key

        async def wait_part(p: PartStatus) -> None:
            try:
                st = await self._node.waitsendpay(h, partid=p.partid, groupid=groupid)
            except PartFailed:
                watcher.rec = watcher.rec.failed(p.partid, self._clock())
            except NodeError as exc:
                log.error("restart: waiting for part %s/%d/%d: %s", h, groupid, p.partid, exc)
            else:
                watcher.rec = watcher.rec.resolved(st)

        try:
            with watcher.scope:
                async with anyio.create_task_group() as tg:
                    for p in watcher.rec.pending:
                        tg.start_soon(wait_part, p)
                # a call deciding now may adopt the group: its payment's record wins
                while (held := self._flights.get(h)) is not None and not held.started.is_set():
                    await held.started.wait()
            if watcher.handed_over:
                return
            view = watcher.rec.view
            self._put(view)
            log.info(
                "restart: payment %s (group %d) that was in flight ended %s",
                h,
                groupid,
                view.status,
            )
        finally:
            if self._watchers.get(key) is watcher:
                del self._watchers[key]


def _loose_terms(params: PayParams, invoice: Invoice, *, config: EngineConfig) -> Terms:
    return Terms.of_params(params, invoice, config)


class _Started:
    """A ``TaskStatus`` that records that ``started()`` was called."""

    def __init__(self, on_started: Callable[[None], None]) -> None:
        self._on_started = on_started

    def started(self, value: None = None) -> None:
        self._on_started(value)
