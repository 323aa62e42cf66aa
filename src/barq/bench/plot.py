"""The figure of ``barq bench --plot``: six panels a paper can print as they are.

(a) success over feasible payments with 95 % Wilson intervals, (b) total fee
over the oracle's, (c) attempts, (d) compute time, (e) the CDF of the fee in
ppm of the amount, (f) sequential rounds; amounts on a log axis, one colour
and one marker per strategy in every panel (Okabe-Ito, readable in grey and
by colour-blind readers), and the run's metadata in a caption line. The
format follows each file's suffix: ``.png`` (300 dpi), ``.svg`` or ``.pdf``
(fonts embedded as TrueType).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from barq.bench.metrics import BenchRow, PaymentRecord
from barq.errors import BarqError

__all__ = ["FORMATS", "PALETTE", "PLOT_EXTRA", "wilson_interval", "write_figure"]

#: output suffixes ``write_figure`` understands
FORMATS = (".png", ".svg", ".pdf")
#: what to install for ``--plot``
PLOT_EXTRA = "pip install 'barq[plot]'"
#: Okabe & Ito's colour-blind-safe palette (black last)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (95 % by default).

    Returns:
        ``(low, high)`` in ``[0, 1]``; ``(0, 1)`` when ``n`` is 0.
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return min(low, p), max(high, p)  # rounding must not put p outside its own interval


def _sat_label(sat: int) -> str:
    for div, unit in ((100_000_000, " BTC"), (1_000_000, "M"), (1000, "k")):
        if sat >= div and sat % (div // 10 or 1) == 0:
            return f"{sat / div:g}{unit}"
    return f"{sat:,}"


def _fee_ppm(r: PaymentRecord) -> float:
    return r.fee_msat * 1e6 / r.amount_msat


class _Axes:
    """The six panels and the per-strategy style (colour, marker, dodge)."""

    def __init__(self, plt: Any, strategies: Sequence[str], amounts: Sequence[int]) -> None:
        self.fig, grid = plt.subplots(3, 2, figsize=(7.2, 8.4), layout="constrained")
        self.ax = [a for pair in grid for a in pair]
        self.strategies = list(strategies)
        self.amounts = sorted(amounts)

    def style(self, name: str) -> dict[str, Any]:
        k = self.strategies.index(name)
        return {
            "color": PALETTE[k % len(PALETTE)],
            "marker": _MARKERS[k % len(_MARKERS)],
            "markersize": 4.5,
            "linewidth": 1.2,
            "label": name,
        }

    def dodge(self, name: str, x: Sequence[float]) -> list[float]:
        """Amounts shifted a little per strategy (log axis) so error bars do not overlap."""
        n = len(self.strategies)
        f = 10 ** (0.025 * (self.strategies.index(name) - (n - 1) / 2))
        return [v * f for v in x]

    def amount_axis(self, ax: Any) -> None:
        ax.set_xscale("log")
        ax.set_xticks(self.amounts, [_sat_label(a) for a in self.amounts])
        ax.minorticks_off()
        ax.set_xlabel("amount (sat)")
        ax.grid(True, which="major", alpha=0.25, linewidth=0.5)

    @staticmethod
    def log_y(ax: Any) -> None:
        """A log y axis labelled with plain numbers (0.5, 1, 2, 10, 100)."""
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        subs = (1.0, 2.0, 5.0) if hi > 30 * lo else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _by_strategy(rows: Sequence[BenchRow]) -> dict[str, list[BenchRow]]:
    out: dict[str, list[BenchRow]] = {}
    for r in rows:
        out.setdefault(r.strategy, []).append(r)
    return {k: sorted(v, key=lambda r: r.amount_sat) for k, v in out.items()}


def _success(p: _Axes, ax: Any, groups: dict[str, list[BenchRow]]) -> None:
    for name, rs in groups.items():
        pts = [r for r in rs if r.feasible > 0]
        if not pts:
            continue
        ci = [wilson_interval(r.succeeded_feasible, r.feasible) for r in pts]
        y = [100 * r.succeeded_feasible / r.feasible for r in pts]
        err = [[max(0.0, yy - 100 * lo) for yy, (lo, _) in zip(y, ci, strict=True)]]
        err.append([max(0.0, 100 * hi - yy) for yy, (_, hi) in zip(y, ci, strict=True)])
        ax.errorbar(
            p.dodge(name, [r.amount_sat for r in pts]), y, yerr=err, capsize=2, **p.style(name)
        )
    p.amount_axis(ax)
    ax.set_ylim(-3, 103)
    ax.set_ylabel("success / feasible (%)")
    ax.set_title("(a) success over feasible payments, 95 % CI", loc="left")


def _ratio(p: _Axes, ax: Any, groups: dict[str, list[BenchRow]]) -> None:
    for name, rs in groups.items():
        pts = [(r.amount_sat, r.fee_ratio_total) for r in rs if r.fee_ratio_total]
        if pts:
            ax.plot(*zip(*pts, strict=True), **p.style(name))
    ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle="--")
    p.amount_axis(ax)
    p.log_y(ax)
    ax.set_ylabel("total fee ÷ oracle fee")
    ax.set_title("(b) fee over the oracle's minimum", loc="left")


def _spread(
    p: _Axes, ax: Any, groups: dict[str, list[BenchRow]], mid: str, high: str, log: bool
) -> None:
    """Median markers with a whisker up to the high percentile."""
    for name, rs in groups.items():
        pts = [r for r in rs if getattr(r, mid) is not None]
        if not pts:
            continue
        y = [float(getattr(r, mid)) for r in pts]
        top = [
            float(getattr(r, high) if getattr(r, high) is not None else v)
            for r, v in zip(pts, y, strict=True)
        ]
        err = [[0.0] * len(y), [t - v for t, v in zip(top, y, strict=True)]]
        ax.errorbar(
            p.dodge(name, [r.amount_sat for r in pts]), y, yerr=err, capsize=2, **p.style(name)
        )
    p.amount_axis(ax)
    if log:
        p.log_y(ax)


def _fee_cdf(p: _Axes, ax: Any, records: Sequence[PaymentRecord]) -> None:
    for name in p.strategies:
        fees = sorted(_fee_ppm(r) for r in records if r.strategy == name and r.succeeded)
        if not fees:
            continue
        n = len(fees)
        style = p.style(name) | {"marker": None}
        ax.step(fees, [(i + 1) / n for i in range(n)], where="post", **style)
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fee (ppm of the amount; linear below 1)")
    ax.set_ylabel("fraction of succeeded payments")
    ax.grid(True, which="major", alpha=0.25, linewidth=0.5)
    ax.set_title("(e) fee CDF, all amounts", loc="left")


def write_figure(
    rows: Sequence[BenchRow],
    records: Sequence[PaymentRecord],
    paths: Sequence[Path],
    *,
    caption: str = "",
) -> None:
    """Draw the figure once and save it to every path (format from the suffix).

    Args:
        rows: the summary rows (panels a-d, f).
        records: the per-payment records (panel e, the fee CDF).
        paths: output files, each ``.png``, ``.svg`` or ``.pdf``.
        caption: one line under the panels (the run's metadata).

    Raises:
        BarqError: matplotlib is missing, or a file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BarqError(f"--plot needs matplotlib: {PLOT_EXTRA}") from exc
    groups = _by_strategy(rows)
    rc: Any = {
        "font.size": 8,
        "axes.titlesize": 8.5,
        "legend.fontsize": 8,
        "pdf.fonttype": 42,
        "svg.fonttype": "path",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with plt.rc_context(rc):
        p = _Axes(plt, list(groups) or [r.strategy for r in records], [r.amount_sat for r in rows])
        try:
            _success(p, p.ax[0], groups)
            _ratio(p, p.ax[1], groups)
            _spread(p, p.ax[2], groups, "attempts_p50", "attempts_p90", log=True)
            p.ax[2].set_ylabel("attempts (parts sent)")
            p.ax[2].set_title("(c) attempts per succeeded payment, p50 to p90", loc="left")
            _spread(p, p.ax[3], groups, "compute_ms_p50", "compute_ms_p95", log=True)
            p.ax[3].set_ylabel("compute time (ms)")
            p.ax[3].set_title("(d) time in strategies per payment, p50 to p95", loc="left")
            _fee_cdf(p, p.ax[4], records)
            _spread(p, p.ax[5], groups, "rounds_p50", "rounds_max", log=True)
            p.ax[5].set_ylabel("rounds")
            p.ax[5].set_title("(f) sequential rounds, p50 to max", loc="left")
            handles, labels = p.ax[0].get_legend_handles_labels()
            if handles:
                p.fig.legend(
                    handles,
                    labels,
                    loc="outside upper center",
                    ncols=min(len(labels), 6),
                    frameon=False,
                )
            if caption:
                p.fig.text(0.5, -0.005, caption, ha="center", va="top", fontsize=6.5, wrap=True)
            for path in paths:
                fmt = path.suffix.lower().lstrip(".")
                extra: dict[str, Any] = (
                    {"metadata": {"Date": None}} if fmt in ("svg", "pdf") else {}
                )
                if fmt == "png":
                    extra["dpi"] = 300
                p.fig.savefig(path, format=fmt, bbox_inches="tight", **extra)
        except OSError as exc:
            raise BarqError(f"cannot write the figure: {exc.strerror or exc}") from exc
        finally:
            plt.close(p.fig)
