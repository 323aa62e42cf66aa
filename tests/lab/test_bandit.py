"""``strategy=auto``: warm-up, exploration, Thompson sampling, and the safety rule."""

from __future__ import annotations

from collections import Counter

from helpers import h, pay

from barq.lab.bandit import BanditConfig, choose_auto, disabled_strategies
from barq.store._lab import LabPayment

POOL = ("mincostflow", "cheapflow", "presplit")


def history(
    rates: dict[str, float], n: int = 40, fee: dict[str, int] | None = None
) -> list[LabPayment]:
    out = []
    i = 0
    for s, rate in rates.items():
        for j in range(n):
            ok = j < round(rate * n)
            out.append(pay(i, ok=ok, strategy=s, fee_msat=(fee or {}).get(s, 5000)))
            i += 1
    return out


def test_default_until_enough_data() -> None:
    c = choose_auto(h(1), 50_000_000, [], POOL, default="mincostflow", config=BanditConfig(floor=0))
    assert c.strategy == "mincostflow"
    assert c.reason == "default mincostflow until 10k-100k sat has 20 payments (has 0)"


def test_deterministic_per_hash() -> None:
    hist = history({"mincostflow": 0.8, "cheapflow": 0.8, "presplit": 0.7})
    a = [choose_auto(h(i), 50_000_000, hist, POOL, default="mincostflow") for i in range(50)]
    b = [choose_auto(h(i), 50_000_000, hist, POOL, default="mincostflow") for i in range(50)]
    assert a == b


def test_prefers_what_pays_more_and_cheaper() -> None:
    hist = history(
        {"mincostflow": 0.6, "cheapflow": 0.95, "presplit": 0.6},
        fee={"mincostflow": 50_000, "cheapflow": 1_000, "presplit": 50_000},
    )
    picks = Counter(
        choose_auto(h(i), 50_000_000, hist, POOL, default="mincostflow").strategy
        for i in range(300)
    )
    assert picks.most_common(1)[0][0] == "cheapflow" and picks["cheapflow"] > 200
    assert picks["mincostflow"] > 0 or picks["presplit"] > 0  # the floor keeps exploring
    # another amount bucket has no data: default there
    other = choose_auto(
        h(1), 5_000_000_000, hist, POOL, default="mincostflow", config=BanditConfig(floor=0)
    )
    assert other.strategy == "mincostflow" and ">=1M sat" in other.reason


def test_never_chooses_a_disabled_strategy() -> None:
    hist = history({"mincostflow": 0.9, "cheapflow": 0.1, "presplit": 0.85})
    recent = {s: [p for p in hist if p.strategy == s] for s in POOL}
    assert disabled_strategies(recent, "mincostflow") == {"cheapflow"}
    for floor in (0.0, 0.1, 1.0):  # not even to explore
        cfg = BanditConfig(floor=floor)
        picks = {
            choose_auto(h(i), 50_000_000, hist, POOL, default="mincostflow", config=cfg).strategy
            for i in range(500)
        }
        assert "cheapflow" not in picks and picks <= {"mincostflow", "presplit"}
    c = choose_auto(h(3), 50_000_000, hist, POOL, default="mincostflow")
    assert "not cheapflow (clearly worse success here)" in c.reason


def test_the_default_is_never_disabled_and_small_samples_disable_nothing() -> None:
    hist = history({"mincostflow": 0.1, "cheapflow": 0.9}, n=40)
    recent = {s: [p for p in hist if p.strategy == s] for s in ("mincostflow", "cheapflow")}
    assert disabled_strategies(recent, "mincostflow") == set()
    few = history({"mincostflow": 1.0, "cheapflow": 0.0}, n=5)
    recent = {s: [p for p in few if p.strategy == s] for s in ("mincostflow", "cheapflow")}
    assert disabled_strategies(recent, "mincostflow") == set()
