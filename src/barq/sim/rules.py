"""What a node accepts: the sendpay acceptance rules, written once.

Every rule is a pure function of plain values that returns ``None`` (accepted)
or what the refusing node answers. The simulated network
(:mod:`barq.sim.forwarding`, :mod:`barq.sim.receiver`, :mod:`barq.sim.node`)
and the scripted test node (:mod:`barq.testing`) both call them through this
module (``rules.first_hop_refusal(...)``), so a rule changed here changes
both, and a test can watch a rule by patching its name here.

The rules, in the order a part meets them:

* :func:`route_error` - the route itself (lightningd: -32602 before anything is sent);
* :func:`sendpay_refusal` - the payer's own earlier parts of the hash (lightningd's
  ``sendpay``: 201 already paid, 200 in flight, 203 another ``total_msat``);
* :func:`first_hop_refusal` - our own channel: exists, enabled, HTLC minimum, spendable;
* :func:`forward_refusal` - each forwarding node: next peer known, enabled, fee,
  CLTV delta, HTLC limits, liquidity (BOLT 4 failure codes);
* :func:`payee_refusal` - the payee: known invoice, not yet paid, payment secret,
  expiry, final CLTV, ``total_msat`` against the invoice amount;
* :func:`mpp_total_refusal` and :func:`mpp_complete` - the payee's MPP set: every
  part names the same ``total_msat``; the set settles once its parts reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec

from barq.errors import (
    PAY_DESTINATION_PERM_FAIL,
    PAY_IN_PROGRESS,
    PAY_RHASH_ALREADY_USED,
    RpcError,
)
from barq.model import FailCode, Hop, NodeId, PartId, PaymentHash, Route, SendpayStatus, fee_msat

__all__ = [
    "Earlier",
    "ForwardChannel",
    "InvoiceTerms",
    "OwnChannel",
    "Refusal",
    "first_hop_refusal",
    "forward_refusal",
    "htlc_refusal",
    "mpp_complete",
    "mpp_total_refusal",
    "payee_refusal",
    "route_error",
    "sendpay_refusal",
]


class Refusal(NamedTuple):
    """A node refuses an HTLC: the BOLT 4 failure code and a human message."""

    code: FailCode
    message: str


class Earlier(NamedTuple):
    """An earlier part of the same payment hash, as ``sendpay``'s rules see it."""

    status: SendpayStatus
    groupid: int
    partid: PartId
    total_msat: int
    amount_msat: int


class InvoiceTerms(msgspec.Struct, frozen=True, kw_only=True):
    """What the payee checks a part against (from the invoice it issued).

    ``amount_msat`` ``None``: the invoice takes any amount.
    """

    payment_secret: str | None
    amount_msat: int | None
    min_final_cltv: int
    created_at: int
    expiry_s: int


# -- the route and the payer's earlier parts ---------------------------------------------


def route_error(route: Route, *, known: Callable[[NodeId], bool] | None = None) -> str | None:
    """Why lightningd's ``sendpay`` rejects ``route`` as a parameter (-32602), or ``None``.

    Args:
        route: the route given to ``sendpay``.
        known: when given, a hop whose node it does not know is an error too
            (the simulated network knows every node of its graph).
    """
    if not route.hops:
        return "sendpay: Empty route"
    for h in route.hops:
        if h.amount_msat <= 0 or h.delay < 0:
            return f"sendpay: bad hop {h}"
        if known is not None and not known(h.id):
            return f"sendpay: unknown node {h.id} in route"
    return None


def sendpay_refusal(
    earlier: Iterable[Earlier],
    *,
    payment_hash: PaymentHash,
    partid: PartId,
    groupid: int,
    total_msat: int,
) -> RpcError | None:
    """lightningd's ``sendpay`` refusals given the hash's earlier parts, or ``None``.

    In this order: a part succeeded (201); a part of another group is pending
    (200); this ``(groupid, partid)`` is pending (200); a pending part names
    another ``total_msat`` (203). A failed part does not count: its id may be reused.
    """
    parts = list(earlier)
    for p in parts:
        if p.status is SendpayStatus.COMPLETE:
            return _refused(
                f"Already succeeded with amount {p.amount_msat}msat (payment {payment_hash})",
                PAY_RHASH_ALREADY_USED,
            )
    for p in parts:
        if p.status is not SendpayStatus.PENDING:
            continue
        if p.groupid != groupid:
            return _refused(
                f"Payment with groupid={p.groupid} still in progress, cannot "
                "retry before that completes.",
                PAY_IN_PROGRESS,
            )
        if p.partid == partid:
            return _refused(
                f"Payment part {partid} of group {groupid} already in flight", PAY_IN_PROGRESS
            )
        if p.total_msat != total_msat:
            return _refused(
                f"Already have parallel payment in progress with total {p.total_msat}msat",
                PAY_DESTINATION_PERM_FAIL,
            )
    return None


def _refused(message: str, code: int) -> RpcError:
    return RpcError(message, method="sendpay", rpc_code=code)


# -- channels: HTLC limits, fees, CLTV ---------------------------------------------------


class OwnChannel(NamedTuple):
    """Our channel for a first hop, as ``sendpay`` checks it."""

    enabled: bool
    htlc_min_msat: int
    available_msat: int  # our side minus our HTLCs in flight
    free_slots: int = 1  # HTLCs the peer still accepts on it (max_accepted_htlcs - in flight)


class ForwardChannel(NamedTuple):
    """A forwarding node's channel towards the next hop: its policy and liquidity now."""

    enabled: bool
    fee_base_msat: int
    fee_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int
    available_msat: int  # its side minus the HTLCs locked on it
    free_slots: int = 1  # HTLCs the next node still accepts on it


