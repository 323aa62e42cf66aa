"""Replay scoring on a hand-made history with known answers."""

from __future__ import annotations

import math

import pytest

from barq.errors import InvalidParams
from barq.lab.replay import (
    ConstantModel,
    UniformModel,
    format_scores,
    outcome,
    parse_model,
    replay,
    score,
)
from barq.model import Hop, NodeId, Route, Scid
from barq.store._lab import LabAttempt

N1 = NodeId("02" + "11" * 32)
N2 = NodeId("02" + "22" * 32)


def attempt(
    partid: int,
    amount: int,
    *,
    start: float,
    end: float | None,
    state: str = "succeeded",
    erring_index: int | None = None,
    hops: int = 1,
    probability: float | None = None,
) -> LabAttempt:
    chain = [
        Hop(id=N1, channel=Scid("1x1x0"), direction=0, amount_msat=amount, delay=20),
        Hop(id=N2, channel=Scid("2x2x0"), direction=1, amount_msat=amount, delay=10),
    ][:hops]
    return LabAttempt(
        payment_hash="00" * 32,
        partid=partid,
        groupid=0,
        route=Route(hops=tuple(chain), probability=probability),
        state=state,
        started_at=start,
        finished_at=end,
        erring_index=erring_index,
        failcode=0x1007 if erring_index is not None else None,
    )


def test_outcomes() -> None:
    assert outcome(attempt(1, 1, start=0, end=1)) is True
    assert outcome(attempt(1, 1, start=0, end=1, state="failed", erring_index=0)) is False
    assert outcome(attempt(1, 1, start=0, end=1, state="resplit", erring_index=0)) is False
    # the destination refused: not a routing outcome; a part never sent; one pending
    assert outcome(attempt(1, 1, start=0, end=1, state="failed", erring_index=1)) is None
    assert outcome(attempt(1, 1, start=0, end=1, state="failed")) is None
    assert outcome(attempt(1, 1, start=0, end=None, state="inflight")) is None


def test_constant_and_recorded_known_scores() -> None:
    history = [
        attempt(1, 1000, start=0, end=1, probability=0.9),
        attempt(2, 1000, start=2, end=3, state="failed", erring_index=0, probability=0.2),
        attempt(3, 1000, start=4, end=5, hops=2),  # no recorded probability
        attempt(4, 1000, start=6, end=7, state="failed", erring_index=2, hops=2),  # skipped
    ]
    pairs = replay(history, [parse_model("recorded"), ConstantModel(0.5)])
    assert pairs["recorded"] == [(0.9, 1), (0.2, 0)]
    assert pairs["constant:p=0.5"] == [(0.5, 1), (0.5, 0), (0.25, 1)]
    rec = score(pairs["recorded"])
    assert rec["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, abs=1e-6)
    assert rec["brier"] == pytest.approx(0.025)
    assert rec["calibration"] == [
        {"bin": "0.2-0.3", "n": 1, "predicted": 0.2, "observed": 0.0},
        {"bin": "0.9-1.0", "n": 1, "predicted": 0.9, "observed": 1.0},
    ]
    const = score(pairs["constant:p=0.5"])
    assert const["log_loss"] == pytest.approx((2 * math.log(2) + math.log(4)) / 3, abs=1e-6)
    assert const["brier"] == pytest.approx((0.25 + 0.25 + 0.5625) / 3)
    assert const["base_rate"] == pytest.approx(2 / 3, abs=1e-4)
    text = format_scores({"recorded": rec, "constant:p=0.5": const})
    assert text.splitlines()[1].startswith("recorded") and "0.1643" in text


def test_uniform_learns_only_what_had_happened() -> None:
    cap = 1_000_000  # msat: capacity_sat=1000
    history = [
        attempt(1, 600_000, start=0, end=1, state="failed", erring_index=0),
        attempt(2, 500_000, start=0.5, end=1.5),  # sent before 1 failed: knows nothing
        attempt(3, 300_000, start=2, end=3),  # knows hi = 599,999 (and lo = 500,000 from 2)
        attempt(4, 550_000, start=4, end=5),  # knows lo = 500,000, hi = 599,999
    ]
    m = UniformModel(half_life=1e12, capacity_sat=1000)
    got = [p for p, _ in replay(history, [m])[m.name]]
    assert got[0] == pytest.approx((cap + 1 - 600_000) / (cap + 1))
    assert got[1] == pytest.approx((cap + 1 - 500_000) / (cap + 1))
    assert got[2] == 1.0  # 300,000 <= lo: surely there
    assert got[3] == pytest.approx((600_000 - 550_000) / (600_000 - 500_000))
    # without learning every prediction is from the capacity alone
    flat = UniformModel(half_life=0, capacity_sat=1000)
    got0 = [p for p, _ in replay(history, [flat])[flat.name]]
    assert got0[3] == pytest.approx((cap + 1 - 550_000) / (cap + 1))
    # a graph's capacity is used where known
    big = UniformModel(half_life=0, capacities={"1x1x0/0": 2 * cap})
    assert replay(history[:1], [big])[big.name][0][0] == pytest.approx(
        (2 * cap + 1 - 600_000) / (2 * cap + 1)
    )


def test_model_specs() -> None:
    assert parse_model("uniform:half_life=60,capacity_sat=5").name == "uniform:half_life=60"
    assert parse_model("constant").name == "constant:p=0.95"
    with pytest.raises(InvalidParams, match="unknown model 'magic'; models: recorded"):
        parse_model("magic")
    with pytest.raises(InvalidParams, match=r"model constant has no parameter q \(has: p\)"):
        parse_model("constant:q=1")
    with pytest.raises(InvalidParams, match="'p=high' is not key=number"):
        parse_model("constant:p=high")
    with pytest.raises(InvalidParams, match=r"p must be in \(0, 1\]"):
        parse_model("constant:p=2")
    assert score([])["log_loss"] is None
