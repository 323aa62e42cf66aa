"""How ``barq sim`` shows a run: plain lines, or a live table replayed at a chosen speed.

A display only *watches*: :func:`barq.bench.sim.run_sim` hands it a private
copy of a payment's state after every engine event, with the simulated time.
The simulation itself always runs on trio's ``MockClock`` with no link to the
wall clock, so what is simulated never depends on the display:
:class:`LiveDisplay` replays the events in its own thread, paced at ``speed``
simulated seconds per wall second, while the simulation runs ahead.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from barq.bench.sim import IDLE_JUMP_S, PaymentProgress

__all__ = ["Display", "LineDisplay", "LiveDisplay", "progress_table", "summary_table"]


class Display(Protocol):
    """Where ``run_sim`` reports progress (it must not touch the simulation)."""

    def start(self, payments: Sequence[PaymentProgress], title: str) -> None:
        """Before the first payment; ``payments`` are copies in their initial state."""

    def event(self, t: float, line: str | None, state: PaymentProgress) -> None:
        """After an event at simulated time ``t`` (seconds since the start).

        ``line`` describes it (``None`` for a silent state change); ``state``
        is a private copy of the payment's state after it.
        """

    def stop(self, *, interrupted: bool = False) -> None:
        """After the last event (or on an interruption: stop at once)."""


class LineDisplay:
    """One plain line per engine event (``--no-live``, or stdout not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def start(self, payments: Sequence[PaymentProgress], title: str) -> None:
        self.console.print(title, highlight=False, markup=False)

    def event(self, t: float, line: str | None, state: PaymentProgress) -> None:
        if line:
            self.console.print(f"[{t:8.3f}s] {line}", highlight=False, markup=False)

    def stop(self, *, interrupted: bool = False) -> None:
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

    ``now`` is the simulated time shown (elapsed times of running payments).
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


_Item = tuple[float, str | None, PaymentProgress]


class LiveDisplay:
    """A rich ``Live`` table replaying the events at ``speed`` (terminal only).

    Events queue up while the simulation runs ahead; a replay thread shows
    each one when the wall clock reaches its simulated time divided by
    ``speed`` (0: at once), skipping any idle wait longer than
    :data:`~barq.bench.sim.IDLE_JUMP_S` wall seconds.
    """

    def __init__(self, console: Console, *, speed: float = 1.0) -> None:
        self.console = console
        self.speed = speed
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._payments: list[PaymentProgress] = []
        self._title = ""
        self._now = 0.0
        self._last: list[str] = []
        self._live: Live | None = None
        self._thread: threading.Thread | None = None
        self._abort = threading.Event()

    def _render(self) -> RenderableType:
        log = Text("\n".join(self._last[-4:]), style="dim")
        title = f"{self._title}\nsimulated time {self._now:.2f} s"
        return Group(progress_table(self._payments, self._now, title), log)

    def start(self, payments: Sequence[PaymentProgress], title: str) -> None:
        self._payments = list(payments)
        self._title = title
        self._live = Live(
            console=self.console,
            refresh_per_second=12,
            transient=False,
            get_renderable=self._render,
        )
        self._live.start()
        self._thread = threading.Thread(target=self._replay, name="barq-sim-replay", daemon=True)
        self._thread.start()

    def event(self, t: float, line: str | None, state: PaymentProgress) -> None:
        self._queue.put((t, line, state))

    def _replay(self) -> None:
        base_wall, base_t = time.monotonic(), 0.0
        while not self._abort.is_set():
            item = self._queue.get()
            if item is None:  # stop
                return
            t, line, state = item
            if self.speed > 0:
                wait = base_wall + (t - base_t) / self.speed - time.monotonic()
                if wait > IDLE_JUMP_S:  # nothing to watch: jump ahead
                    base_wall, base_t = time.monotonic(), t
                elif wait > 0 and self._abort.wait(wait):
                    return
            self._payments[state.index] = state
            self._now = t
            if line:
                self._last.append(f"[{t:7.2f}s] {line}")
                del self._last[:-4]

    def stop(self, *, interrupted: bool = False) -> None:
        if interrupted:
            self._abort.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._live is not None:
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
