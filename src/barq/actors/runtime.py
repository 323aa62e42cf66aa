"""The engine facade: the only API ``barq.plugin`` and ``barq.cli`` use.

::

    async with open_runtime(node, config) as rt:        # router + estimator start here
        view = await rt.pay(PayParams(invstring=bolt11))  # one supervisor per payment
        await rt.astatus()                              # live + recent payments (frozen views)

Lifetimes (tractor's one-cancels-all, per level): the runtime's task group
holds the router, the estimator and every payment's supervisor; each
supervisor holds its shard workers. A router or estimator crash is a bug and
takes the runtime down; a payment's failure (even an unexpected exception)
ends only that payment. Leaving the ``async with`` cancels payments still
running: their parts stay with the node and a later :meth:`Runtime.pay` of the
same invoice adopts them (``listsendpays``).

A payment runs in the runtime's task group, not in the caller's task: if
the caller of :meth:`Runtime.pay` is cancelled the payment goes on (nothing
sent is ever orphaned) and :meth:`Runtime.status` shows how it ends. What
happened before a call (already paid, parts to adopt, a payment of the hash
running) and the restart reconciliation are the coordinator's
(:mod:`barq.actors.coordinator`), which asks :mod:`barq.payment`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from barq.actors._answer import pay_answered
from barq.actors._mailbox import ask
from barq.actors._onion_calls import OnionPayments, check_extratlvs, is_bolt12
from barq.actors._timings import TimedJournal, TimedNode, Timings
from barq.actors.coordinator import RECENT_PAYMENTS, PaymentCoordinator
from barq.actors.estimator import LiquidityKnowledge, liquidity_estimator
from barq.actors.messages import (
    EstimatorMsg,
    ExportKnowledge,
    FindRoutes,
    FindRoutesReply,
    GraphRefreshed,
    ImportKnowledge,
    KnowledgeEntry,
    NoRoutes,
    RefreshGraph,
    RouterMsg,
    RoutesFound,
)
from barq.actors.router import router
from barq.actors.supervisor import payment_supervisor
from barq.errors import (
    PAY_ROUTE_NOT_FOUND,
    PAY_ROUTE_TOO_EXPENSIVE,
    BarqError,
    GraphLoadError,
    InvalidParams,
    RouteNotFound,
    RouteTooExpensive,
    UnknownStrategy,
)
from barq.limits import MAXPARTS
from barq.model import Invoice, NodeId, NodeInfo, PartStatus, PaymentHash, Route, RouteInput
from barq.model.payment import (
    EngineConfig,
    PaymentEvent,
    PaymentView,
    PayOutcome,
    PayParams,
)
from barq.node.base import NodeInterface
from barq.payment import PaymentJournal, Publish, Resume, Terms, validate
from barq.routing import Strategy
from barq.strategies import available_strategies as _registered
from barq.strategies import get_strategy

__all__ = [
    "RECENT_PAYMENTS",
    "Runtime",
    "available_strategies",
    "check_extratlvs",
    "check_strategy",
    "open_runtime",
]

log = logging.getLogger(__name__)

_INBOX_SIZE = 16


def available_strategies() -> list[dict[str, Any]]:
    """The registered routing strategies, one entry each (``barqstrategies``'s list)."""
    return _registered()


def check_strategy(name: str) -> None:
    """Check that a strategy is registered as ``name``.

    Raises:
        UnknownStrategy: (-32602) nothing is; the message lists what is.
    """
    get_strategy(name)


class Runtime:
    """Handle on a running engine; get one from :func:`open_runtime` (no public constructor use)."""

    def __init__(
        self,
        *,
        node: NodeInterface,
        config: EngineConfig,
        clock: Callable[[], float],
        tg: anyio.abc.TaskGroup,
        router_tx: MemoryObjectSendStream[RouterMsg],
        estimator_tx: MemoryObjectSendStream[EstimatorMsg],
        info: NodeInfo,
        journal: PaymentJournal | None = None,
    ) -> None:
        self._node = node
        self._config = config
        self._info = info  # our id and network never change while lightningd runs
        self._strategies: dict[str, Strategy] = {}
        self._clock = clock
        self._router = router_tx
        self._estimator = estimator_tx
        self._tg = tg
        self._timed_node = cast(NodeInterface, TimedNode(node))  # the payments' node
        self._payments = PaymentCoordinator(
            node=self._timed_node,
            execute=self._execute,
            tg=tg,
            clock=clock,
            journal=None if journal is None else cast(PaymentJournal, TimedJournal(journal)),
            terms=self._terms,
        )
        self._onion = OnionPayments(  # keysend, BOLT 12
            node, info, clock, self._payments.pay, self.refresh_graph
        )
        self._closed = False

    @property
    def config(self) -> EngineConfig:
        return self._config

    async def pay(
        self,
        params: PayParams,
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
        invoice: Invoice | None = None,
        sendpays: Sequence[PartStatus] | None = None,
    ) -> PaymentView:
        """Pay ``params.invstring``; the payment's view (see :meth:`pay_outcome`)."""
        outcome = await self.pay_outcome(
            params, on_event=on_event, invoice=invoice, sendpays=sendpays
        )
        return outcome.view

    async def pay_outcome(
        self,
        params: PayParams,
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
        invoice: Invoice | None = None,
        sendpays: Sequence[PartStatus] | None = None,
    ) -> PayOutcome:
        """Pay ``params.invstring`` once, whatever happened before.

        Concurrent calls for the same payment hash do not send twice: the
        later ones wait for the first and get its result (``joined``; their
        ``on_event`` sees nothing). An invoice already paid (``listsendpays``)
        is answered with that payment (``already_paid``) without sending; parts
        still pending from an earlier run are adopted (same group, new part ids
        for anything more). See :mod:`barq.payment` for the rules.

        Args:
            params: the ``barqpay`` parameters.
            on_event: called synchronously with each
                :data:`~barq.model.payment.PaymentEvent`; its exceptions are logged
                and ignored.
            invoice: ``params.invstring`` already decoded by the caller (its
                ``bolt11`` must be ``params.invstring``): saves a ``decode``.
            sendpays: what ``listsendpays`` of this invoice's payment hash returned
                just before this call: the payment decides from it instead of
                asking the node again. Only for a caller that makes sure nothing
                else pays this hash meanwhile.

        Returns:
            the outcome; its view has status ``complete``. The call is answered at
            the first preimage, as xpay does (``answer_at == "preimage"``: parts may
            still be in flight; the payment runs on, recorded and shown by
            :meth:`status` to the end), or once every part settled with
            ``config.slow_mode``. ``timings_ms``: where the call's time went
            (:mod:`barq.actors._timings`).

        Raises:
            barq.errors.BarqError: a subclass saying why (see
                :func:`~barq.actors.supervisor.payment_supervisor`); ``.data`` is the
                view as builtins with ``attempts`` the list of every part tried
                (partid, route, amount, outcome, failcodename, erring channel/node).
            AlreadyPaid: (201) the invoice was paid before with another amount.
            InvalidParams: ``invoice`` is not the decoded ``params.invstring``, or
                ``sendpays`` holds parts of another payment hash.
        """
        self._check_open()
        if invoice is None and is_bolt12(params.invstring):
            return await self._onion.bolt12(params, on_event=on_event)
        timings = Timings()

        def pay(sink: Callable[[PaymentEvent], None]) -> Awaitable[PayOutcome]:
            return self._payments.pay(params, on_event=sink, invoice=invoice, sendpays=sendpays)

        return await pay_answered(
            pay, on_event, tg=self._tg, slow_mode=self._config.slow_mode, timings=timings
        )

    async def keysend(
        self,
        params: PayParams,
        destination: str,
        extratlvs: Mapping[str, str] | None = None,
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
    ) -> PayOutcome:
        """Keysend ``params.amount_msat`` to ``destination`` (``params.invstring`` empty);
        see :meth:`barq.actors._onion_calls.OnionPayments.keysend`."""
        self._check_open()
        return await self._onion.keysend(params, destination, extratlvs, on_event=on_event)

    async def decode_invoice(self, invstring: str) -> Invoice:
        """The node's decoding of ``invstring``.

        Raises:
            InvalidInvoice: the node cannot decode it.
        """
        self._check_open()
        return await self._payments.decode(invstring)

    def _terms(self, params: PayParams, invoice: Invoice) -> Terms:
        """What a call pays, validated as its payment would be (for the join rule).

        Raises:
            BarqError: the call's validation errors (see :func:`barq.payment.validate`).
        """
        plan = validate(
            params, invoice, self._info, self._config, self._clock(), strategies=self._strategy
        )
        return Terms.of_plan(plan)

    async def _execute(
        self,
        params: PayParams,
        invoice: Invoice,
        resume: Resume,
        publish: Publish,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        async with self._onion.node_for(invoice.payment_hash) as sender:
            await payment_supervisor(
                params=params,
                invoice=invoice,
                node=self._timed_node if sender is self._node else sender,
                router=self._router,
                estimator=self._estimator,
                config=self._config,
                clock=self._clock,
                publish=publish,
                strategies=self._strategy,
                resume=resume,
                info=self._info,
                task_status=task_status,
            )

    async def route(
        self,
        destination: NodeId,
        amount_msat: int,
        *,
        strategy: str | None = None,
        maxparts: int | None = None,
        maxfee_msat: int | None = None,
        final_cltv: int = 18,
    ) -> list[Route]:
        """Plan routes to ``destination`` without paying (nothing is reserved).

        Defaults as :meth:`pay` (engine strategy, ``maxparts``, fee budget).

        Raises:
            InvalidParams: non-positive amount, maxparts outside 1..1000, negative fee.
            UnknownStrategy, RouteNotFound, RouteTooExpensive: as the strategy says.
        """
        self._check_open()
        cfg = self._config
        if amount_msat <= 0:
            raise InvalidParams(f"amount must be positive, got {amount_msat} msat")
        parts = cfg.maxparts if maxparts is None else maxparts
        if not MAXPARTS.lo <= parts <= MAXPARTS.hi:
            raise InvalidParams(f"maxparts must be {MAXPARTS.describe()}, got {parts}")
        fee = cfg.default_maxfee_msat(amount_msat) if maxfee_msat is None else maxfee_msat
        if fee < 0:
            raise InvalidParams(f"maxfee_msat must be >= 0, got {fee}")
        request = RouteInput(
            source=self._info.id,
            destination=destination,
            amount_msat=amount_msat,
            final_cltv=final_cltv,
            maxfee_msat=fee,
            maxdelay=cfg.maxdelay,
            maxparts=parts,
        )
        name = strategy or cfg.default_strategy
        answer: FindRoutesReply = await ask(
            self._router,
            lambda r: FindRoutes(
                payment_hash=PaymentHash(""), strategy=name, request=request, reply=r, reserve=False
            ),
        )
        match answer:
            case RoutesFound(routes=planned):
                return [p.route for p in planned]
            case NoRoutes() as no:
                raise _no_routes_error(no)
        raise AssertionError(f"unexpected router answer {answer!r}")  # pragma: no cover

    def status(self, payment_hash: PaymentHash | None = None) -> list[PaymentView]:
        """The payments in memory: live ones, recent finished ones (only without a journal:
        with one, finished payments leave memory), then groups recovering from a restart;
        frozen views (folds of each payment's events)."""
        return self._payments.status(payment_hash)

    async def astatus(self, payment_hash: PaymentHash | None = None) -> list[PaymentView]:
        """:meth:`status`, then the most recent finished payments read from the journal
        (``barqstatus``'s list)."""
        self._check_open()
        return await self._payments.astatus(payment_hash)

    async def export_knowledge(self) -> list[KnowledgeEntry]:
        """Everything the estimator knows (persist it; hand it back to :func:`open_runtime`)."""
        self._check_open()
        entries: list[KnowledgeEntry] = await ask(
            self._estimator, lambda r: ExportKnowledge(reply=r)
        )
        return entries

    async def import_knowledge(self, entries: Sequence[KnowledgeEntry]) -> None:
        """Merge persisted knowledge (newer observations already held win)."""
        self._check_open()
        await self._estimator.send(ImportKnowledge(entries=tuple(entries)))

    async def refresh_graph(self) -> None:
        """Reload the gossip graph from the node.

        Raises:
            GraphLoadError: the node could not give a graph (the old one stays in use).
        """
        self._check_open()
        answer: GraphRefreshed = await ask(self._router, lambda r: RefreshGraph(reply=r))
        if answer.error is not None:
            raise GraphLoadError(answer.error)

    def _strategy(self, name: str) -> Strategy:
        """The strategy registered as ``name``, one instance per runtime (as the router keeps).

        Looking a name up scans the installed entry points (milliseconds), so
        each name is looked up once; failures are not cached.

        Raises:
            UnknownStrategy: nothing is registered under ``name``.
        """
        s = self._strategies.get(name)
        if s is None:
            s = self._strategies[name] = get_strategy(name)
        return s

    def _check_open(self) -> None:
        if self._closed:
            raise BarqError("the payment engine is shut down")


def _no_routes_error(no: NoRoutes) -> BarqError:
    if no.code == PAY_ROUTE_TOO_EXPENSIVE:
        return RouteTooExpensive(no.message, data=no.data)
    if no.code == PAY_ROUTE_NOT_FOUND:
        return RouteNotFound(no.message, data=no.data)
    if no.code == InvalidParams.cln_code:
        if "strategy" in no.data:
            return UnknownStrategy(no.message, data=no.data)
        return InvalidParams(no.message, data=no.data)
    return BarqError(no.message, data=no.data)


@asynccontextmanager
async def open_runtime(
    node: NodeInterface,
    config: EngineConfig = EngineConfig(),  # noqa: B008 (frozen)
    *,
    clock: Callable[[], float] | None = None,
    knowledge: Sequence[KnowledgeEntry] | None = None,
    journal: PaymentJournal | None = None,
) -> AsyncIterator[Runtime]:
    """Start the engine on ``node``: the estimator, then the router (which loads the graph).

    Args:
        node: any :class:`~barq.node.base.NodeInterface` (lightningd, simulated, scripted).
        config: engine settings.
        clock: UNIX-like seconds for timestamps and knowledge decay (default
            ``time.time``; the simulator passes its own).
        knowledge: persisted estimator entries to start from.
        journal: where payments are recorded (the plugin's store); with one, the
            engine also reconciles with ``listsendpays`` after a restart (parts
            still pending are awaited, payments that ended meanwhile recorded).

    Raises:
        barq.errors.BarqError: the node could not give our id, graph or channels.
        An exception of the ``async with`` body comes out as itself (not in a group).

    Our node's ``getinfo`` (id, network) is read once here; payments use that copy.
    """
    now = clock or time.time
    est_tx, est_rx = anyio.create_memory_object_stream[EstimatorMsg](_INBOX_SIZE)
    rt_tx, rt_rx = anyio.create_memory_object_stream[RouterMsg](_INBOX_SIZE)
    book = LiquidityKnowledge(half_life_s=config.estimator_half_life_s, clock=now)
    if knowledge:
        book.load(knowledge)
    alone: BaseException | None = None  # a startup or body error, raised as itself
    try:
        async with anyio.create_task_group() as tg:
            runtime: Runtime | None = None
            try:
                info = await node.get_info()
                await tg.start(partial(liquidity_estimator, inbox=est_rx, knowledge=book))
                await tg.start(
                    partial(
                        router,
                        inbox=rt_rx,
                        estimator=est_tx.clone(),
                        node=node,
                        config=config,
                        info=info,
                    )
                )
                runtime = Runtime(
                    node=node,
                    config=config,
                    clock=now,
                    tg=tg,
                    router_tx=rt_tx,
                    estimator_tx=est_tx,
                    info=info,
                    journal=journal,
                )
                runtime._payments.start()
                yield runtime
            except BaseException as exc:
                alone = exc
                raise
            finally:
                if runtime is not None:
                    runtime._closed = True
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if alone is not None and group.exceptions == (alone,):
            raise alone from None
        raise
    finally:
        rt_tx.close()
        est_tx.close()
