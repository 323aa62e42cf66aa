"""The known capacity to a payee, read from the node when a payment is stuck.

Only asked when the amount left has no route (never on the way to the first
``sendpay``): ``listpeerchannels`` for what our channels can send, the gossip
graph (cached by the node) and our channels for what the payee's channels
hold. Route hints name channels whose capacity is unknown: then the payee's
side is unknown and only our side can prove a payment short.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from barq.errors import BarqError
from barq.model import LocalChannel, NodeId
from barq.model.payment import PartState
from barq.node.base import NodeInterface
from barq.payment import PaymentBook
from barq.payment.patience import capacity_short

__all__ = ["CapacityCheck"]

log = logging.getLogger(__name__)


class CapacityCheck:
    """Is the known capacity to the payee proven short of what is left? (one per payment)"""

    def __init__(self, node: NodeInterface) -> None:
        self._node = node
        self._payee_msat: int | None = None
        self._payee_read = False

    async def __call__(self, book: PaymentBook) -> str | None:
        """Why the payment can never complete (``None``: it still may, or we cannot tell).

        Node errors are logged and read as "cannot tell".
        """
        try:
            channels = await self._node.list_peer_channels()
            if not self._payee_read:
                self._payee_msat = await self._payee_capacity(book, channels_to=channels)
                self._payee_read = True
        except BarqError as exc:
            log.info("payment %s: capacity check skipped: %s", book.plan.payment_hash, exc)
            return None
        ours: int | None = None
        if not book.blocked_by_others:  # other payments' HTLCs may come back to our channels
            held = sum(p.amount_sent_msat for p in book.view.parts if p.state is PartState.INFLIGHT)
            ours = sum(c.spendable_msat for c in channels if c.usable) + held
        return capacity_short(
            left_msat=book.plan.amount_msat - book.delivered_msat,
            our_spendable_msat=ours,
            payee_capacity_msat=self._payee_msat,
        )

    async def _payee_capacity(
        self, book: PaymentBook, *, channels_to: Sequence[LocalChannel]
    ) -> int | None:
        inv = book.plan.invoice
        if inv.route_hints:
            return None
        payee: NodeId = inv.payee
        graph = await self._node.gossip_graph()
        seen: dict[str, int] = {}
        i = graph.node_index.get(payee)
        if i is not None:
            for e in (int(x) for x in (graph.dst == i).nonzero()[0]):
                seen[str(graph.scid[e])] = int(graph.capacity_msat[e])
        for c in channels_to:
            if c.peer_id == payee and c.scid is not None:
                seen[str(c.scid)] = c.capacity_msat
        return sum(seen.values())