def htlc_refusal(
    amount_msat: int,
    *,
    htlc_min_msat: int,
    htlc_max_msat: int | None,
    available_msat: int,
    free_slots: int = 1,
    no_liquidity: str = "insufficient liquidity",
) -> Refusal | None:
    """The HTLC limits of one channel direction: minimum, maximum (when set), a free HTLC
    slot (the receiving side's ``max_accepted_htlcs``, as channeld's "Too many HTLCs"),
    liquidity."""
    if amount_msat < htlc_min_msat:
        return Refusal(FailCode.AMOUNT_BELOW_MINIMUM, f"below htlc_minimum {htlc_min_msat}msat")
    if htlc_max_msat is not None and amount_msat > htlc_max_msat:
        return Refusal(
            FailCode.TEMPORARY_CHANNEL_FAILURE, f"above htlc_maximum {htlc_max_msat}msat"
        )
    if free_slots <= 0:
        return Refusal(FailCode.TEMPORARY_CHANNEL_FAILURE, "Too many HTLCs")
    if amount_msat > available_msat:
        return Refusal(FailCode.TEMPORARY_CHANNEL_FAILURE, no_liquidity)
    return None


def first_hop_refusal(hop: Hop, channel: OwnChannel | None) -> Refusal | None:
    """Our own channel refuses to offer ``hop`` (``sendpay`` fails at once, 204).

    Args:
        hop: the route's first hop.
        channel: our channel ``hop.channel``, ``None`` when we have none leading
            to ``hop.id``.
    """
    if channel is None:
        return Refusal(FailCode.UNKNOWN_NEXT_PEER, "First peer not ready")
    if not channel.enabled:
        return Refusal(FailCode.CHANNEL_DISABLED, "channel disabled")
    return htlc_refusal(
        hop.amount_msat,
        htlc_min_msat=channel.htlc_min_msat,
        htlc_max_msat=None,
        available_msat=channel.available_msat,
        free_slots=channel.free_slots,
        no_liquidity="Capacity exceeded",
    )


def forward_refusal(hop_in: Hop, hop_out: Hop, channel: ForwardChannel | None) -> Refusal | None:
    """The node that received ``hop_in`` refuses to forward ``hop_out``.

    Args:
        hop_in: the hop that reached the node (its amount and delay).
        hop_out: the hop it is asked to offer.
        channel: its channel ``hop_out.channel`` to ``hop_out.id``, ``None`` when
            it has none (``UNKNOWN_NEXT_PEER``).

    In BOLT 4 order: unknown next peer, disabled, fee kept below ``base + ppm *
    out // 1e6``, CLTV delta kept below the channel's, then the HTLC limits
    (:func:`htlc_refusal`).
    """
    if channel is None:
        return Refusal(FailCode.UNKNOWN_NEXT_PEER, "unknown next peer")
    if not channel.enabled:
        return Refusal(FailCode.CHANNEL_DISABLED, "channel disabled")
    need = fee_msat(hop_out.amount_msat, channel.fee_base_msat, channel.fee_ppm)
    kept = hop_in.amount_msat - hop_out.amount_msat
    if kept < need:
        return Refusal(FailCode.FEE_INSUFFICIENT, f"fee {kept} < {need}msat")
    delta = hop_in.delay - hop_out.delay
    if delta < channel.cltv_delta:
        return Refusal(FailCode.INCORRECT_CLTV_EXPIRY, f"cltv delta {delta} < {channel.cltv_delta}")
    return htlc_refusal(
        hop_out.amount_msat,
        htlc_min_msat=channel.htlc_min_msat,
        htlc_max_msat=channel.htlc_max_msat,
        available_msat=channel.available_msat,
        free_slots=channel.free_slots,
    )


# -- the payee ---------------------------------------------------------------------------


def payee_refusal(
    terms: InvoiceTerms | None,
    *,
    paid: bool,
    payment_secret: str | None,
    final_delay: int,
    total_msat: int,
    now: float,
) -> str | None:
    """Why the payee fails a part with ``INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS``, or ``None``.

    Args:
        terms: the invoice of the hash, ``None`` when the payee issued none.
        paid: the invoice was already paid (an earlier MPP set settled).
        payment_secret: the part's; must equal the invoice's.
        final_delay: the CLTV of the last hop; at least ``min_final_cltv``.
        total_msat: the part's; between the invoice amount and twice it.
        now: UNIX time; the invoice expires at ``created_at + expiry_s``.
    """
    if terms is None:
        return "unknown payment hash"
    if paid:
        return "invoice already paid"
    if payment_secret != terms.payment_secret:
        return "wrong or missing payment_secret"
    if now > terms.created_at + terms.expiry_s:
        return "invoice expired"
    if final_delay < terms.min_final_cltv:
        return f"final cltv {final_delay} < {terms.min_final_cltv}"
    amount = terms.amount_msat
    if amount is not None and not (amount <= total_msat <= 2 * amount):
        return f"total_msat {total_msat} does not match invoice amount {amount}"
    return None


def mpp_total_refusal(set_total_msat: int, total_msat: int) -> str | None:
    """A part joining an MPP set must name the set's ``total_msat``."""
    if total_msat != set_total_msat:
        return f"total_msat {total_msat} differs from the other parts' {set_total_msat}"
    return None


def mpp_complete(held_msat: int, total_msat: int) -> bool:
    """The payee settles the whole set once the parts it holds reach ``total_msat``."""
    return held_msat >= total_msat
