"""lightningd's answers as Barq reads them: msgspec shapes from CLN's ``doc/schemas`` and their
conversion into :mod:`barq.model`.

Only the fields Barq reads are declared; unknown fields are ignored. Amounts
are accepted both as integer msat and as the legacy ``"1000msat"`` strings.
An answer of the wrong shape is lightningd's fault: :class:`~barq.errors.RpcError`
(``rpc_code`` -1) naming the method.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

import msgspec

from barq.errors import PAY_UNPARSEABLE_ONION, InvalidInvoice, PartFailed, RpcError
from barq.model import (
    ChannelUpdate,
    Invoice,
    LocalChannel,
    NodeId,
    PartId,
    PartStatus,
    PaymentHash,
    RouteFailure,
    RouteHintHop,
    Scid,
    SendpayStatus,
)
from barq.node.wire import parse_channel_update, parse_failure_message

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


Msat = int | str  # integer msat, or legacy "1000msat"


def msat(value: Msat) -> int:
    if isinstance(value, int):
        return value
    if value.endswith("msat") and value[:-4].isdigit():
        return int(value[:-4])
    raise ValueError(f"not a msat amount: {value!r}")


class Getinfo(msgspec.Struct):
    id: NodeId
    network: str
    blockheight: int
    alias: str = ""
    lightning_dir: str | None = msgspec.field(default=None, name="lightning-dir")


class DecodedKind(msgspec.Struct):
    type: str = ""
    valid: bool = False


class Bolt11HintHop(msgspec.Struct):
    pubkey: NodeId
    short_channel_id: Scid
    fee_base_msat: Msat = 0
    fee_proportional_millionths: int = 0
    cltv_expiry_delta: int = 0


class Bolt11(msgspec.Struct):
    currency: str
    created_at: int
    payee: NodeId
    payment_hash: PaymentHash
    expiry: int = 3600
    amount_msat: Msat | None = None
    payment_secret: str | None = None
    description: str | None = None
    description_hash: str | None = None
    min_final_cltv_expiry: int = 18
    features: str = ""
    routes: list[list[Bolt11HintHop]] = []


class ChannelAlias(msgspec.Struct):
    local: Scid | None = None
    remote: Scid | None = None


class PeerHtlc(msgspec.Struct):
    direction: str = ""  # "out": offered by us


class Feerate(msgspec.Struct):
    perkw: int = 0


class PeerChannel(msgspec.Struct):
    peer_id: NodeId
    state: str
    peer_connected: bool = False
    short_channel_id: Scid | None = None
    alias: ChannelAlias | None = None
    direction: int | None = None
    private: bool = False
    spendable_msat: Msat = 0
    receivable_msat: Msat = 0
    total_msat: Msat = 0
    minimum_htlc_out_msat: Msat = 0
    maximum_htlc_out_msat: Msat | None = None
    max_accepted_htlcs: int | None = None
    htlcs: list[PeerHtlc] = []
    opener: str = ""
    feerate: Feerate | None = None


class PeerChannels(msgspec.Struct):
    channels: list[PeerChannel]


class Payment(msgspec.Struct):
    payment_hash: PaymentHash
    status: SendpayStatus
    amount_sent_msat: Msat
    id: int | None = None
    groupid: int | None = None
    partid: PartId | None = None
    amount_msat: Msat | None = None
    destination: NodeId | None = None
    created_at: int = 0
    completed_at: int | float | None = None
    payment_preimage: str | None = None
    bolt11: str | None = None
    label: str | None = None


class Payments(msgspec.Struct):
    payments: list[Payment]


class RouteFailData(msgspec.Struct):
    erring_index: int = 0
    failcode: int = 0
    erring_node: NodeId | None = None
    erring_channel: Scid | None = None
    erring_direction: int | None = None
    raw_message: str | None = None
    channel_update: str | None = None  # very old lightningd


def decode_answer(method: str, raw: msgspec.Raw, shape: type[T]) -> T:
    """Decode ``method``'s result into ``shape``; a mismatch is lightningd's fault: RpcError."""
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RpcError(
            f"{method}: lightningd's answer is not what barq expects ({exc})", method=method
        ) from exc


_NO_PARTID = PartId(0)


def part_status(
    p: Payment, *, partid: PartId = _NO_PARTID, groupid: int = 0, amount_msat: int | None = None
) -> PartStatus:
    """``partid``/``groupid``/``amount_msat``: what to use when lightningd omits them."""
    return PartStatus(
        payment_hash=p.payment_hash,
        partid=p.partid if p.partid is not None else partid,
        groupid=p.groupid if p.groupid is not None else groupid,
        status=p.status,
        amount_msat=msat(p.amount_msat) if p.amount_msat is not None else (amount_msat or 0),
        amount_sent_msat=msat(p.amount_sent_msat),
        destination=p.destination,
        created_at=p.created_at,
        completed_at=int(p.completed_at) if p.completed_at is not None else None,
        payment_preimage=p.payment_preimage,
        bolt11=p.bolt11,
        label=p.label,
        id=p.id,
    )


def route_failure(exc: RpcError) -> RouteFailure:
    """Build the :class:`RouteFailure` of a 203/204 error; tolerant of missing or odd fields."""
    try:
        d = msgspec.convert(exc.rpc_data, type=RouteFailData)
    except msgspec.ValidationError:
        d = RouteFailData()
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


def part_failed(exc: RpcError) -> PartFailed:
    """A 202/203/204 part failure as :class:`PartFailed`.

    A 202 (``PAY_UNPARSEABLE_ONION``) without the routing-failure fields is a
    part whose error onion lightningd could not read: always so for an
    injected part (lightningd has no shared secrets for it), also a garbled
    reply to a ``sendpay`` part. Its ``failure`` is ``None`` (reason unknown:
    the part failed, nothing is learnt about the route).
    """
    unreadable = exc.rpc_code == PAY_UNPARSEABLE_ONION and not (
        "failcode" in exc.rpc_data or "erring_node" in exc.rpc_data
    )
    return PartFailed(
        exc.message,
        failure=None if unreadable else route_failure(exc),
        method=exc.method,
        rpc_code=exc.rpc_code,
        rpc_data=exc.rpc_data,
    )


def status_of(method: str, p: Payment, **fallbacks: Any) -> PartStatus:
    """:func:`part_status` for ``method``'s answer; a bad amount string is an RpcError."""
    try:
        return part_status(p, **fallbacks)
    except ValueError as exc:
        raise RpcError(f"{method}: unexpected answer ({exc})", method=method) from exc


