"""``singlepath``: baseline that sends the whole amount over one probable path, never split."""

from __future__ import annotations

from typing import ClassVar

from barq.strategies.probabilistic import ProbabilisticStrategy

__all__ = ["SinglePathStrategy"]


class SinglePathStrategy(ProbabilisticStrategy):
    """``probabilistic``'s path for the whole amount; no adaptive halving (baseline)."""

    name: ClassVar[str] = "singlepath"
    description: ClassVar[str] = "baseline: whole amount over one most probable path, never split"
    splits: ClassVar[bool] = False
    min_part_msat: ClassVar[int | None] = None
    halve_on_failure: ClassVar[bool] = False
