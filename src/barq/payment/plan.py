"""Validate a pay call against its invoice and our node: the :class:`PaymentPlan` (pure).

Every limit a payment keeps for its whole life is fixed here, once: the
amount (the invoice's, or ``amount_msat`` for an amountless one), the fee
budget, ``maxdelay``, ``maxparts``, ``retry_for``, the strategy and the
exclusions. Ranges come from :mod:`barq.limits`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from barq.errors import InvalidInvoice, InvalidParams, InvoiceExpired
from barq.limits import MAXPARTS
from barq.model import Invoice, NodeId, NodeInfo, ScidDir, is_node_id, parse_scid_dir
from barq.model.payment import EngineConfig, PayParams

__all__ = ["PaymentPlan", "StrategyTraits", "paid_amount", "validate"]


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
    """A validated payment: everything fixed before the first part is sent."""

    invoice: Invoice
    our_id: NodeId
    amount_msat: int
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
    def payment_hash(self) -> str:
        return self.invoice.payment_hash

    @property
    def destination(self) -> NodeId:
        return self.invoice.payee


def paid_amount(params: PayParams, invoice: Invoice) -> int | None:
    """What a call asks to deliver: ``amount_msat``, else the invoice's (``None``: neither)."""
    return params.amount_msat if params.amount_msat is not None else invoice.amount_msat


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
        InvalidInvoice: the invoice is for another network.
        InvoiceExpired: it expired.
        InvalidParams: amount rules (an amountless invoice needs ``amount_msat``;
            for one with an amount it must be equal), maxparts outside
            :data:`barq.limits.MAXPARTS`, negative maxfee, non-positive retry_for,
            maxdelay below the invoice's final CLTV, a malformed ``exclude``
            entry, or paying ourselves.
        UnknownStrategy: no strategy has that name.
    """
    _check_invoice(invoice, info, now)
    amount = _amount(params, invoice)
    maxparts = config.maxparts if params.maxparts is None else params.maxparts
    if not MAXPARTS.lo <= maxparts <= MAXPARTS.hi:
        raise InvalidParams(f"maxparts must be {MAXPARTS.describe()}, got {maxparts}")
    if params.maxfee_msat is None:
        maxfee = config.default_maxfee_msat(amount)
    else:
        maxfee = params.maxfee_msat
    if maxfee < 0:
        raise InvalidParams(f"maxfee_msat must be >= 0, got {maxfee}")
    retry_for = config.retry_for_s if params.retry_for_s is None else params.retry_for_s
    if not retry_for > 0:
        raise InvalidParams(f"retry_for must be > 0 seconds, got {retry_for}")
    maxdelay = config.maxdelay if params.maxdelay is None else params.maxdelay
    if maxdelay < invoice.min_final_cltv_expiry:
        raise InvalidParams(
            f"maxdelay {maxdelay} is below the invoice's final CLTV {invoice.min_final_cltv_expiry}"
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


def _check_invoice(invoice: Invoice, info: NodeInfo, now: float) -> None:
    if invoice.network != info.network:
        raise InvalidInvoice(
            f"invoice is for network {invoice.network!r} but this node runs on {info.network!r}"
        )
    if invoice.expires_at <= now:
        raise InvoiceExpired(
            f"invoice expired at UNIX {invoice.expires_at} ({int(now - invoice.expires_at)} s ago)",
            data={"expires_at": invoice.expires_at},
        )
    if invoice.payee == info.id:
        raise InvalidParams("this invoice is our own: a node cannot pay itself")


def _amount(params: PayParams, invoice: Invoice) -> int:
    if invoice.amount_msat is None:
        if params.amount_msat is None:
            raise InvalidParams("the invoice has no amount: amount_msat is required")
    elif params.amount_msat is not None and params.amount_msat != invoice.amount_msat:
        raise InvalidParams(
            f"amount_msat {params.amount_msat} differs from the invoice's "
            f"amount {invoice.amount_msat} msat; leave it out"
        )
    amount = paid_amount(params, invoice)
    assert amount is not None
    if amount <= 0:
        raise InvalidParams(f"amount must be positive, got {amount} msat")
    return amount


def _exclusions(entries: tuple[str, ...]) -> tuple[set[ScidDir], set[NodeId]]:
    channels: set[ScidDir] = set()
    nodes: set[NodeId] = set()
    for entry in entries:
        if is_node_id(entry):
            nodes.add(entry)
            continue
        try:
            parse_scid_dir(entry)
        except ValueError:
            raise InvalidParams(
                f"exclude entry {entry!r} is neither a short_channel_id/direction "
                f"(like 103x1x0/1) nor a node id (66 hex characters)"
            ) from None
        channels.add(entry)
    return channels, nodes