def invoice_of(b: Bolt11, invstring: str) -> Invoice:
    """The :class:`~barq.model.Invoice` of ``decode``'s answer for ``invstring``.

    ``network`` is the CLN network of the invoice's currency
    (:data:`CURRENCY_NETWORKS`); route hints keep their order.

    Raises:
        barq.errors.InvalidInvoice: the currency is unknown.
        barq.errors.RpcError: an amount is not msat.
    """
    network = CURRENCY_NETWORKS.get(b.currency)
    if network is None:
        raise InvalidInvoice(f"bolt11 invoice for unknown currency {b.currency!r}")
    try:
        return Invoice(
            bolt11=invstring,
            payee=b.payee,
            payment_hash=b.payment_hash,
            amount_msat=msat(b.amount_msat) if b.amount_msat is not None else None,
            created_at=b.created_at,
            expiry=b.expiry,
            min_final_cltv_expiry=b.min_final_cltv_expiry,
            network=network,
            payment_secret=b.payment_secret,
            description=b.description,
            description_hash=b.description_hash,
            route_hints=tuple(
                tuple(
                    RouteHintHop(
                        node_id=h.pubkey,
                        scid=h.short_channel_id,
                        fee_base_msat=msat(h.fee_base_msat),
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


#: weight one untrimmed HTLC output adds to a commitment transaction (BOLT #3)
HTLC_OUTPUT_WEIGHT = 172


def marginal_feerate(perkw: int) -> int:
    """lightningd's fee-spike buffer feerate (``common/fee_states.c``, v26.06): what it
    charges a further HTLC at when it computes ``spendable_msat``."""
    lo, hi = 253, 45000
    perkw = max(perkw, lo)
    if perkw > hi:
        return int(perkw * 1.1)
    proportion = 1.0 - (perkw - lo) / (hi - lo) * 0.9
    return int(perkw + proportion * perkw)


def htlc_commit_fee_msat(perkw: int) -> int:
    """The commitment fee (msat) one more untrimmed HTLC adds on a channel we opened, at
    the channel's ``feerate.perkw``; whole sat rounded up (lightningd rounds the whole
    commitment's fee down, so one HTLC's share may be a sat more than its own floor).
    0 for feerate 0 (an unconfirmed channel shows none)."""
    if perkw <= 0:
        return 0
    return -(-marginal_feerate(perkw) * HTLC_OUTPUT_WEIGHT // 1000) * 1000


def local_channels_of(r: PeerChannels) -> list[LocalChannel]:
    """``listpeerchannels``' channels as :class:`~barq.model.LocalChannel` (see the node's doc).

    Raises:
        barq.errors.RpcError: an amount is not msat.
    """
    try:
        return [
            LocalChannel(
                peer_id=c.peer_id,
                scid=c.short_channel_id or (c.alias.local if c.alias else None),
                direction=c.direction,
                state=c.state,
                peer_connected=c.peer_connected,
                spendable_msat=msat(c.spendable_msat),
                receivable_msat=msat(c.receivable_msat),
                capacity_msat=msat(c.total_msat),
                private=c.private,
                htlc_min_msat=msat(c.minimum_htlc_out_msat),
                htlc_max_msat=(
                    msat(c.maximum_htlc_out_msat) if c.maximum_htlc_out_msat is not None else None
                ),
                max_accepted_htlcs=c.max_accepted_htlcs,
                htlcs_out=sum(1 for h in c.htlcs if h.direction == "out"),
                htlc_fee_msat=(
                    htlc_commit_fee_msat(c.feerate.perkw)
                    if c.opener == "local" and c.feerate is not None
                    else 0
                ),
            )
            for c in r.channels
        ]
    except ValueError as exc:
        raise RpcError(
            f"listpeerchannels: unexpected answer ({exc})", method="listpeerchannels"
        ) from exc
