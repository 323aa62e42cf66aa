"""Simulated time: UNIX time from the network's epoch, and the seeded latency of each hop.

Time is the clock of the running event loop (``anyio.current_time()``); under
``trio.testing.MockClock(autojump_threshold=0)`` simulated seconds cost no
wall time. The jitter of a hop is a hash of ``(seed, part, attempt, hop,
way)``, never a shared random stream, so results do not depend on the order
in which tasks run.
"""

from __future__ import annotations

import hashlib

import anyio

from barq.sim.parts import PartInfo

__all__ = ["SimClock"]


class SimClock:
    """The network's clock and latency model.

    Args:
        epoch_s: UNIX time at which the network opens.
        seed: seeds the latency jitter.
        hop_latency_s: one-way latency per hop (may be changed while running).
        latency_jitter_s: added times a uniform [0, 1) hash per hop and way.
    """

    def __init__(
        self, *, epoch_s: int, seed: int, hop_latency_s: float, latency_jitter_s: float
    ) -> None:
        self.epoch_s = epoch_s
        self.seed = seed
        self.hop_latency_s = hop_latency_s
        self.latency_jitter_s = latency_jitter_s
        self._t0: float | None = None

    def start(self) -> None:
        """Simulated time starts now (the network opened)."""
        self._t0 = anyio.current_time()

    def now(self) -> float:
        """Simulated UNIX time: ``epoch_s`` plus the clock time elapsed since :meth:`start`."""
        if self._t0 is None:
            return float(self.epoch_s)
        return self.epoch_s + (anyio.current_time() - self._t0)

    def latency(self, info: PartInfo, attempt: int, hop: int, back: bool) -> float:
        """Seconds the HTLC of ``info`` takes over hop ``hop`` (``back``: the way home)."""
        if self.latency_jitter_s <= 0:
            return self.hop_latency_s
        i = info
        key = f"{self.seed}|{i.payment_hash}|{i.partid}|{i.groupid}|{attempt}|{hop}|{int(back)}"
        h = hashlib.blake2b(key.encode(), digest_size=8).digest()
        return self.hop_latency_s + self.latency_jitter_s * (int.from_bytes(h, "big") / 2**64)
