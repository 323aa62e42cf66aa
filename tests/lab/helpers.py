"""Hand-made lab records for the lab's tests."""

from __future__ import annotations

import hashlib

from barq.store._lab import LabPayment


def h(i: int | str) -> str:
    """A payment hash (64 hex) from anything."""
    return hashlib.sha256(str(i).encode()).hexdigest()


def pay(
    i: int,
    *,
    ok: bool = True,
    strategy: str = "mincostflow",
    experiment: str | None = "default",
    amount_msat: int = 50_000_000,
    fee_msat: int = 5_000,
    attempts: int = 1,
    at: float = 1000.0,
    took_s: float = 2.0,
) -> LabPayment:
    return LabPayment(
        payment_hash=h(i),
        amount_msat=amount_msat,
        strategy=strategy,
        status="complete" if ok else "failed",
        created_at=at + i,
        completed_at=at + i + took_s,
        fee_msat=fee_msat if ok else 0,
        attempts=attempts,
        parts=1 if ok else 0,
        experiment=experiment,
    )
