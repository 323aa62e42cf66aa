"""A second call for a payment hash while this engine is paying it: the join rule.

One payment per payment hash runs at a time. A call that finds one running
(:class:`Flight`) waits for it to end and gets its answer: the same payment
(marked ``joined``) or the same error (a fresh copy each); its own events
see nothing. A flight that ended without an answer (its caller was cancelled
before the payment started) leaves the hash free: the waiting call starts
again.

Issue 17's "a joining call must agree with the payment in flight on the
amount" belongs here, beside :meth:`Flight.answer`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import msgspec

from barq.errors import BarqError
from barq.model import PaymentHash
from barq.model.payment import PayOutcome, PayParams

__all__ = ["Flight", "fresh_error"]


@dataclass(slots=True)
class Flight:
    """One payment hash being paid by this engine now (single writer: the leading call).

    Attributes:
        payment_hash: the hash.
        params: the leading call's parameters.
        outcome: set when the payment ended with a result.
        error: set when it ended with an error.
    """

    payment_hash: PaymentHash
    params: PayParams
    outcome: PayOutcome | None = None
    error: BarqError | None = None

    def answer(self, *, joined: bool) -> PayOutcome | None:
        """What a call gets from this ended flight.

        Args:
            joined: the call joined the flight (it is not the one that led it).

        Returns:
            the outcome (``joined`` set for a joining call), or ``None`` when the
            flight ended without an answer (the call should start again).

        Raises:
            BarqError: a fresh copy of the flight's error.
        """
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
