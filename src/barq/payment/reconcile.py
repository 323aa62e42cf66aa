"""After a restart: which payments were still in flight, and which ended while Barq was down.

Decided from the node's whole ``listsendpays`` and Barq's stored records::

    a group with parts still pending     -> Recovering: shown by status, its pending
                                            parts awaited, recorded when they end
    a stored pending payment whose       -> finished: record it as the node says
    group has no pending part               (complete or failed)
    with ``rebuild`` (the store was just    -> rebuilt: every other group the store does
    created): a group it does not know         not know, as the node says (strategy
                                               ``recovered``)

A group the node has never heard of is left as the store has it.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from barq.model import PartId, PartStatus, PaymentHash, SendpayStatus
from barq.model.payment import PaymentStatus, PaymentView
from barq.payment.sendpays import GroupKey, group_sendpays, view_from_sendpays

__all__ = [
    "RECOVERED_STRATEGY",
    "Recovering",
    "RecoveryPlan",
    "hashes_in_flight",
    "plan_recovery",
]

#: the strategy a recovered payment shows when Barq has no record of it
RECOVERED_STRATEGY = "recovered"


class Recovering(msgspec.Struct, frozen=True, kw_only=True):
    """One group with parts in flight from before the restart.

    ``parts`` is the node's latest word on each of its parts; ``view`` the
    payment as it stands (from ``parts`` and ``base``, Barq's record).
    """

    key: GroupKey
    parts: tuple[PartStatus, ...]
    base: PaymentView | None = None

    @property
    def view(self) -> PaymentView:
        return view_from_sendpays(list(self.parts), self.base, strategy=RECOVERED_STRATEGY)

    @property
    def pending(self) -> tuple[PartStatus, ...]:
        """The parts to await."""
        return tuple(p for p in self.parts if p.status is SendpayStatus.PENDING)

    def resolved(self, part: PartStatus) -> Recovering:
        """The group once ``part`` (as ``waitsendpay`` returned it) has ended."""
        return msgspec.structs.replace(
            self, parts=tuple(part if p.partid == part.partid else p for p in self.parts)
        )

    def failed(self, partid: PartId, at: float) -> Recovering:
        """The group once part ``partid`` failed (``waitsendpay`` raised) at UNIX ``at``."""
        return msgspec.structs.replace(
            self,
            parts=tuple(
                msgspec.structs.replace(p, status=SendpayStatus.FAILED, completed_at=int(at))
                if p.partid == partid
                else p
                for p in self.parts
            ),
        )


class RecoveryPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What to do after a restart: groups to await, finished payments to record, and the
    history to rebuild (only with ``rebuild``)."""

    recovering: tuple[Recovering, ...] = ()
    finished: tuple[PaymentView, ...] = ()
    rebuilt: tuple[PaymentView, ...] = ()


def plan_recovery(
    sendpays: Sequence[PartStatus], records: Sequence[PaymentView], *, rebuild: bool = False
) -> RecoveryPlan:
    """Apply the module's rule.

    Args:
        sendpays: the node's ``listsendpays`` (every payment hash).
        records: Barq's stored payments: at least the pending ones and those of
            groups with pending parts (with ``rebuild``: all of them).
        rebuild: the store was just created: rebuild what it does not know.
    """
    known = {(v.payment_hash, v.groupid): v for v in records}
    recovering: list[Recovering] = []
    finished: list[PaymentView] = []
    rebuilt: list[PaymentView] = []
    for key, parts in group_sendpays(sendpays).items():
        base = known.get(key)
        if any(p.status is SendpayStatus.PENDING for p in parts):
            recovering.append(Recovering(key=key, parts=tuple(parts), base=base))
        elif base is not None and base.status is PaymentStatus.PENDING:
            finished.append(view_from_sendpays(parts, base))
        elif base is None and rebuild:
            rebuilt.append(view_from_sendpays(parts, strategy=RECOVERED_STRATEGY))
    return RecoveryPlan(
        recovering=tuple(recovering), finished=tuple(finished), rebuilt=tuple(rebuilt)
    )


def hashes_in_flight(sendpays: Sequence[PartStatus]) -> set[PaymentHash]:
    """Payment hashes with a part still pending (whose records :func:`plan_recovery` needs)."""
    return {p.payment_hash for p in sendpays if p.status is SendpayStatus.PENDING}
