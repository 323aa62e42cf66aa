"""The engine facade: the only API ``barq.plugin`` and ``barq.cli`` use.

::

    async with open_runtime(node, config) as rt:        # router + estimator start here
        view = await rt.pay(PayParams(invstring=bolt11))  # one supervisor per payment
        rt.status()                                     # live + recent payments (copies)

Lifetimes (tractor's one-cancels-all, per level): the runtime's task group
holds the router, the estimator and every payment's supervisor; each
supervisor holds its shard workers. A router or estimator crash is a bug and
takes the runtime down; a payment's failure (even an unexpected exception)
ends only that payment. Leaving the ``async with`` cancels payments still
running: their parts stay with the node and a later :meth:`Runtime.pay` of the
same invoice adopts them (``listsendpays``).

A payment runs in the runtime's task group, not in the caller's task: if
the caller of :meth:`Runtime.pay` is cancelled the payment goes on (nothing
sent is ever orphaned) and :meth:`Runtime.status` shows how it ends.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from barq.actors._mailbox import ask
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
from barq.actors.supervisor import MAXPARTS_LIMIT, decode_invoice, payment_supervisor
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
from barq.model import Invoice, NodeId, NodeInfo, PartStatus, Route, RouteInput
from barq.model.payment import (
    EngineConfig,
    PaymentEvent,
    PaymentStatus,
    PaymentView,
    PayParams,
)
from barq.node.base import NodeInterface
from barq.strategies import Strategy, get_strategy

__all__ = ["RECENT_PAYMENTS", "Runtime", "open_runtime"]

log = logging.getLogger(__name__)

#: finished payments :meth:`Runtime.status` remembers
RECENT_PAYMENTS = 200
_INBOX_SIZE = 16


@dataclass
class _Payment:
    """One payment as the runtime tracks it (written only by the payment's own task)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    view: PaymentView | None = None
    error: BarqError | None = None


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
    ) -> None:
        self._node = node
        self._config = config
        self._info = info  # our id and network never change while lightningd runs
        self._strategies: dict[str, Strategy] = {}
        self._clock = clock
        self._tg = tg
        self._router = router_tx
        self._estimator = estimator_tx
        self._live: dict[str, _Payment] = {}
        self._recent: deque[PaymentView] = deque(maxlen=RECENT_PAYMENTS)
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
        """Pay ``params.invstring``.

        Concurrent calls for the same payment hash do not send twice: the
        later ones wait for the first and return (or raise) its result
        (``on_event`` of a later call sees nothing). A call after the first
        finished starts again and finds the payment already complete
        (``listsendpays``) without sending.

        Args:
            params: the ``barqpay`` parameters.
            on_event: called synchronously with each
                :data:`~barq.model.payment.PaymentEvent`; its exceptions are logged
                and ignored.
            invoice: ``params.invstring`` already decoded by the caller (its
                ``bolt11`` must be ``params.invstring``): saves a ``decode``.
            sendpays: what ``listsendpays`` of this invoice's payment hash returned
                just before this call (the caller's own check for an earlier payment):
                the payment adopts from it instead of asking the node again. Only
                for a caller that makes sure nothing else pays this hash meanwhile.

        Returns:
            the payment's view, status ``complete``.

        Raises:
            barq.errors.BarqError: a subclass saying why (see
                :func:`~barq.actors.supervisor.payment_supervisor`); ``.data`` is the
                view as builtins with ``attempts`` the list of every part tried
                (partid, route, amount, outcome, failcodename, erring channel/node).
            InvalidParams: ``invoice`` is not the decoded ``params.invstring``, or
                ``sendpays`` holds parts of another payment hash.
        """
        self._check_open()
        if invoice is None:
            invoice = await decode_invoice(self._node, params.invstring)
        elif invoice.bolt11 != params.invstring:
            raise InvalidParams("the decoded invoice given is not params.invstring's")
        h = invoice.payment_hash
        if sendpays is not None and any(p.payment_hash != h for p in sendpays):
            raise InvalidParams(f"sendpays must all be of payment hash {h}")
        mine = self._live.get(h)
        if mine is None:
            mine = self._live[h] = _Payment()
            try:
                await self._tg.start(
                    partial(
                        self._run_payment,
                        params,
                        invoice,
                        mine,
                        on_event,
                        None if sendpays is None else list(sendpays),
                    )
                )
            except BaseException as exc:
                if isinstance(exc, BarqError):
                    mine.error = exc
                self._live.pop(h, None)
                mine.done.set()
                raise
        await mine.done.wait()
        if mine.error is not None:
            raise _fresh(mine.error)
        assert mine.view is not None
        return copy.deepcopy(mine.view)

    async def _run_payment(
        self,
        params: PayParams,
        invoice: Invoice,
        mine: _Payment,
        on_event: Callable[[PaymentEvent], None] | None,
        sendpays: list[PartStatus] | None,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        """The payment's task in the runtime group: runs its supervisor, records the result.

        Errors before the supervisor is ready propagate to :meth:`pay` (through
        ``start``); after that nothing escapes: the result lands in ``mine``.
        """
        started = False

        def ready(value: None = None) -> None:
            nonlocal started
            started = True
            task_status.started()

        status = _Started(ready)

        def publish(event: PaymentEvent, view: PaymentView) -> None:
            mine.view = view
            if on_event is not None:
                try:
                    on_event(event)
                except Exception:
                    log.exception("payment %s: on_event callback failed", invoice.payment_hash)

        try:
            view = await payment_supervisor(
                params=params,
                invoice=invoice,
                node=self._node,
                router=self._router,
                estimator=self._estimator,
                config=self._config,
                clock=self._clock,
                publish=publish,
                task_status=status,
                info=self._info,
                previous=sendpays,
                strategies=self._strategy,
            )
            mine.view = view
        except BarqError as exc:
            if not started:
                raise
            mine.error = exc
        except Exception as exc:
            if not started:
                raise
            log.exception("payment %s: supervisor crashed", invoice.payment_hash)
            mine.error = BarqError(f"internal error while paying: {exc!r}")
        finally:
            if started:
                if mine.error is None and (
                    mine.view is None or mine.view.status is PaymentStatus.PENDING
                ):
                    mine.error = BarqError(
                        "the payment engine shut down during the payment; "
                        "parts in flight stay with the node (pay again to "
                        "adopt them)"
                    )
                if mine.view is not None:
                    self._recent.append(mine.view)
                self._live.pop(invoice.payment_hash, None)
                mine.done.set()

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
        if not 1 <= parts <= MAXPARTS_LIMIT:
            raise InvalidParams(f"maxparts must be between 1 and {MAXPARTS_LIMIT}, got {parts}")
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
                payment_hash="", strategy=name, request=request, reply=r, reserve=False
            ),
        )
        match answer:
            case RoutesFound(routes=planned):
                return [p.route for p in planned]
            case NoRoutes() as no:
                raise _no_routes_error(no)
        raise AssertionError(f"unexpected router answer {answer!r}")  # pragma: no cover

    def status(self, payment_hash: str | None = None) -> list[PaymentView]:
        """Copies of the live payments, then the recent ones (newest last)."""
        views = [p.view for p in self._live.values() if p.view is not None]
        live = {v.payment_hash for v in views}
        views += [v for v in self._recent if v.payment_hash not in live]
        if payment_hash is not None:
            views = [v for v in views if v.payment_hash == payment_hash]
        return [copy.deepcopy(v) for v in views]

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


class _Started:
    """A ``TaskStatus`` that records that ``started()`` was called."""

    def __init__(self, on_started: Callable[[None], None]) -> None:
        self._on_started = on_started

    def started(self, value: None = None) -> None:
        self._on_started(value)


def _fresh(err: BarqError) -> BarqError:
    """A new exception equal to ``err`` (each waiting caller raises its own object)."""
    try:
        new = copy.copy(err)
    except Exception:  # pragma: no cover - exotic subclasses
        return err
    new.data = copy.deepcopy(err.data)
    new.__traceback__ = None
    return new


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
) -> AsyncIterator[Runtime]:
    """Start the engine on ``node``: the estimator, then the router (which loads the graph).

    Args:
        node: any :class:`~barq.node.base.NodeInterface` (lightningd, simulated, scripted).
        config: engine settings.
        clock: UNIX-like seconds for timestamps and knowledge decay (default
            ``time.time``; the simulator passes its own).
        knowledge: persisted estimator entries to start from.

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
                )
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
