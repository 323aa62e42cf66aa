"""How a payment that gave up says so: ``xpay``'s words (CLN v26.06 ``plugins/xpay/xpay.c``).

Callers and wallets match ``pay``/``xpay``'s codes and the leading words of
their messages, so a payment's final error is worded here, once, from what
the book knows (pure)::

    nothing sent, routing failed       code of the routing error (205/206)
                                       "Failed: <reason>"
    parts sent, then routing failed    209 "Failed after N attempts. <one sentence per
                                       failed part>Then routing failed: <reason>"
                                       (or "Then routing for remaining X failed: ")
    retry_for (or the invoice) ran out 210 "Timed out after N attempts. <sentences><why>"
    the payee refused                  203 "Destination said it doesn't know invoice:
                                       incorrect_or_unknown_payment_details"

``<reason>`` is askrene's sentence where Barq knows the same condition
("Could not find route without excessive cost", "... excessive delays"),
else the router's own explanation. The error's ``data`` keeps Barq's detail
beside the message (``detail``: the router's words; the payment with every
attempt is added by the book).
"""

from __future__ import annotations

from typing import Any

from barq.errors import (
    PAY_ROUTE_NOT_FOUND,
    PAY_ROUTE_TOO_EXPENSIVE,
    PAY_UNSPECIFIED_ERROR,
    BarqError,
    RouteNotFound,
    RouteTooExpensive,
    StoppedRetrying,
)
from barq.model import PartId, RouteFailure
from barq.model.payment import PartState, PartView

__all__ = [
    "EXCESSIVE_COST",
    "EXCESSIVE_DELAYS",
    "UNKNOWN_INVOICE",
    "attempt_detail",
    "destination_refused",
    "gave_up",
    "part_summary",
    "routing_reason",
]

#: askrene's words when every flow found costs more than the fee budget
EXCESSIVE_COST = "Could not find route without excessive cost"
#: askrene's words when every flow found needs more than ``maxdelay``
EXCESSIVE_DELAYS = "Could not find route without excessive delays"
#: xpay's words when the payee fails with incorrect_or_unknown_payment_details
UNKNOWN_INVOICE = "Destination said it doesn't know invoice"
#: at most this many failed parts are told in a message (the rest are counted)
SUMMARY_PARTS = 8


def _failname(f: RouteFailure) -> str:
    """xpay's name of a failure code: lower case, without ``WIRE_``."""
    return f.failcodename.removeprefix("WIRE_").lower()


def _msat(amount: int) -> str:
    return f"{amount}msat"


def _channel(p: PartView, f: RouteFailure) -> str:
    if f.erring_channel is not None:
        d = f"/{f.erring_direction}" if f.erring_direction is not None else ""
        return f"{f.erring_channel}{d}"
    hops = p.route.hops
    if hops and 0 <= f.erring_index < len(hops):
        h = hops[f.erring_index]
        return f"{h.channel}/{h.direction}"
    return f"hop {f.erring_index}"


def part_summary(p: PartView) -> str | None:
    """xpay's sentence for one failed part (``None``: nothing to tell for it)."""
    f = p.failure
    if p.state not in (PartState.FAILED, PartState.RESPLIT):
        return None
    if f is None:
        return f"Part {p.partid} of {_msat(p.amount_msat)} failed: {p.reason or 'not sent'}"
    name = _failname(f)
    if f.erring_index >= len(p.route.hops) and p.route.hops:
        if name == "mpp_timeout":
            return (
                f"Payment of {_msat(p.amount_msat)} reached destination, but timed out "
                f"before the rest arrived"
            )
        return f"Destination reported {name} for part {p.partid}"
    where = _channel(p, f)
    if f.erring_index == 0 and f.message:
        return f"We got {f.message} for {where}"
    if f.channel_update is not None:
        return f"We got {name} for {where}, containing a channel_update: updating our map"
    if name == "temporary_channel_failure":
        hops = p.route.hops
        carry = hops[f.erring_index].amount_msat if 0 <= f.erring_index < len(hops) else 0
        return f"We got {name} for {where}, assuming it can't carry {_msat(carry)}"
    return f"We got a weird error ({name}) for {where}: disabling it for this payment"


def _summaries(parts: tuple[PartView, ...]) -> str:
    """xpay's ``prior_results``: each failed part's sentence followed by ". "."""
    said = [s for s in (part_summary(p) for p in parts) if s is not None]
    more = len(said) - SUMMARY_PARTS
    out = "".join(f"{s}. " for s in said[:SUMMARY_PARTS])
    if more > 0:
        out += f"And {more} more failed part(s). "
    return out


