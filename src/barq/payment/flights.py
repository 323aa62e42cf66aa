"""A second call for a payment hash while it is being paid: the join rule, in one place.

One payment per payment hash runs at a time. A call that finds one running
(:class:`Flight`) may join it only if the two agree on what is paid
(:func:`join_refusal`)::

    the amount the payee gets           must be equal
    maxfee_msat, maxdelay, maxparts     the joining call's limit may not be lower
                                        (it would get a payment it forbade)
    exclude                             the joining call may not exclude more

Otherwise it is refused with :class:`~barq.errors.PaymentInProgress` (200,
xpay's "in progress" family) and nothing of its own is sent: only calls that
asked for what was paid ever answer "complete" with it.

A call that agrees waits for the payment to end and gets its answer: the same
payment (marked ``joined``) or the same error (a fresh copy each); its own
events see nothing. A flight that ended before its payment started (an
error, or the invoice was found paid) leaves the hash free: the waiting
call starts again and decides for itself.

Parts adopted after a restart are joined by the same rule
(:func:`adopt_refusal`): only their amount is known, and it binds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import msgspec

from barq.errors import BarqError, PaymentInProgress
from barq.model import Invoice, PaymentHash
from barq.model.payment import EngineConfig, PayOutcome, PayParams
from barq.payment.plan import PaymentPlan, paid_amount

__all__ = ["Flight", "Terms", "adopt_refusal", "fresh_error", "join_refusal"]


class Terms(msgspec.Struct, frozen=True, kw_only=True):
    """What a call pays and the limits it puts on paying it.

    Attributes:
        amount_msat: what the payee gets (``None``: the call names no amount;
            it cannot be paid and joins nothing).
        maxfee_msat, maxdelay, maxparts: the call's limits (``None``: unknown,
            not compared).
        exclude: channels (``scid/direction``) and node ids it refuses to use.
    """

    amount_msat: int | None
    maxfee_msat: int | None = None
    maxdelay: int | None = None
    maxparts: int | None = None
    exclude: frozenset[str] = frozenset()

    @classmethod
    def of_plan(cls, plan: PaymentPlan) -> Terms:
        """The terms of a validated call."""
        return cls(
            amount_msat=plan.amount_msat,
            maxfee_msat=plan.maxfee_msat,
            maxdelay=plan.maxdelay,
            maxparts=plan.maxparts,
            exclude=frozenset(plan.exclude_channels) | frozenset(plan.exclude_nodes),
        )

    @classmethod
    def of_params(cls, params: PayParams, invoice: Invoice, config: EngineConfig) -> Terms:
        """The terms of a call as given, defaults from ``config`` (nothing validated)."""
        amount = paid_amount(params, invoice)
        fee = params.maxfee_msat
        if fee is None and amount is not None:
            fee = config.default_maxfee_msat(amount)
        return cls(
            amount_msat=amount,
            maxfee_msat=fee,
            maxdelay=config.maxdelay if params.maxdelay is None else params.maxdelay,
            maxparts=config.maxparts if params.maxparts is None else params.maxparts,
            exclude=frozenset(params.exclude),
        )

    def describe(self) -> dict[str, Any]:
        """The known terms as JSON-ready builtins (for an error's ``data``)."""
        d: dict[str, Any] = {
            k: v
            for k, v in msgspec.structs.asdict(self).items()
            if v is not None and k != "exclude"
        }
        if self.exclude:
            d["exclude"] = sorted(self.exclude)
        return d


_LIMITS = (
    ("maxfee_msat", "a lower fee limit"),
    ("maxdelay", "a lower maxdelay"),
    ("maxparts", "fewer parts"),
)


def join_refusal(
    payment_hash: PaymentHash, running: Terms, call: Terms
) -> PaymentInProgress | None:
    """Why ``call`` may not join the payment of ``payment_hash`` paid on ``running`` terms.

    Returns:
        ``None`` when it may join (see the module docstring), else the error to
        raise (200, ``data`` naming both terms).
    """
    why: str | None = None
    if call.amount_msat != running.amount_msat:
        why = (
            f"it is paying {running.amount_msat} msat and this call asks for "
            f"{call.amount_msat} msat"
        )
    else:
        for name, words in _LIMITS:
            mine, theirs = getattr(call, name), getattr(running, name)
            if mine is not None and theirs is not None and mine < theirs:
                why = f"this call sets {words} ({name} {mine} < {theirs})"
                break
        else:
            extra = call.exclude - running.exclude
            if extra:
                why = f"this call excludes {', '.join(sorted(extra))}, which it may use"
    if why is None:
        return None
    return PaymentInProgress(
        f"a payment of {payment_hash} is already in progress and this call does not agree "
        f"with it: {why}; wait for it to end (barqstatus), then call again",
        data={
            "payment_hash": payment_hash,
            "in_progress": running.describe(),
            "asked": call.describe(),
        },
    )


def adopt_refusal(
    payment_hash: PaymentHash, recorded_msat: int | None, adopted_msat: int, call: Terms
) -> PaymentInProgress | None:
    """Why ``call`` may not adopt parts in flight from an earlier run (``None``: it may).

    Args:
        recorded_msat: the amount the earlier run was paying, from its record
            (``None``: no record; then only an amount below the parts already
            in flight, ``adopted_msat``, is known to disagree).
        adopted_msat: what the parts still in flight carry.
        call: this call's terms (only the amount binds: the earlier run's
            limits are not known, and this call's own apply to what it adds).
    """
    if call.amount_msat is None:
        return None
    if recorded_msat is None:
        if call.amount_msat >= adopted_msat:
            return None
        recorded_msat = adopted_msat
    return join_refusal(payment_hash, Terms(amount_msat=recorded_msat), call)


@dataclass(slots=True)
class Flight:
    """One payment hash being paid by this engine now (single writer: the leading call).

    Attributes:
        payment_hash: the hash.
        terms: the payment's terms, set once it started (validated, about to
            send); ``None`` before, and for a flight that ended without one.
        outcome: set when the payment ended with a result.
        error: set when it ended with an error.
    """

    payment_hash: PaymentHash
    terms: Terms | None = None
    outcome: PayOutcome | None = None
    error: BarqError | None = None

    def refusal(self, call: Terms) -> PaymentInProgress | None:
        """Why ``call`` may not join this flight (:func:`join_refusal`; ``None``: it may).

        Only a flight whose payment started can be joined.
        """
        assert self.terms is not None, "only a started payment can be joined"
        return join_refusal(self.payment_hash, self.terms, call)

    def answer(self, *, joined: bool) -> PayOutcome | None:
        """What a call gets from this ended flight.

        Args:
            joined: the call joined the flight (it is not the one that led it).

        Returns:
            the outcome (``joined`` set for a joining call), or ``None`` when the
            flight ended without an answer for it (the call should start again):
            always for a joining call when the payment never started.

        Raises:
            BarqError: a fresh copy of the flight's error.
        """
        if joined and self.terms is None:
            return None
        if self.error is not None:
            raise fresh_error(self.error)
        if self.outcome is None:
            return None
        return msgspec.structs.replace(self.outcome, joined=True) if joined else self.outcome


def fresh_error(err: BarqError) -> BarqError:
    """A new exception equal to ``err`` (each waiting caller raises its own object)."""
    try:
        new = copy.copy(err)
    except Exception:  # pragma: no cover - exotic subclasses
        return err
    new.data = copy.deepcopy(err.data)
    new.__traceback__ = None
    return new
