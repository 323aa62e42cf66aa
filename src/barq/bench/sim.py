"""``barq sim``: a handful of payments through the real engine on a simulated network.

One payer (a well-connected node of the largest strongly connected
component, chosen by the seed) pays ``payments`` invoices of various sizes,
started a moment apart (``interval_s`` of simulated time) and running
concurrently in one engine runtime, over a :class:`~barq.sim.SimulatedNetwork`.
The engine's events (:mod:`barq.model.payment`) update one
:class:`PaymentProgress` per payment; after each, a display
(:mod:`barq.bench.simview`) gets a copy of it.

Time is simulated (``trio.testing.MockClock`` with ``autojump_threshold=0``): it
jumps from event to event and never follows the wall clock, so the same seed
and flags simulate the same run whatever the display does (the live view
replays it at a chosen speed in its own thread) and :func:`sim_json` gives
the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import trio
import trio.testing

from barq import limits
from barq.bench.metrics import rounds
from barq.errors import BarqError, InvalidParams
from barq.graph import Graph, largest_scc
from barq.model import NodeId
from barq.model.payment import (
    EngineConfig,
    PartEnded,
    PartStarted,
    PartState,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
    PayParams,
)

if TYPE_CHECKING:
    from barq.bench.simview import Display

__all__ = [
    "DEFAULT_AMOUNTS_SAT",
    "IDLE_JUMP_S",
    "PaymentProgress",
    "SimConfig",
    "SimRun",
    "choose_source",
    "run_sim",
    "sim_json",
]

#: amounts (sat) paid in turn when none are given: small ones, and ones that need MPP
DEFAULT_AMOUNTS_SAT: tuple[int, ...] = (
    20_000,
    400_000,
    2_000,
    1_500_000,
    80_000,
    3_000_000,
    700_000,
    5_000,
)
#: with a live display, idle waits longer than this (wall seconds) are skipped
IDLE_JUMP_S = 0.4
EPOCH_S = 1_727_000_000


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What ``barq sim`` does. ``None`` takes the engine's default."""

    payments: int = 8
    seed: int = 1
    strategy: str | None = None
    amounts_msat: tuple[int, ...] = tuple(a * 1000 for a in DEFAULT_AMOUNTS_SAT)
    maxparts: int | None = None
    interval_s: float = 0.3
    retry_for_s: float | None = None

    def check(self) -> None:
        """Check every setting against :mod:`barq.limits` (the plugin's ranges).

        Raises:
            InvalidParams: a number outside its range (named, with the range).
        """
        limits.check_int(limits.CLI_SIM_PAYMENTS, self.payments)
        limits.check_int(limits.SEED, self.seed)
        if not self.amounts_msat:
            raise InvalidParams("no amount to pay")
        for a in self.amounts_msat:
            limits.check_int(limits.AMOUNT_MSAT, a)
        if self.maxparts is not None:
            limits.check_int(limits.MAXPARTS, self.maxparts)
        if self.retry_for_s is not None:
            limits.check_float(limits.RETRY_FOR_S, self.retry_for_s)


