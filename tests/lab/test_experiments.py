"""``barq-experiment`` specs: every bad one refused with a clear message; assignment."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers import h

from barq.errors import InvalidParams
from barq.lab.experiments import (
    BUCKETS,
    assign,
    bucket_of,
    install,
    parse_experiment,
    parse_experiments,
)
from barq.strategies import get_strategy
from barq.strategies.mincostflow import MinCostFlowParams


def test_a_spec_with_typed_parameters() -> None:
    e = parse_experiment("risky=mincostflow:riskfactor=2,penalty_ppm=500:25")
    assert (e.name, e.strategy, e.percent) == ("risky", "mincostflow", 25.0)
    assert e.parameters == {"riskfactor": 2, "penalty_ppm": 500}
    assert e.key == "mincostflow:penalty_ppm=500,riskfactor=2"
    assert e.buckets == 2500
    install([e])
    s = get_strategy(e.key)
    assert s.params == MinCostFlowParams(riskfactor=2.0, penalty_ppm=500.0)
    plain = parse_experiment("cheap=cheapflow:50%")
    assert plain.key == "cheapflow" and plain.parameters == {} and plain.percent == 50


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("cheapflow:50", "no '=' after the experiment's name"),
        ("1x=cheapflow:50", "bad experiment name '1x'"),
        ("a=cheapflow", "no ':PERCENT' at the end"),
        ("a=cheapflow:lots", "percent 'lots' is not a number"),
        ("a=cheapflow:0", "percent must be > 0 and <= 100, got 0"),
        ("a=cheapflow:100.5", "percent must be > 0 and <= 100"),
        ("a=nosuch:10", "unknown strategy 'nosuch'; available: adaptive, cheapflow"),
        ("a=mincostflow:risk=2:10", "has no parameter risk; its parameters: budget_steps"),
        ("a=mincostflow:riskfactor=high:10", "bad parameter value: Expected `float`, got `str`"),
        ("a=mincostflow:riskfactor:10", "parameter 'riskfactor' is not key=value"),
        ("a=mincostflow:units=1,units=2:10", "parameter 'units' given twice"),
        ("a=direct:foo=1:10", "strategy 'direct' takes no parameters"),
        ("a=auto:10", "an experiment runs one strategy, not 'auto'"),
        ("default=dijkstra:10", "'default' is reserved"),
        ("auto=dijkstra:10", "'auto' is reserved"),
    ],
)
def test_each_bad_spec_is_a_clear_error(spec: str, words: str) -> None:
    with pytest.raises(InvalidParams) as info:
        parse_experiments([spec])
    assert words in info.value.message
    assert f"option barq-experiment={spec!r}" in info.value.message
    assert "NAME=STRATEGY[:key=value[,key=value]]:PERCENT" in info.value.message


def test_percents_over_100_and_duplicate_names() -> None:
    with pytest.raises(InvalidParams, match=r"percents add up to 60 \+ 50 = 110 %, more than 100"):
        parse_experiments(["a=dijkstra:60", "b=cheapflow:50"])
    with pytest.raises(InvalidParams, match="experiment name 'a' is used twice"):
        parse_experiments(["a=dijkstra:10", "a=cheapflow:20"])
    assert len(parse_experiments(["a=dijkstra:60", "b=cheapflow:40"])) == 2


def test_assignment_is_deterministic() -> None:
    exps = parse_experiments(["a=dijkstra:30", "b=cheapflow:20"])
    for i in range(200):
        first = assign(h(i), exps)
        assert assign(h(i), exps) == first  # a retry stays in its experiment
        assert 0 <= bucket_of(h(i)) < BUCKETS
    # the bucket is sha256(hash || "barq-experiment")'s first 8 bytes mod 10,000
    import hashlib

    raw = bytes.fromhex(h(1)) + b"barq-experiment"
    assert bucket_of(h(1)) == int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") % 10_000


def test_proportions_over_10000_hashes() -> None:
    exps = parse_experiments(["a=dijkstra:30", "b=cheapflow:20", "c=probabilistic:0.5"])
    n = 10_000
    got = Counter((e.name if (e := assign(h(f"p{i}"), exps)) else "default") for i in range(n))
    # binomial sd at n=10k is at most 0.5 pp; 4 sd of tolerance
    for name, pct in (("a", 30), ("b", 20), ("c", 0.5), ("default", 49.5)):
        assert abs(got[name] / n * 100 - pct) < 2.0, (name, got)
    assert sum(got.values()) == n
