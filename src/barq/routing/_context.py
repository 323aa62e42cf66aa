"""The read side of the liquidity knowledge: what a strategy may look at for one request."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from barq.errors import RouteNotFound
from barq.graph import Graph

__all__ = ["RoutingContext"]


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What a strategy may look at for one request (a read-only snapshot).

    Attributes:
        graph: the payment's graph: gossip + our own channels (exact
            balances) + the invoice's route hints. Its arrays are read-only.
        min_msat: per half-channel, liquidity *surely* available now (known
            lower bound minus what is already in flight over it), int64.
        max_msat: per half-channel, liquidity *possibly* available now
            (known upper bound minus in flight), int64; ``min <= max``.
        usable: per half-channel, False when disabled by gossip, excluded by
            the caller, or disabled by the estimator after a permanent failure.
        inflight_msat: per half-channel, what our own parts in flight hold.
        learnt_max_msat: per half-channel, the upper bound the estimator has
            learnt (clamped to capacity; the capacity where it learnt none),
            before in-flight parts and HTLC-slot caps are taken out of
            ``max_msat``; the router gives only the bounds observed since the
            payment opened (older ones still shape ``max_msat``). ``None``:
            ``max_msat + inflight_msat`` is that bound (no other cap applied).
        deadline: ``time.monotonic()`` after which the answer is no longer
            wanted (``None``: no deadline); long searches call
            :meth:`check_deadline` between steps.

    ``max_msat == 0`` means "certainly nothing can pass". For our own
    channels ``min_msat == max_msat == spendable_msat`` (minus in flight).
    """

    graph: Graph
    min_msat: npt.NDArray[np.int64]
    max_msat: npt.NDArray[np.int64]
    usable: npt.NDArray[np.bool_]
    inflight_msat: npt.NDArray[np.int64]
    deadline: float | None = None
    learnt_max_msat: npt.NDArray[np.int64] | None = None

    @classmethod
    def uninformed(cls, graph: Graph) -> RoutingContext:
        """Knowledge from gossip alone: liquidity somewhere in ``[0, capacity]``."""
        n = graph.num_edges
        return cls(
            graph=graph,
            min_msat=np.zeros(n, dtype=np.int64),
            max_msat=graph.capacity_msat.copy(),
            usable=graph.enabled.copy(),
            inflight_msat=np.zeros(n, dtype=np.int64),
        )

    def check_deadline(self) -> None:
        """Stop a search whose answer is no longer wanted.

        Raises:
            RouteNotFound: ``deadline`` has passed (``data["deadline_passed"]`` is True).
        """
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RouteNotFound(
                "route search stopped: its deadline passed", data={"deadline_passed": True}
            )
