"""Keysend, BOLT 12 invoices and offers as payments the engine already knows (issue 14).

Each becomes an :class:`~barq.model.Invoice` the supervisor pays like a
bolt11 one, plus the :class:`~barq.actors._onion_send.OnionTarget` that
tells the onion sender what the final payload holds. Nothing here does
I/O (the runtime asks the node and passes the answers in):

* keysend: a fresh preimage, the payee as destination, final CLTV 42
  (CLN's ``keysend``), no amount (``amount_msat`` is the caller's, so the
  amount rules are :func:`barq.payment.validate`'s);
* a BOLT 12 invoice (``lni1…``, decoded and signature-checked by
  lightningd): every usable blinded path becomes one edge from its
  introduction node to :data:`~barq.onion.BLINDED_DESTINATION`, given to
  the router as a one-hop route hint (fee and CLTV of the path's payinfo;
  the HTLC limits are checked when the onion is built), so a strategy can
  split a payment across paths; a path whose introduction node is the payer
  itself is a two-hop hint, the free lead edge from us to its pseudo node
  then the path (:mod:`barq.onion.blinded`), so its fee and CLTV count;
* an offer (``lno1…``): xpay's ``check_offer_payable`` rules decide what
  ``fetchinvoice`` is asked; its errors become pay's codes.

Not supported yet: paths named by ``first_scid`` (they are skipped; none
left -> 205).

MPP only when the payee says so: keysend needs ``basic_mpp`` in the node's
gossiped features, a BOLT 12 invoice in ``invoice_features``; else one part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from barq.actors._onion_send import OnionTarget
from barq.errors import (
    PAY_UNSPECIFIED_ERROR,
    BarqError,
    InvalidInvoice,
    InvalidParams,
    InvoiceExpired,
    RouteNotFound,
    RpcError,
)
from barq.model import Invoice, NodeId, NodeInfo, PaymentHash, RouteHintHop, Scid, is_node_id
from barq.model.payment import PayParams
from barq.onion import (
    BLINDED_DESTINATION,
    KEYSEND_FINAL_CLTV,
    KEYSEND_PREIMAGE,
    BlindedEdge,
    blinded_edge,
    new_preimage,
    parse_extratlvs,
    paths_from_decode,
    payment_hash_of,
)
from barq.onion.blinded import BLINDED_SCID_BLOCK

__all__ = [
    "BASIC_MPP_BITS",
    "KEYSEND_EXPIRY_S",
    "OnionPayment",
    "bolt12_payment",
    "fetch_error",
    "fetchinvoice_params",
    "has_basic_mpp",
    "keysend_payment",
]

#: BOLT 9 ``basic_mpp`` (even: required, odd: optional)
BASIC_MPP_BITS = (16, 17)

#: a keysend has no invoice; this is how long its payment hash stays payable to us
#: (the window is the payment's ``retry_for`` anyway)
KEYSEND_EXPIRY_S = 86_400

#: ``decode``'s default ``invoice_relative_expiry`` (BOLT 12: 7200 s when absent)
_BOLT12_DEFAULT_EXPIRY_S = 7200

_HASH = re.compile(r"[0-9a-f]{64}")

#: lightningd's ``fetchinvoice`` codes (``common/jsonrpc_errors.h``)
_OFFER_EXPIRED = 1002
_OFFER_ROUTE_NOT_FOUND = 1003
_OFFER_BAD_INVREQ_REPLY = 1004
_OFFER_TIMEOUT = 1005


class OnionPayment(msgspec.Struct, frozen=True, kw_only=True):
    """One onion payment ready for the engine: the call, the invoice it pays, its onions."""

    params: PayParams
    invoice: Invoice
    target: OnionTarget


def has_basic_mpp(features_hex: str | None) -> bool:
    """Whether ``features_hex`` (BOLT 9 feature bits, big-endian hex) sets ``basic_mpp``."""
    if not features_hex:
        return False
    try:
        bits = int(features_hex, 16)
    except ValueError:
        return False
    return any((bits >> b) & 1 for b in BASIC_MPP_BITS)


def _one_part_unless(mpp: bool, params: PayParams) -> PayParams:
    return params if mpp else msgspec.structs.replace(params, maxparts=1)


def keysend_payment(
    params: PayParams,
    destination: str,
    extratlvs: Mapping[str, str] | None,
    info: NodeInfo,
    features: str | None,
    now: float,
) -> OnionPayment:
    """A keysend of ``params.amount_msat`` to ``destination``.

    Args:
        params: the call (``invstring`` empty, ``amount_msat`` set).
        extratlvs: ``{"type": "hex"}`` custom records (types >= 65536).
        features: the destination's gossiped features (``None``: not in gossip).
        now: UNIX seconds.

    Raises:
        InvalidParams: (-32602) a destination that is not a node id, our own id
            ("Keysend cannot be used to send funds to yourself"), no amount, or a
            bad ``extratlvs`` entry (type below 65536, the preimage type, not hex).
    """
    if not is_node_id(destination):
        raise InvalidParams(f"destination: not a node id: {destination[:70]!r}")
    if destination == info.id:
        raise InvalidParams(
            "We are the destination. Keysend cannot be used to send funds to yourself"
        )
    if params.amount_msat is None:
        raise InvalidParams("amount_msat parameter required for keysend")
    records = parse_extratlvs(extratlvs or {})
    preimage = new_preimage()
    records[KEYSEND_PREIMAGE] = preimage
    payee = NodeId(destination)
    invoice = Invoice(
        bolt11=params.invstring,
        payee=payee,
        payment_hash=payment_hash_of(preimage),
        amount_msat=None,
        created_at=int(now),
        expiry=KEYSEND_EXPIRY_S,
        min_final_cltv_expiry=KEYSEND_FINAL_CLTV,
        network=info.network,
        features=features or "",
    )
    return OnionPayment(
        params=_one_part_unless(has_basic_mpp(features), params),
        invoice=invoice,
        target=OnionTarget(payer=info.id, custom_records=records, destination=payee),
    )


class _Bolt12Fields(msgspec.Struct, kw_only=True):
    """The fields of ``decode``'s ``bolt12 invoice`` that paying needs."""

    invoice_payment_hash: PaymentHash
    invoice_amount_msat: int
    invoice_created_at: int
    invoice_node_id: NodeId
    invoice_relative_expiry: int = _BOLT12_DEFAULT_EXPIRY_S
    invoice_features: str = ""
    offer_description: str | None = None


