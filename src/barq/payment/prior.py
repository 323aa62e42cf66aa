"""What happened before this call: already paid, parts to adopt, or a fresh group.

Decided once, from the node's ``listsendpays`` of the payment hash and Barq's
stored records of it (a part id is never reused, even across restarts)::

    a complete part in group G      -> Paid: the payment of G (nothing is sent;
                                       a different amount asked now is refused, 201)
    parts pending in group G        -> Resume in G (the highest such): those parts
                                       count as in flight, new parts get partids
                                       above every partid of G (the node's and the
                                       record's); a call for another amount than
                                       G's is refused (200, the join rule of
                                       :mod:`barq.payment.flights`)
    otherwise                       -> Resume in a fresh group: max groupid + 1 (1 if none)
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from barq.errors import AlreadyPaid
from barq.model import Invoice, PartId, PartStatus, SendpayStatus
from barq.model.payment import (
    PartAdopted,
    PartState,
    PartView,
    PaymentStatus,
    PaymentView,
    PayParams,
)
from barq.payment.flights import Terms, adopt_refusal
from barq.payment.plan import paid_amount
from barq.payment.reconcile import RECOVERED_STRATEGY
from barq.payment.sendpays import group_sendpays, view_from_sendpays

__all__ = ["Paid", "Resume", "decide_prior"]


class Paid(msgspec.Struct, frozen=True, kw_only=True):
    """The invoice was paid before: ``view`` is that payment (from the node, with its record).

    ``record`` is true when the store does not know it as complete yet.
    """

    view: PaymentView
    record: bool = False


class Resume(msgspec.Struct, frozen=True, kw_only=True):
    """Where this payment's parts go: group ``groupid``, next part id ``next_partid``.

    ``adopted`` are the parts of that group still in flight from an earlier run;
    ``ended`` its parts that failed before this call (the payment's record of
    the group keeps them, as the node says they ended).
    """

    groupid: int = 1
    next_partid: PartId = PartId(1)
    adopted: tuple[PartAdopted, ...] = ()
    ended: tuple[PartView, ...] = ()

    @property
    def adopted_msat(self) -> int:
        return sum(a.amount_msat for a in self.adopted)


def decide_prior(
    invoice: Invoice,
    params: PayParams,
    sendpays: Sequence[PartStatus],
    records: Sequence[PaymentView],
    now: float,
) -> Paid | Resume:
    """Apply the module's rule to what the node and the store know of ``invoice``'s hash.

    Args:
        invoice: the invoice being paid.
        params: this call (its ``amount_msat`` for the already-paid check).
        sendpays: ``listsendpays`` of the payment hash.
        records: Barq's stored payments of the payment hash (any groups).
        now: UNIX seconds, the start time of adopted parts the node gives none for.

    Raises:
        AlreadyPaid: (201) it was paid with another amount than this call asks.
        PaymentInProgress: (200) parts of an earlier run are in flight for
            another amount than this call asks.
    """
    h = invoice.payment_hash
    groups = group_sendpays(p for p in sendpays if p.payment_hash == h)
    stored = {v.groupid: v for v in records if v.payment_hash == h}
    complete = [g for (_, g), ps in groups.items() if _any(ps, SendpayStatus.COMPLETE)]
    if complete:
        g = max(complete)
        base = stored.get(g)
        view = view_from_sendpays(groups[(h, g)], base)
        wanted = paid_amount(params, invoice)
        if wanted is not None and wanted != view.delivered_msat:
            raise AlreadyPaid(
                f"invoice {h} was already paid with {view.delivered_msat} msat; "
                f"refusing to pay it again with {wanted} msat",
                data=msgspec.to_builtins(view),
            )
        return Paid(view=view, record=base is None or base.status is not PaymentStatus.COMPLETE)
    pending = [g for (_, g), ps in groups.items() if _any(ps, SendpayStatus.PENDING)]
    if pending:
        g = max(pending)
        parts = groups[(h, g)]
        base = stored.get(g)
        adopted = tuple(
            _adopted(p, base, now)
            for p in sorted(parts, key=lambda p: p.partid)
            if p.status is SendpayStatus.PENDING
        )
        refused = adopt_refusal(
            h,
            _group_amount(invoice, base),
            sum(a.amount_msat for a in adopted),
            Terms(amount_msat=paid_amount(params, invoice)),
        )
        if refused is not None:
            raise refused
        used = [p.partid for p in parts] + ([q.partid for q in base.parts] if base else [])
        ended = tuple(
            v for v in view_from_sendpays(parts, base).parts if v.state is not PartState.INFLIGHT
        )
        return Resume(groupid=g, next_partid=PartId(max(used) + 1), adopted=adopted, ended=ended)
    if groups:
        return Resume(groupid=max(g for _, g in groups) + 1)
    return Resume()


def _group_amount(invoice: Invoice, base: PaymentView | None) -> int | None:
    """What a group pays: the invoice's amount, else the record's (``None``: unknown).

    A record rebuilt from ``listsendpays`` (strategy ``recovered``) only guessed it.
    """
    if invoice.amount_msat is not None:
        return invoice.amount_msat
    if base is None or base.strategy == RECOVERED_STRATEGY:
        return None
    return base.amount_msat


def _any(parts: list[PartStatus], status: SendpayStatus) -> bool:
    return any(p.status is status for p in parts)


def _adopted(p: PartStatus, base: PaymentView | None, now: float) -> PartAdopted:
    """A pending part of an earlier run, with the route and start time it recorded."""
    prev = next((v for v in base.parts if v.partid == p.partid), None) if base else None
    if prev is not None and prev.route.hops:
        return PartAdopted(
            payment_hash=p.payment_hash,
            partid=p.partid,
            groupid=p.groupid,
            amount_msat=p.amount_msat,
            amount_sent_msat=p.amount_sent_msat,
            at=prev.started_at,
            route=prev.route,
            reason="adopted: sent by an earlier run",
        )
    return PartAdopted(
        payment_hash=p.payment_hash,
        partid=p.partid,
        groupid=p.groupid,
        amount_msat=p.amount_msat,
        amount_sent_msat=p.amount_sent_msat,
        at=float(p.created_at) or now,
        reason="adopted: sent by an earlier run (route unknown)",
    )
