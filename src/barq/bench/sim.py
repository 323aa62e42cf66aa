"""``barq sim``: a handful of payments through the real engine on a simulated network.

One payer (a well-connected node of the largest strongly connected
component, chosen by the seed) pays ``payments`` invoices of various sizes,
started a moment apart (``interval_s`` of simulated time) and running
concurrently in one engine runtime, over a :class:`~barq.sim.SimulatedNetwork`.
The engine's events (:mod:`barq.model.payment`) update one
:class:`PaymentProgress` per payment; a display renders them live
(:class:`LiveDisplay`, rich) or as plain lines (:class:`LineDisplay`).

Time is simulated (``trio.testing.MockClock``): with ``speed`` 0 it jumps
from event to event (no wall time at all); with ``speed`` S > 0 the simulated
clock runs S times faster than the wall clock, and any idle wait longer than
:data:`IDLE_JUMP_S` of wall time is skipped, so a person can follow it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import numpy as np
import trio
import trio.testing
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

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

__all__ = [
    "DEFAULT_AMOUNTS_SAT",
    "IDLE_JUMP_S",
    "Display",
    "LineDisplay",
    "LiveDisplay",
    "PaymentProgress",
    "SimConfig",
    "choose_source",
    "run_sim",
    "summary_table",
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
        """Raise :class:`~barq.errors.InvalidParams` for impossible settings."""
        if self.payments < 1:
            raise InvalidParams(f"--payments must be at least 1, got {self.payments}")
        if not self.amounts_msat or any(a <= 0 for a in self.amounts_msat):
            raise InvalidParams("amounts must be positive")
        if self.maxparts is not None and self.maxparts < 1:
            raise InvalidParams(f"--maxparts must be at least 1, got {self.maxparts}")


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


class Display(Protocol):
    """Where ``run_sim`` reports progress."""

    def start(self, payments: Sequence[PaymentProgress], title: str) -> None: ...
    def event(self, now: float, line: str) -> None: ...
    def stop(self) -> None: ...


class LineDisplay:
    """One plain line per engine event (``--no-live``, or stdout not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def start(self, payments: Sequence[PaymentProgress], title: str) -> None:
        self.console.print(title, highlight=False)

    def event(self, now: float, line: str) -> None:
        self.console.print(f"[{now:8.3f}s] {line}", highlight=False, markup=False)

    def stop(self) -> None:
        return None


def _bar(p: PaymentProgress, width: int = 14) -> Text:
    done = min(width, round(width * p.delivered_msat / p.amount_msat))
    fly = min(width - done, round(width * p.inflight_msat / p.amount_msat))
    t = Text()
    t.append("█" * done, style="green")
    t.append("▒" * fly, style="yellow")
    t.append("·" * (width - done - fly), style="dim")
    return t


_LEFT = frozenset({"to", "progress", "status", "error"})
_STATUS_STYLE = {
    "waiting": "dim",
    "pending": "yellow",
    "complete": "bold green",
    "failed": "bold red",
}


def _table(title: str | None, columns: Sequence[str], caption: str | None = None) -> Table:
    t = Table(
        title=title,
        caption=caption,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        expand=False,
    )
    for name in columns:
        t.add_column(name, justify="left" if name in _LEFT else "right", no_wrap=True)
    return t


def progress_table(payments: Sequence[PaymentProgress], now: float, title: str = "") -> Table:
    """The live view: per payment, its progress bar (delivered █, in flight ▒) and parts.

    ``now`` is the current clock time (elapsed times of running payments);
    the function reads only ``payments`` (safe from a refresh thread).
    """
    t = _table(
        title or None, ("#", "sat", "progress", "fly", "ok", "fail", "fee msat", "sim s", "status")
    )
    for p in list(payments):
        el = p.elapsed_s(now)
        t.add_row(
            str(p.index + 1),
            f"{p.amount_msat // 1000:,}",
            _bar(p),
            str(len(p.inflight)),
            str(p.parts_ok),
            str(p.parts_failed),
            f"{p.fee_msat:,}" if p.status == "complete" else "",
            "" if el is None else f"{el:.2f}",
            Text(p.status, style=_STATUS_STYLE.get(p.status, "")),
        )
    return t


class LiveDisplay:
    """A rich ``Live`` table redrawn as events arrive (terminal only).

    Rendering never calls into trio (rich refreshes from its own thread): the
    simulated time shown is the one of the last event.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._payments: Sequence[PaymentProgress] = ()
        self._title = ""
        self._now = 0.0
        self._t0 = 0.0
        self._last: list[str] = []
        self._live: Live | None = None

    def _render(self) -> RenderableType:
        log = Text("\n".join(self._last[-4:]), style="dim")
        title = f"{self._title}\nsimulated time {self._now - self._t0:.2f} s"
        return Group(progress_table(self._payments, self._now, title), log)

    def start(self, payments: Sequence[PaymentProgress], title: str) -> None:
        self._payments = payments
        self._title = title
        self._now = self._t0 = trio.current_time()
        self._live = Live(
            console=self.console,
            refresh_per_second=12,
            transient=False,
            get_renderable=self._render,
        )
        self._live.start()

    def event(self, now: float, line: str) -> None:
        self._now = self._t0 + now
        self._last.append(f"[{now:7.2f}s] {line}")
        del self._last[:-4]

    def stop(self) -> None:
        if self._live is not None:
            self._now = trio.current_time()
            self._live.refresh()
            self._live.stop()
            self._live = None


def summary_table(payments: Sequence[PaymentProgress]) -> Table:
    """The final table: one line per payment, the totals in the caption."""
    errors = any(p.error and p.status != "complete" for p in payments)
    n_ok = sum(p.status == "complete" for p in payments)
    t = _table(
        "barq sim: summary",
        (
            "#",
            "to",
            "sat",
            "status",
            "parts",
            "rnd",
            "fee msat",
            "ppm",
            "sim s",
            "cpu ms",
            *(("error",) if errors else ()),
        ),
        caption=f"{n_ok}/{len(payments)} payments succeeded",
    )
    for p in payments:
        ok = p.status == "complete"
        el = p.elapsed_s(p.ended_at or 0.0)
        cells: list[str | Text] = [
            str(p.index + 1),
            p.destination[:7] + "…",
            f"{p.amount_msat // 1000:,}",
            Text(p.status, style=_STATUS_STYLE.get(p.status, "")),
            str(p.attempts),
            str(p.rounds),
            f"{p.fee_msat:,}" if ok else "-",
            f"{p.fee_msat * 1_000_000 // p.amount_msat:,}" if ok else "-",
            "-" if el is None else f"{el:.2f}",
            f"{p.compute_s * 1000:.1f}",
        ]
        if errors:
            cells.append("" if ok else (p.error or "")[:70])
        t.add_row(*cells)
    return t


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


def run_sim(
    graph: Graph,
    cfg: SimConfig,
    display: Display,
    *,
    keys: Mapping[NodeId, bytes] | None = None,
    speed: float = 0.0,
    title: str = "",
) -> list[PaymentProgress]:
    """Run the demo (blocking: its own ``trio.run`` under a ``MockClock``).

    Args:
        graph: the network.
        cfg: payments, amounts, strategy, seed...
        display: where progress goes.
        keys: private keys of nodes that sign their own invoices.
        speed: simulated seconds per wall second (0: no wall time at all).
        title: shown above the progress.

    Returns:
        The final state of every payment (in order).

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

        async with SimulatedNetwork.open(
            graph, seed=cfg.seed, keys=dict(keys or {}), epoch_s=EPOCH_S
        ) as net:
            node = net.node(source)
            async with open_runtime(node, engine_cfg, clock=net.now) as rt:
                display.start(
                    progress, title or f"barq sim: {len(progress)} payments from {source[:10]}…"
                )

                async def pay(p: PaymentProgress) -> None:
                    await trio.sleep(p.index * cfg.interval_s)
                    bolt11 = net.create_invoice(p.destination, p.amount_msat)
                    payment_hash = net.decode(bolt11).payment_hash
                    p.started_at = trio.current_time()

                    def on_event(ev: PaymentEvent) -> None:
                        line = p.apply(ev, trio.current_time())
                        if line:
                            display.event(now(), line)

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
                    p.finish(view, trio.current_time(), error)
                    display.event(
                        now(),
                        f"pay#{p.index + 1} {p.status}: "
                        f"{p.attempts} part(s), fee {p.fee_msat:,} msat"
                        + (f" ({p.error})" if p.error and p.status != "complete" else ""),
                    )

                try:
                    async with trio.open_nursery() as nursery:
                        for p in progress:
                            nursery.start_soon(pay, p)
                finally:
                    display.stop()

    clock = (
        trio.testing.MockClock(autojump_threshold=0)
        if speed <= 0
        else trio.testing.MockClock(rate=speed, autojump_threshold=IDLE_JUMP_S)
    )
    trio.run(main, clock=clock)
    return progress
