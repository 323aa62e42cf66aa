"""The payment supervisor: one per payment, a short program read top-down (renepay's payment.c).

::

    validate(params, invoice)           fix amount, fee budget, maxdelay, maxparts, deadline
    open at the router                  refresh our channels; is the destination reachable?
    open the book (resume)              the group and part ids decided from listsendpays,
                                        the parts adopted from an earlier run
    ┌ until delivered, stopped or the retry_for deadline:
    │   plan: ask the router for routes for the unassigned amount (after an
    │         adopted part failed, first have it re-read our channels)
    │         (single-path strategies: one route per piece, halving on "no route";
    │         the router sets aside liquidity learnt before the payment started
    │         before it answers "no route")
    │   send: one shard worker per route
    │   learn: read each ShardResult (success, retry the amount, exclude, or stop)
    │   no route for what is left (barq.payment.patience): with parts in flight,
    │   wait a while for one to resolve, relax one step if none did, plan again;
    │   stop when the known capacity to the payee is proven short, or when
    │   nothing is in flight and even the most relaxed plan found nothing
    │   (205/206), unless other payments' reservations hold liquidity: then
    │   wait for them and ask again
    └
    wait for every part already sent, then report (view, or an error with every attempt)

The payment is complete as soon as one part succeeds: the preimage proves
payment (a payee releases it only once all parts arrived), so nothing more
is sent; the parts still in flight are awaited (they succeed too).

Every decision (what to route next, what a failure means, when to stop) and
the money rules are the book's (:class:`barq.payment.PaymentBook`); "already
paid / adopt / fresh group" is decided before the supervisor starts
(:func:`barq.payment.decide_prior`). This module is the actor: it asks the
router, spawns shard workers and feeds their results to the book.

MPP rules as CLN's ``sendpay``: all parts of one attempt share a ``groupid``;
``partid`` s are unique within it and never reused, even across restarts.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from functools import partial

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from barq.actors._capacity import CapacityCheck
from barq.actors._mailbox import ask
from barq.actors._timings import current, phase
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
    PAY_ROUTE_NOT_FOUND,
    PAY_ROUTE_TOO_EXPENSIVE,
    BarqError,
    InvalidParams,
    RouteNotFound,
    RouteTooExpensive,
    StoppedRetrying,
)
from barq.model import Invoice, NodeId, NodeInfo, RouteInput
from barq.model.payment import EngineConfig, PartState, PaymentView, PayParams
from barq.node.base import NodeInterface
from barq.payment import (
    MAX_ATTEMPTS,
    PartOrder,
    PaymentBook,
    PaymentPlan,
    Publish,
    Resume,
    StrategyTraits,
    validate,
)
from barq.payment.patience import replan_wait_s

__all__ = ["BUSY_RETRY_S", "payment_supervisor"]

log = logging.getLogger(__name__)

#: with no route, nothing of ours in flight but other payments holding reservations:
#: wait this long for them to resolve, then ask again (until the deadline)
BUSY_RETRY_S = 1.0


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
    strategies: Callable[[str], StrategyTraits],
    resume: Resume | None = None,
    info: NodeInfo | None = None,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> PaymentView:
    """Pay ``invoice``; one supervisor per payment.

    Reports ready (``task_status.started()``) once the payment is validated
    and about to send; every error before that is raised to whoever started
    it. Its inbox is private: only its own shard workers hold the send end.

    Args:
        publish: the payment's event sink (nothing is published before ready).
        strategies: name -> strategy, for :func:`barq.payment.validate`.
        resume: the group, the next part id and the parts adopted from an
            earlier run, as :func:`barq.payment.decide_prior` decided them from
            ``listsendpays`` (default: group 1, nothing adopted).
        info: our node's ``getinfo`` (asked for when ``None``).

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
    resume = resume or Resume()
    # 1. validate
    if info is None:
        info = await node.get_info()
    plan = validate(params, invoice, info, config, clock(), strategies=strategies)
    created_at = clock()
    # sending stops at retry_for, or when the invoice expires if that comes first
    window_s = min(plan.retry_for_s, max(invoice.expires_at - clock(), 0.0))
    deadline = anyio.current_time() + window_s

    # 2. open at the router
    with phase("graph_refresh"):
        opened = await _open_at_router(plan, router)
    if not opened.destination_known and not resume.adopted:
        await router.send(ClosePayment(payment_hash=plan.payment_hash))
        raise RouteNotFound(
            f"Failed: Unknown destination node {plan.destination}: not in the gossip graph, "
            f"not one of our peers, and the invoice carries no usable route hint",
            data={"destination": plan.destination},
        )
    task_status.started()

    # 3. open the book: the payment starts (with the parts it adopts)
    book = PaymentBook(plan, clock, publish, resume=resume, created_at=created_at)
    book.open()

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
                for order in book.adopted_orders():
                    spawn(workers, _shard_order(order, None))
                with anyio.CancelScope(deadline=deadline) as sending:
                    await _send_until_done(book, workers, spawn, inbox, router, CapacityCheck(node))
                if sending.cancelled_caught:
                    book.stop(_deadline_error(book, window_s), "retry_for")
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


