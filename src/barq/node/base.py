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

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from barq.model import Invoice, LocalChannel, NodeInfo, PartId, PartStatus, PaymentHash, Route

if TYPE_CHECKING:
    from barq.graph import Graph

__all__ = ["NodeInterface"]


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
