"""One part a payer sent on the simulated network: what a fault hook sees and its record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from barq.model import (
    Hop,
    NodeId,
    PartId,
    PartStatus,
    PaymentHash,
    Route,
    RouteFailure,
    SendpayStatus,
)
from barq.sim import rules

__all__ = ["FaultHook", "Part", "PartInfo"]


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What the fault hook is told about the part it may fail."""

    payer: NodeId
    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    route: Route
    total_msat: int


FaultHook = Callable[[int, Hop, PartInfo], RouteFailure | None]
"""``hook(node_index, hop_in, part)`` is called when node ``node_index`` (1 ..
``len(route)``) receives the HTLC over ``hop_in`` (``hop_in.id`` is that
node), before its own checks. Returning a :class:`RouteFailure` makes that
node fail the HTLC with it (``erring_index``/``erring_node`` are overwritten
with the node's; the other fields are kept)."""


@dataclass(slots=True)
class Part:
    """The payer's record of one ``sendpay`` (lightningd's row in ``listsendpays``).

    ``rows`` are the graph rows the HTLC holds, first hop first; ``attempt``
    counts earlier sends of the same ``(hash, partid, groupid)`` (it seeds the
    latency jitter); ``done`` is set once the part resolved.
    """

    id: int
    info: PartInfo
    payment_secret: str | None
    bolt11: str | None
    label: str | None
    created_at: int
    attempt: int
    done: anyio.Event
    status: SendpayStatus = SendpayStatus.PENDING
    rows: list[int] = field(default_factory=list)
    completed_at: int | None = None
    preimage: str | None = None
    failure: RouteFailure | None = None

    def view(self) -> PartStatus:
        """The part as ``listsendpays`` shows it."""
        r = self.info.route
        return PartStatus(
            payment_hash=self.info.payment_hash,
            partid=self.info.partid,
            groupid=self.info.groupid,
            status=self.status,
            amount_msat=r.amount_msat,
            amount_sent_msat=r.sent_msat,
            destination=r.destination,
            created_at=self.created_at,
            completed_at=self.completed_at,
            payment_preimage=self.preimage,
            bolt11=self.bolt11,
            label=self.label,
            id=self.id,
        )

    def earlier(self) -> rules.Earlier:
        """The part as :func:`barq.sim.rules.sendpay_refusal` sees it."""
        return rules.Earlier(
            status=self.status,
            groupid=self.info.groupid,
            partid=self.info.partid,
            total_msat=self.info.total_msat,
            amount_msat=self.info.route.amount_msat,
        )
