"""The runtime's keysend and BOLT 12 calls: ask the node, build the payment, run it (issue 14).

The payment itself runs as any other (the coordinator decides join /
already paid / adopt, the supervisor plans and sends); only its parts go
by injected onion: while a payment hash is paid here, :meth:`OnionPayments.node_for`
gives the supervisor an :class:`~barq.actors._onion_send.OnionSender` instead
of the node.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import msgspec

from barq.actors._onion_pay import (
    OnionPayment,
    bolt12_payment,
    fetch_error,
    fetchinvoice_params,
    keysend_payment,
)
from barq.actors._onion_send import OnionTarget, onion_sender
from barq.errors import BarqError, InvalidInvoice, RpcError
from barq.model import Invoice, NodeId, NodeInfo, PaymentHash, is_node_id
from barq.model.payment import PaymentEvent, PayOutcome, PayParams
from barq.node.base import NodeInterface, OnionNodeInterface
from barq.onion import parse_extratlvs

log = logging.getLogger(__name__)

__all__ = ["BOLT12_PREFIXES", "OnionPayments", "check_extratlvs", "is_bolt12"]

#: invoice strings paid by injected onions: BOLT 12 invoices and offers
BOLT12_PREFIXES = ("lni1", "lno1")


def is_bolt12(invstring: str) -> bool:
    """Whether ``invstring`` (canonical: lower case) is a BOLT 12 invoice or offer."""
    return invstring.startswith(BOLT12_PREFIXES)


def check_extratlvs(extratlvs: Mapping[str, str]) -> None:
    """Check keysend's ``extratlvs`` (``{"type": "hex"}``) as :func:`keysend_payment` will.

    Raises:
        InvalidParams: (-32602) a type below 65536 or the preimage type, a
            non-numeric type, or a value that is not hex.
    """
    parse_extratlvs(extratlvs)


class PayFn(Protocol):
    def __call__(
        self,
        params: PayParams,
        *,
        on_event: Callable[[PaymentEvent], None] | None = ...,
        invoice: Invoice | None = ...,
    ) -> Awaitable[PayOutcome]: ...


class OnionPayments:
    """Keysend and BOLT 12 for one runtime.

    Args:
        node: the runtime's node (must be an
            :class:`~barq.node.base.OnionNodeInterface` for these calls).
        info: our ``getinfo``.
        clock: UNIX seconds.
        pay: the coordinator's ``pay`` (join, adopt, run).
        refresh_graph: reloads the router's gossip graph. Called before a BOLT 12
            payment: the router reloads gossip by itself only for a destination it
            does not know, and a blinded payment's destination is always "known"
            (the placeholder node at the end of the paths' hints), while its
            introduction nodes may be new to gossip.
    """

    def __init__(
        self,
        node: NodeInterface,
        info: NodeInfo,
        clock: Callable[[], float],
        pay: PayFn,
        refresh_graph: Callable[[], Awaitable[None]],
    ) -> None:
        self._node = node
        self._info = info
        self._clock = clock
        self._pay = pay
        self._refresh_graph = refresh_graph
        self._targets: dict[str, OnionTarget] = {}

    def _onion_node(self) -> OnionNodeInterface:
        if not isinstance(self._node, OnionNodeInterface):
            raise BarqError("this node cannot send onions (createonion/injectpaymentonion)")
        return self._node

    @asynccontextmanager
    async def node_for(self, payment_hash: PaymentHash) -> AsyncIterator[NodeInterface]:
        """The node the supervisor of ``payment_hash`` sends with (an onion sender while
        this hash is paid by keysend/BOLT 12, else the node itself)."""
        target = self._targets.get(payment_hash)
        if target is None:
            yield self._node
            return
        async with onion_sender(self._onion_node(), target) as sender:
            yield sender

    async def keysend(
        self,
        params: PayParams,
        destination: str,
        extratlvs: Mapping[str, str] | None = None,
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
    ) -> PayOutcome:
        """Keysend ``params.amount_msat`` to ``destination`` (see :func:`keysend_payment`).

        Raises:
            InvalidParams: bad destination (ours, not a node id), amount or extratlvs.
            RouteNotFound: (205) the destination is in no gossip, peer or hint.
            BarqError: as :meth:`barq.actors.runtime.Runtime.pay_outcome`.
        """
        node = self._onion_node()
        features = (
            await node.node_features(NodeId(destination)) if is_node_id(destination) else None
        )
        pay = keysend_payment(params, destination, extratlvs, self._info, features, self._clock())
        return await self._run(pay, on_event)

    async def bolt12(
        self, params: PayParams, *, on_event: Callable[[PaymentEvent], None] | None = None
    ) -> PayOutcome:
        """Pay a BOLT 12 invoice, or fetch an offer's invoice and pay it.

        The outcome's view carries the invoice paid (``bolt11``: the ``lni1…``)
        and the payee's ``invoice_node_id`` as destination.

        Raises:
            InvalidInvoice, InvalidParams, InvoiceExpired, RouteNotFound: see
                :func:`bolt12_payment` and :func:`fetchinvoice_params`;
                ``fetchinvoice`` errors as :func:`fetch_error` maps them.
        """
        node = self._onion_node()
        decoded = await node.decode(params.invstring)
        if decoded.get("type") == "bolt12 offer":
            fetch = fetchinvoice_params(params, decoded, self._clock())
            try:
                fetched = await node.fetch_invoice(fetch)
            except RpcError as exc:
                raise fetch_error(exc) from exc
            invstring = str(fetched["invoice"])
            params = msgspec.structs.replace(
                params, invstring=invstring, amount_msat=None, quantity=None, payer_note=None
            )
            decoded = await node.decode(invstring)
        elif params.quantity is not None or params.payer_note is not None:
            raise InvalidInvoice("quantity and payer_note are for offers (lno1...), not invoices")
        pay = bolt12_payment(params, decoded, self._info)
        try:
            await self._refresh_graph()
        except BarqError as exc:  # the old graph stays: the payment may still find a route
            log.warning("bolt12 payment: gossip reload failed: %s", exc.message)
        return await self._run(pay, on_event)

    async def _run(
        self, pay: OnionPayment, on_event: Callable[[PaymentEvent], None] | None
    ) -> PayOutcome:
        h = pay.invoice.payment_hash
        mine = h not in self._targets
        if mine:
            self._targets[h] = pay.target
        try:
            outcome = await self._pay(pay.params, on_event=on_event, invoice=pay.invoice)
        finally:
            if mine:
                self._targets.pop(h, None)
        dest = pay.target.destination
        if dest is None or outcome.view.destination == dest:
            return outcome
        return msgspec.structs.replace(
            outcome, view=msgspec.structs.replace(outcome.view, destination=dest)
        )