def _deadline_error(book: PaymentBook, window_s: float) -> StoppedRetrying:
    plan = book.plan
    why = (
        f"retry_for ({plan.retry_for_s:g} s) reached"
        if window_s == plan.retry_for_s
        else "the invoice expired"
    )
    last = f"; last routing error: {book.routing_error.message}" if book.routing_error else ""
    return StoppedRetrying(
        f"{why} after {book.attempts} attempt(s); "
        f"{book.delivered_msat} of {plan.amount_msat} msat delivered{last}"
    )


def _shard_order(order: PartOrder, planned: PlannedRoute | None) -> ShardOrder:
    return ShardOrder(
        payment_hash=order.payment_hash,
        partid=order.partid,
        groupid=order.groupid,
        amount_msat=order.amount_msat,
        total_msat=order.total_msat,
        planned=planned,
        payment_secret=order.payment_secret,
        bolt11=order.bolt11,
        label=order.label,
    )


def _routing_error(answer: NoRoutes, amount: int, destination: NodeId) -> BarqError:
    msg = f"no route for {amount} msat to {destination}: {answer.message}"
    if answer.code == PAY_ROUTE_TOO_EXPENSIVE:
        return RouteTooExpensive(msg, data=answer.data)
    if answer.code == PAY_ROUTE_NOT_FOUND:
        return RouteNotFound(msg, data=answer.data)
    if answer.code == JSONRPC2_INVALID_PARAMS:
        return InvalidParams(answer.message, data=answer.data)
    return BarqError(msg, data=answer.data)


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
    capacity: CapacityCheck,
) -> None:
    """Plan, send, learn, until delivered or stopped (the deadline cancels it from outside).

    When the amount left has no route (:mod:`barq.payment.patience`): wait a while for a
    part in flight to resolve, relax one step more if none did, plan again; give up only
    when the known capacity to the payee is proven short, or when nothing is in flight
    and even the most relaxed plan found nothing.
    """
    waits = 0  # waits in a row that saw no part resolve
    while book.sending:
        if book.attempts >= MAX_ATTEMPTS:
            book.stop(StoppedRetrying(f"gave up after {book.attempts} attempts"), "attempts")
            return
        if book.pool:
            if book.balances_stale:
                await _refresh_balances(book, router)
            await _plan_and_send(book, workers, spawn, router)
        if not book.sending:
            return
        if not book.pool:  # everything is on its way: learn how it ends
            if not book.parts_in_flight:
                return
            await _receive(book, inbox, math.inf)
            continue
        if book.parts_in_flight == 0 and book.blocked_by_others:
            # other payments hold the liquidity we need: wait for them (deadline permitting)
            await anyio.sleep(BUSY_RETRY_S)
            continue
        short = await capacity(book)
        if short is not None:
            book.stop(RouteNotFound(f"cannot complete: {short}"), "capacity")
            return
        if book.parts_in_flight == 0:
            if book.relax_more():
                continue
            # nothing in flight, something unassigned, and even the relaxed plan found nothing
            book.stop(
                book.routing_error
                or RouteNotFound(
                    f"maxparts ({book.plan.maxparts}) reached with "
                    f"{book.unassigned_msat} msat unassigned"
                ),
                "no_route",
            )
            return
        if await _receive(book, inbox, replan_wait_s(waits)):
            waits = 0
        else:
            waits += 1
            if book.relax_more():
                log.info(
                    "payment %s: %d msat have no route, %d part(s) in flight: relaxing (step %d)",
                    book.plan.payment_hash,
                    book.unassigned_msat,
                    book.parts_in_flight,
                    book.relax.step,
                )


