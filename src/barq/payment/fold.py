"""A payment's view is the fold of its events: one pure function, used by every reader.

The payment's own book, the runtime's ``status()`` and the store all fold the
same events with :func:`fold`, so they cannot disagree about a total::

    view = None
    for event in events:
        view = fold(view, event)

Totals follow the parts: ``delivered``/``amount_sent``/``fee`` count succeeded
parts, ``inflight`` the parts still in flight, ``attempts`` the parts this run
sent (adopted ones are not attempts of this run).
"""

from __future__ import annotations

from collections.abc import Iterable

from msgspec.structs import replace

from barq.model.payment import (
    PartAdopted,
    PartEnded,
    PartStarted,
    PartState,
    PartView,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
)

__all__ = ["fold", "fold_all"]


def fold(view: PaymentView | None, event: PaymentEvent) -> PaymentView:
    """The view after ``event`` (pure: ``view`` is not changed).

    Args:
        view: the view so far; ``None`` before the first event.
        event: the next event of the same payment.

    Returns:
        a new frozen view.

    Raises:
        ValueError: the first event is not :class:`PaymentStarted`, or a part
            event names a part the view does not have.
    """
    if isinstance(event, PaymentStarted):
        return PaymentView(
            payment_hash=event.payment_hash,
            destination=event.destination,
            amount_msat=event.amount_msat,
            status=PaymentStatus.PENDING,
            strategy=event.strategy,
            created_at=event.at,
            groupid=event.groupid,
            bolt11=event.bolt11,
            label=event.label,
            maxfee_msat=event.maxfee_msat,
        )
    if view is None:
        raise ValueError(f"{type(event).__name__} before PaymentStarted")
    match event:
        case PartAdopted():
            part = PartView(
                partid=event.partid,
                groupid=event.groupid,
                amount_msat=event.amount_msat,
                amount_sent_msat=event.amount_sent_msat,
                fee_msat=event.amount_sent_msat - event.amount_msat,
                route=event.route,
                state=PartState.INFLIGHT,
                started_at=event.at,
                reason=event.reason,
            )
            return _with_parts(view, (*view.parts, part))
        case PartStarted():
            r = event.route
            part = PartView(
                partid=event.partid,
                groupid=event.groupid,
                amount_msat=event.amount_msat,
                amount_sent_msat=r.sent_msat,
                fee_msat=r.fee_msat,
                route=r,
                state=PartState.INFLIGHT,
                started_at=event.at,
            )
            view = replace(view, attempts=view.attempts + 1, compute_s=event.compute_s)
            return _with_parts(view, (*view.parts, part))
        case PartEnded():
            return _part_ended(view, event)
        case PaymentEnded():
            return replace(
                view,
                status=event.status,
                completed_at=event.at,
                error=event.error,
                error_code=event.error_code,
                compute_s=event.compute_s,
            )
    raise ValueError(f"not a payment event: {event!r}")  # pragma: no cover


def fold_all(events: Iterable[PaymentEvent], view: PaymentView | None = None) -> PaymentView | None:
    """:func:`fold` over ``events`` from ``view`` (``None`` when there are none)."""
    for event in events:
        view = fold(view, event)
    return view


def _part_ended(view: PaymentView, event: PartEnded) -> PaymentView:
    parts = list(view.parts)
    for i in range(len(parts) - 1, -1, -1):  # the newest parts end first, mostly
        if parts[i].partid == event.partid:
            break
    else:
        raise ValueError(f"part {event.partid} ended but never started in {view.payment_hash}")
    parts[i] = replace(
        parts[i],
        state=event.state,
        finished_at=event.at,
        failure=event.failure,
        reason=event.reason,
    )
    if event.state is PartState.SUCCEEDED and view.payment_preimage is None:
        view = replace(view, payment_preimage=event.preimage)
    return _with_parts(view, tuple(parts))


def _with_parts(view: PaymentView, parts: tuple[PartView, ...]) -> PaymentView:
    """``view`` holding ``parts``, its totals recomputed from them."""
    ok = [p for p in parts if p.state is PartState.SUCCEEDED]
    return replace(
        view,
        parts=parts,
        delivered_msat=sum(p.amount_msat for p in ok),
        amount_sent_msat=sum(p.amount_sent_msat for p in ok),
        fee_msat=sum(p.fee_msat for p in ok),
        inflight_msat=sum(p.amount_msat for p in parts if p.state is PartState.INFLIGHT),
    )
