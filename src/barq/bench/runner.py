"""The benchmark machinery of ``barq bench``: draw payments, pay them, score them.

How a run is laid out (every strategy sees exactly the same payments):

* Per amount, a seeded RNG (``seed``, amount) draws the payments from the
  graph's largest strongly connected component (:func:`plan_sessions`).
* A *session* is one simulated network (hidden liquidity drawn from the
  session's own seed) and one engine runtime for one payer (the source). By
  default (cold, ``concurrency`` 1) a session is one payment, so every
  payment has fresh liquidity and a cold estimator. ``concurrency`` C makes
  sessions of C payments from one source paid at once in one runtime
  (shared router and estimator). ``warm`` makes one session per amount: one
  payer, one runtime and one network kept across the amount's payments (the
  estimator keeps what it learnt; liquidity moves as payments settle).
* Each strategy runs every session from scratch: the same network seed, the
  same payer, the same destinations, in the same order.
* Before each batch of payments the oracles (:mod:`barq.bench.oracle`) see the
  network's true liquidity; for a fresh network their answer is computed once
  and shared by all strategies.

Everything runs under ``trio.run`` with ``trio.testing.MockClock(autojump_threshold=0)``:
hop latencies and timeouts cost no wall time, ``sim_time_s`` is the
simulated time from ``pay()`` to its result, and ``compute_s`` is the wall
time the engine spent inside strategies (``PaymentView.compute_s``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt
import trio
import trio.testing

from barq import limits
from barq.bench.guard import crashed_records, guarded
from barq.bench.metrics import PaymentRecord, rounds
from barq.bench.oracle import (
    OracleResult,
    max_flow_msat,
    min_cost_fee,
    oracle,
    oracle_capacity_msat,
)
from barq.errors import BarqError, InvalidParams
from barq.graph import Graph, largest_scc
from barq.limits import check_float, check_int
from barq.model import NodeId
from barq.model.payment import EngineConfig, PaymentStatus, PaymentView, PayParams

__all__ = [
    "EPOCH_S",
    "BenchConfig",
    "BenchContext",
    "Session",
    "SessionResult",
    "bench_engine_config",
    "crashed_records",
    "fee_budget_msat",
    "guarded",
    "plan_amount",
    "plan_sessions",
    "plan_task",
    "run_bench",
    "run_one_session",
    "run_session",
    "session_task",
]

#: simulated UNIX time at which every benchmark network opens (determinism)
EPOCH_S = 1_727_000_000

T = TypeVar("T")

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; see :func:`run_bench`."""


class BenchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What ``barq bench`` was asked to do.

    ``maxparts``/``retry_for_s`` of ``None`` take the engine defaults
    (:class:`~barq.model.payment.EngineConfig`). ``feasible_only`` redraws
    payments until the oracle says the amount can flow (see :func:`plan_sessions`).
    ``session_timeout_s`` bounds the wall time of one session of one strategy
    (see :func:`guarded`).
    """

    strategies: tuple[str, ...]
    amounts_msat: tuple[int, ...]
    payments: int
    seed: int = 1
    maxparts: int | None = None
    warm: bool = False
    concurrency: int = 1
    retry_for_s: float | None = None
    feasible_only: bool = False
    session_timeout_s: float = 300.0

    def check(self) -> None:
        """Check every setting against :mod:`barq.limits` (the plugin's ranges).

        Raises:
            InvalidParams: no strategy, a strategy listed twice, or a number
                outside its range (the message names it and the range).
        """
        if not self.strategies:
            raise InvalidParams("no strategy to benchmark")
        twice = [s for s in dict.fromkeys(self.strategies) if self.strategies.count(s) > 1]
        if twice:
            raise InvalidParams(f"strategies: {twice[0]!r} is listed twice")
        if not self.amounts_msat:
            raise InvalidParams("no amount to benchmark")
        for a in self.amounts_msat:
            check_int(limits.AMOUNT_MSAT, a)
        check_int(limits.CLI_PAYMENTS, self.payments)
        check_int(limits.SEED, self.seed)
        check_int(limits.CLI_CONCURRENCY, self.concurrency)
        check_float(limits.CLI_SESSION_TIMEOUT_S, self.session_timeout_s)
        if self.maxparts is not None:
            check_int(limits.MAXPARTS, self.maxparts)
        if self.retry_for_s is not None:
            check_float(limits.RETRY_FOR_S, self.retry_for_s)


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One network + one runtime + one payer; ``batches`` of destinations paid at once."""

    key: str
    amount_msat: int
    source: NodeId
    batches: tuple[tuple[NodeId, ...], ...]
    liquidity_seed: int

    @property
    def payments(self) -> int:
        return sum(len(b) for b in self.batches)


FeasibleFn = Callable[[NodeId, NodeId, int, int], bool]
"""``feasible(source, destination, amount_msat, liquidity_seed)``: the oracle's verdict."""

#: with ``feasible_only``: (source, liquidity) draws per session, destinations per payment
SOURCE_TRIES = 100
DESTINATION_TRIES = 20


def plan_sessions(
    nodes: Sequence[NodeId], cfg: BenchConfig, feasible: FeasibleFn | None = None
) -> list[Session]:
    """The sessions of a run, from the candidate ``nodes`` (the largest SCC).

    The sessions of each amount (:func:`plan_amount`), amounts in ``cfg`` order.

    Raises:
        InvalidParams: fewer than 2 candidate nodes.
    """
    return [s for amount in cfg.amounts_msat for s in plan_amount(nodes, cfg, amount, feasible)]


def plan_amount(
    nodes: Sequence[NodeId], cfg: BenchConfig, amount: int, feasible: FeasibleFn | None = None
) -> list[Session]:
    """The sessions of one amount, from the candidate ``nodes`` (the largest SCC).

    Each session draws its payer, then its liquidity seed, then its
    destinations. With ``feasible`` (``--feasible-only``) a payer and seed
    are redrawn (up to :data:`SOURCE_TRIES` times) until a destination is
    found (in :data:`DESTINATION_TRIES` draws) to which the amount can flow;
    each further destination is redrawn likewise. When the tries run out the
    last draw is kept (and shows as infeasible).

    Deterministic in ``(nodes, cfg.seed, amount, cfg.payments, cfg.concurrency,
    cfg.warm)`` and the verdicts of ``feasible``; each amount has its own RNG,
    so adding an amount does not change the payments drawn for the others
    (and amounts can be planned in parallel).

    Raises:
        InvalidParams: fewer than 2 candidate nodes.
    """
    if len(nodes) < 2:
        raise InvalidParams(
            f"the graph's largest strongly connected component has "
            f"{len(nodes)} node(s): nothing to pay between"
        )
    out: list[Session] = []
    n, c = cfg.payments, cfg.concurrency
    sizes = [n] if cfg.warm else [min(c, n - i * c) for i in range(math.ceil(n / c))]
    rng = random.Random(f"barq-bench-{cfg.seed}-{amount}")

    def pick(avoid: NodeId | None = None) -> NodeId:
        while True:
            x = nodes[rng.randrange(len(nodes))]
            if x != avoid:
                return x

    def destination(src: NodeId, seed: int) -> tuple[NodeId, bool]:
        d = pick(src)
        if feasible is None:
            return d, True
        for _ in range(DESTINATION_TRIES):
            if feasible(src, d, amount, seed):
                return d, True
            d = pick(src)
        return d, False

    for i, k in enumerate(sizes):
        for _ in range(SOURCE_TRIES):
            src, seed = pick(), rng.randrange(2**32)
            first, ok = destination(src, seed)
            if ok:
                break
        dests = [first] + [destination(src, seed)[0] for _ in range(k - 1)]
        out.append(
            Session(
                key=f"{amount}/{'warm' if cfg.warm else i}",
                amount_msat=amount,
                source=src,
                batches=tuple(tuple(dests[j : j + c]) for j in range(0, len(dests), c)),
                liquidity_seed=seed,
            )
        )
    return out


def bench_engine_config(cfg: BenchConfig, strategy: str) -> EngineConfig:
    """The engine settings of a benchmark run (strategies inline: the clock is simulated)."""
    base = EngineConfig()
    return msgspec.structs.replace(
        base,
        default_strategy=strategy,
        maxparts=cfg.maxparts if cfg.maxparts is not None else base.maxparts,
        retry_for_s=cfg.retry_for_s if cfg.retry_for_s is not None else base.retry_for_s,
        strategies_in_thread=False,
        slow_mode=True,  # a payment is scored once every part settled
    )


def fee_budget_msat(cfg: BenchConfig, amount_msat: int) -> int:
    """The engine's default fee budget for ``amount_msat`` (the bench passes no maxfee)."""
    return bench_engine_config(cfg, "").default_maxfee_msat(amount_msat)


def _view_of(exc: BaseException) -> PaymentView | None:
    data = getattr(exc, "data", None)
    if isinstance(data, Mapping):
        for cand in (data, data.get("view"), data.get("payment")):
            if isinstance(cand, PaymentView):
                return cand
            if isinstance(cand, Mapping) and "parts" in cand and "payment_hash" in cand:
                try:
                    return msgspec.convert(cand, PaymentView, strict=False)
                except msgspec.ValidationError:
                    continue
    return None


async def _pay_one(
    rt: Any,
    net: Any,
    *,
    strategy: str,
    amount_msat: int,
    source: NodeId,
    destination: NodeId,
    bolt11: str,
    orc: OracleResult,
    cfg: BenchConfig,
) -> PaymentRecord:
    payment_hash = net.decode(bolt11).payment_hash
    params = PayParams(
        invstring=bolt11, strategy=strategy, maxparts=cfg.maxparts, retry_for_s=cfg.retry_for_s
    )
    t0 = trio.current_time()
    view: PaymentView | None = None
    error: str | None = None
    try:
        view = await rt.pay(params)
    except BarqError as exc:
        view = _view_of(exc)
        error = f"{type(exc).__name__}: {exc.message}"
    sim_time = trio.current_time() - t0
    try:
        for v in rt.status(payment_hash):
            view = v
    except BarqError:
        pass
    paid = bool(net.is_paid(payment_hash))
    ok = view is not None and view.status == PaymentStatus.COMPLETE
    if ok != paid:
        error = (
            (error or "") + f" [engine says {'complete' if ok else 'failed'}, network says "
            f"{'paid' if paid else 'unpaid'}]"
        )
    return PaymentRecord(
        strategy=strategy,
        amount_msat=amount_msat,
        source=source,
        destination=destination,
        feasible=orc.feasible,
        max_flow_msat=orc.max_flow_msat,
        oracle_fee_msat=orc.fee_msat,
        succeeded=ok and paid,
        attempts=0 if view is None else (view.attempts or len(view.parts)),
        rounds=0 if view is None else rounds(view.parts),
        fee_msat=0 if view is None else view.fee_msat,
        sim_time_s=sim_time,
        compute_s=0.0 if view is None else view.compute_s,
        error=error if error is None else error.strip(),
    )


async def run_session(
    graph: Graph,
    keys: Mapping[NodeId, bytes],
    session: Session,
    strategy: str,
    cfg: BenchConfig,
    oracle_cache: dict[tuple[str, int], OracleResult],
) -> list[PaymentRecord]:
    """Pay ``session`` with ``strategy`` on a fresh simulated network (see the module doc).

    Must run under trio. ``oracle_cache`` holds the oracle answers of first
    batches (fresh networks), shared across strategies.

    Raises:
        BarqError: the simulated network or the engine could not start.
    """
    from barq.actors.runtime import open_runtime
    from barq.sim import SimulatedNetwork

    records: list[PaymentRecord] = []
    async with SimulatedNetwork.open(
        graph, seed=session.liquidity_seed, keys=keys, epoch_s=EPOCH_S
    ) as net:
        node = net.node(session.source)
        engine = bench_engine_config(cfg, strategy)
        maxfee_msat = engine.default_maxfee_msat(session.amount_msat)
        async with open_runtime(node, engine, clock=net.now) as rt:
            pos = 0
            for b, batch in enumerate(session.batches):
                liq = net.true_liquidity_msat()
                orcs: list[OracleResult] = []
                for j, dest in enumerate(batch):
                    ck = (session.key, pos + j)
                    hit = oracle_cache.get(ck) if b == 0 else None
                    if hit is None:
                        hit = oracle(
                            graph,
                            liq,
                            session.source,
                            dest,
                            session.amount_msat,
                            maxparts=engine.maxparts,
                            maxfee_msat=maxfee_msat,
                        )
                        if b == 0:
                            oracle_cache[ck] = hit
                    orcs.append(hit)
                invoices = [net.create_invoice(d, session.amount_msat) for d in batch]
                out: list[PaymentRecord | None] = [None] * len(batch)

                async def one(
                    j: int,
                    dest: NodeId,
                    bolt11: str,
                    orc: OracleResult,
                    out: list[PaymentRecord | None] = out,
                ) -> None:
                    out[j] = await _pay_one(
                        rt,
                        net,
                        strategy=strategy,
                        amount_msat=session.amount_msat,
                        source=session.source,
                        destination=dest,
                        bolt11=bolt11,
                        orc=orc,
                        cfg=cfg,
                    )

                async with trio.open_nursery() as nursery:
                    for j, (dest, inv, orc) in enumerate(zip(batch, invoices, orcs, strict=True)):
                        nursery.start_soon(one, j, dest, inv, orc)
                records.extend(r for r in out if r is not None)
                pos += len(batch)
        if net.overpayments:
            raise BarqError(f"simulated receiver was overpaid: {net.overpayments[0]}")
    return records


def _feasibility(graph: Graph, cfg: BenchConfig) -> FeasibleFn:
    """The oracle's verdict on a fresh network of a given seed (see :func:`plan_sessions`)."""
    from barq.sim import SimulatedNetwork

    maxparts = bench_engine_config(cfg, "").maxparts
    caps: dict[tuple[int, int], npt.NDArray[np.int64]] = {}

    def feasible(source: NodeId, destination: NodeId, amount_msat: int, seed: int) -> bool:
        cap = caps.get((seed, amount_msat))
        if cap is None:
            caps.clear()  # sessions are drawn one after the other: keep the last only
            liq = SimulatedNetwork(graph, seed=seed, epoch_s=EPOCH_S).true_liquidity_msat()
            cap = caps[(seed, amount_msat)] = oracle_capacity_msat(
                graph, liq, amount_msat=amount_msat, maxparts=maxparts
            )
        s, t = graph.node_index[source], graph.node_index[destination]
        if (
            int(cap[graph.src == s].sum()) < amount_msat
            or int(cap[graph.dst == t].sum()) < amount_msat
        ):
            return False  # quick cut: the payer cannot send it, or the payee receive it
        if max_flow_msat(graph, cap, source, destination) < amount_msat:
            return False
        mc = min_cost_fee(graph, cap, source, destination, amount_msat)
        return mc is None or mc.fee_lower_bound_msat <= fee_budget_msat(cfg, amount_msat)

    return feasible


class SessionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one session gave for every strategy: its records and the engine crashes.

    ``crashes`` holds ``"<strategy> session <key>: <Type>: <message>"`` per
    session run that raised something else than a payment failure.
    """

    records: tuple[PaymentRecord, ...]
    crashes: tuple[str, ...] = ()


def run_one_session(
    graph: Graph, keys: Mapping[NodeId, bytes], session: Session, cfg: BenchConfig
) -> SessionResult:
    """Pay ``session`` with every strategy of ``cfg`` in turn (blocking; one ``trio.run`` each).

    Each strategy gets a fresh network of the session's seed under a
    ``MockClock``; the oracle's answers for the fresh network are computed
    once and shared. A session run that crashes (an engine bug) or times out
    (:func:`guarded`) records its payments as failed ("session crashed: ...").
    Pure in its arguments apart from wall-clock ``compute_s``, so sessions may
    run in any process in any order.
    """
    cache: dict[tuple[str, int], OracleResult] = {}
    records: list[PaymentRecord] = []
    crashes: list[str] = []
    for strategy in cfg.strategies:
        try:
            retry = bench_engine_config(cfg, strategy).retry_for_s
            got = trio.run(
                partial(
                    guarded,
                    partial(run_session, graph, dict(keys), session, strategy, cfg, cache),
                    wall_s=cfg.session_timeout_s,
                    sim_s=len(session.batches) * (2 * retry + 180.0),
                ),
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
        except Exception as exc:
            crashes.append(f"{strategy} session {session.key}: {type(exc).__name__}: {exc}")
            got = crashed_records(session, strategy, exc, cache)
        records.extend(got)
    return SessionResult(records=tuple(records), crashes=tuple(crashes))


class BenchContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker needs besides its item: sent once to each worker process."""

    graph: Graph
    keys: dict[NodeId, bytes]
    cfg: BenchConfig
    nodes: tuple[NodeId, ...]  # the largest SCC: where payments are drawn


def plan_task(ctx: BenchContext, amount_msat: int) -> list[Session]:
    """The sessions of one amount (a task of :func:`run_bench`'s planning phase)."""
    feasible = _feasibility(ctx.graph, ctx.cfg) if ctx.cfg.feasible_only else None
    return plan_amount(ctx.nodes, ctx.cfg, amount_msat, feasible)


def session_task(ctx: BenchContext, session: Session) -> SessionResult:
    """One session with every strategy (a task of :func:`run_bench`'s paying phase)."""
    return run_one_session(ctx.graph, ctx.keys, session, ctx.cfg)


def run_bench(
    graph: Graph,
    cfg: BenchConfig,
    *,
    keys: Mapping[NodeId, bytes] | None = None,
    progress: ProgressFn | None = None,
    on_crash: Callable[[str], None] | None = None,
    jobs: int = 1,
    dask: str | None = None,
    sessions_out: list[Session] | None = None,
) -> list[PaymentRecord]:
    """Run the whole benchmark (blocking).

    Planning (one task per amount) and paying (one task per session, every
    strategy in it) run in ``jobs`` worker processes, or on the dask cluster
    at ``dask`` (:mod:`barq.bench.parallel`). Every task is deterministic in
    its input, so the records are the same for any ``jobs`` and on a cluster
    (apart from the wall-clock ``compute_s``).

    Args:
        graph: the network (its largest SCC provides sources and destinations).
        cfg: what to run (checked first).
        keys: private keys of nodes that sign their own invoices (builtin network).
        progress: told ``(phase, done, total)`` as tasks end: phase ``"draw"``
            counts amounts planned (only with ``feasible_only``), ``"pay"``
            counts payments made (over all strategies).
        on_crash: told about each session run that raised something else than
            a payment failure (an engine bug); its payments are recorded as
            failed with ``error`` "session crashed: ..." and the run goes on.
        jobs: worker processes (1: in this process).
        dask: a dask.distributed scheduler address (instead of ``jobs``).
        sessions_out: given, the sessions paid are appended to it (for a peer
            such as :mod:`barq.bench.askrene` to pay the very same payments).

    Returns:
        One :class:`PaymentRecord` per (strategy, payment): sessions in plan
        order, strategies in ``cfg.strategies`` order within each session.

    Raises:
        InvalidParams: bad ``cfg`` or a graph without two connected nodes.
        BarqError: the dask cluster cannot be reached.
    """
    from barq.bench.parallel import open_executor

    cfg.check()
    nodes = tuple(graph.nodes[int(i)] for i in largest_scc(graph))
    if len(nodes) < 2:
        plan_amount(nodes, cfg, cfg.amounts_msat[0])  # raises the "nothing to pay" error
    ctx = BenchContext(graph=graph, keys=dict(keys or {}), cfg=cfg, nodes=nodes)
    report = progress or (lambda phase, done, total: None)
    with open_executor(ctx, jobs=jobs, dask=dask) as pool:
        amounts = cfg.amounts_msat
        plans: list[list[Session]] = [[] for _ in amounts]
        if cfg.feasible_only:
            report("draw", 0, len(amounts))
        for done, (i, got) in enumerate(pool.imap(plan_task, amounts), start=1):
            plans[i] = got
            if cfg.feasible_only:
                report("draw", done, len(amounts))
        sessions = [s for plan in plans for s in plan]
        if sessions_out is not None:
            sessions_out.extend(sessions)
        total = sum(s.payments for s in sessions) * len(cfg.strategies)
        results: list[SessionResult | None] = [None] * len(sessions)
        done = 0
        report("pay", 0, total)
        for i, result in pool.imap(session_task, sessions):
            results[i] = result
            for crash in result.crashes:
                if on_crash is not None:
                    on_crash(crash)
            done += len(result.records)
            report("pay", done, total)
    return [rec for r in results if r is not None for rec in r.records]
