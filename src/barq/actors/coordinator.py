"""Every payment of one engine: the I/O around the lifecycle rules of :mod:`barq.payment`.

The runtime hands each pay call here. The coordinator reads what the rules
need (the invoice, ``listsendpays``, the stored records), asks
:mod:`barq.payment`, and does what it answers::

    decode ─▶ a payment of this hash running here?   Flight.answer: wait, share its result
           ─▶ listsendpays + records ─▶ decide_prior: Paid (answer, nothing sent)
                                                      Resume ─▶ execute (the supervisor)
    every event ─▶ fold (status views) ─▶ journal.record (the store) ─▶ on_event

With a journal (the plugin's store), it also reconciles after a restart
(:func:`barq.payment.plan_recovery`): groups with parts still pending are
shown by :meth:`status` and awaited (``waitsendpay``), payments that ended
while Barq was down are recorded.

A payment runs in the engine's task group, not in the caller's task: a
cancelled caller leaves it running (nothing sent is ever orphaned), later
calls for the hash join it, and :meth:`status` shows how it ends.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

import anyio
import anyio.abc

from barq.errors import BarqError, InvalidInvoice, InvalidParams, NodeError, PartFailed
from barq.model import Invoice, PartStatus, PaymentHash
from barq.model.payment import (
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
    decide_prior,
    fold,
    hashes_in_flight,
    plan_recovery,
)

__all__ = ["RECENT_PAYMENTS", "Execute", "PaymentCoordinator"]

log = logging.getLogger(__name__)

#: finished payments :meth:`PaymentCoordinator.status` remembers
RECENT_PAYMENTS = 200

OnEvent = Callable[[PaymentEvent], None]


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


class PaymentCoordinator:
    """The payments of one engine; the runtime owns one (see the module docstring).

    Args:
        node: the node (``decode``, ``listsendpays``, ``waitsendpay``).
        execute: runs one payment.
        tg: the engine's task group (payments and recovery run in it).
        clock: UNIX seconds.
        journal: where payments are recorded and read back (``None``: nowhere;
            then there is no restart reconciliation either).
    """

    def __init__(
        self,
        *,
        node: NodeInterface,
        execute: Execute,
        tg: anyio.abc.TaskGroup,
        clock: Callable[[], float],
        journal: PaymentJournal | None = None,
    ) -> None:
        self._node = node
        self._execute = execute
        self._tg = tg
        self._clock = clock
        self._journal = journal
        self._flights: dict[str, tuple[Flight, anyio.Event]] = {}
        self._live: dict[str, PaymentView] = {}
        self._recent: deque[PaymentView] = deque(maxlen=RECENT_PAYMENTS)
        self._recovering: dict[GroupKey, PaymentView] = {}
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
            flight, done = held
            await done.wait()
            joined = flight.answer(joined=True)
            if joined is not None:
                return joined
        flight, done = Flight(payment_hash=h, params=params), anyio.Event()
        self._flights[h] = (flight, done)
        running = False
        try:
            running = await self._lead(flight, done, invoice, on_event, sendpays)
        except BarqError as exc:
            flight.error = exc
            raise
        finally:
            if not running:
                self._land(flight, done)
        await done.wait()
        answer = flight.answer(joined=False)
        assert answer is not None, "a payment that ran ends with an outcome or an error"
        return answer

    async def _lead(
        self,
        flight: Flight,
        done: anyio.Event,
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
        prior = decide_prior(invoice, flight.params, sendpays, records, self._clock())
        if isinstance(prior, Paid):
            if prior.record:
                self._put(prior.view)
            flight.outcome = PayOutcome(view=prior.view, already_paid=True)
            return False
        await self._tg.start(partial(self._run, flight, done, invoice, prior, on_event))
        return True

    async def _run(
        self,
        flight: Flight,
        done: anyio.Event,
        invoice: Invoice,
        resume: Resume,
        on_event: OnEvent | None,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        """The payment's task in the engine's group: runs it, settles the flight.

        Errors before the payment is ready propagate to :meth:`pay` (through
        ``start``); after that nothing escapes: the result lands in ``flight``.
        """
        h = invoice.payment_hash
        started = False

        def ready(value: None = None) -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            await self._execute(
                flight.params,
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
                self._settle(flight, done)

    def _settle(self, flight: Flight, done: anyio.Event) -> None:
        """The payment ended (or the engine is stopping): its result, then the flight lands."""
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
        self._land(flight, done)

    def _land(self, flight: Flight, done: anyio.Event) -> None:
        """The flight is over: the hash is free again, and the calls waiting on it wake."""
        held = self._flights.get(flight.payment_hash)
        if held is not None and held[0] is flight:
            del self._flights[flight.payment_hash]
        done.set()

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
        """Live payments, then recent ones (newest last), then groups recovering from a restart."""
        views = list(self._live.values())
        live = {v.payment_hash for v in views}
        views += [v for v in self._recent if v.payment_hash not in live]
        seen = {(v.payment_hash, v.groupid) for v in views}
        views += [v for key, v in self._recovering.items() if key not in seen]
        if payment_hash is not None:
            views = [v for v in views if v.payment_hash == payment_hash]
        return views

    def _has(self, key: GroupKey) -> bool:
        """Whether a payment of this engine covers group ``key`` (it adopted those parts)."""
        live_or_recent = [*self._live.values(), *self._recent]
        return any((v.payment_hash, v.groupid) == key for v in live_or_recent)

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
        try:
            sendpays = await self._node.listsendpays()
            records = await self._records(status=str(PaymentStatus.PENDING))
            have = {(v.payment_hash, v.groupid) for v in records}
            for h in sorted(hashes_in_flight(sendpays)):
                records += [v for v in await self._records(h) if (h, v.groupid) not in have]
            plan = plan_recovery(sendpays, records)
            for view in plan.finished:
                self._put(view)
            for rec in plan.recovering:
                self._recovering[rec.key] = rec.view
                self._put(rec.view)
                self._tg.start_soon(self._await_recovered, rec)
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

    async def _await_recovered(self, rec: Recovering) -> None:
        """Wait for a recovered group's pending parts; record how it ended."""
        key = rec.key
        h, groupid = key

        async def wait_part(p: PartStatus) -> None:
            nonlocal rec
            try:
                st = await self._node.waitsendpay(h, partid=p.partid, groupid=groupid)
            except PartFailed:
                rec = rec.failed(p.partid, self._clock())
            except NodeError as exc:
                log.error("restart: waiting for part %s/%d/%d: %s", h, groupid, p.partid, exc)
                return
            else:
                rec = rec.resolved(st)
            self._recovering[key] = rec.view

        try:
            async with anyio.create_task_group() as tg:
                for p in rec.pending:
                    tg.start_soon(wait_part, p)
            view = rec.view
            if not self._has(key):  # else the payment that adopted them records it
                self._put(view)
            log.info(
                "restart: payment %s (group %d) that was in flight ended %s",
                h,
                groupid,
                view.status,
            )
        finally:
            self._recovering.pop(key, None)


class _Started:
    """A ``TaskStatus`` that records that ``started()`` was called."""

    def __init__(self, on_started: Callable[[None], None]) -> None:
        self._on_started = on_started

    def started(self, value: None = None) -> None:
        self._on_started(value)
