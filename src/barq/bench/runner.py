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

import contextlib
import math
import random
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt
import trio
import trio.testing

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
from barq.model import NodeId
from barq.model.payment import EngineConfig, PaymentStatus, PaymentView, PayParams

__all__ = [
    "EPOCH_S",
    "BenchConfig",
    "Session",
    "bench_engine_config",
    "fee_budget_msat",
    "guarded",
    "plan_sessions",
    "run_bench",
    "run_session",
]

#: simulated UNIX time at which every benchmark network opens (determinism)
EPOCH_S = 1_727_000_000

T = TypeVar("T")

ProgressFn = Callable[[int, str], None]
"""``progress(payments_done, description)``; called after each session."""


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
        """Raise :class:`~barq.errors.InvalidParams` for impossible settings."""
        if not self.strategies:
            raise InvalidParams("no strategy to benchmark")
        if len(set(self.strategies)) != len(self.strategies):
            raise InvalidParams(f"a strategy is listed twice: {','.join(self.strategies)}")
        if not self.amounts_msat or any(a <= 0 for a in self.amounts_msat):
            raise InvalidParams("amounts must be positive")
        if self.payments < 1:
            raise InvalidParams(f"--payments must be at least 1, got {self.payments}")
        if self.concurrency < 1:
            raise InvalidParams(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.maxparts is not None and self.maxparts < 1:
            raise InvalidParams(f"--maxparts must be at least 1, got {self.maxparts}")


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

    Each session draws its payer, then its liquidity seed, then its
    destinations. With ``feasible`` (``--feasible-only``) a payer and seed
    are redrawn (up to :data:`SOURCE_TRIES` times) until a destination is
    found (in :data:`DESTINATION_TRIES` draws) to which the amount can flow;
    each further destination is redrawn likewise. When the tries run out the
    last draw is kept (and shows as infeasible).

    Deterministic in ``(nodes, cfg.seed, amount, cfg.payments, cfg.concurrency,
    cfg.warm)`` and the verdicts of ``feasible``; each amount has its own RNG,
    so adding an amount does not change the payments drawn for the others.

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
    for amount in cfg.amounts_msat:
        rng = random.Random(f"barq-bench-{cfg.seed}-{amount}")

        def pick(avoid: NodeId | None = None, rng: random.Random = rng) -> NodeId:
            while True:
                x = nodes[rng.randrange(len(nodes))]
                if x != avoid:
                    return x

        def destination(src: NodeId, seed: int, amount: int = amount) -> tuple[NodeId, bool]:
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


def _crashed(
    session: Session,
    strategy: str,
    exc: BaseException,
    cache: Mapping[tuple[str, int], OracleResult],
) -> list[PaymentRecord]:
    msg = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    dests = [d for batch in session.batches for d in batch]
    unknown = OracleResult(max_flow_msat=0, feasible=False)
    orcs = [cache.get((session.key, j), unknown) for j in range(len(dests))]
    return [
        PaymentRecord(
            strategy=strategy,
            amount_msat=session.amount_msat,
            source=session.source,
            destination=d,
            feasible=o.feasible,
            max_flow_msat=o.max_flow_msat,
            oracle_fee_msat=o.fee_msat,
            succeeded=False,
            attempts=0,
            rounds=0,
            fee_msat=0,
            sim_time_s=0.0,
            compute_s=0.0,
            error=f"session crashed: {msg}",
        )
        for d, o in zip(dests, orcs, strict=True)
    ]


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


async def guarded(fn: Callable[[], Awaitable[T]], *, wall_s: float, sim_s: float) -> T:
    """Run ``fn()`` under trio, cancelled after ``wall_s`` wall seconds or ``sim_s`` clock seconds.

    Under a ``MockClock`` an engine stuck in a loop may never let the clock
    reach a deadline (or race it forward forever); a watchdog thread cancels
    the run through the trio token when the wall time is up.

    Raises:
        BarqError: the time ran out ("session timed out ...").
    """
    token = trio.lowlevel.current_trio_token()
    stop = threading.Event()
    with trio.CancelScope(deadline=trio.current_time() + sim_s) as scope:

        def watchdog() -> None:
            if not stop.wait(wall_s):
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(scope.cancel)

        threading.Thread(target=watchdog, name="barq-bench-watchdog", daemon=True).start()
        try:
            return await fn()
        finally:
            stop.set()
    raise BarqError(f"session timed out (limit {wall_s:.0f} s wall, {sim_s:.0f} s simulated)")


def run_bench(
    graph: Graph,
    cfg: BenchConfig,
    *,
    keys: Mapping[NodeId, bytes] | None = None,
    progress: ProgressFn | None = None,
    on_crash: Callable[[str, BaseException], None] | None = None,
) -> list[PaymentRecord]:
    """Run the whole benchmark (blocking; starts its own ``trio.run`` per session).

    Args:
        graph: the network (its largest SCC provides sources and destinations).
        cfg: what to run (checked first).
        keys: private keys of nodes that sign their own invoices (builtin network).
        progress: called after each session with the payments done so far.
        on_crash: told when a session raised something else than a payment
            failure (an engine bug); its payments are recorded as failed
            with ``error`` "session crashed: ..." and the run goes on.

    Returns:
        One :class:`PaymentRecord` per (strategy, payment), strategies in
        ``cfg.strategies`` order within each session.

    Raises:
        InvalidParams: bad ``cfg`` or a graph without two connected nodes.
    """
    cfg.check()
    scc = [graph.nodes[int(i)] for i in largest_scc(graph)]
    if cfg.feasible_only and progress is not None:
        progress(0, "drawing feasible payments")
    sessions = plan_sessions(scc, cfg, _feasibility(graph, cfg) if cfg.feasible_only else None)
    cache: dict[tuple[str, int], OracleResult] = {}
    records: list[PaymentRecord] = []
    done = 0
    for session in sessions:
        for strategy in cfg.strategies:
            try:
                retry = bench_engine_config(cfg, strategy).retry_for_s
                got = trio.run(
                    partial(
                        guarded,
                        partial(
                            run_session, graph, dict(keys or {}), session, strategy, cfg, cache
                        ),
                        wall_s=cfg.session_timeout_s,
                        sim_s=len(session.batches) * (2 * retry + 180.0),
                    ),
                    clock=trio.testing.MockClock(autojump_threshold=0),
                )
            except Exception as exc:
                if on_crash is not None:
                    on_crash(f"{strategy} session {session.key}", exc)
                got = _crashed(session, strategy, exc, cache)
            records.extend(got)
            done += session.payments
            if progress is not None:
                progress(done, f"{strategy} {session.amount_msat // 1000:,} sat")
    return records