def _invoice_scid(edge: BlindedEdge, payment_hash: PaymentHash) -> BlindedEdge:
    """``edge`` renamed ``0x<24 bits of the payment hash>x<index>``: what is learnt about a
    blinded path (the estimator is shared by every payment) then stays with this invoice's
    path, as xpay keeps it in a per-payment layer, instead of reaching path ``index`` of
    every other invoice."""
    tag = int(payment_hash[:6], 16)
    return msgspec.structs.replace(edge, scid=Scid(f"{BLINDED_SCID_BLOCK}x{tag}x{edge.index}"))


def _usable_edges(
    decoded: Mapping[str, Any], payer: NodeId, payment_hash: PaymentHash
) -> list[BlindedEdge]:
    try:
        paths = paths_from_decode(decoded)
    except ValueError as exc:
        raise InvalidInvoice(f"Invalid bolt12 invoice: {exc}") from None
    edges: list[BlindedEdge] = []
    for i, (path, payinfo) in enumerate(paths):
        if path.first_node_id is None:  # named by a channel end: not resolved (xpay drops
            continue  # those gossip cannot resolve; Barq does not resolve them yet)
        if payinfo.unknown_even_feature() is not None:
            continue  # BOLT 12: MUST NOT use a path with unknown even features
        try:
            edge = blinded_edge(i, path, payinfo, payer=payer)
        except ValueError:
            continue  # limits leave nothing deliverable
        edges.append(_invoice_scid(edge, payment_hash))
    return edges


def _hint(edge: BlindedEdge) -> tuple[RouteHintHop, ...]:
    """The route hint of one path: its edge, after the free lead edge when it starts at us."""
    path = RouteHintHop(
        node_id=edge.source,
        scid=edge.scid,
        fee_base_msat=edge.fee_base_msat,
        fee_ppm=edge.fee_ppm,
        cltv_delta=edge.cltv_delta,
    )
    if not edge.via_payer:
        return (path,)
    lead = RouteHintHop(
        node_id=edge.introduction, scid=edge.lead_scid, fee_base_msat=0, fee_ppm=0, cltv_delta=0
    )
    return (lead, path)


