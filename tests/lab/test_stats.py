"""The lab's statistics against known values."""

from __future__ import annotations

import pytest
from helpers import pay

from barq.lab.stats import amount_bucket, compare, quantile, summarize, wilson


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # Wilson score intervals, z = 1.96 (e.g. Newcombe 1998, Table I; R's prop.test without
        # continuity correction)
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (81, 263, 0.2553, 0.3662),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_quantile_and_buckets() -> None:
    assert quantile([], 0.5) is None
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([float(x) for x in range(11)], 0.9) == pytest.approx(9.0)
    assert amount_bucket(9_999_999) == "<10k sat"
    assert amount_bucket(10_000_000) == "10k-100k sat"
    assert amount_bucket(100_000_000) == "100k-1M sat"
    assert amount_bucket(1_000_000_000) == ">=1M sat"


def test_summarize_figures() -> None:
    ps = [pay(i, fee_msat=1000 * (i + 1), attempts=i + 1, took_s=float(i + 1)) for i in range(4)]
    ps.append(pay(9, ok=False, attempts=7, took_s=10.0))
    s = summarize(ps)
    assert s["payments"] == 5 and s["succeeded"] == 4 and s["success_rate"] == 0.8
    assert s["success_ci95"] == [round(x, 4) for x in wilson(4, 5)]
    # fees 1000..4000 msat of 50,000,000 msat: 20..80 ppm
    assert s["fee_ppm_median"] == 50.0 and s["fee_ppm_p90"] == 74.0
    assert s["attempts_median"] == 3.0
    assert s["time_s_median"] == 3.0 and s["time_s_p90"] == pytest.approx(7.6)


def test_compare_says_too_small_and_significant() -> None:
    few = [pay(i) for i in range(5)]
    many = [pay(100 + i) for i in range(40)]
    v = compare(few, many)
    assert v["success"].startswith("sample too small to tell (n=5 vs 40; need 10 each)")
    good = [pay(i, fee_msat=500) for i in range(40)]
    bad = [pay(100 + i, ok=i % 2 == 0, fee_msat=5000 + i) for i in range(40)]
    v = compare(good, bad)
    assert v["success"].startswith("success significantly higher (p=")
    assert v["fee"].startswith("fee significantly lower (p=")
    same = compare([pay(i) for i in range(20)], [pay(100 + i) for i in range(20)])
    assert same["success"].startswith("no significant difference in success")
