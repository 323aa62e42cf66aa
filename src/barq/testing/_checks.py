"""The engine's money rules, checked at every ``sendpay`` of a test double.

:func:`money_rule_violations` is the pure check; :class:`CheckedNode` runs it
around any :class:`~barq.node.base.NodeInterface` (the simulator, lightningd);
:class:`~barq.testing.ScriptedNode` runs it on its own parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import msgspec

from barq.graph import Graph
from barq.model import (
    Invoice,
    LocalChannel,
    NodeInfo,
    PartId,
    PartStatus,
    PaymentHash,
    Route,
    SendpayStatus,
)
from barq.node.base import NodeInterface

__all__ = ["CheckedNode", "Limits", "SentPart", "money_rule_violations", "reuse_violation"]


class SentPart(msgspec.Struct, frozen=True, kw_only=True):
    """One ``sendpay`` as the handler sees it (``seq`` counts sendpay calls from 0)."""

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    route: Route
    total_msat: int
    payment_secret: str | None
    seq: int
    at: float


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a payment must respect (what :meth:`ScriptedNode.expect` checks)."""

    maxfee_msat: int
    maxdelay: int
    maxparts: int


def money_rule_violations(
    parts: Sequence[PartStatus], new: Route, *, total_msat: int, amount_msat: int, limits: Limits
) -> list[str]:
    """The money rules (:mod:`barq.testing`) for sending ``new`` while ``parts`` exist (pure).

    ``parts`` are the payment's parts as ``listsendpays`` shows them; pending
    and complete ones count.
    """
    live = [p for p in parts if p.status is not SendpayStatus.FAILED]
    out: list[str] = []
    h = parts[0].payment_hash[:8] if parts else "payment"
    total = sum(p.amount_msat for p in live) + new.amount_msat
    if total > amount_msat:
        out.append(f"{h}: in flight + delivered {total} > amount {amount_msat}")
    fees = sum(p.amount_sent_msat - p.amount_msat for p in live) + new.fee_msat
    if fees > limits.maxfee_msat:
        out.append(f"{h}: fees {fees} > maxfee {limits.maxfee_msat}")
    if new.delay > limits.maxdelay:
        out.append(f"{h}: delay {new.delay} > maxdelay {limits.maxdelay}")
    if len(live) + 1 > limits.maxparts:
        out.append(f"{h}: {len(live) + 1} parts > maxparts {limits.maxparts}")
    if total_msat != amount_msat:
        out.append(f"{h}: total_msat {total_msat} != amount {amount_msat}")
    return out


def reuse_violation(
    payment_hash: PaymentHash, groupid: int, partid: PartId, old: Route | None, new: Route
) -> str | None:
    """Rule 4: a ``(groupid, partid)`` sent again must carry the same route as before."""
    if old is not None and old != new:
        return f"{payment_hash[:8]}: (groupid {groupid}, partid {partid}) reused for another route"
    return None


class CheckedNode:
    """Wraps any :class:`~barq.node.base.NodeInterface` and checks the money rules at each
    ``sendpay`` (against the inner node's ``listsendpays``) for payments registered with
    :meth:`expect`; breaches land in :attr:`violations`. Everything else is delegated.
    """

    def __init__(self, inner: NodeInterface) -> None:
        self.inner = inner
        self.violations: list[str] = []
        self.sent: list[SentPart] = []
        self._limits: dict[str, tuple[int, Limits]] = {}
        self._routes: dict[tuple[str, int, int], Route] = {}

    def expect(self, payment_hash: PaymentHash, amount_msat: int, limits: Limits) -> None:
        self._limits[payment_hash] = (amount_msat, limits)

    async def get_info(self) -> NodeInfo:
        return await self.inner.get_info()

    async def decode_invoice(self, invstring: str) -> Invoice:
        return await self.inner.decode_invoice(invstring)

    async def list_peer_channels(self) -> list[LocalChannel]:
        return await self.inner.list_peer_channels()

    async def gossip_graph(self) -> Graph:
        return await self.inner.gossip_graph()

    async def sendpay(
        self,
        route: Route,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        total_msat: int,
        payment_secret: str | None,
        bolt11: str | None = None,
        label: str | None = None,
    ) -> PartStatus:
        key = (payment_hash, groupid, partid)
        reused = reuse_violation(payment_hash, groupid, partid, self._routes.get(key), route)
        if reused is not None:
            self.violations.append(reused)
        self._routes[key] = route
        expected = self._limits.get(payment_hash)
        if expected is not None:
            parts = await self.inner.listsendpays(payment_hash)
            self.violations.extend(
                money_rule_violations(
                    parts, route, total_msat=total_msat, amount_msat=expected[0], limits=expected[1]
                )
            )
        self.sent.append(
            SentPart(
                payment_hash=payment_hash,
                partid=partid,
                groupid=groupid,
                route=route,
                total_msat=total_msat,
                payment_secret=payment_secret,
                seq=len(self.sent),
                at=anyio.current_time(),
            )
        )
        return await self.inner.sendpay(
            route,
            payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total_msat,
            payment_secret=payment_secret,
            bolt11=bolt11,
            label=label,
        )

    async def waitsendpay(
        self,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        timeout_s: float | None = None,
    ) -> PartStatus:
        return await self.inner.waitsendpay(
            payment_hash, partid=partid, groupid=groupid, timeout_s=timeout_s
        )

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
        return await self.inner.listsendpays(payment_hash)