def routing_reason(err: BarqError) -> str:
    """askrene's sentence for a routing error where Barq knows it, else the error's message.

    A 206 says whether the fee budget or ``maxdelay`` stopped it (from the
    strategy's ``data``: ``cheapest_fee_msat``/``maxfee_msat``,
    ``smallest_delay``/``maxdelay``).
    """
    d = err.data
    explained = d.get("explained")  # the router's askrene sentence (no route can exist)
    if isinstance(explained, str):
        return explained
    if err.code != PAY_ROUTE_TOO_EXPENSIVE:
        return err.message
    fee, maxfee = d.get("cheapest_fee_msat"), d.get("maxfee_msat")
    if isinstance(fee, int) and isinstance(maxfee, int) and fee > maxfee:
        return EXCESSIVE_COST
    delay, maxdelay = d.get("smallest_delay"), d.get("maxdelay")
    if isinstance(maxdelay, int) and (not isinstance(delay, int) or delay > maxdelay):
        return EXCESSIVE_DELAYS
    return EXCESSIVE_COST


def destination_refused(f: RouteFailure, partid: PartId) -> str:
    """The payee failed a part for good: xpay's words for it."""
    name = _failname(f)
    if name == "incorrect_or_unknown_payment_details":
        return f"{UNKNOWN_INVOICE}: {name}"
    return f"Destination refused part {partid} for good: {name}"


def _is_routing(err: BarqError) -> bool:
    return isinstance(err, RouteNotFound | RouteTooExpensive) and err.code in (
        PAY_ROUTE_NOT_FOUND,
        PAY_ROUTE_TOO_EXPENSIVE,
    )


def gave_up(
    err: BarqError,
    parts: tuple[PartView, ...],
    *,
    attempts: int,
    amount_msat: int,
    unassigned_msat: int,
) -> BarqError:
    """The error a payment that gave up with ``err`` answers, in xpay's words.

    Args:
        err: why it stopped (the book's stop or routing error).
        parts: every part of the payment (adopted ones included).
        attempts: parts this run sent.
        amount_msat: what the payment delivers.
        unassigned_msat: what was left to route when routing failed.

    Returns:
        a new error of ``err``'s class (a 209 for routing after attempts, as
        xpay); its ``data`` is ``err.data`` plus ``detail`` (``err``'s own
        message) when the message changed. Errors of other kinds come back as
        they are.
    """
    if isinstance(err, StoppedRetrying):
        return _reworded(
            err, f"Timed out after {attempts} attempts. {_summaries(parts)}{err.message}"
        )
    if not _is_routing(err):
        return err
    reason = routing_reason(err)
    if attempts == 0:
        return _reworded(err, f"Failed: {reason}")
    if unassigned_msat >= amount_msat or unassigned_msat <= 0:
        complaint = "Then routing failed"
    else:
        complaint = f"Then routing for remaining {_msat(unassigned_msat)} failed"
    message = f"Failed after {attempts} attempts. {_summaries(parts)}{complaint}: {reason}"
    return _reworded(err, message, code=PAY_UNSPECIFIED_ERROR)


def _reworded(err: BarqError, message: str, *, code: int | None = None) -> BarqError:
    data: dict[str, Any] = dict(err.data)
    if message != err.message:
        data.setdefault("detail", err.message)
    out = type(err)(message, data=data)
    if code is not None:
        out.code_override = code
    return out


def attempt_detail(p: PartView) -> dict[str, Any]:
    """One part for an error's ``data``: what was tried and why it failed."""
    f = p.failure
    erring_channel: str | None = None
    if f is not None and f.erring_channel is not None:
        erring_channel = (
            f"{f.erring_channel}/{f.erring_direction}"
            if f.erring_direction is not None
            else f.erring_channel
        )
    elif f is not None and p.route.hops and f.erring_index < len(p.route.hops):
        erring_channel = p.route.channels()[max(f.erring_index, 0)]
    return {
        "partid": p.partid,
        "groupid": p.groupid,
        "route": p.route.channels(),
        "amount_msat": p.amount_msat,
        "amount_sent_msat": p.amount_sent_msat,
        "fee_msat": p.fee_msat,
        "outcome": str(p.state),
        "failcode": None if f is None else f.failcode,
        "failcodename": None if f is None else f.failcodename,
        "erring_index": None if f is None else f.erring_index,
        "erring_channel": erring_channel,
        "erring_node": None if f is None else f.erring_node,
        "reason": p.reason,
    }