@dataclass
class PaymentProgress:
    """What is known of one payment while it runs (mutated by engine events)."""

    index: int
    destination: NodeId
    amount_msat: int
    strategy: str = ""
    status: str = "waiting"  # waiting, pending, complete, failed
    inflight: dict[int, int] = field(default_factory=dict)  # partid -> amount_msat
    delivered_msat: int = 0
    parts_ok: int = 0
    parts_failed: int = 0
    fee_msat: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    rounds: int = 0
    compute_s: float = 0.0
    error: str | None = None

    def snapshot(self) -> PaymentProgress:
        """A copy that later events do not change (for a display)."""
        return dataclasses.replace(self, inflight=dict(self.inflight))

    def to_json(self) -> dict[str, Any]:
        """What was simulated for this payment (no wall-clock figure: reproducible)."""
        return {
            "index": self.index,
            "destination": self.destination,
            "amount_msat": self.amount_msat,
            "strategy": self.strategy,
            "status": self.status,
            "attempts": self.attempts,
            "rounds": self.rounds,
            "parts_ok": self.parts_ok,
            "parts_failed": self.parts_failed,
            "delivered_msat": self.delivered_msat,
            "fee_msat": self.fee_msat,
            "started_s": None if self.started_at is None else round(self.started_at, 6),
            "ended_s": None if self.ended_at is None else round(self.ended_at, 6),
            "error": self.error,
        }

    @property
    def inflight_msat(self) -> int:
        return sum(self.inflight.values())

    def elapsed_s(self, now: float) -> float | None:
        """Simulated seconds since it started (until it ended, else until ``now``)."""
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else now
        return end - self.started_at

    def apply(self, ev: PaymentEvent, now: float) -> str | None:
        """Update from one engine event; returns a one-line description of it."""
        short = f"pay#{self.index + 1}"
        match ev:
            case PaymentStarted():
                self.status = "pending"
                self.strategy = ev.strategy
                if self.started_at is None:
                    self.started_at = now
                return (
                    f"{short} started: {self.amount_msat // 1000:,} sat to "
                    f"{self.destination[:10]}… ({ev.strategy})"
                )
            case PartStarted():
                self.inflight[ev.partid] = ev.amount_msat
                self.attempts += 1
                return (
                    f"{short} part {ev.partid}: {ev.amount_msat // 1000:,} sat over "
                    f"{len(ev.route.hops)} hop(s), fee {ev.route.fee_msat:,} msat"
                )
            case PartEnded():
                self.inflight.pop(ev.partid, None)
                if ev.state == PartState.SUCCEEDED:
                    self.parts_ok += 1
                    self.delivered_msat += ev.amount_msat
                    return f"{short} part {ev.partid} succeeded"
                self.parts_failed += 1
                why = ev.failure.failcodename if ev.failure is not None else (ev.reason or "")
                where = f" at hop {ev.failure.erring_index}" if ev.failure is not None else ""
                verb = "failed, resplit" if ev.state == PartState.RESPLIT else "failed"
                return f"{short} part {ev.partid} {verb}{where}: {why}"
            case PaymentEnded():
                self.status = "complete" if ev.status == PaymentStatus.COMPLETE else "failed"
                self.ended_at = now
                self.inflight.clear()
                if ev.error:
                    self.error = ev.error
                return None  # run_sim prints the outcome with the final figures
        return None

    def finish(self, view: PaymentView | None, now: float, error: str | None) -> None:
        """Take the final figures from the payment's view (or the error)."""
        if self.started_at is None:
            self.started_at = now
        if self.ended_at is None:
            self.ended_at = now
        self.inflight.clear()
        if view is not None:
            self.status = "complete" if view.status == PaymentStatus.COMPLETE else "failed"
            self.strategy = view.strategy or self.strategy
            self.fee_msat = view.fee_msat
            self.attempts = view.attempts or len(view.parts)
            self.rounds = rounds(view.parts)
            self.compute_s = view.compute_s
            self.delivered_msat = view.delivered_msat or self.delivered_msat
            self.error = view.error or error
        else:
            self.status = "failed"
            self.error = error


def choose_source(graph: Graph, seed: int) -> NodeId:
    """A payer: a seeded pick among the best-connected nodes of the largest SCC.

    Candidates are the SCC nodes with at least the median number of enabled
    outgoing half-channels (and at least 2 when some node has 2).

    Raises:
        InvalidParams: the largest SCC has fewer than 2 nodes.
    """
    scc = largest_scc(graph)
    if len(scc) < 2:
        raise InvalidParams(
            f"the graph's largest strongly connected component has {len(scc)} "
            "node(s): nothing to pay between"
        )
    outdeg = np.bincount(graph.src[graph.enabled], minlength=graph.num_nodes)[scc]
    floor = max(float(np.median(outdeg)), min(2.0, float(outdeg.max())))
    cands = [int(n) for n, d in zip(scc.tolist(), outdeg.tolist(), strict=True) if d >= floor]
    rng = random.Random(f"barq-sim-source-{seed}")
    return graph.nodes[cands[rng.randrange(len(cands))]]


def _destinations(graph: Graph, source: NodeId, n: int, seed: int) -> list[NodeId]:
    scc = [graph.nodes[int(i)] for i in largest_scc(graph)]
    others = [x for x in scc if x != source]
    rng = random.Random(f"barq-sim-dest-{seed}")
    return [others[rng.randrange(len(others))] for _ in range(n)]


@dataclass
class SimRun:
    """A finished ``barq sim``: every payment's final state and the event log.

    ``events`` holds ``(simulated seconds since the start, description)``.
    """

    source: NodeId
    payments: list[PaymentProgress]
    events: list[tuple[float, str]]


