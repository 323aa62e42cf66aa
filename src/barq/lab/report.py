"""``barq report``: the node's payment history as one picture (PNG or SVG).

Six panels: success rate over time per strategy (or experiment), fee ppm distribution,
time-to-answer CDF, parts per payment, failures by hop distance, failures by failure code.
The figures are computed by pure functions (:func:`report_data`); only :func:`draw_report`
needs matplotlib, imported when called (``pip install 'barq[plot]'``).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from barq.errors import InvalidParams
from barq.lab.stats import fee_ppm, grouped
from barq.store._lab import LabAttempt, LabPayment

__all__ = ["FORMATS", "ReportData", "draw_report", "need_matplotlib", "report_data"]

FORMATS = (".png", ".svg")
PLOT_INSTALL = "pip install 'barq[plot]' (or pip install matplotlib)"
#: time bins of the success-over-time panel
TIME_BINS = 12


class ReportData(msgspec.Struct, frozen=True, kw_only=True):
    """What the panels show (all plain numbers; tests read it without matplotlib).

    Attributes:
        success_over_time: group -> [(bin start in minutes after the first payment, success
            rate, payments)].
        fee_ppm: group -> fees (ppm) of its succeeded payments.
        answer_s: group -> time to answer of its ended payments, sorted (for the CDF).
        parts: parts of a succeeded payment -> how many payments.
        fail_hops: erring hop distance (1: our peer's channel...) -> failed parts.
        fail_codes: failure code name -> failed parts (the 8 most common, then ``other``).
        payments: payments counted (pending ones excluded).
    """

    success_over_time: dict[str, list[tuple[float, float, int]]]
    fee_ppm: dict[str, list[float]]
    answer_s: dict[str, list[float]]
    parts: dict[int, int]
    fail_hops: dict[int, int]
    fail_codes: dict[str, int]
    payments: int


def _group(p: LabPayment) -> str:
    return p.experiment if p.experiment not in (None, "default") else p.strategy


def _over_time(ps: Sequence[LabPayment], t0: float, width: float) -> list[tuple[float, float, int]]:
    bins: dict[int, list[LabPayment]] = {}
    for p in ps:
        i = min(TIME_BINS - 1, int((p.created_at - t0) / width)) if width > 0 else 0
        bins.setdefault(i, []).append(p)
    return [
        (i * width / 60, sum(p.status == "complete" for p in b) / len(b), len(b))
        for i, b in sorted(bins.items())
    ]


def report_data(payments: Sequence[LabPayment], attempts: Sequence[LabAttempt]) -> ReportData:
    """The panels' figures from the store's records (see :class:`ReportData`)."""
    ended = [p for p in payments if p.status != "pending"]
    groups = grouped(ended, _group)
    t0 = min((p.created_at for p in ended), default=0.0)
    t1 = max((p.created_at for p in ended), default=0.0)
    width = (t1 - t0) / TIME_BINS
    failed = [
        a for a in attempts if a.state in ("failed", "resplit") and a.erring_index is not None
    ]
    codes = Counter(a.failcodename or f"code {a.failcode}" for a in failed)
    top = dict(codes.most_common(8))
    rest = sum(codes.values()) - sum(top.values())
    if rest:
        top["other"] = rest
    return ReportData(
        success_over_time={g: _over_time(ps, t0, width) for g, ps in groups.items()},
        fee_ppm={g: [fee_ppm(p) for p in ps if p.status == "complete"] for g, ps in groups.items()},
        answer_s={
            g: sorted(p.completed_at - p.created_at for p in ps if p.completed_at is not None)
            for g, ps in groups.items()
        },
        parts=dict(sorted(Counter(p.parts for p in ended if p.status == "complete").items())),
        fail_hops=dict(sorted(Counter(a.erring_index or 0 for a in failed).items())),
        fail_codes=top,
        payments=len(ended),
    )


def need_matplotlib() -> None:
    """Raises InvalidParams with how to install matplotlib when it is missing."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise InvalidParams(f"barq report needs matplotlib, which is not installed: {PLOT_INSTALL}")


def _panels(fig: Any, data: ReportData) -> None:
    ax = fig.subplots(2, 3).ravel()
    for g, pts in data.success_over_time.items():
        ax[0].plot([t for t, _, _ in pts], [100 * r for _, r, _ in pts], marker="o", label=g)
    ax[0].set(
        title="success rate over time", ylabel="% of payments", xlabel="minutes after the first"
    )
    ax[0].set_ylim(-5, 105)
    fees = {g: v for g, v in data.fee_ppm.items() if v}
    if fees:
        ax[1].hist(list(fees.values()), bins=20, label=list(fees), histtype="step")
    ax[1].set(title="fee of succeeded payments", xlabel="ppm of the amount", ylabel="payments")
    for g, ts in data.answer_s.items():
        if ts:
            ax[2].step(ts, [(i + 1) / len(ts) for i in range(len(ts))], where="post", label=g)
    ax[2].set(title="time to answer (CDF)", xlabel="seconds (log)", ylabel="share of payments")
    if any(data.answer_s.values()):
        ax[2].set_xscale("symlog", linthresh=0.01)
    ax[3].bar([str(k) for k in data.parts], list(data.parts.values()))
    ax[3].set(title="parts per succeeded payment", xlabel="parts", ylabel="payments")
    ax[4].bar([str(k) for k in data.fail_hops], list(data.fail_hops.values()), color="tab:red")
    ax[4].set(title="failures by hop distance", xlabel="erring node (0 = us)", ylabel="parts")
    ax[5].barh(list(data.fail_codes), list(data.fail_codes.values()), color="tab:red")
    ax[5].set(title="failures by code", xlabel="parts")
    for a in ax[:3]:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize="small")


def draw_report(
    payments: Sequence[LabPayment],
    attempts: Sequence[LabAttempt],
    out: Path,
    *,
    title: str = "Barq payment history",
) -> ReportData:
    """Draw the six panels into ``out`` (``.png`` or ``.svg``).

    Returns:
        the figures drawn.

    Raises:
        InvalidParams: matplotlib is missing (with how to install it), or ``out`` has
            another suffix.
    """
    if out.suffix.lower() not in FORMATS:
        raise InvalidParams(f"-o {out}: the report is written as {' or '.join(FORMATS)}")
    need_matplotlib()
    from matplotlib.figure import Figure

    data = report_data(payments, attempts)
    fig = Figure(figsize=(16, 9), layout="constrained")
    fig.suptitle(f"{title} ({data.payments} payments, {len(attempts)} parts)")
    _panels(fig, data)
    fig.savefig(out)
    return data
