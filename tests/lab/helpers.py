"""Hand-made lab records for the lab's tests."""

from __future__ import annotations

import hashlib

from barq.model import Hop, NodeId, Route, RouteFailure, Scid
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView
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


A = NodeId("02" + "aa" * 32)
B = NodeId("03" + "bb" * 32)


def _route(amount: int) -> Route:
    return Route(
        hops=(
            Hop(id=A, channel=Scid("1x1x0"), direction=0, amount_msat=amount + 10, delay=30),
            Hop(id=B, channel=Scid("2x2x1"), direction=1, amount_msat=amount, delay=18),
        ),
        probability=0.7,
    )


def view(i: int, *, ok: bool, groupid: int = 0, strategy: str = "dijkstra") -> PaymentView:
    amount = 20_000_000
    failed = PartView(
        partid=1,
        groupid=groupid,
        amount_msat=amount,
        amount_sent_msat=amount + 10,
        fee_msat=10,
        route=_route(amount),
        state=PartState.FAILED,
        started_at=100.0 + i,
        finished_at=100.5 + i,
        failure=RouteFailure(failcode=0x1007, erring_index=1, erring_node=A),
    )
    parts = [failed]
    if ok:
        parts.append(
            PartView(
                partid=2,
                groupid=groupid,
                amount_msat=amount,
                amount_sent_msat=amount + 10,
                fee_msat=10,
                route=_route(amount),
                state=PartState.SUCCEEDED,
                started_at=101.0 + i,
                finished_at=101.5 + i,
            )
        )
    return PaymentView(
        payment_hash=h(i),
        destination=B,
        amount_msat=amount,
        status=PaymentStatus.COMPLETE if ok else PaymentStatus.FAILED,
        strategy=strategy,
        created_at=100.0 + i + groupid,
        completed_at=102.0 + i + groupid,
        groupid=groupid,
        fee_msat=10 if ok else 0,
        attempts=len(parts),
        parts=tuple(parts),
    )


def fill_store(path: object) -> None:
    """A store at ``path`` with 3 payment hashes (one retried), two experiments."""
    from pathlib import Path

    from barq.store import open_store
    from barq.store._lab import Assignment, put_assignment

    with open_store(Path(str(path))) as store:
        store.put_payment(view(1, ok=False))
        store.put_payment(view(1, ok=True, groupid=1))
        store.put_payment(view(2, ok=False, strategy="cheapflow"))
        store.put_payment(view(3, ok=True))
        put_assignment(store, Assignment(payment_hash=h(1), strategy="dijkstra", experiment="a"))
        put_assignment(store, Assignment(payment_hash=h(2), strategy="cheapflow", experiment="b"))
        put_assignment(store, Assignment(payment_hash=h(3), strategy="dijkstra", experiment="a"))
