"""The real node: Core Lightning's JSON-RPC on its unix socket, decoded into :mod:`barq.model`.

Transport lives in :mod:`barq.node._jsonrpc` (one multiplexed connection,
natively async, no thread per call). This module maps each
:class:`~barq.node.base.NodeInterface` method to one lightningd command and
decodes its answer with msgspec, with the field shapes of CLN's
``doc/schemas/*.json``. Amounts are accepted both as modern integer msat and
as the legacy ``"1000msat"`` strings.

Error translation (nothing foreign escapes):

* JSON-RPC error objects -> :class:`~barq.errors.RpcError` (``rpc_code``, ``rpc_data``);
* ``sendpay`` 204 and ``waitsendpay`` 204/203 -> :class:`~barq.errors.PartFailed`
  with a :class:`~barq.model.RouteFailure` (the ``channel_update`` parsed from
  ``raw_message`` when the node sent one);
* ``decode`` refusing the string (-32602), ``valid: false``, or a
  non-bolt11 object -> :class:`~barq.errors.InvalidInvoice`;
* socket problems -> :class:`~barq.errors.RpcConnectionError`;
* an answer whose shape is not what the schema says -> :class:`~barq.errors.RpcError`
  (``rpc_code`` -1) naming the method.
"""

from __future__ import annotations

import contextlib
import math
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
    GraphLoadError,
    InvalidInvoice,
    PartFailed,
    RpcError,
)
from barq.model import (
    ChannelUpdate,
    FailCode,
    Invoice,
    LocalChannel,
    NodeInfo,
    PartStatus,
    Route,
    RouteFailure,
    RouteHintHop,
    Scid,
    SendpayStatus,
)
from barq.node._jsonrpc import JsonRpcClient

if TYPE_CHECKING:
    from barq.graph import Graph

__all__ = [
    "CURRENCY_NETWORKS",
    "LightningdNode",
    "parse_channel_update",
    "parse_failure_message",
    "scid_from_int",
]

T = TypeVar("T")

CURRENCY_NETWORKS: dict[str, str] = {
    "bc": "bitcoin",
    "tb": "testnet",  # testnet4 uses "tb" too: CLN resolves "tb" to testnet first
    "tbs": "signet",
    "bcrt": "regtest",
    "ex": "liquid",
    "ert": "liquid-regtest",
}
"""bolt11 ``currency`` (as CLN's ``decode`` gives it) -> CLN network name (``getinfo``'s)."""

# ---------------------------------------------------------------------------
# BOLT 4 failure messages and BOLT 7 channel_update
# ---------------------------------------------------------------------------

_WIRE_CHANNEL_UPDATE = 258
_UPDATE_BODY_NO_MAX = 128  # signature .. fee_proportional_millionths
_UPDATE_BODY = 136  # .. htlc_maximum_msat

# Bytes of fixed fields before ``u16 len, channel_update`` in each UPDATE failure (BOLT 4).
_BYTES_BEFORE_UPDATE: dict[int, int] = {
    FailCode.TEMPORARY_CHANNEL_FAILURE: 0,
    FailCode.AMOUNT_BELOW_MINIMUM: 8,  # u64 htlc_msat
    FailCode.FEE_INSUFFICIENT: 8,  # u64 htlc_msat
    FailCode.INCORRECT_CLTV_EXPIRY: 4,  # u32 cltv_expiry
    FailCode.EXPIRY_TOO_SOON: 0,
    FailCode.CHANNEL_DISABLED: 2,  # u16 disabled_flags
}


def scid_from_int(value: int) -> Scid:
    """BOLT 7 u64 ``short_channel_id`` -> ``BLOCKxTXxOUT``."""
    return f"{value >> 40}x{(value >> 16) & 0xFFFFFF}x{value & 0xFFFF}"


def _u(data: bytes, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "big")


def parse_channel_update(data: bytes) -> ChannelUpdate:
    """Decode a BOLT 7 ``channel_update``, with or without its ``u16`` type (258) prefix.

    BOLT 4 lets failure messages carry the update with or without its type;
    the two are told apart by length (128 or 136 bytes without the type,
    i.e. without/with ``htlc_maximum_msat``), then by the ``0x0102`` prefix.
    The signature is not checked.

    Raises:
        ValueError: shorter than a channel_update.
    """
    prefixed = data[:2] == _WIRE_CHANNEL_UPDATE.to_bytes(2, "big")
    bare_sizes = (_UPDATE_BODY_NO_MAX, _UPDATE_BODY)
    if prefixed and len(data) - 2 in bare_sizes:
        body = data[2:]
    elif len(data) in bare_sizes:
        body = data
    else:
        body = data[2:] if prefixed else data
    if len(body) < _UPDATE_BODY_NO_MAX:
        raise ValueError(f"channel_update too short: {len(body)} bytes")
    message_flags = body[108]
    channel_flags = body[109]
    has_max = bool(message_flags & 1) and len(body) >= _UPDATE_BODY
    return ChannelUpdate(
        scid=scid_from_int(_u(body, 96, 8)),
        direction=channel_flags & 1,
        disabled=bool(channel_flags & 2),
        timestamp=_u(body, 104, 4),
        cltv_delta=_u(body, 110, 2),
        htlc_min_msat=_u(body, 112, 8),
        fee_base_msat=_u(body, 120, 4),
        fee_ppm=_u(body, 124, 4),
        htlc_max_msat=_u(body, 128, 8) if has_max else None,
    )


