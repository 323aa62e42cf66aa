"""The numbers of an experiment, and whether a difference between two is real (pure).

* success rate with a Wilson score interval (95 %), which stays inside [0, 1] and is honest
  for small samples and rates near 0 or 1;
* fee in ppm of the amount, attempts and time to answer as median / p90;
* a comparison of two groups: success by a two-sided two-proportion z-test, fees by a
  Mann-Whitney U test; a group under :data:`MIN_SAMPLE` payments is "too small to tell".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from scipy import stats as _sp

from barq.store._lab import LabPayment

__all__ = [
    "AMOUNT_BUCKETS",
    "MIN_SAMPLE",
    "Z95",
    "amount_bucket",
    "compare",
    "fee_ppm",
    "quantile",
    "summarize",
    "wilson",
]

Z95 = 1.959963984540054
#: below this many payments in either group, a comparison says the sample is too small
MIN_SAMPLE = 10
#: (label, lower bound in sat inclusive, upper bound in sat exclusive)
AMOUNT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("<10k sat", 0, 10_000),
    ("10k-100k sat", 10_000, 100_000),
    ("100k-1M sat", 100_000, 1_000_000),
    (">=1M sat", 1_000_000, None),
)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (``(0, 1)`` when ``n == 0``).

    Raises:
        ValueError: ``successes`` outside ``0..n``.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (linear interpolation, numpy's default); ``None`` when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def amount_bucket(amount_msat: int) -> str:
    """The label of the amount bucket of ``amount_msat`` (:data:`AMOUNT_BUCKETS`)."""
    sat = amount_msat // 1000
    for label, lo, hi in AMOUNT_BUCKETS:
        if sat >= lo and (hi is None or sat < hi):
            return label
    return AMOUNT_BUCKETS[-1][0]  # pragma: no cover - the last bucket is open


def fee_ppm(p: LabPayment) -> float:
    """The fee of a completed payment in parts per million of its amount."""
    return p.fee_msat * 1_000_000 / p.amount_msat if p.amount_msat else 0.0


def _answer_s(p: LabPayment) -> float | None:
    return None if p.completed_at is None else max(0.0, p.completed_at - p.created_at)


def _round(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def summarize(payments: Iterable[LabPayment]) -> dict[str, Any]:
    """The figures of one group of payments (pending ones are left out).

    Returns:
        ``payments``, ``succeeded``, ``success_rate``, ``success_ci95`` ([lo, hi]),
        ``fee_ppm_median``, ``fee_ppm_p90`` (succeeded payments), ``attempts_median``,
        ``time_s_median``, ``time_s_p90`` (time to answer, succeeded or failed).
    """
    ended = [p for p in payments if p.status != "pending"]
    ok = [p for p in ended if p.status == "complete"]
    n, k = len(ended), len(ok)
    lo, hi = wilson(k, n)
    fees = [fee_ppm(p) for p in ok]
    times = [t for p in ended if (t := _answer_s(p)) is not None]
    return {
        "payments": n,
        "succeeded": k,
        "success_rate": round(k / n, 4) if n else None,
        "success_ci95": [round(lo, 4), round(hi, 4)],
        "fee_ppm_median": _round(quantile(fees, 0.5)),
        "fee_ppm_p90": _round(quantile(fees, 0.9)),
        "attempts_median": _round(quantile([float(p.attempts) for p in ended], 0.5)),
        "time_s_median": _round(quantile(times, 0.5), 3),
        "time_s_p90": _round(quantile(times, 0.9), 3),
    }


def _two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of "same success rate" (pooled z-test); 1.0 when undefined."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return float(math.erfc(abs(z) / math.sqrt(2)))


def _verdict(p: float, higher: bool, what: str, alpha: float) -> str:
    if p < alpha:
        return f"{what} significantly {'higher' if higher else 'lower'} (p={p:.3g})"
    return f"no significant difference in {what} (p={p:.2g})"


def compare(
    a: Sequence[LabPayment], b: Sequence[LabPayment], *, alpha: float = 0.05
) -> dict[str, str]:
    """Is group ``a`` different from group ``b``? One line each for success and fee.

    Returns:
        ``{"success": ..., "fee": ...}``: "too small to tell (n=3 vs 40; need 10 each)",
        "success significantly higher (p=0.003)" or "no significant difference in success
        (p=0.41)" (from ``a``'s side); likewise for the fee ppm of succeeded payments.
    """
    ea = [p for p in a if p.status != "pending"]
    eb = [p for p in b if p.status != "pending"]
    need = f"need {MIN_SAMPLE} each"
    if len(ea) < MIN_SAMPLE or len(eb) < MIN_SAMPLE:
        small = f"sample too small to tell (n={len(ea)} vs {len(eb)}; {need})"
        return {"success": small, "fee": small}
    ka = sum(p.status == "complete" for p in ea)
    kb = sum(p.status == "complete" for p in eb)
    p_success = _two_proportions(ka, len(ea), kb, len(eb))
    out = {"success": _verdict(p_success, ka / len(ea) > kb / len(eb), "success", alpha)}
    fa = [fee_ppm(p) for p in ea if p.status == "complete"]
    fb = [fee_ppm(p) for p in eb if p.status == "complete"]
    if len(fa) < MIN_SAMPLE or len(fb) < MIN_SAMPLE:
        out["fee"] = f"too few succeeded payments to tell (n={len(fa)} vs {len(fb)}; {need})"
    elif fa == fb or (len(set(fa)) == 1 and set(fa) == set(fb)):
        out["fee"] = "no difference in fee (identical)"
    else:
        p_fee = float(_sp.mannwhitneyu(fa, fb, alternative="two-sided").pvalue)
        higher = (quantile(fa, 0.5) or 0.0) > (quantile(fb, 0.5) or 0.0)
        out["fee"] = _verdict(p_fee, higher, "fee", alpha)
    return out


def grouped(
    payments: Iterable[LabPayment], key: Callable[[LabPayment], str]
) -> dict[str, list[LabPayment]]:
    """``payments`` by ``key``, in first-seen order."""
    out: dict[str, list[LabPayment]] = {}
    for p in payments:
        out.setdefault(key(p), []).append(p)
    return out