def run_sim(
    graph: Graph,
    cfg: SimConfig,
    display: Display,
    *,
    keys: Mapping[NodeId, bytes] | None = None,
    title: str = "",
) -> SimRun:
    """Run the demo (blocking: its own ``trio.run`` under an auto-jumping ``MockClock``).

    The simulation depends on ``graph``, ``cfg`` and ``keys`` only: ``display``
    gets copies of the payments' states and cannot change what happens.

    Args:
        graph: the network.
        cfg: payments, amounts, strategy, seed...
        display: where progress goes (:mod:`barq.bench.simview`).
        keys: private keys of nodes that sign their own invoices.
        title: shown above the progress.

    Returns:
        The final state of every payment (in order) and the event log.

    Raises:
        InvalidParams: bad ``cfg`` or a graph without two connected nodes.
        BarqError: the simulated network or the engine failed to start.
    """
    cfg.check()
    source = choose_source(graph, cfg.seed)
    dests = _destinations(graph, source, cfg.payments, cfg.seed)
    progress = [
        PaymentProgress(
            index=i, destination=d, amount_msat=cfg.amounts_msat[i % len(cfg.amounts_msat)]
        )
        for i, d in enumerate(dests)
    ]
    events: list[tuple[float, str]] = []
    base = EngineConfig()
    engine_cfg = msgspec.structs.replace(
        base,
        strategies_in_thread=False,
        default_strategy=cfg.strategy or base.default_strategy,
        maxparts=cfg.maxparts if cfg.maxparts is not None else base.maxparts,
    )

    async def main() -> None:
        from barq.actors.runtime import open_runtime
        from barq.sim import SimulatedNetwork

        t0 = trio.current_time()

        def now() -> float:
            return trio.current_time() - t0

        def tell(p: PaymentProgress, line: str | None) -> None:
            if line:
                events.append((round(now(), 6), line))
            display.event(now(), line, p.snapshot())

        async with SimulatedNetwork.open(
            graph, seed=cfg.seed, keys=dict(keys or {}), epoch_s=EPOCH_S
        ) as net:
            node = net.node(source)
            async with open_runtime(node, engine_cfg, clock=net.now) as rt:
                display.start(
                    [p.snapshot() for p in progress],
                    title or f"barq sim: {len(progress)} payments from {source[:10]}…",
                )

                async def pay(p: PaymentProgress) -> None:
                    await trio.sleep(p.index * cfg.interval_s)
                    bolt11 = net.create_invoice(p.destination, p.amount_msat)
                    payment_hash = net.decode(bolt11).payment_hash
                    p.started_at = now()

                    def on_event(ev: PaymentEvent) -> None:
                        tell(p, p.apply(ev, now()))

                    params = PayParams(
                        invstring=bolt11,
                        strategy=cfg.strategy,
                        maxparts=cfg.maxparts,
                        retry_for_s=cfg.retry_for_s,
                    )
                    view: PaymentView | None = None
                    error: str | None = None
                    try:
                        view = await rt.pay(params, on_event=on_event)
                    except BarqError as exc:
                        error = exc.message
                    for v in rt.status(payment_hash):
                        view = v
                    p.finish(view, now(), error)
                    tell(
                        p,
                        f"pay#{p.index + 1} {p.status}: "
                        f"{p.attempts} part(s), fee {p.fee_msat:,} msat"
                        + (f" ({p.error})" if p.error and p.status != "complete" else ""),
                    )

                async with trio.open_nursery() as nursery:
                    for p in progress:
                        nursery.start_soon(pay, p)

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseException:
        display.stop(interrupted=True)
        raise
    display.stop()
    return SimRun(source=source, payments=progress, events=events)


def sim_json(run: SimRun, cfg: SimConfig, graph: Mapping[str, Any]) -> str:
    """The JSON of ``barq sim --json``: what was simulated, nothing measured on the wall clock.

    Args:
        run: :func:`run_sim`'s result.
        cfg: its settings.
        graph: the graph's identity (:func:`barq.bench.meta.graph_info`).

    Returns:
        Indented JSON with sorted keys: the same seed and flags give the same bytes.
    """
    import barq
    from barq.bench.meta import git_commit

    doc = {
        "meta": {
            "barq": {"version": barq.__version__, **git_commit()},
            "graph": dict(graph),
            "config": msgspec.to_builtins(cfg),
            "source": run.source,
        },
        "payments": [p.to_json() for p in run.payments],
        "events": [[t, line] for t, line in run.events],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