def parse_failure_message(raw: bytes) -> tuple[int, ChannelUpdate | None]:
    """Split a BOLT 4 failure message into its ``failure_code`` and its ``channel_update``.

    Only UPDATE-flag codes carry an update (``temporary_channel_failure``,
    ``amount_below_minimum``, ``fee_insufficient``, ``incorrect_cltv_expiry``,
    ``expiry_too_soon``, ``channel_disabled``); a zero length, a truncated
    message or an unparsable update gives ``None``, never an exception.

    Raises:
        ValueError: ``raw`` is shorter than the 2-byte failure code.
    """
    if len(raw) < 2:
        raise ValueError(f"failure message too short: {len(raw)} bytes")
    code = _u(raw, 0, 2)
    skip = _BYTES_BEFORE_UPDATE.get(code)
    if skip is None:
        return code, None
    at = 2 + skip
    if len(raw) < at + 2:
        return code, None
    length = _u(raw, at, 2)
    update = raw[at + 2 : at + 2 + length]
    if length == 0 or len(update) < length:
        return code, None
    try:
        return code, parse_channel_update(update)
    except ValueError:
        return code, None


# ---------------------------------------------------------------------------
# lightningd answers (only the fields Barq reads; unknown fields are ignored)
# ---------------------------------------------------------------------------

Msat = int | str  # integer msat, or legacy "1000msat"


def _msat(value: Msat) -> int:
    if isinstance(value, int):
        return value
    if value.endswith("msat") and value[:-4].isdigit():
        return int(value[:-4])
    raise ValueError(f"not a msat amount: {value!r}")


class _Getinfo(msgspec.Struct):
    id: str
    network: str
    blockheight: int
    alias: str = ""
    lightning_dir: str | None = msgspec.field(default=None, name="lightning-dir")


class _DecodedKind(msgspec.Struct):
    type: str = ""
    valid: bool = False


class _Bolt11HintHop(msgspec.Struct):
    pubkey: str
    short_channel_id: str
    fee_base_msat: Msat = 0
    fee_proportional_millionths: int = 0
    cltv_expiry_delta: int = 0


class _Bolt11(msgspec.Struct):
    currency: str
    created_at: int
    payee: str
    payment_hash: str
    expiry: int = 3600
    amount_msat: Msat | None = None
    payment_secret: str | None = None
    description: str | None = None
    min_final_cltv_expiry: int = 18
    features: str = ""
    routes: list[list[_Bolt11HintHop]] = []


class _ChannelAlias(msgspec.Struct):
    local: str | None = None
    remote: str | None = None


class _PeerChannel(msgspec.Struct):
    peer_id: str
    state: str
    peer_connected: bool = False
    short_channel_id: str | None = None
    alias: _ChannelAlias | None = None
    direction: int | None = None
    private: bool = False
    spendable_msat: Msat = 0
    receivable_msat: Msat = 0
    total_msat: Msat = 0
    minimum_htlc_out_msat: Msat = 0
    maximum_htlc_out_msat: Msat | None = None
    max_accepted_htlcs: int | None = None


class _PeerChannels(msgspec.Struct):
    channels: list[_PeerChannel]


class _Payment(msgspec.Struct):
    payment_hash: str
    status: SendpayStatus
    amount_sent_msat: Msat
    id: int | None = None
    groupid: int | None = None
    partid: int | None = None
    amount_msat: Msat | None = None
    destination: str | None = None
    created_at: int = 0
    completed_at: int | float | None = None
    payment_preimage: str | None = None
    bolt11: str | None = None
    label: str | None = None


class _Payments(msgspec.Struct):
    payments: list[_Payment]


class _RouteFailData(msgspec.Struct):
    erring_index: int = 0
    failcode: int = 0
    erring_node: str | None = None
    erring_channel: str | None = None
    erring_direction: int | None = None
    raw_message: str | None = None
    channel_update: str | None = None  # very old lightningd


