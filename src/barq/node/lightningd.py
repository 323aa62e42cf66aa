"""The real node: Core Lightning's JSON-RPC on its unix socket, decoded into :mod:`barq.model`.

Transport lives in :mod:`barq.node._jsonrpc` (one multiplexed connection,
natively async, no thread per call); the answers' shapes (CLN's
``doc/schemas/*.json``) and their conversion in :mod:`barq.node._answers`;
BOLT 4/7 wire parsing in :mod:`barq.node.wire`. This module maps each
:class:`~barq.node.base.NodeInterface` method to one lightningd command.
Amounts are accepted both as modern integer msat and as the legacy
``"1000msat"`` strings.

Error translation (nothing foreign escapes):

* JSON-RPC error objects -> :class:`~barq.errors.RpcError` (``rpc_code``, ``rpc_data``);
* ``sendpay`` 204 and ``waitsendpay`` 204/203/202 -> :class:`~barq.errors.PartFailed`
  with a :class:`~barq.model.RouteFailure` (the ``channel_update`` parsed from
  ``raw_message`` when the node sent one; none for a 202 whose error onion
  lightningd could not read, e.g. any injected part's);
* ``decode`` refusing the string (-32602), ``valid: false``, or a
  non-bolt11 object -> :class:`~barq.errors.InvalidInvoice`;
* socket problems -> :class:`~barq.errors.RpcConnectionError`;
* an answer whose shape is not what the schema says -> :class:`~barq.errors.RpcError`
  (``rpc_code`` -1) naming the method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import anyio.to_thread
import msgspec

from barq.errors import (
    JSONRPC2_INVALID_PARAMS,
    PAY_DESTINATION_PERM_FAIL,
    PAY_TRY_OTHER_ROUTE,
    PAY_UNPARSEABLE_ONION,
    GraphLoadError,
    InvalidInvoice,
    RpcError,
)
from barq.model import (
    Invoice,
    LocalChannel,
    NodeId,
    NodeInfo,
    PartId,
    PartStatus,
    PaymentHash,
    Route,
    SendpayStatus,
)
from barq.node._answers import (
    CURRENCY_NETWORKS,
    Bolt11,
    DecodedKind,
    Getinfo,
    Payment,
    Payments,
    PeerChannels,
    decode_answer,
    invoice_of,
    local_channels_of,
    part_failed,
    status_of,
)
from barq.node._jsonrpc import JsonRpcClient
from barq.node.base import CreatedOnion

if TYPE_CHECKING:
    from barq.graph import Graph
    from barq.graph.gossip_reader import GossipStoreReader

__all__ = ["CURRENCY_NETWORKS", "LightningdNode"]

T = TypeVar("T")

#: ``waitsendpay`` codes that mean the part failed (``lightningd/pay.c``, ``wait_payment``)
_PART_FAILED_CODES = (PAY_TRY_OTHER_ROUTE, PAY_DESTINATION_PERM_FAIL, PAY_UNPARSEABLE_ONION)


class LightningdNode:
    """A :class:`~barq.node.base.NodeInterface` backed by a running lightningd.

    Args:
        rpc_path: lightningd's RPC socket (``<lightning-dir>/<network>/lightning-rpc``).
        lightning_dir: the network's lightning directory (what ``getinfo``
            reports as ``lightning-dir``), where ``gossip_store`` lives;
            asked from ``getinfo`` when not given.

    Use as ``async with LightningdNode(path) as node:`` or call :meth:`aclose`.
    Nothing is opened until the first call; every method may be called from
    many tasks at once (one connection, replies matched by id).
    """

    def __init__(self, rpc_path: str | Path, *, lightning_dir: str | None = None) -> None:
        self._rpc = JsonRpcClient(rpc_path)
        self._lightning_dir = lightning_dir
        self._gossip: GossipStoreReader | None = None

    @property
    def rpc_path(self) -> Path:
        return self._rpc.socket_path

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the socket; calls in flight fail with ``RpcConnectionError``. Idempotent."""
        await self._rpc.aclose()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Any lightningd command; the result as plain JSON values.

        Raises:
            barq.errors.InvalidParams: ``params`` cannot be written as JSON.
            barq.errors.RpcError: lightningd answered with an error.
            barq.errors.RpcConnectionError: the socket is missing, refused or closed,
                or lightningd sent something that is not JSON-RPC.
        """
        return await self._rpc.call(method, params)

    async def _call_as(self, method: str, params: dict[str, Any], shape: type[T]) -> T:
        return decode_answer(method, await self._rpc.call_raw(method, params), shape)

    # -- NodeInterface ------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        """``getinfo``: id, network, blockheight, alias, lightning-dir."""
        r = await self._call_as("getinfo", {}, Getinfo)
        return NodeInfo(
            id=r.id,
            network=r.network,
            blockheight=r.blockheight,
            alias=r.alias,
            lightning_dir=r.lightning_dir,
        )

    async def decode_invoice(self, invstring: str) -> Invoice:
        """Decode a bolt11 invoice with lightningd's ``decode``.

        ``Invoice.network`` is the CLN network of the invoice's currency
        (:data:`CURRENCY_NETWORKS`); route hints keep their order.

        Raises:
            barq.errors.InvalidInvoice: lightningd cannot parse it (-32602), it
                is not valid, it is not a bolt11 invoice (bolt12 is not
                supported), or its currency is unknown.
            barq.errors.RpcError: any other refusal (e.g. ``decode`` missing).
        """
        try:
            raw = await self._rpc.call_raw("decode", {"string": invstring})
        except RpcError as exc:
            if exc.rpc_code == JSONRPC2_INVALID_PARAMS:
                raise InvalidInvoice(f"invalid invoice: {exc.message}", data=exc.rpc_data) from exc
            raise
        kind = decode_answer("decode", raw, DecodedKind)
        if kind.type.startswith("bolt12"):
            raise InvalidInvoice(f"{kind.type}: bolt12 is not supported, give a bolt11 invoice")
        if kind.type != "bolt11 invoice":
            raise InvalidInvoice(f"not a bolt11 invoice (lightningd decoded a {kind.type!r})")
        if not kind.valid:
            raise InvalidInvoice("invalid bolt11 invoice (lightningd says valid: false)")
        return invoice_of(decode_answer("decode", raw, Bolt11), invstring)

    async def list_peer_channels(self) -> list[LocalChannel]:
        """``listpeerchannels``: every channel in any state.

        ``scid`` is ``short_channel_id``, else the local alias (zero-conf
        channels before confirmation), else ``None``. ``capacity_msat`` is
        ``total_msat``; ``htlc_min_msat``/``htlc_max_msat`` are what we may
        send (``minimum_htlc_out_msat``/``maximum_htlc_out_msat``);
        ``max_accepted_htlcs`` is lightningd's field as is.
        """
        r = await self._call_as("listpeerchannels", {}, PeerChannels)
        return local_channels_of(r)

    async def gossip_graph(self) -> Graph:
        """``<lightning-dir>/gossip_store``'s graph, read incrementally (in a worker thread).

        The first call loads the store; later calls read only the records
        appended since (:class:`~barq.graph.gossip_reader.GossipStoreReader`):
        one ``stat`` and the same graph object when nothing changed, a full
        reload when lightningd rewrote or compacted the store.

        Raises:
            barq.errors.GraphLoadError: no lightning-dir known, or the store is
                missing, unreadable or corrupt.
            barq.errors.RpcError / RpcConnectionError: ``getinfo`` failed.
        """
        if self._gossip is None:
            lightning_dir = self._lightning_dir or (await self.get_info()).lightning_dir
            if not lightning_dir:
                raise GraphLoadError(
                    "lightningd's getinfo gave no lightning-dir: pass lightning_dir= to "
                    "LightningdNode"
                )
            from barq.graph.gossip_reader import GossipStoreReader

            self._gossip = GossipStoreReader(Path(lightning_dir) / "gossip_store")
        reader = self._gossip
        try:
            return await anyio.to_thread.run_sync(reader.graph)
        except OSError as exc:
            raise GraphLoadError(f"{reader.path}: {exc.strerror or exc}") from exc

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
        """``sendpay`` one part along ``route``; returns it ``pending``.

        Raises:
            barq.errors.PartFailed: 204, our first hop refused at once
                (``failure.erring_index`` 0).
            barq.errors.RpcError: any other code (200 part in flight, 201 already paid...).
        """
        params: dict[str, Any] = {
            "route": route.to_sendpay(),
            "payment_hash": payment_hash,
            "partid": partid,
            "groupid": groupid,
            "amount_msat": total_msat,
        }
        for key, value in (
            ("payment_secret", payment_secret),
            ("bolt11", bolt11),
            ("label", label),
        ):
            if value is not None:
                params[key] = value
        try:
            p = await self._call_as("sendpay", params, Payment)
        except RpcError as exc:
            if exc.rpc_code == PAY_TRY_OTHER_ROUTE:
                raise part_failed(exc) from exc
            raise
        return status_of(
            "sendpay", p, partid=partid, groupid=groupid, amount_msat=route.amount_msat
        )

    async def waitsendpay(
        self,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        timeout_s: float | None = None,
    ) -> PartStatus:
        """``waitsendpay`` until the part resolves; returns it ``complete`` with its preimage.

        ``timeout_s`` is rounded up to whole seconds (lightningd's unit).

        Raises:
            barq.errors.PartFailed: 204 (try another route), 203 (destination
                refused for good) or 202 (an error onion lightningd could not read,
                as for every failed injected part: ``failure`` ``None`` unless
                lightningd placed it); ``rpc_code`` tells which.
            barq.errors.RpcError: 200 timed out with the part still pending, or
                any other code (208 no such part...).
        """
        params: dict[str, Any] = {
            "payment_hash": payment_hash,
            "partid": partid,
            "groupid": groupid,
        }
        if timeout_s is not None:
            params["timeout"] = max(0, math.ceil(timeout_s))
        try:
            p = await self._call_as("waitsendpay", params, Payment)
        except RpcError as exc:
            if exc.rpc_code in _PART_FAILED_CODES:
                raise part_failed(exc) from exc
            raise
        return status_of("waitsendpay", p, partid=partid, groupid=groupid)

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
        """``listsendpays``: every part (of ``payment_hash`` only, when given).

        ``amount_msat`` is 0 for parts whose delivered amount lightningd does
        not know (sent with ``sendonion``).
        """
        params = {} if payment_hash is None else {"payment_hash": payment_hash}
        r = await self._call_as("listsendpays", params, Payments)
        return [status_of("listsendpays", p) for p in r.payments]

    # -- OnionNodeInterface (issue 14: keysend and BOLT 12) -----------------

    async def create_onion(self, hops: Sequence[Mapping[str, str]], assocdata: str) -> CreatedOnion:
        """``createonion``: the packet and the per-hop shared secrets."""
        r = await self._call_as(
            "createonion", {"hops": [dict(h) for h in hops], "assocdata": assocdata}, CreatedOnion
        )
        return r

    async def inject_payment_onion(self, params: Mapping[str, Any], *, route: Route) -> PartStatus:
        """``injectpaymentonion`` (blocks until the part resolves); ``route`` is unused here.

        Raises:
            barq.errors.RpcError: lightningd's refusal or the part's failure (218, with
                ``rpc_data["onionreply"]``); the caller decodes it with its secrets.
        """
        r = await self._call_as("injectpaymentonion", dict(params), _Injected)
        return PartStatus(
            payment_hash=PaymentHash(str(params["payment_hash"])),
            partid=PartId(int(params["partid"])),
            groupid=int(params["groupid"]),
            status=SendpayStatus.COMPLETE,
            amount_msat=int(params["destination_msat"]),
            amount_sent_msat=int(params["amount_msat"]),
            created_at=r.created_at,
            completed_at=r.completed_at,
            payment_preimage=r.payment_preimage,
        )

    async def decode(self, invstring: str) -> dict[str, Any]:
        """``decode`` as plain JSON (BOLT 12 offers and invoices).

        Raises:
            barq.errors.InvalidInvoice: -32602 (unparseable, bad signature).
        """
        try:
            r = await self._rpc.call("decode", {"string": invstring})
        except RpcError as exc:
            if exc.rpc_code == JSONRPC2_INVALID_PARAMS:
                raise InvalidInvoice(f"invalid invoice: {exc.message}", data=exc.rpc_data) from exc
            raise
        if not isinstance(r, dict):
            raise RpcError("decode: unexpected answer (not an object)", method="decode")
        return r

    async def fetch_invoice(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``fetchinvoice`` as plain JSON (errors keep lightningd's code)."""
        r = await self._rpc.call("fetchinvoice", dict(params))
        if not isinstance(r, dict) or not isinstance(r.get("invoice"), str):
            raise RpcError("fetchinvoice: unexpected answer (no invoice)", method="fetchinvoice")
        return r

    async def node_features(self, node_id: NodeId) -> str | None:
        """``listnodes id``: the node's ``features`` (hex), ``None`` when gossip lacks it
        (or lightningd says ``node_id`` is no public key at all)."""
        try:
            r = await self._rpc.call("listnodes", {"id": node_id})
        except RpcError as exc:
            if exc.rpc_code == JSONRPC2_INVALID_PARAMS:
                return None
            raise
        nodes = r.get("nodes", []) if isinstance(r, dict) else []
        if not nodes:
            return None
        features = nodes[0].get("features", "")
        return features if isinstance(features, str) else ""


class _Injected(msgspec.Struct, frozen=True, kw_only=True):
    """``injectpaymentonion``'s success (``doc/schemas/injectpaymentonion.json``)."""

    payment_preimage: str
    created_at: int = 0
    completed_at: int | None = None