def bolt12_payment(params: PayParams, decoded: Mapping[str, Any], info: NodeInfo) -> OnionPayment:
    """Pay the BOLT 12 invoice ``params.invstring`` (``decoded``: lightningd's ``decode``).

    Raises:
        InvalidInvoice: (-32602) not a BOLT 12 invoice, ``valid`` false (the
            ``warning_*`` keys are named), or malformed fields.
        RouteNotFound: (205) no usable blinded path ("No usable blinded paths").
    """
    kind = decoded.get("type")
    if kind != "bolt12 invoice":
        raise InvalidInvoice(f"not a bolt12 invoice (lightningd decoded a {kind!r})")
    if decoded.get("valid") is not True:
        warnings = sorted(k for k in decoded if k.startswith("warning_"))
        raise InvalidInvoice(f"Invalid bolt12 invoice: {', '.join(warnings) or 'valid: false'}")
    try:
        f = msgspec.convert(dict(decoded), _Bolt12Fields)
    except msgspec.ValidationError as exc:
        raise InvalidInvoice(f"Invalid bolt12 invoice: {exc}") from None
    if not is_node_id(f.invoice_node_id):
        raise InvalidInvoice("Invalid bolt12 invoice: invoice_node_id is not a node id")
    if _HASH.fullmatch(f.invoice_payment_hash) is None:
        raise InvalidInvoice("Invalid bolt12 invoice: invoice_payment_hash is not 32 bytes of hex")
    edges = _usable_edges(decoded, info.id, f.invoice_payment_hash)
    if not edges:
        n = len(decoded["invoice_paths"])
        raise RouteNotFound(
            "No usable blinded paths (unknown even features, named by a channel, or limits "
            "that leave nothing deliverable)",
            data={"paths": n},
        )
    hints = tuple(_hint(e) for e in edges)
    invoice = Invoice(
        bolt11=params.invstring,
        payee=BLINDED_DESTINATION,
        payment_hash=PaymentHash(f.invoice_payment_hash),
        amount_msat=f.invoice_amount_msat,
        created_at=f.invoice_created_at,
        expiry=f.invoice_relative_expiry,
        min_final_cltv_expiry=0,  # inside each path's payinfo CLTV
        network=info.network,
        description=f.offer_description,
        route_hints=hints,
        features=f.invoice_features,
    )
    if invoice.amount_msat == 0:
        raise InvalidInvoice("Cannot pay bolt12 invoice with zero amount")
    return OnionPayment(
        params=_one_part_unless(has_basic_mpp(f.invoice_features), params),
        invoice=invoice,
        target=OnionTarget(
            payer=info.id,
            blinded=tuple(edges),
            invstring=params.invstring,
            destination=f.invoice_node_id,
        ),
    )


def fetchinvoice_params(
    params: PayParams, decoded: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """``fetchinvoice``'s parameters for paying the offer ``params.invstring``.

    ``amount_msat`` follows the bolt11 rules: required for an amountless
    offer, refused when the offer fixes it.

    Raises:
        InvalidInvoice: not a valid offer.
        InvalidParams: (-32602) a currency offer ("Cannot pay offer in different
            currency"), a recurring offer, or the amount rules.
        InvoiceExpired: (207) the offer expired.
    """
    kind = decoded.get("type")
    if kind != "bolt12 offer" or decoded.get("valid") is False:
        raise InvalidInvoice(f"not a valid bolt12 offer (lightningd decoded a {kind!r})")
    currency = decoded.get("offer_currency")
    if currency is not None:
        raise InvalidParams(f"Cannot pay offer in different currency {currency}")
    if "offer_recurrence" in decoded:
        raise InvalidParams("Cannot pay recurring offers")
    expiry = decoded.get("offer_absolute_expiry")
    if isinstance(expiry, int) and expiry <= now:
        raise InvoiceExpired(
            f"Offer expired {int(now - expiry)} seconds ago", data={"expires_at": expiry}
        )
    out: dict[str, Any] = {"offer": params.invstring}
    offer_amount = decoded.get("offer_amount_msat")
    if offer_amount is None:
        if params.amount_msat is None:
            raise InvalidParams("amount_msat parameter required: the offer has no amount")
        out["amount_msat"] = params.amount_msat
    elif params.amount_msat is not None:
        raise InvalidParams(
            f"amount_msat parameter unnecessary: the offer asks {offer_amount} msat"
        )
    if params.quantity is not None:
        out["quantity"] = params.quantity
    if params.payer_note is not None:
        out["payer_note"] = params.payer_note
    return out


def fetch_error(exc: RpcError) -> BarqError:
    """A ``fetchinvoice`` error as pay's: 1002 -> 207, 1003 -> 205, 1004/1005 -> 209,
    -32602 stays; ``data`` is lightningd's."""
    msg = f"fetchinvoice: {exc.message}"
    data = dict(exc.rpc_data)
    data["fetchinvoice_code"] = exc.rpc_code
    if exc.rpc_code == _OFFER_EXPIRED:
        return InvoiceExpired(msg, data=data)
    if exc.rpc_code == _OFFER_ROUTE_NOT_FOUND:
        return RouteNotFound(msg, data=data)
    if exc.rpc_code in (_OFFER_BAD_INVREQ_REPLY, _OFFER_TIMEOUT):
        err = BarqError(msg, data=data)
        err.code_override = PAY_UNSPECIFIED_ERROR
        return err
    if exc.rpc_code == InvalidParams.cln_code:
        return InvalidParams(msg, data=data)
    return exc