def _decode(method: str, raw: msgspec.Raw, shape: type[T]) -> T:
    """Decode ``method``'s result into ``shape``; a mismatch is lightningd's fault: RpcError."""
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RpcError(
            f"{method}: lightningd's answer is not what barq expects ({exc})", method=method
        ) from exc


def _part_status(
    p: _Payment, *, partid: int = 0, groupid: int = 0, amount_msat: int | None = None
) -> PartStatus:
    """``partid``/``groupid``/``amount_msat``: what to use when lightningd omits them."""
    return PartStatus(
        payment_hash=p.payment_hash,
        partid=p.partid if p.partid is not None else partid,
        groupid=p.groupid if p.groupid is not None else groupid,
        status=p.status,
        amount_msat=_msat(p.amount_msat) if p.amount_msat is not None else (amount_msat or 0),
        amount_sent_msat=_msat(p.amount_sent_msat),
        destination=p.destination,
        created_at=p.created_at,
        completed_at=int(p.completed_at) if p.completed_at is not None else None,
        payment_preimage=p.payment_preimage,
        bolt11=p.bolt11,
        label=p.label,
        id=p.id,
    )


def _route_failure(exc: RpcError) -> RouteFailure:
    """Build the :class:`RouteFailure` of a 203/204 error; tolerant of missing or odd fields."""
    try:
        d = msgspec.convert(exc.rpc_data, type=_RouteFailData)
    except msgspec.ValidationError:
        d = _RouteFailData()
    update: ChannelUpdate | None = None
    failcode = d.failcode
    if d.raw_message:
        with contextlib.suppress(ValueError):  # malformed: keep lightningd's failcode, no update
            code, update = parse_failure_message(bytes.fromhex(d.raw_message))
            failcode = failcode or code
    if update is None and d.channel_update:
        with contextlib.suppress(ValueError):
            update = parse_channel_update(bytes.fromhex(d.channel_update))
    return RouteFailure(
        failcode=failcode,
        erring_index=d.erring_index,
        erring_node=d.erring_node,
        erring_channel=d.erring_channel,
        erring_direction=d.erring_direction,
        channel_update=update,
        message=exc.message,
    )


def _part_failed(exc: RpcError) -> PartFailed:
    return PartFailed(
        exc.message,
        failure=_route_failure(exc),
        method=exc.method,
        rpc_code=exc.rpc_code,
        rpc_data=exc.rpc_data,
    )


