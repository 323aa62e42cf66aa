"""Per-payment records and the per-(strategy, amount) summary rows of ``barq bench``.

Definitions (also in ``docs/bench.md``):

* **attempts**: ``sendpay`` calls, i.e. parts sent (``PaymentView.attempts``);
* **rounds**: the longest chain of sequential attempts. A part is in round 1
  unless it started at or after another part of the same payment ended; then
  it is one round later than the latest-round such part;
* **percentiles**: linear interpolation between closest ranks (numpy's
  default), ``None`` for an empty sample;
* **fee ratio**: a succeeded payment's fee over the oracle's min-cost fee with
  the true liquidity (``1.0`` when both are 0, ``inf`` when only the oracle's is).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import msgspec

from barq.model.payment import PartState, PartView

__all__ = [
    "BenchRow",
    "PaymentRecord",
    "fee_ratio",
    "percentile",
    "rounds",
    "summarize",
]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated.

    Returns:
        ``None`` when ``values`` is empty. ``inf`` values sort last.

    Raises:
        ValueError: ``q`` outside ``[0, 100]``.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile: q={q} is outside [0, 100]")
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    if frac == 0.0 or xs[lo] == xs[hi]:
        return xs[lo]
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def rounds(parts: Sequence[PartView]) -> int:
    """Length of the longest chain of sequential attempts among ``parts``.

    Parts still ``PLANNED`` (never sent) do not count. A part that has not
    finished cannot be followed. ``0`` when nothing was sent.
    """
    sent = sorted(
        (p for p in parts if p.state != PartState.PLANNED), key=lambda p: (p.started_at, p.partid)
    )
    level: list[tuple[float | None, int]] = []  # (finished_at, round) of parts seen so far
    best = 0
    for p in sent:
        r = 1 + max((lv for fin, lv in level if fin is not None and fin <= p.started_at), default=0)
        level.append((p.finished_at, r))
        best = max(best, r)
    return best


def fee_ratio(fee_msat: int, oracle_fee_msat: int) -> float:
    """``fee / oracle fee``; ``1.0`` when both are 0, ``inf`` when only the oracle's is 0."""
    if oracle_fee_msat <= 0:
        return 1.0 if fee_msat <= 0 else math.inf
    return fee_msat / oracle_fee_msat


class PaymentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One benchmark payment of one strategy (the raw material of a :class:`BenchRow`).

    ``oracle_fee_msat`` is ``None`` when the payment was infeasible or the
    min-cost oracle found no flow; ``sim_time_s`` is simulated seconds from
    ``pay()`` to its result; ``compute_s`` wall-clock seconds in strategies.
    """

    strategy: str
    amount_msat: int
    source: str
    destination: str
    feasible: bool
    max_flow_msat: int
    oracle_fee_msat: int | None
    succeeded: bool
    attempts: int
    rounds: int
    fee_msat: int
    sim_time_s: float
    compute_s: float
    error: str | None = None


class BenchRow(msgspec.Struct, frozen=True, kw_only=True):
    """One (strategy, amount) line of the benchmark table and JSON.

    Rates are fractions in ``[0, 1]`` (``None`` with no payment to count);
    ``*_p50``/``*_p90``/``*_p95`` are percentiles over succeeded payments for
    attempts, rounds, fee, fee ratio and simulated time, over all payments for
    compute time. ``fee_ratio_total`` is the sum of fees over the sum of
    oracle fees of the succeeded payments that have an oracle fee.
    """

    strategy: str
    amount_sat: int
    payments: int
    feasible: int
    succeeded: int
    succeeded_feasible: int
    success_rate: float | None
    success_rate_feasible: float | None
    attempts_p50: float | None
    attempts_p90: float | None
    rounds_p50: float | None
    rounds_max: int | None
    fee_msat_p50: float | None
    fee_ratio_p50: float | None
    fee_ratio_total: float | None
    sim_time_s_p50: float | None
    compute_ms_p50: float | None
    compute_ms_p95: float | None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def summarize(records: Iterable[PaymentRecord]) -> list[BenchRow]:
    """Group ``records`` by (strategy, amount) and compute one :class:`BenchRow` each.

    Rows come out in first-seen strategy order, then by increasing amount.
    Non-finite values (an infinite fee ratio median) become ``None``.
    """
    groups: dict[tuple[str, int], list[PaymentRecord]] = {}
    order: list[str] = []
    for r in records:
        if r.strategy not in order:
            order.append(r.strategy)
        groups.setdefault((r.strategy, r.amount_msat), []).append(r)
    rows: list[BenchRow] = []
    for (strategy, amount_msat), rs in sorted(
        groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])
    ):
        ok = [r for r in rs if r.succeeded]
        feas = [r for r in rs if r.feasible]
        ok_feas = [r for r in feas if r.succeeded]
        with_oracle = [r for r in ok if r.oracle_fee_msat is not None]
        ratios = [fee_ratio(r.fee_msat, r.oracle_fee_msat or 0) for r in with_oracle]
        oracle_sum = sum(r.oracle_fee_msat or 0 for r in with_oracle)
        fee_sum = sum(r.fee_msat for r in with_oracle)
        total = (
            fee_sum / oracle_sum
            if oracle_sum > 0
            else (1.0 if with_oracle and fee_sum == 0 else None)
        )
        rows.append(
            BenchRow(
                strategy=strategy,
                amount_sat=amount_msat // 1000,
                payments=len(rs),
                feasible=len(feas),
                succeeded=len(ok),
                succeeded_feasible=len(ok_feas),
                success_rate=len(ok) / len(rs) if rs else None,
                success_rate_feasible=len(ok_feas) / len(feas) if feas else None,
                attempts_p50=percentile((r.attempts for r in ok), 50),
                attempts_p90=percentile((r.attempts for r in ok), 90),
                rounds_p50=percentile((r.rounds for r in ok), 50),
                rounds_max=max((r.rounds for r in ok), default=None),
                fee_msat_p50=percentile((r.fee_msat for r in ok), 50),
                fee_ratio_p50=_finite(percentile(ratios, 50)),
                fee_ratio_total=_finite(total),
                sim_time_s_p50=percentile((r.sim_time_s for r in ok), 50),
                compute_ms_p50=percentile((r.compute_s * 1000 for r in rs), 50),
                compute_ms_p95=percentile((r.compute_s * 1000 for r in rs), 95),
            )
        )
    return rows
