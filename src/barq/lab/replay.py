"""``barq replay``: score probability models on the node's own recorded attempts (pure).

Every part the node sent is one prediction: the probability a model gave the part's route
*with the knowledge it had when the part was sent*, against what happened (1: succeeded;
0: a hop on the route failed). Parts that never left, failed at the destination or are
still pending are not routing outcomes and are left out.

Knowledge is rebuilt in time order: before a part is scored, every part that ended before
it was sent has been shown to the models (:meth:`ReplayModel.observe`). Models:

``recorded``
    the probability the strategy itself recorded on the route when it chose it
    (``Route.probability``: its success model with the engine's knowledge of the moment).
``uniform``
    the estimator's model: each half-channel's liquidity uniform in ``[lo, hi]``
    (:func:`barq.routing.success_probability`), bounds learnt from outcomes (a success
    raises ``lo`` on every hop; a failure at hop ``i`` raises ``lo`` before it and lowers
    ``hi`` at it) and relaxed back to ``[0, capacity]`` with ``half_life`` seconds
    (``half_life=0``: never learns). ``capacity_sat`` is used for channels the graph
    does not know (or without a graph).
``constant``
    every hop succeeds with probability ``p`` (a baseline).

Scores: log-loss (natural log; probabilities clipped to ``[1e-6, 1 - 1e-6]``), Brier score,
and a calibration table (10 bins of predicted probability: count, mean predicted, observed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from barq.errors import InvalidParams
from barq.routing import success_probability
from barq.store._lab import LabAttempt

__all__ = [
    "ConstantModel",
    "ReplayModel",
    "UniformModel",
    "default_models",
    "format_scores",
    "outcome",
    "parse_model",
    "replay",
    "score",
]

_EPS = 1e-6
BINS = 10


class ReplayModel(Protocol):
    """A probability model replayed over the attempts, in time order."""

    @property
    def name(self) -> str: ...

    def predict(self, attempt: LabAttempt, now: float) -> float | None:
        """P(the attempt's route succeeds) with what was observed so far (None: no opinion)."""
        ...

    def observe(self, attempt: LabAttempt, success: bool, now: float) -> None:
        """Learn from an attempt that ended at ``now``."""
        ...


def outcome(a: LabAttempt) -> bool | None:
    """True: succeeded; False: a hop on the route failed; None: not a routing outcome."""
    if a.state == "succeeded":
        return True
    if a.state in ("failed", "resplit") and a.erring_index is not None:
        return False if a.erring_index < len(a.route.hops) else None
    return None


class RecordedModel:
    """The strategy's own recorded estimate (``Route.probability``)."""

    name = "recorded"

    def predict(self, attempt: LabAttempt, now: float) -> float | None:
        return attempt.route.probability

    def observe(self, attempt: LabAttempt, success: bool, now: float) -> None:
        return None


class ConstantModel:
    """Each hop succeeds with probability ``p``."""

    def __init__(self, p: float = 0.95) -> None:
        if not 0 < p <= 1:
            raise InvalidParams(f"model constant: p must be in (0, 1], got {p}")
        self.p = p
        self.name = f"constant:p={p:g}"

    def predict(self, attempt: LabAttempt, now: float) -> float | None:
        return float(self.p ** len(attempt.route.hops))

    def observe(self, attempt: LabAttempt, success: bool, now: float) -> None:
        return None


class UniformModel:
    """The estimator's uniform-liquidity model with learnt, decaying bounds (see module)."""

    def __init__(
        self,
        half_life: float = 3600.0,
        capacity_sat: int = 1_000_000,
        capacities: Mapping[str, int] | None = None,
    ) -> None:
        if half_life < 0 or capacity_sat <= 0:
            raise InvalidParams("model uniform: half_life >= 0 and capacity_sat > 0 please")
        self.half_life = half_life
        self.default_cap = capacity_sat * 1000
        self.capacities = dict(capacities or {})
        self.name = f"uniform:half_life={half_life:g}"
        self._bounds: dict[str, tuple[int, int, float]] = {}  # key -> (lo, hi, at)

    def _cap(self, key: str) -> int:
        return self.capacities.get(key, self.default_cap)

    def _now_bounds(self, key: str, now: float) -> tuple[int, int]:
        cap = self._cap(key)
        b = self._bounds.get(key)
        if b is None or self.half_life == 0:
            return 0, cap
        lo, hi, at = b
        keep = 0.5 ** (max(0.0, now - at) / self.half_life)
        return round(lo * keep), round(hi + (cap - hi) * (1 - keep))

    def predict(self, attempt: LabAttempt, now: float) -> float | None:
        p = 1.0
        for hop in attempt.route.hops:
            key = f"{hop.channel}/{hop.direction}"
            lo, hi = self._now_bounds(key, now)
            p *= success_probability(hop.amount_msat, lo, hi)
        return p

    def _learn(self, key: str, now: float, *, lo: int | None = None, hi: int | None = None) -> None:
        cur_lo, cur_hi = self._now_bounds(key, now)
        new_lo = cur_lo if lo is None else max(cur_lo, lo)
        new_hi = cur_hi if hi is None else min(cur_hi, hi)
        if new_lo > new_hi:  # the channel changed: believe the newest observation
            new_lo, new_hi = (new_hi, new_hi) if lo is None else (new_lo, max(new_lo, cur_hi))
        self._bounds[key] = (new_lo, new_hi, now)

    def observe(self, attempt: LabAttempt, success: bool, now: float) -> None:
        hops = attempt.route.hops
        failed_at = len(hops) if success else (attempt.erring_index or 0)
        for i, hop in enumerate(hops):
            key = f"{hop.channel}/{hop.direction}"
            if i < failed_at:
                self._learn(key, now, lo=hop.amount_msat)
            elif i == failed_at:
                self._learn(key, now, hi=hop.amount_msat - 1)


def _kv(text: str, model: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        k, eq, v = item.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            eq = ""
        if not eq:
            raise InvalidParams(f"model {model}: {item!r} is not key=number")
    return out


def parse_model(spec: str, capacities: Mapping[str, int] | None = None) -> ReplayModel:
    """``recorded``, ``constant[:p=0.95]`` or ``uniform[:half_life=S,capacity_sat=N]``.

    Raises:
        InvalidParams: an unknown model or parameter, or a value out of range.
    """
    name, _, rest = spec.strip().partition(":")
    kv = _kv(rest, name)
    allowed: dict[str, tuple[str, ...]] = {
        "recorded": (),
        "constant": ("p",),
        "uniform": ("half_life", "capacity_sat"),
    }
    if name not in allowed:
        raise InvalidParams(f"unknown model {name!r}; models: {', '.join(allowed)}")
    extra = sorted(set(kv) - set(allowed[name]))
    if extra:
        keys = ", ".join(allowed[name]) or "none"
        raise InvalidParams(f"model {name} has no parameter {', '.join(extra)} (has: {keys})")
    if name == "recorded":
        return RecordedModel()
    if name == "constant":
        return ConstantModel(kv.get("p", 0.95))
    return UniformModel(
        half_life=kv.get("half_life", 3600.0),
        capacity_sat=int(kv.get("capacity_sat", 1_000_000)),
        capacities=capacities,
    )


def default_models(capacities: Mapping[str, int] | None = None) -> list[ReplayModel]:
    """recorded, uniform (1 h half-life), uniform without learning, constant p=0.95."""
    return [
        parse_model(s, capacities)
        for s in ("recorded", "uniform:half_life=3600", "uniform:half_life=0", "constant:p=0.95")
    ]


def replay(
    attempts: Sequence[LabAttempt], models: Sequence[ReplayModel]
) -> dict[str, list[tuple[float, int]]]:
    """Each model's ``(probability, outcome)`` per scored attempt, in the order they were sent.

    An attempt that ended before another was sent is observed before that one is predicted.
    """
    scored = sorted(
        (a for a in attempts if outcome(a) is not None), key=lambda a: (a.started_at, a.partid)
    )
    ends = sorted(scored, key=lambda a: (a.finished_at or a.started_at, a.partid))
    out: dict[str, list[tuple[float, int]]] = {m.name: [] for m in models}
    j = 0
    for a in scored:
        while j < len(ends) and (ends[j].finished_at or ends[j].started_at) <= a.started_at:
            e = ends[j]
            for m in models:
                m.observe(e, bool(outcome(e)), e.finished_at or e.started_at)
            j += 1
        y = int(bool(outcome(a)))
        for m in models:
            p = m.predict(a, a.started_at)
            if p is not None:
                out[m.name].append((min(1.0, max(0.0, p)), y))
    return out


def score(pairs: Sequence[tuple[float, int]]) -> dict[str, Any]:
    """Log-loss, Brier score and calibration of ``(probability, outcome)`` pairs.

    Returns:
        ``{"n", "log_loss", "brier", "base_rate", "calibration": [{"bin", "n",
        "predicted", "observed"}]}`` (``None`` figures when there is no pair).
    """
    n = len(pairs)
    if n == 0:
        return {"n": 0, "log_loss": None, "brier": None, "base_rate": None, "calibration": []}
    ll = 0.0
    brier = 0.0
    bins: list[list[tuple[float, int]]] = [[] for _ in range(BINS)]
    for p, y in pairs:
        q = min(1 - _EPS, max(_EPS, p))
        ll -= math.log(q) if y else math.log(1 - q)
        brier += (p - y) ** 2
        bins[min(BINS - 1, int(p * BINS))].append((p, y))
    calibration = [
        {
            "bin": f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}",
            "n": len(b),
            "predicted": round(sum(p for p, _ in b) / len(b), 4),
            "observed": round(sum(y for _, y in b) / len(b), 4),
        }
        for i, b in enumerate(bins)
        if b
    ]
    return {
        "n": n,
        "log_loss": round(ll / n, 6),
        "brier": round(brier / n, 6),
        "base_rate": round(sum(y for _, y in pairs) / n, 4),
        "calibration": calibration,
    }


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_scores(scores: Mapping[str, dict[str, Any]]) -> str:
    """Models side by side (log-loss, Brier, n), best log-loss first, then each calibration."""
    if not any(s["n"] for s in scores.values()):
        return "no attempt with a routing outcome in this store yet\n"
    ranked = sorted(scores.items(), key=lambda kv: (kv[1]["log_loss"] is None, kv[1]["log_loss"]))
    width = max(len(name) for name in scores)
    lines = [f"{'model':<{width}}  {'n':>6}  {'log-loss':>9}  {'Brier':>7}  base rate"]
    for name, s in ranked:
        lines.append(
            f"{name:<{width}}  {s['n']:>6}  {_fmt(s['log_loss'], '9.4f')}  "
            f"{_fmt(s['brier'], '7.4f')}  {_fmt(s['base_rate'], '.3f')}"
        )
    lines += ["", "calibration (predicted -> observed, n):"]
    for name, s in ranked:
        cells = [
            f"{c['bin']}: {c['predicted']:.2f}->{c['observed']:.2f} ({c['n']})"
            for c in s["calibration"]
        ]
        lines.append(f"  {name}: " + ("; ".join(cells) or "-"))
    return "\n".join(lines) + "\n"
