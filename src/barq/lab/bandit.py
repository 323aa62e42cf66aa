"""``strategy=auto``: a Thompson-sampling bandit over the node's own history (pure).

Per amount bucket (:data:`barq.lab.stats.AMOUNT_BUCKETS`), each strategy of the pool is
scored by a draw from what its recent payments there say:

* success: a draw from ``Beta(1 + succeeded, 1 + failed)``;
* fee: a draw among the fees (ppm) of its succeeded payments (the bucket's median when it
  has none), costing ``fee_weight`` of success per 1 % of the amount.

The highest draw wins. Around that:

* **warm-up**: until the bucket holds ``min_data`` ended payments of the pool, the default
  strategy is used (except for exploration);
* **exploration floor**: with probability ``floor`` an eligible strategy is picked uniformly,
  so every strategy keeps getting data;
* **safety**: a strategy whose recent success in the bucket is clearly worse than the
  default's (its Wilson 95 % upper bound below the default's lower bound, both with at least
  :data:`barq.lab.stats.MIN_SAMPLE` payments) is *disabled* there: never picked, not even
  to explore. The default is never disabled.

The draws are seeded by the payment hash, so a retry of the same payment decides the same.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import msgspec

from barq.lab.stats import MIN_SAMPLE, amount_bucket, fee_ppm, quantile, wilson
from barq.store._lab import LabPayment

__all__ = ["AUTO", "AutoChoice", "BanditConfig", "choose_auto", "disabled_strategies"]

#: the strategy name that asks the bandit
AUTO = "auto"


class BanditConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The bandit's knobs.

    Attributes:
        min_data: ended payments of the pool a bucket needs before the bandit leaves
            the default strategy.
        floor: probability of exploring (a uniform pick among eligible strategies).
        window: how many of each strategy's latest payments in a bucket count.
        fee_weight: success probability one percent of fee is worth.
    """

    min_data: int = 20
    floor: float = 0.1
    window: int = 50
    fee_weight: float = 0.05


class AutoChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The bandit's pick and its one-line reason."""

    strategy: str
    reason: str


def _recent(
    history: Sequence[LabPayment], bucket: str, pool: Sequence[str], window: int
) -> dict[str, list[LabPayment]]:
    out: dict[str, list[LabPayment]] = {s: [] for s in pool}
    for p in history:
        if p.status != "pending" and p.strategy in out and amount_bucket(p.amount_msat) == bucket:
            out[p.strategy].append(p)
    return {s: ps[-window:] for s, ps in out.items()}


def _ok(ps: Sequence[LabPayment]) -> int:
    return sum(p.status == "complete" for p in ps)


def disabled_strategies(recent: dict[str, list[LabPayment]], default: str) -> set[str]:
    """The strategies clearly worse than ``default`` on these recent payments (see module)."""
    base = recent.get(default, [])
    if len(base) < MIN_SAMPLE:
        return set()
    base_lo, _ = wilson(_ok(base), len(base))
    out = set()
    for s, ps in recent.items():
        if s != default and len(ps) >= MIN_SAMPLE and wilson(_ok(ps), len(ps))[1] < base_lo:
            out.add(s)
    return out


def _draw(rng: random.Random, ps: Sequence[LabPayment], fallback_fee: float, w: float) -> float:
    k = _ok(ps)
    success = rng.betavariate(1 + k, 1 + len(ps) - k)
    fees = [fee_ppm(p) for p in ps if p.status == "complete"]
    fee = rng.choice(fees) if fees else fallback_fee
    return success - w * fee / 10_000


def _rng(payment_hash: str) -> random.Random:
    seed = hashlib.sha256(payment_hash.encode() + b"barq-auto").digest()[:8]
    return random.Random(int.from_bytes(seed, "big"))


def choose_auto(
    payment_hash: str,
    amount_msat: int,
    history: Sequence[LabPayment],
    pool: Sequence[str],
    *,
    default: str,
    config: BanditConfig = BanditConfig(),  # noqa: B008 (frozen)
) -> AutoChoice:
    """The strategy for one payment (deterministic for a given hash and history).

    Args:
        payment_hash: seeds the draws.
        amount_msat: picks the amount bucket.
        history: the node's payments (oldest first), any strategy.
        pool: the strategies the bandit may pick (``barq-auto-strategies``).
        default: the strategy used until the bucket has data; always eligible.

    Returns:
        the pick, with a one-line reason naming the bucket and the figures behind it.
    """
    bucket = amount_bucket(amount_msat)
    names = list(dict.fromkeys([default, *pool]))
    recent = _recent(history, bucket, names, config.window)
    off = disabled_strategies(recent, default)
    eligible = [s for s in names if s not in off]
    seen = sum(len(ps) for ps in recent.values())
    why_off = f"; not {', '.join(sorted(off))} (clearly worse success here)" if off else ""
    rng = _rng(payment_hash)
    if len(eligible) > 1 and rng.random() < config.floor:
        pick = rng.choice(eligible)
        n = len(recent[pick])
        return AutoChoice(
            strategy=pick,
            reason=f"exploring ({config.floor:.0%} floor) in {bucket}: {pick} has {n} "
            f"recent payments there{why_off}",
        )
    if seen < config.min_data:
        return AutoChoice(
            strategy=default,
            reason=f"default {default} until {bucket} has {config.min_data} payments "
            f"(has {seen}){why_off}",
        )
    all_fees = [fee_ppm(p) for ps in recent.values() for p in ps if p.status == "complete"]
    fallback = quantile(all_fees, 0.5) or 0.0
    draws = {s: _draw(rng, recent[s], fallback, config.fee_weight) for s in eligible}
    pick = max(eligible, key=lambda s: draws[s])
    ps = recent[pick]
    fee_med = quantile([fee_ppm(p) for p in ps if p.status == "complete"], 0.5)
    fee_text = "no fee yet" if fee_med is None else f"median fee {fee_med:.0f} ppm"
    return AutoChoice(
        strategy=pick,
        reason=f"Thompson sampling in {bucket}: {pick} drew {draws[pick]:.2f} "
        f"({_ok(ps)}/{len(ps)} recent succeeded, {fee_text}) of {len(eligible)} "
        f"strategies{why_off}",
    )