async def _receive(
    book: PaymentBook, inbox: MemoryObjectReceiveStream[SupervisorMsg], timeout_s: float
) -> bool:
    """Book the next part to end, waiting at most ``timeout_s`` (``False``: none did).

    Cancelling a memory stream's ``receive`` never loses a message (anyio >= 4.4 hands
    an item only to a receiver with no cancellation pending).
    """
    with anyio.move_on_after(timeout_s):
        match await inbox.receive():
            case ShardResult() as result:
                book.part_ended(result.partid, result.outcome)
                return True
    return False


async def _refresh_balances(book: PaymentBook, router: MemoryObjectSendStream[RouterMsg]) -> None:
    """An adopted part failed: its HTLC no longer holds our channel, which the router cannot
    know (it never reserved the part). Opening the payment again makes it re-read our
    channels (``listpeerchannels``) before the next plan."""
    await _open_at_router(book.plan, router)
    book.balances_stale = False


async def _open_at_router(
    plan: PaymentPlan, router: MemoryObjectSendStream[RouterMsg]
) -> PaymentOpened:
    """Open (or open again) the payment at the router: it refreshes the graph and re-reads
    our channels before it answers."""
    return await ask(
        router,
        lambda r: OpenPayment(
            payment_hash=plan.payment_hash,
            destination=plan.destination,
            route_hints=plan.invoice.route_hints,
            reply=r,
        ),
    )


async def _plan_and_send(
    book: PaymentBook, workers: TaskGroup, spawn: Spawn, router: MemoryObjectSendStream[RouterMsg]
) -> None:
    """Route the pool piece by piece; spawn a worker per route. Stops at the first piece
    that finds nothing (``book.routing_error`` says why) and leaves it in the pool."""
    widen = False  # ask again for the same piece with every free slot (its share was too few)
    while book.pool and book.sending and book.attempts < MAX_ATTEMPTS:
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
                # relaxed: set aside every bound learnt before now (only this instant's
                # reservations, balances and disabled channels remain)
                since=book.clock() if book.relax.forget_learnt else book.view.created_at,
                opened_at=book.view.created_at,
            )

        answer = await _ask_routes(router, find)
        match answer:
            case RoutesFound(routes=planned, compute_s=dt, relaxed=relaxed):
                book.compute_s += dt
                if relaxed:
                    log.info(
                        "payment %s: routes for %d msat found only once liquidity "
                        "learnt before this payment was set aside",
                        book.plan.payment_hash,
                        amount,
                    )
                problem = book.check_routes([p.route for p in planned], amount, maxparts, maxfee)
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
                    spawn(workers, _shard_order(book.start_part(p.route), p))
                book.routing_error = None
                book.blocked_by_others = False
            case NoRoutes(compute_s=dt) as no:
                book.compute_s += dt
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


async def _ask_routes(
    router: MemoryObjectSendStream[RouterMsg],
    find: Callable[[MemoryObjectSendStream[FindRoutesReply]], FindRoutes],
) -> FindRoutesReply:
    """Ask the router (timed: ``plan``, and the strategy's share ``plan_compute``)."""
    with phase("plan"):
        answer: FindRoutesReply = await ask(router, find)
    if (t := current()) is not None:
        t.add("plan_compute", answer.compute_s)
    return answer


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
                book.part_ended(result.partid, result.outcome)
