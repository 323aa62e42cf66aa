"""Output of ``barq bench``: a rich table, the JSON rows and a PNG plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from rich.table import Table

from barq.bench.metrics import BenchRow, PaymentRecord
from barq.errors import BarqError

__all__ = [
    "bench_table",
    "best_strategy",
    "rows_to_json",
    "write_json",
    "write_plot",
    "write_records",
]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def bench_table(rows: Sequence[BenchRow], *, title: str | None = None) -> Table:
    """A rich table with one line per (strategy, amount), amounts grouped together."""
    t = Table(
        title=title,
        header_style="bold",
        show_lines=False,
        caption="ok%: success over all payments; ok/feas: over feasible ones; "
        "att/rnd/fee/sim: medians (p90) over succeeded payments; "
        "fee/orc: median fee ratio to the oracle (total ratio); "
        "cpu: ms in strategies per payment",
    )
    t.add_column("strategy", no_wrap=True)
    for name in (
        "sat",
        "n",
        "feas",
        "ok",
        "ok%",
        "ok/feas",
        "att",
        "att p90",
        "rnd",
        "fee msat",
        "fee/orc",
        "sim s",
        "cpu p50",
        "cpu p95",
    ):
        t.add_column(name, justify="right", no_wrap=True)
    last_amount: int | None = None
    for r in sorted(rows, key=lambda r: r.amount_sat):
        if last_amount is not None and r.amount_sat != last_amount:
            t.add_section()
        last_amount = r.amount_sat
        t.add_row(
            r.strategy,
            f"{r.amount_sat:,}",
            str(r.payments),
            str(r.feasible),
            str(r.succeeded),
            _pct(r.success_rate),
            _pct(r.success_rate_feasible),
            _num(r.attempts_p50, "{:.1f}"),
            _num(r.attempts_p90, "{:.1f}"),
            _num(r.rounds_p50, "{:.1f}"),
            _num(r.fee_msat_p50, "{:,.0f}"),
            f"{_num(r.fee_ratio_p50, '{:.2f}')} ({_num(r.fee_ratio_total, '{:.2f}')})",
            _num(r.sim_time_s_p50, "{:.2f}"),
            _num(r.compute_ms_p50, "{:.1f}"),
            _num(r.compute_ms_p95, "{:.1f}"),
        )
    return t


def rows_to_json(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts (snake_case fields; non-finite floats become ``None``)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        d = msgspec.to_builtins(r)
        out.append(
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()
            }
        )
    return out


def _prepare(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BarqError(f"cannot create directory {path.parent}: {exc.strerror or exc}") from exc


def write_json(rows: Sequence[BenchRow], path: Path) -> None:
    """Write the rows to ``path`` as a JSON list (parent directories are created).

    Raises:
        BarqError: the file cannot be written.
    """
    _prepare(path)
    try:
        path.write_text(json.dumps(rows_to_json(rows), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BarqError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _sat_label(sat: int) -> str:
    for div, unit in ((100_000_000, " BTC"), (1_000_000, "M"), (1000, "k")):
        if sat >= div and sat % (div // 10 or 1) == 0:
            v = sat / div
            return f"{v:g}{unit}"
    return f"{sat:,}"


def write_records(records: Sequence[PaymentRecord], path: Path) -> None:
    """Write one JSON object per payment record (JSON lines; parent directories are created).

    Raises:
        BarqError: the file cannot be written.
    """
    _prepare(path)
    enc = msgspec.json.Encoder()
    try:
        with path.open("wb") as f:
            for r in records:
                f.write(enc.encode(r) + b"\n")
    except OSError as exc:
        raise BarqError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_plot(rows: Sequence[BenchRow], path: Path, *, title: str = "") -> None:
    """PNG: success rate over feasible payments vs amount (log x), one line per strategy.

    Raises:
        BarqError: matplotlib is missing or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the plot extra
        raise BarqError("--plot needs matplotlib: pip install 'barq[plot]'") from exc
    _prepare(path)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    try:
        by_strategy: dict[str, list[BenchRow]] = {}
        for r in rows:
            by_strategy.setdefault(r.strategy, []).append(r)
        markers = ("o", "s", "^", "D", "v", "P", "X", "*")
        styles = ("-", "--", "-.", ":")
        for k, (name, rs) in enumerate(by_strategy.items()):
            pts = sorted(
                (r.amount_sat, 100 * r.success_rate_feasible)
                for r in rs
                if r.success_rate_feasible is not None
            )
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    label=name,
                    marker=markers[k % len(markers)],
                    linestyle=styles[k % len(styles)],
                    markersize=7 - (k % 3),
                    alpha=0.85,
                )
        ax.set_xscale("log")
        amounts = sorted({r.amount_sat for r in rows})
        if amounts:
            ax.set_xticks(amounts, [_sat_label(a) for a in amounts])
            ax.minorticks_off()
        ax.set_xlabel("amount (sat)")
        ax.set_ylabel("success over feasible payments (%)")
        ax.set_ylim(-2, 102)
        ax.grid(True, which="both", alpha=0.3)
        if by_strategy:
            ax.legend(loc="lower left")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, format="png")
    except OSError as exc:
        raise BarqError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)


def best_strategy(rows: Sequence[BenchRow]) -> str | None:
    """The strategy with the highest mean success over feasible payments (over amounts).

    Ties go to the fewer median rounds (latency), then the lower total fee
    ratio, then the fewer median attempts (each averaged over amounts), then
    the name: the order of the goals (success, rounds, fees).
    ``None`` when no row has a feasible payment.
    """
    scores: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in rows:
        if r.success_rate_feasible is None:
            continue
        scores.setdefault(r.strategy, []).append(
            (
                -r.success_rate_feasible,
                r.rounds_p50 if r.rounds_p50 is not None else 0.0,
                r.fee_ratio_total if r.fee_ratio_total is not None else 0.0,
                r.attempts_p50 if r.attempts_p50 is not None else 0.0,
            )
        )
    if not scores:
        return None

    def key(name: str) -> tuple[float, ...]:
        xs = scores[name]
        return tuple(round(sum(x[k] for x in xs) / len(xs), 9) for k in range(4))

    return min(sorted(scores), key=key)
