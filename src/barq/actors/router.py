"""The router: the one actor that owns the graph and hands out routes (renepay's routebuilder).

It owns, and nobody else touches (its state is a :class:`RouterBook`):

* the gossip graph (``node.gossip_graph()`` at start, :class:`RefreshGraph` later)
  with our own channels overlaid and the ``channel_update`` s that UPDATE
  failures carried applied on top (the new policy counts from then on);
* our channels' exact balances (``node.list_peer_channels()``, refreshed when a
  payment opens and after a failure at our own first hop);
* the route-hint overlay of each invoice (cached, rebuilt when the base graph changes);
* the **reservations**: the amounts of every route it handed out and that is
  not yet released, so concurrent shards and payments never plan over the same
  sats (subtracted from the liquidity bounds when a routing context is built).

Each :class:`FindRoutes` builds a :class:`~barq.routing.RoutingContext` from
the estimator's snapshot (asked for with :class:`GetSnapshot`), our balances,
the reservations and what is disabled, runs the payment's strategy, reserves
the routes and replies.

**Solves run off the loop, with a deadline** (askrene's ``fork_router_child``
with ``askrene-timeout``). With ``config.strategies_in_thread`` each request is
answered by its own task: the strategy runs in a worker thread (at most
``config.route_threads`` at once) while the router keeps serving every other
message, so one payment's long min-cost flow never queues another payment's
request. A solve still running ``config.route_timeout_s`` after the request
arrived is abandoned (the thread is left to finish; the context's deadline
makes the toolkit's searches stop at their next step) and answered
:class:`NoRoutes` 205, "no route in time". Reservations stay consistent: the
book's ``version`` moves with every reservation and balance refresh; a solve
that completes after it moved is checked against the reservations of now
(:meth:`RouterBook.conflicts`) and, when another solve took the room it
planned on, planned again (at most :data:`MAX_REPLANS` times) before its
routes are reserved. Without ``strategies_in_thread`` (a simulated clock)
requests are served one at a time inside the loop, as a deterministic
benchmark needs.

Local balances: ``listpeerchannels``' ``spendable_msat`` already excludes
HTLCs in flight, so each of our channels carries ``spendable + delta`` where
``delta`` (reset by every refresh) is lowered by reservations made since and
raised again when a part fails or is not sent. A part reserved but not yet
sent when a refresh happens is counted once too few until the next refresh;
a failure at our first hop triggers that refresh.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from barq.actors._htlc_slots import DEFAULT_HTLC_SLOTS, MAX_HTLC_SLOTS
from barq.actors._mailbox import ask, reply
from barq.actors._router_book import RouterBook
from barq.actors.messages import (
    ClosePayment,
    EstimatorMsg,
    FindRoutes,
    FindRoutesReply,
    GetSnapshot,
    GraphRefreshed,
    KnowledgeSnapshot,
    NoRoutes,
    OpenPayment,
    PartOutcome,
    PaymentOpened,
    PlannedRoute,
    RefreshGraph,
    ReleaseRoute,
    RouterMsg,
    RoutesFound,
)
from barq.errors import BarqError, RouteNotFound, UnknownStrategy
from barq.graph import Graph
from barq.model import NodeId, NodeInfo, Route, RouteInput, ScidDir
from barq.model.payment import EngineConfig, PartState
from barq.node.base import NodeInterface
from barq.routing import RoutingContext, Strategy, explain_no_route
from barq.strategies import get_strategy

__all__ = ["MAX_REPLANS", "RouterBook", "explained", "refresh", "router"]

log = logging.getLogger(__name__)

#: a solve whose routes conflict with reservations made meanwhile is planned again
#: at most this many times before the request is answered "no route"
MAX_REPLANS = 3
#: a plan that overfills half-channels is made again with them capped at most this many
#: times, then with fewer parts
CAP_ROUNDS = 3

_GONE = PartOutcome(state=PartState.FAILED, sent=False, reason="requester went away")


async def router(
    *,
    inbox: MemoryObjectReceiveStream[RouterMsg],
    estimator: MemoryObjectSendStream[EstimatorMsg],
    node: NodeInterface,
    config: EngineConfig,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    info: NodeInfo | None = None,
) -> None:
    """The one shared router actor; returns when every sender has closed ``inbox``.

    Loads our id (unless ``info`` gives it), the gossip graph and our channels
    before it reports ready (errors there propagate: the runtime cannot start
    without a graph). Solves still running when ``inbox`` closes are cancelled
    (nobody is left to read their answers).

    Consumes:
        OpenPayment: refresh our channels, and the gossip graph when it is older than
            ``config.gossip_refresh_s`` or does not know the destination; reply
            :class:`PaymentOpened`.
        FindRoutes: run the strategy (see the module doc: off the loop, with a
            deadline); reply :class:`RoutesFound` (reserved) or :class:`NoRoutes`.
            When it finds no route (not "too expensive") and the snapshot holds
            bounds observed before ``since``, run it once more on a snapshot that
            keeps only those observed since (plus everything disabled, our
            balances and the reservations): ``RoutesFound.relaxed``. Still none, and
            the assumed HTLC slots bind (``HtlcSlots.lift_changes``): once more with
            them lifted to ``MAX_HTLC_SLOTS`` (kept for the payment's later plans).
        ReleaseRoute: drop a reservation; apply a ``channel_update``; refresh our
            channels after a failure at our first hop.
        ClosePayment: drop the payment's leftover reservations.
        RefreshGraph: reload the gossip graph; reply :class:`GraphRefreshed`.
    Emits:
        GetSnapshot to the estimator (one per FindRoutes), and replies.
    """
    if info is None:
        info = await node.get_info()
    book = RouterBook(
        our_id=info.id, gossip=await node.gossip_graph(), channels=await node.list_peer_channels()
    )
    book.graph  # noqa: B018  (build the base graph before reporting ready)
    solver = _Solver(book, config, node)
    task_status.started()
    async with inbox, estimator, anyio.create_task_group() as solves:
        async for msg in inbox:
            match msg:
                case OpenPayment(destination=dest, route_hints=hints, reply=r):
                    # every payment sees our channels as listpeerchannels says now and
                    # the gossip appended since the last payment (cheap: incremental)
                    await refresh(book, node)
                    known = dest in book.payment_graph(dest, hints).node_index
                    await reply(
                        r,
                        PaymentOpened(
                            our_id=book.our_id,
                            destination_known=known,
                            usable_channels=book.usable_channels,
                        ),
                    )
                case FindRoutes():
                    await solver.serve(msg, estimator, solves)
                case ReleaseRoute(reservation=rid, outcome=outcome):
                    if book.release(rid, outcome):
                        await _refresh_channels(book, node)
                case ClosePayment(payment_hash=h):
                    book.close(h)
                    solver.forget(h)
                case RefreshGraph(reply=r):
                    await _refresh_graph(book, node, r)
        solves.cancel_scope.cancel()


@dataclass(slots=True)
class _Job:
    """One :class:`FindRoutes` being answered."""

    msg: FindRoutes
    request: RouteInput  # msg.request, maxparts capped by the free HTLC slots
    strategy: Strategy
    graph: Graph
    snapshot: KnowledgeSnapshot
    deadline: float | None  # time.monotonic(); None: no deadline (inline)
    relaxed: bool = False
    lifted: bool = False  # the assumed HTLC slot limit lifted (HtlcSlots: MAX_HTLC_SLOTS)
    caps_msat: dict[ScidDir, int] = field(default_factory=dict)  # overfilled half-channels
    compute_s: float = 0.0  # wall time spent in the strategy (every run)


@dataclass(slots=True)
class _Plan:
    """Routes a strategy found, with the context (and book version) they were planned on."""

    routes: list[Route]
    ctx: RoutingContext
    version: int


class _Solver:
    """Answers :class:`FindRoutes`: inline, or one task per request with its solve in a thread."""

    def __init__(self, book: RouterBook, config: EngineConfig, node: NodeInterface) -> None:
        self._book = book
        self._config = config
        self._node = node
        self._refreshed: set[str] = set()  # payments that had their forced refresh
        self._lifted: set[str] = set()  # payments planned with the assumed slot limit lifted
        self._threaded = config.strategies_in_thread
        self._limiter = anyio.CapacityLimiter(max(1, config.route_threads))
        self._strategies: dict[str, Strategy] = {}

    def forget(self, payment_hash: str) -> None:
        """The payment ended: a later payment of the same hash gets its own forced refresh."""
        self._refreshed.discard(payment_hash)
        self._lifted.discard(payment_hash)

    async def serve(
        self, msg: FindRoutes, estimator: MemoryObjectSendStream[EstimatorMsg], solves: TaskGroup
    ) -> None:
        """Start answering ``msg``: done on return when inline, else in a task of ``solves``."""
        try:
            strategy = self._strategies.get(msg.strategy) or get_strategy(msg.strategy)
        except UnknownStrategy as exc:
            await reply(msg.reply, NoRoutes(code=exc.code, message=exc.message, data=exc.data))
            return
        self._strategies[msg.strategy] = strategy
        graph = self._book.payment_graph(msg.request.destination, msg.request.route_hints)
        lifted = msg.payment_hash in self._lifted
        request = self._slot_capped(msg.request, graph, lifted=lifted)
        snapshot: KnowledgeSnapshot = await ask(estimator, lambda r: GetSnapshot(reply=r))
        deadline = None if not self._threaded else time.monotonic() + self._config.route_timeout_s
        job = _Job(msg, request, strategy, graph, snapshot, deadline, lifted=lifted)
        if not self._threaded:
            await self._answer(job)
            return
        solves.start_soon(self._answer, job)

    def _slot_capped(self, request: RouteInput, graph: Graph, *, lifted: bool) -> RouteInput:
        """``request`` with ``maxparts`` no larger than the free HTLC slots to its payee."""
        room = self._book.slots.room(graph, request.source, request.destination, lifted=lifted)
        if room is None or room >= request.maxparts:
            return request
        return msgspec.structs.replace(request, maxparts=max(room, 1))

    async def _answer(self, job: _Job) -> None:
        """Plan (within the deadline), reserve and reply; every outcome gets one answer."""
        msg = job.msg
        t0 = time.perf_counter()
        answer: FindRoutesReply | None = None
        timeout = math.inf if job.deadline is None else job.deadline - time.monotonic()
        with anyio.move_on_after(timeout):
            answer = await self._routes_or_error(job)
        if answer is None or _deadline_passed(answer):
            job.compute_s = time.perf_counter() - t0
            answer = self._no_routes(
                RouteNotFound(
                    f"strategy {msg.strategy!r} found no route within "
                    f"{self._config.route_timeout_s:g} s (route computation abandoned)",
                    data={"timeout_s": self._config.route_timeout_s},
                ),
                job,
            )
        if not (await reply(msg.reply, answer)) and isinstance(answer, RoutesFound):
            for p in answer.routes:
                if p.reservation:
                    self._book.release(p.reservation, _GONE)

    async def _routes_or_error(self, job: _Job) -> FindRoutesReply:
        """The reply to ``job``: routes (reserved when asked) or why there are none."""
        msg = job.msg
        try:
            try:
                plan = await self._plan(job)
            except RouteNotFound as exc:
                plan = await self._plan_after_refresh(job, exc)
            routes = await self._settle(job, plan)
        except BarqError as exc:
            return self._no_routes(exc, job)
        except Exception as exc:  # a broken (third-party) strategy must not take the router down
            log.exception("router: strategy %r crashed", msg.strategy)
            return NoRoutes(
                code=BarqError.cln_code,
                message=f"strategy {msg.strategy!r} crashed: {exc!r}",
                compute_s=job.compute_s,
            )
        if msg.reserve:
            book = self._book
            planned = tuple(book.reserve(msg.payment_hash, job.graph, r) for r in routes)
        else:
            planned = tuple(
                PlannedRoute(reservation=0, route=r, capacities_msat=()) for r in routes
            )
        return RoutesFound(routes=planned, compute_s=job.compute_s, relaxed=job.relaxed)

    async def _plan(self, job: _Job) -> _Plan:
        """Run the strategy; once more without stale bounds when it finds no route, and
        then once more with the assumed HTLC slot limit lifted (``_htlc_slots``: every
        half-channel without a learnt limit, ours excepted, takes ``MAX_HTLC_SLOTS``).
        A payment planned so keeps the lifted limit for its later plans.

        Raises:
            BarqError: the strategy's answer (``RouteNotFound``, ``RouteTooExpensive``...).
        """
        msg = job.msg
        try:
            return await self._plan_fresh(job)
        except RouteNotFound as exc:
            if exc.data.get("deadline_passed") or job.lifted:
                raise
            if not self._book.slots.lift_changes(job.graph, msg.request):
                raise
            log.info(
                "router: payment %s: no route with %d HTLC slots assumed per half-channel "
                "(%s); planning again with %d",
                msg.payment_hash,
                DEFAULT_HTLC_SLOTS,
                exc.message,
                MAX_HTLC_SLOTS,
            )
            job.lifted = True
            job.request = self._slot_capped(msg.request, job.graph, lifted=True)
            plan = await self._solve(job)
            self._lifted.add(msg.payment_hash)
            return plan

    async def _plan_fresh(self, job: _Job) -> _Plan:
        """Run the strategy; once more without stale bounds when it finds no route.

        Raises:
            BarqError: the strategy's answer (``RouteNotFound``, ``RouteTooExpensive``...).
        """
        msg = job.msg
        try:
            return await self._solve(job)
        except RouteNotFound as exc:  # not RouteTooExpensive (206): a route exists
            if exc.data.get("deadline_passed") or msg.since is None:
                raise
            if not job.snapshot.learnt_before(msg.since):
                raise
            # the bounds learnt before this payment may be stale (liquidity comes back):
            # try once more with only what this payment observed itself
            fresh = job.snapshot.learnt_since(msg.since)
            log.info(
                "router: payment %s: no route with %d learnt bounds (%s); retrying with "
                "the %d observed since the payment started",
                msg.payment_hash,
                len(job.snapshot.channels),
                exc.message,
                len(fresh.channels),
            )
            job.snapshot = fresh
            job.relaxed = True
            return await self._solve(job)

    async def _plan_after_refresh(self, job: _Job, exc: RouteNotFound) -> _Plan:
        """Before saying "no route": refresh once per payment and plan again if anything changed.

        Raises:
            RouteNotFound: ``exc`` (worded as askrene when no route can exist at all)
                when the refresh was done already, changed nothing, or the plan
                on the fresh graph finds nothing either.
            BarqError: what the new plan raised.
        """
        msg = job.msg
        if exc.data.get("deadline_passed"):
            raise exc
        if msg.payment_hash not in self._refreshed:
            self._refreshed.add(msg.payment_hash)
            book = self._book
            before = (book.gossip, book.available)
            await refresh(book, self._node)
            if (book.gossip, book.available) != before:
                log.info(
                    "router: payment %s: no route; planning again on a fresh graph",
                    msg.payment_hash,
                )
                job.graph = book.payment_graph(msg.request.destination, msg.request.route_hints)
                try:
                    return await self._plan(job)
                except RouteNotFound as again:
                    exc = again
        raise explained(exc, job.graph, self._book.our_id, msg.request.destination)

    async def _solve(self, job: _Job) -> _Plan:
        """A strategy run on a context built now; again while the plan puts more new parts
        on a half-channel than it has free HTLC slots: first (:data:`CAP_ROUNDS` times)
        with those half-channels capped at their free slots times the plan's mean part
        over them (``HtlcSlots.overfill_caps``: the rest takes other channels), then with
        fewer parts (``job.request``'s ``maxparts`` drops by the excess: it only shrinks,
        so this ends)."""
        rounds = 0
        while True:
            plan = await self._solve_once(job)
            slots = self._book.slots
            excess = slots.overfilled(plan.routes, lifted=job.lifted)
            if excess <= 0 or len(plan.routes) <= 1:
                return plan
            if rounds < CAP_ROUNDS:
                rounds += 1
                for sd, cap in slots.overfill_caps(plan.routes, lifted=job.lifted).items():
                    job.caps_msat[sd] = min(cap, job.caps_msat.get(sd, cap))
                log.info(
                    "router: payment %s: %d parts, %d more on a half-channel than its free "
                    "HTLC slots; planning again with it capped",
                    job.msg.payment_hash,
                    len(plan.routes),
                    excess,
                )
                continue
            log.info(
                "router: payment %s: %d parts, %d more on a half-channel than its free HTLC "
                "slots; planning again with fewer parts",
                job.msg.payment_hash,
                len(plan.routes),
                excess,
            )
            fewer = min(job.request.maxparts, len(plan.routes)) - excess
            job.request = msgspec.structs.replace(job.request, maxparts=max(fewer, 1))

    async def _solve_once(self, job: _Job) -> _Plan:
        """One strategy run on a context built now (in a worker thread when threaded)."""
        book = self._book
        dest = job.msg.request.destination
        version = book.version
        ctx = book.context(
            job.graph,
            job.snapshot,
            dest,
            job.deadline,
            lessons_since=job.msg.opened_at,
            lifted_slots=job.lifted,
            caps_msat=job.caps_msat,
        )
        request = job.request
        t0 = time.perf_counter()
        try:
            if self._threaded:
                routes = await anyio.to_thread.run_sync(
                    job.strategy.find_routes,
                    request,
                    ctx,
                    abandon_on_cancel=True,
                    limiter=self._limiter,
                )
            else:
                routes = job.strategy.find_routes(request, ctx)
        finally:
            job.compute_s += time.perf_counter() - t0
        return _Plan(routes=routes, ctx=ctx, version=version)

    async def _settle(self, job: _Job, plan: _Plan) -> list[Route]:
        """``plan``'s routes once they fit the reservations of now (planned again if not).

        Raises:
            RouteNotFound: still conflicting after :data:`MAX_REPLANS` new plans.
            BarqError: what a new plan raised.
        """
        if not job.msg.reserve:
            return plan.routes
        dest = job.msg.request.destination
        replans = 0
        while plan.version != self._book.version:
            taken = self._book.conflicts(
                plan.ctx, job.snapshot, dest, plan.routes, lifted_slots=job.lifted
            )
            if not taken:
                break
            if replans == MAX_REPLANS:
                raise RouteNotFound(
                    f"routes kept conflicting with other payments' reservations "
                    f"({replans} new plans)",
                    data={"conflicts": taken[:8]},
                )
            replans += 1
            log.info(
                "router: payment %s: %d half-channel(s) taken by a concurrent solve; "
                "planning again",
                job.msg.payment_hash,
                len(taken),
            )
            plan = await self._solve(job)
        return plan.routes

    def _no_routes(self, exc: BarqError, job: _Job) -> NoRoutes:
        return NoRoutes(
            code=exc.code,
            message=exc.message,
            data=exc.data,
            compute_s=job.compute_s,
            others_reserved_msat=self._book.reserved_by_others(job.msg.payment_hash),
        )


def _deadline_passed(answer: FindRoutesReply) -> bool:
    """The strategy stopped itself at the context's deadline (``RoutingContext.check_deadline``)."""
    return isinstance(answer, NoRoutes) and bool(answer.data.get("deadline_passed"))


def explained(
    exc: RouteNotFound, graph: Graph, source: NodeId, destination: NodeId
) -> RouteNotFound:
    """``exc``, or askrene's sentence when no route can exist whatever the liquidity.

    The sentence becomes the message (``data["explained"]``, the strategy's own
    words in ``data["detail"]``): the payment's final answer is then xpay's
    "Failed: <sentence>".
    """
    s, t = graph.node_index.get(source), graph.node_index.get(destination)
    if s is None or t is None:
        return exc
    sentence = explain_no_route(graph, s, t)
    if sentence is None:
        return exc
    return RouteNotFound(sentence, data={**exc.data, "explained": sentence, "detail": exc.message})


async def refresh(book: RouterBook, node: NodeInterface) -> None:
    """Our channels (``listpeerchannels``) and the gossip appended since the last refresh."""
    await _refresh_channels(book, node)
    await _refresh_graph(book, node, None)


async def _refresh_channels(book: RouterBook, node: NodeInterface) -> None:
    try:
        book.set_channels(await node.list_peer_channels())
    except BarqError as exc:
        log.warning("router: listpeerchannels failed, keeping the old balances: %s", exc)


async def _refresh_graph(
    book: RouterBook, node: NodeInterface, r: MemoryObjectSendStream[GraphRefreshed] | None
) -> None:
    try:
        book.set_gossip(await node.gossip_graph())
        g = book.graph
        answer = GraphRefreshed(nodes=g.num_nodes, half_channels=g.num_edges)
    except BarqError as exc:
        log.warning("router: reloading the gossip graph failed, keeping the old one: %s", exc)
        answer = GraphRefreshed(
            nodes=book.graph.num_nodes,
            half_channels=book.graph.num_edges,
            error=exc.message,
            error_code=exc.code,
        )
    if r is not None:
        await reply(r, answer)