# ---------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------


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
        self._gossip_cache: tuple[tuple[str, int, int], Graph] | None = None

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
        return _decode(method, await self._rpc.call_raw(method, params), shape)

    # -- NodeInterface ------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        """``getinfo``: id, network, blockheight, alias, lightning-dir."""
        r = await self._call_as("getinfo", {}, _Getinfo)
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
        kind = _decode("decode", raw, _DecodedKind)
        if kind.type.startswith("bolt12"):
            raise InvalidInvoice(f"{kind.type}: bolt12 is not supported, give a bolt11 invoice")
        if kind.type != "bolt11 invoice":
            raise InvalidInvoice(f"not a bolt11 invoice (lightningd decoded a {kind.type!r})")
        if not kind.valid:
            raise InvalidInvoice("invalid bolt11 invoice (lightningd says valid: false)")
        b = _decode("decode", raw, _Bolt11)
        network = CURRENCY_NETWORKS.get(b.currency)
        if network is None:
            raise InvalidInvoice(f"bolt11 invoice for unknown currency {b.currency!r}")
        try:
            return Invoice(
                bolt11=invstring,
                payee=b.payee,
                payment_hash=b.payment_hash,
                amount_msat=_msat(b.amount_msat) if b.amount_msat is not None else None,
                created_at=b.created_at,
                expiry=b.expiry,
                min_final_cltv_expiry=b.min_final_cltv_expiry,
                network=network,
                payment_secret=b.payment_secret,
                description=b.description,
                route_hints=tuple(
                    tuple(
                        RouteHintHop(
                            node_id=h.pubkey,
                            scid=h.short_channel_id,
                            fee_base_msat=_msat(h.fee_base_msat),
                            fee_ppm=h.fee_proportional_millionths,
                            cltv_delta=h.cltv_expiry_delta,
                        )
                        for h in hint
                    )
                    for hint in b.routes
                ),
                features=b.features,
            )
        except ValueError as exc:
            raise RpcError(f"decode: unexpected answer ({exc})", method="decode") from exc

    async def list_peer_channels(self) -> list[LocalChannel]:
        """``listpeerchannels``: every channel in any state.

        ``scid`` is ``short_channel_id``, else the local alias (zero-conf
        channels before confirmation), else ``None``. ``capacity_msat`` is
        ``total_msat``; ``htlc_min_msat``/``htlc_max_msat`` are what we may
        send (``minimum_htlc_out_msat``/``maximum_htlc_out_msat``);
        ``max_accepted_htlcs`` is lightningd's field as is.
        """
        r = await self._call_as("listpeerchannels", {}, _PeerChannels)
        try:
            return [
                LocalChannel(
                    peer_id=c.peer_id,
                    scid=c.short_channel_id or (c.alias.local if c.alias else None),
                    direction=c.direction,
                    state=c.state,
                    peer_connected=c.peer_connected,
                    spendable_msat=_msat(c.spendable_msat),
                    receivable_msat=_msat(c.receivable_msat),
                    capacity_msat=_msat(c.total_msat),
                    private=c.private,
                    htlc_min_msat=_msat(c.minimum_htlc_out_msat),
                    htlc_max_msat=(
                        _msat(c.maximum_htlc_out_msat)
                        if c.maximum_htlc_out_msat is not None
                        else None
                    ),
                    max_accepted_htlcs=c.max_accepted_htlcs,
                )
                for c in r.channels
            ]
        except ValueError as exc:
            raise RpcError(
                f"listpeerchannels: unexpected answer ({exc})", method="listpeerchannels"
            ) from exc

    async def gossip_graph(self) -> Graph:
        """Load ``<lightning-dir>/gossip_store`` (in a worker thread).

        The graph is cached by the file's size and mtime: asking again while the
        store has not changed costs one ``stat``.

        Raises:
            barq.errors.GraphLoadError: no lightning-dir known, or the store is
                missing, unreadable or corrupt.
            barq.errors.RpcError / RpcConnectionError: ``getinfo`` failed.
        """
        lightning_dir = self._lightning_dir or (await self.get_info()).lightning_dir
        if not lightning_dir:
            raise GraphLoadError(
                "lightningd's getinfo gave no lightning-dir: pass lightning_dir= to LightningdNode"
            )
        path = Path(lightning_dir) / "gossip_store"
        try:
            from barq.graph import load_gossip_store
        except ImportError as exc:  # the graph package is built without it
            raise GraphLoadError(f"cannot read {path}: {exc}") from exc
        key: tuple[str, int, int] | None
        try:
            st = path.stat()
            key = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            key = None  # let the loader say what is wrong
        if key is not None and self._gossip_cache is not None and self._gossip_cache[0] == key:
            return self._gossip_cache[1]  # the store has not changed since the last load
        try:
            graph = await anyio.to_thread.run_sync(load_gossip_store, path)
        except OSError as exc:
            raise GraphLoadError(f"{path}: {exc.strerror or exc}") from exc
        if key is not None:
            self._gossip_cache = (key, graph)
        return graph

    async def sendpay(
        self,
        route: Route,
        payment_hash: str,
        *,
        partid: int,
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
            p = await self._call_as("sendpay", params, _Payment)
        except RpcError as exc:
            if exc.rpc_code == PAY_TRY_OTHER_ROUTE:
                raise _part_failed(exc) from exc
            raise
        return self._status(
            "sendpay", p, partid=partid, groupid=groupid, amount_msat=route.amount_msat
        )

    async def waitsendpay(
        self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
    ) -> PartStatus:
        """``waitsendpay`` until the part resolves; returns it ``complete`` with its preimage.

        ``timeout_s`` is rounded up to whole seconds (lightningd's unit).

        Raises:
            barq.errors.PartFailed: 204 (try another route) or 203 (destination
                refused for good); ``rpc_code`` tells which.
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
            p = await self._call_as("waitsendpay", params, _Payment)
        except RpcError as exc:
            if exc.rpc_code in (PAY_TRY_OTHER_ROUTE, PAY_DESTINATION_PERM_FAIL):
                raise _part_failed(exc) from exc
            raise
        return self._status("waitsendpay", p, partid=partid, groupid=groupid)

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        """``listsendpays``: every part (of ``payment_hash`` only, when given).

        ``amount_msat`` is 0 for parts whose delivered amount lightningd does
        not know (sent with ``sendonion``).
        """
        params = {} if payment_hash is None else {"payment_hash": payment_hash}
        r = await self._call_as("listsendpays", params, _Payments)
        return [self._status("listsendpays", p) for p in r.payments]

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _status(method: str, p: _Payment, **fallbacks: Any) -> PartStatus:
        try:
            return _part_status(p, **fallbacks)
        except ValueError as exc:
            raise RpcError(f"{method}: unexpected answer ({exc})", method=method) from exc
