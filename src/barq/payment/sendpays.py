"""What the node says was sent (``listsendpays``), read as Barq's payments.

A payment on the node is one ``(payment_hash, groupid)``: the parts of one
attempt. Its status is the node's: complete when any part is (the preimage is
the proof of payment), pending while any part is, failed otherwise. Barq's own
record of the group (routes, strategy, failure details) fills in what
``listsendpays`` does not tell.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from barq.model import NodeId, PartStatus, PaymentHash, Route, SendpayStatus
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView

__all__ = ["GroupKey", "group_sendpays", "view_from_sendpays"]

GroupKey = tuple[PaymentHash, int]
"""``(payment_hash, groupid)``: one attempt of a payment, as ``sendpay`` groups parts."""

_STATES = {
    SendpayStatus.COMPLETE: PartState.SUCCEEDED,
    SendpayStatus.FAILED: PartState.FAILED,
    SendpayStatus.PENDING: PartState.INFLIGHT,
}


def group_sendpays(parts: Iterable[PartStatus]) -> dict[GroupKey, list[PartStatus]]:
    """``listsendpays`` parts by ``(payment_hash, groupid)``, in the order first seen."""
    groups: dict[GroupKey, list[PartStatus]] = defaultdict(list)
    for p in parts:
        groups[(p.payment_hash, p.groupid)].append(p)
    return dict(groups)


def view_from_sendpays(
    parts: list[PartStatus], base: PaymentView | None = None, *, strategy: str = ""
) -> PaymentView:
    """A payment view of one ``(payment_hash, groupid)`` as ``listsendpays`` shows it.

    Args:
        parts: the group's parts (at least one).
        base: Barq's own record of the group: routes, start times and failure
            details of the parts it has, and the payment's strategy, amount,
            creation time, fee budget and error.
        strategy: the strategy named when there is no ``base``.

    Returns:
        the view; parts ``base`` lacks get an empty route.
    """
    assert parts, "view_from_sendpays needs at least one part"
    old = {p.partid: p for p in base.parts} if base is not None else {}
    views = [_part(p, old.get(p.partid)) for p in sorted(parts, key=lambda p: p.partid)]
    done = [p for p in parts if p.status is SendpayStatus.COMPLETE]
    pending = [p for p in parts if p.status is SendpayStatus.PENDING]
    status = (
        PaymentStatus.COMPLETE
        if done
        else PaymentStatus.PENDING
        if pending
        else PaymentStatus.FAILED
    )
    first = parts[0]
    delivered = sum(p.amount_msat for p in done)
    sent = sum(p.amount_sent_msat for p in done)
    completed = [float(p.completed_at) for p in parts if p.completed_at]
    if base is None:
        amount = (
            delivered or sum(p.amount_msat for p in pending) or max(p.amount_msat for p in parts)
        )
        base = PaymentView(
            payment_hash=first.payment_hash,
            destination=first.destination or NodeId(""),
            amount_msat=amount,
            status=status,
            strategy=strategy,
            created_at=float(min(p.created_at for p in parts)),
        )
    failed = status is PaymentStatus.FAILED
    return PaymentView(
        payment_hash=first.payment_hash,
        destination=base.destination,
        amount_msat=base.amount_msat,
        status=status,
        strategy=base.strategy,
        created_at=base.created_at,
        groupid=first.groupid,
        bolt11=base.bolt11 or first.bolt11,
        label=base.label or first.label,
        completed_at=(
            None
            if status is PaymentStatus.PENDING
            else (base.completed_at or (max(completed) if completed else None))
        ),
        payment_preimage=next((p.payment_preimage for p in done if p.payment_preimage), None),
        amount_sent_msat=sent,
        delivered_msat=delivered,
        inflight_msat=sum(p.amount_msat for p in pending),
        fee_msat=sent - delivered,
        attempts=len(parts),
        maxfee_msat=base.maxfee_msat,
        compute_s=base.compute_s,
        parts=tuple(views),
        error=base.error if failed else None,
        error_code=base.error_code if failed else None,
    )


def _part(p: PartStatus, prev: PartView | None) -> PartView:
    state = _STATES[p.status]
    if state is PartState.INFLIGHT:
        finished: float | None = None
    elif prev is not None and prev.finished_at is not None:
        finished = prev.finished_at
    else:
        finished = float(p.completed_at or p.created_at)
    failed = prev is not None and state is PartState.FAILED
    return PartView(
        partid=p.partid,
        groupid=p.groupid,
        amount_msat=p.amount_msat,
        amount_sent_msat=p.amount_sent_msat,
        fee_msat=p.amount_sent_msat - p.amount_msat,
        route=prev.route if prev is not None else Route(hops=()),
        state=state,
        started_at=prev.started_at if prev is not None else float(p.created_at),
        finished_at=finished,
        failure=prev.failure if failed and prev is not None else None,
        reason=prev.reason if failed and prev is not None else None,
    )
