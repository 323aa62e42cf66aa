"""``barqexperiments`` / ``barq experiments``: the figures of each experiment, as JSON or text.

Payments are grouped by the experiment the lab assigned them (``default`` for the rest of
the percentages, ``auto`` for the bandit's choices); payments the lab never assigned (an
explicit ``strategy``, or paid before any experiment) are not counted. Each experiment is
compared with ``default`` (:func:`barq.lab.stats.compare`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from barq.lab.experiments import BUCKETS, Experiment
from barq.lab.stats import AMOUNT_BUCKETS, amount_bucket, compare, grouped, summarize
from barq.store._lab import LabPayment

__all__ = ["BASELINE", "experiments_report", "format_report"]

#: the group every experiment is compared with
BASELINE = "default"


def _meta(
    name: str, group: list[LabPayment], experiments: Sequence[Experiment], default: str | None
) -> dict[str, Any]:
    configured = {e.name: e for e in experiments}
    e = configured.get(name)
    if e is not None:
        return {
            "name": name,
            "strategy": e.strategy,
            "parameters": dict(e.parameters),
            "percent": e.percent,
        }
    if name == BASELINE and (experiments or default):
        rest = BUCKETS - sum(x.buckets for x in experiments)
        return {
            "name": name,
            "strategy": default or (group[-1].strategy if group else None),
            "parameters": {},
            "percent": rest * 100 / BUCKETS,
        }
    strategies = sorted({p.strategy for p in group})
    return {
        "name": name,
        "strategy": ", ".join(strategies) if strategies else None,
        "parameters": {},
        "percent": None,
    }


def experiments_report(
    payments: Sequence[LabPayment],
    experiments: Sequence[Experiment] = (),
    *,
    default_strategy: str | None = None,
) -> dict[str, Any]:
    """The ``barqexperiments`` result from the lab's payments.

    Args:
        payments: :func:`barq.store._lab.read_lab_payments` (already filtered by time).
        experiments: the configured experiments (their rows appear even without payments;
            the tools reading a file pass none).
        default_strategy: the strategy of the ``default`` group, when known.

    Returns:
        ``{"experiments": [...], "buckets": [...]}``: each experiment's name, strategy,
        parameters, percent and :func:`~barq.lab.stats.summarize` figures plus
        ``versus_default`` (significance in words); ``buckets`` the same figures per
        experiment and amount bucket (only non-empty ones).
    """
    assigned = [p for p in payments if p.experiment is not None]
    groups = grouped(assigned, lambda p: p.experiment or BASELINE)
    names = [e.name for e in experiments]
    if experiments or default_strategy:
        names.append(BASELINE)
    names += [n for n in groups if n not in names]
    base = groups.get(BASELINE, [])
    rows: list[dict[str, Any]] = []
    for name in names:
        group = groups.get(name, [])
        row = {**_meta(name, group, experiments, default_strategy), **summarize(group)}
        if name != BASELINE:
            row["versus_default"] = compare(group, base)
        rows.append(row)
    buckets: list[dict[str, Any]] = []
    for label, _, _ in AMOUNT_BUCKETS:
        for name in names:
            group = [p for p in groups.get(name, []) if amount_bucket(p.amount_msat) == label]
            if group:
                buckets.append({"bucket": label, "experiment": name, **summarize(group)})
    return {"experiments": rows, "buckets": buckets}


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: Any, unit: str = "") -> str:
    return "-" if x is None else f"{x:g}{unit}"


_HEAD = ("experiment", "strategy", "share", "n", "ok", "success (95% CI)", "fee ppm med/p90")
_HEAD2 = ("attempts med", "time med/p90")


def _line(row: dict[str, Any], name: str) -> tuple[str, ...]:
    lo, hi = row["success_ci95"]
    share = "-" if row.get("percent") is None else f"{row['percent']:g}%"
    return (
        name,
        str(row.get("strategy") or "-"),
        share,
        str(row["payments"]),
        str(row["succeeded"]),
        f"{_pct(row['success_rate'])} ({_pct(lo)}-{_pct(hi)})",
        f"{_num(row['fee_ppm_median'])}/{_num(row['fee_ppm_p90'])}",
        _num(row["attempts_median"]),
        f"{_num(row['time_s_median'], 's')}/{_num(row['time_s_p90'], 's')}",
    )


def _table(lines: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines]


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table for a terminal (one experiment a line, then the
    comparisons with ``default``, then the amount buckets)."""
    rows = report["experiments"]
    if not rows:
        return "no payment was assigned by the lab yet (set barq-experiment or strategy=auto)\n"
    out = _table([_HEAD + _HEAD2] + [_line(r, r["name"]) for r in rows])
    verdicts = [r for r in rows if "versus_default" in r]
    if verdicts:
        out += ["", "versus default:"]
        for r in verdicts:
            v = r["versus_default"]
            if v["success"] == v["fee"]:
                out.append(f"  {r['name']}: {v['success']}")
            else:
                out.append(f"  {r['name']}: {v['success']}; {v['fee']}")
    if report["buckets"]:
        out += ["", "by amount:"]
        lines: list[tuple[str, ...]] = [("bucket", *_HEAD[:1], *_HEAD[3:], *_HEAD2)]
        for b in report["buckets"]:
            full = _line({**b, "strategy": None, "percent": None}, b["experiment"])
            lines.append((b["bucket"], *full[:1], *full[3:]))
        out += ["  " + x for x in _table(lines)]
    return "\n".join(out) + "\n"
