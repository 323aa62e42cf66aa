"""The async node interface every payment engine call goes through.

Implementations: ``barq.node.lightningd.LightningdNode`` (JSON-RPC on
lightningd's unix socket) and ``barq.sim.SimulatedNode`` (a payer
on a :class:`~barq.sim.SimulatedNetwork`). Both must pass the same
conformance tests (``tests/node/test_conformance.py``).

Contract shared by all implementations:

* amounts are integer msat; routes are :class:`barq.model.Route` in ``sendpay`` shape;
* failures are raised as :mod:`barq.errors` exceptions, never as foreign types:
  a failed part is :class:`barq.errors.PartFailed` carrying a
  :class:`barq.model.RouteFailure`; anything else the node refuses is an
  :class:`barq.errors.RpcError` with lightningd's code;
* every method is safe to call concurrently from many tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from barq.model import (
    Invoice,
    LocalChannel,
    NodeId,
    NodeInfo,
    PartId,
    PartStatus,
    PaymentHash,
    Route,
)

if TYPE_CHECKING:
    from barq.graph import Graph

__all__ = ["CreatedOnion", "NodeInterface", "OnionNodeInterface"]


@runtime_checkable
class NodeInterface(Protocol):
    """What the engine needs from a Lightning node."""

    async def get_info(self) -> NodeInfo:
        """``getinfo``: our id, network and block height."""
        ...

    async def decode_invoice(self, invstring: str) -> Invoice:
        """Decode a bolt11 string (CLN ``decode``).

        Raises:
            barq.errors.InvalidInvoice: malformed, bad signature, or not a bolt11.
        """
        ...

    async def list_peer_channels(self) -> list[LocalChannel]:
        """Our channels with exact ``spendable_msat``/``receivable_msat``."""
        ...

    async def gossip_graph(self) -> Graph:
        """The public channel graph as this node knows it (its gossip)."""
        ...

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
        """Send one part (``sendpay``); returns at once with status ``pending``.

        ``total_msat`` is the invoice amount all parts add up to (CLN's
        ``amount_msat`` parameter); ``partid``/``groupid`` as CLN's MPP rules.

        Raises:
            barq.errors.PartFailed: the first hop refused it immediately.
            barq.errors.RpcError: any other refusal (e.g. 200 part id in flight,
                201 already paid).
        """
        ...

    async def waitsendpay(
        self,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        timeout_s: float | None = None,
    ) -> PartStatus:
        """Wait until the part resolves; returns it ``complete`` with the preimage.

        Raises:
            barq.errors.PartFailed: the part failed; ``.failure`` says where and why.
            barq.errors.RpcError: 200 when ``timeout_s`` elapsed with the part still pending.
        """
        ...

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
        """Every part ever sent (for ``payment_hash`` only, when given)."""
        ...


class CreatedOnion(msgspec.Struct, frozen=True, kw_only=True):
    """``createonion``'s answer: the 1366-byte packet (hex) and one shared secret per hop
    (hex, in hop order; they decrypt the failure onion a hop may send back)."""

    onion: str
    shared_secrets: tuple[str, ...]


@runtime_checkable
class OnionNodeInterface(NodeInterface, Protocol):
    """A node that also sends onions Barq built itself, and knows BOLT 12 (issue 14).

    Used for the payments ``sendpay`` cannot carry: keysend (a custom record in
    the final payload) and BOLT 12 invoices (blinded paths). Implementations:
    ``LightningdNode`` and ``SimulatedNode``.
    """

    async def create_onion(self, hops: Sequence[Mapping[str, str]], assocdata: str) -> CreatedOnion:
        """``createonion`` with ``hops`` (``{"pubkey", "payload"}``) bound to ``assocdata``.

        Raises:
            barq.errors.RpcError: the node refused the hops (e.g. too long).
        """
        ...

    async def inject_payment_onion(self, params: Mapping[str, Any], *, route: Route) -> PartStatus:
        """``injectpaymentonion`` with ``params``; returns when the part resolved (complete).

        ``route`` is the Barq route the onion was built from (lightningd ignores
        it; the simulator forwards along it instead of peeling the onion).

        Raises:
            barq.errors.RpcError: 218 with ``rpc_data["onionreply"]`` (the error onion,
                our own layer included), 219 already paid (``rpc_data``: the earlier
                success), or a refusal before any HTLC left (-32602, 200, 201).
        """
        ...

    async def decode(self, invstring: str) -> dict[str, Any]:
        """``decode`` of any string lightningd knows (BOLT 12 offers and invoices), as JSON.

        Raises:
            barq.errors.InvalidInvoice: lightningd cannot decode it (bad signature too).
        """
        ...

    async def fetch_invoice(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``fetchinvoice`` with ``params`` (``offer``, ``amount_msat``, ``quantity``,
        ``payer_note``); the answer (``invoice``, ``changes``).

        Raises:
            barq.errors.RpcError: lightningd's code (1002 expired, 1003 no route to the
                issuer, 1004 bad reply, 1005 timeout, -32602 parameter rules).
        """
        ...

    async def node_features(self, node_id: NodeId) -> str | None:
        """The node's gossiped feature bits (hex), or ``None`` when gossip does not know it."""
        ...
