"""Validate a pay call against its invoice and our node: the :class:`PaymentPlan` (pure).

Every limit a payment keeps for its whole life is fixed here, once: the
amount (the invoice's, or ``amount_msat`` for an amountless one; ``partial_msat``
of it when only part is ours to pay), the fee budget, ``maxdelay``,
``maxparts``, ``retry_for``, the strategy and the exclusions. Ranges come from
:mod:`barq.limits`; the refusals use ``pay``'s and ``xpay``'s words (CLN
v26.06) so that callers matching them keep working.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from barq.errors import InvalidInvoice, InvalidParams, InvoiceExpired, RouteTooExpensive
from barq.limits import MAXPARTS
from barq.model import (
    Invoice,
    NodeId,
    NodeInfo,
    PaymentHash,
    ScidDir,
    is_node_id,
    parse_scid_dir,
)
from barq.model.payment import EngineConfig, PayParams

__all__ = [
    "DEFAULT_EXEMPTFEE_MSAT",
    "DEFAULT_MAXFEE_PPM",
    "PaymentPlan",
    "StrategyTraits",
    "paid_amount",
    "validate",
    "xpay_maxfee",
]

#: ``pay``'s fee budget defaults when ``maxfeepercent``/``exemptfee`` are used: 0.5 %,
#: and fees up to 5,000 msat always allowed
DEFAULT_MAXFEE_PPM = 5000
DEFAULT_EXEMPTFEE_MSAT = 5000


class StrategyTraits(Protocol):
    """What the payment lifecycle needs to know of a strategy (see ``barq.strategies.Strategy``).

    ``splits``: it may answer with several routes for one amount;
    ``min_part_msat``: the floor of adaptive halving (``None``: never halve);
    ``halve_on_failure``: retry a part failed for liquidity as two halves.
    """

    @property
    def name(self) -> str: ...

    @property
    def splits(self) -> bool: ...

    @property
    def min_part_msat(self) -> int | None: ...

    @property
    def halve_on_failure(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """A validated payment: everything fixed before the first part is sent.

    ``amount_msat`` is what this payment delivers; ``total_msat`` what the
    payee expects from all payers together (``sendpay``'s ``amount_msat``,
    the onion's ``total_msat``): the same unless ``partial_msat`` was given.
    """

    invoice: Invoice
    our_id: NodeId
    amount_msat: int
    total_msat: int
    maxfee_msat: int
    maxdelay: int
    maxparts: int
    retry_for_s: float
    strategy_name: str
    strategy: StrategyTraits
    min_part_msat: int | None
    exclude_channels: frozenset[ScidDir]
    exclude_nodes: frozenset[NodeId]
    label: str | None

    @property
    def payment_hash(self) -> PaymentHash:
        return self.invoice.payment_hash

    @property
    def destination(self) -> NodeId:
        return self.invoice.payee


def paid_amount(params: PayParams, invoice: Invoice) -> int | None:
    """What a call asks to deliver: ``partial_msat``, else ``amount_msat``, else the
    invoice's amount (``None``: none of them)."""
    if params.partial_msat is not None:
        return params.partial_msat
    return params.amount_msat if params.amount_msat is not None else invoice.amount_msat


def xpay_maxfee(amount_msat: int, ppm: int | None, exempt_msat: int | None) -> int:
    """``pay``'s fee budget from ``maxfeepercent`` (in ppm) and ``exemptfee``, as xpay computes
    it: that share of the amount, but never less than the exempt fee (defaults 0.5 % and
    5,000 msat)."""
    fee = amount_msat * (DEFAULT_MAXFEE_PPM if ppm is None else ppm) // 1_000_000
    return max(fee, DEFAULT_EXEMPTFEE_MSAT if exempt_msat is None else exempt_msat)


def validate(
    params: PayParams,
    invoice: Invoice,
    info: NodeInfo,
    config: EngineConfig,
    now: float,
    *,
    strategies: Callable[[str], StrategyTraits],
) -> PaymentPlan:
    """Check ``params`` against the invoice and our node; fix every limit (pure).

    Args:
        now: UNIX seconds (the runtime's clock) for the expiry check.
        strategies: name -> strategy (the runtime's cached registry lookup);
            raises ``UnknownStrategy`` for a name nobody registered.

    Raises:
        InvalidInvoice: the invoice is for another network, or ``description``
            does not hash to its description hash.
        InvoiceExpired: it expired (xpay: "Invoice expired N seconds ago").
        InvalidParams: amount rules (an amountless invoice needs ``amount_msat``,
            one with an amount refuses it: pay's "amount_msat parameter
            required/unnecessary"; ``partial_msat`` above the total), ``maxfee``
            together with ``maxfeepercent``/``exemptfee``, maxparts outside
            :data:`barq.limits.MAXPARTS`, negative maxfee, non-positive retry_for,
            a malformed ``exclude`` entry, or paying ourselves.
        RouteTooExpensive: (206) the invoice's final CLTV alone is above
            ``maxdelay``: no route can ever fit.
        UnknownStrategy: no strategy has that name.
    """
    _check_invoice(invoice, info, now, params.description)
    total, amount = _amounts(params, invoice)
    maxparts = config.maxparts if params.maxparts is None else params.maxparts
    if not MAXPARTS.lo <= maxparts <= MAXPARTS.hi:
        raise InvalidParams(f"maxparts must be {MAXPARTS.describe()}, got {maxparts}")
    maxfee = _maxfee(params, config, amount)
    retry_for = config.retry_for_s if params.retry_for_s is None else params.retry_for_s
    if not retry_for > 0:
        raise InvalidParams(f"retry_for must be > 0 seconds, got {retry_for}")
    maxdelay = config.maxdelay if params.maxdelay is None else params.maxdelay
    if maxdelay < invoice.min_final_cltv_expiry:
        raise RouteTooExpensive(
            f"Failed: Could not find route without excessive delays: the invoice's final "
            f"CLTV {invoice.min_final_cltv_expiry} alone is above maxdelay {maxdelay}",
            data={"maxdelay": maxdelay, "min_final_cltv_expiry": invoice.min_final_cltv_expiry},
        )
    channels, nodes = _exclusions(params.exclude)
    name = params.strategy or config.default_strategy
    strategy = strategies(name)
    floor = strategy.min_part_msat
    if floor is not None:
        floor = max(floor, config.min_part_msat)
    return PaymentPlan(
        invoice=invoice,
        our_id=info.id,
        amount_msat=amount,
        total_msat=total,
        maxfee_msat=maxfee,
        maxdelay=maxdelay,
        maxparts=maxparts,
        retry_for_s=retry_for,
        strategy_name=name,
        strategy=strategy,
        min_part_msat=floor,
        exclude_channels=frozenset(channels),
        exclude_nodes=frozenset(nodes),
        label=params.label,
    )


def _check_invoice(invoice: Invoice, info: NodeInfo, now: float, description: str | None) -> None:
    if invoice.network != info.network:
        raise InvalidInvoice(
            f"Invalid bolt11 invoice: it is for network {invoice.network}, this node runs on "
            f"{info.network}"
        )
    if invoice.expires_at <= now:
        raise InvoiceExpired(
            f"Invoice expired {int(now - invoice.expires_at)} seconds ago",
            data={"expires_at": invoice.expires_at},
        )
    if description is not None and invoice.description_hash is not None:
        digest = hashlib.sha256(description.encode("utf-8")).hexdigest()
        if digest != invoice.description_hash.lower():
            raise InvalidInvoice(
                "Invalid bolt11: h: does not match description",
                data={"description_hash": invoice.description_hash},
            )
    if invoice.payee == info.id:
        raise InvalidParams("this invoice is our own: a node cannot pay itself")


def _amounts(params: PayParams, invoice: Invoice) -> tuple[int, int]:
    """``(total, amount)``: what the payee expects in all, what this payment delivers."""
    if invoice.amount_msat is None:
        if params.amount_msat is None:
            raise InvalidParams("amount_msat parameter required: the invoice has no amount")
        total = params.amount_msat
    elif params.amount_msat is not None:
        raise InvalidParams(
            f"amount_msat parameter unnecessary: the invoice asks {invoice.amount_msat} msat"
        )
    else:
        total = invoice.amount_msat
    if total <= 0:
        raise InvalidParams("Cannot pay bolt11 invoice with zero amount")
    amount = total if params.partial_msat is None else params.partial_msat
    if not 0 < amount <= total:
        raise InvalidParams(
            f"partial_msat must be less or equal to total amount {total}msat",
            data={"partial_msat": amount, "total_msat": total},
        )
    return total, amount


def _maxfee(params: PayParams, config: EngineConfig, amount: int) -> int:
    """The fee budget: ``maxfee``; else pay's ``maxfeepercent``/``exemptfee``; else the
    engine's default."""
    pay_style = params.maxfee_ppm is not None or params.exemptfee_msat is not None
    if params.maxfee_msat is not None:
        if pay_style:
            raise InvalidParams("If you specify maxfee, cannot specify maxfeepercent or exemptfee.")
        maxfee = params.maxfee_msat
    elif pay_style:
        maxfee = xpay_maxfee(amount, params.maxfee_ppm, params.exemptfee_msat)
    else:
        maxfee = config.default_maxfee_msat(amount)
    if maxfee < 0:
        raise InvalidParams(f"maxfee_msat must be >= 0, got {maxfee}")
    return maxfee


def _exclusions(entries: tuple[str, ...]) -> tuple[set[ScidDir], set[NodeId]]:
    channels: set[ScidDir] = set()
    nodes: set[NodeId] = set()
    for entry in entries:
        if is_node_id(entry):
            nodes.add(NodeId(entry))
            continue
        try:
            parse_scid_dir(entry)
        except ValueError:
            raise InvalidParams(
                f"exclude entry {entry!r} is neither a short_channel_id/direction "
                f"(like 103x1x0/1) nor a node id (66 hex characters)"
            ) from None
        channels.add(ScidDir(entry))
    return channels, nodes
