"""What a payment does when the amount left has no route now (pure, synchronous).

A payment stuck with an unassigned amount and no route is not over while it
can still complete: parts in flight may fail (freeing liquidity and teaching
the estimator), what planning assumed may be relaxed, and liquidity comes
back. The supervisor asks this module how long to wait for a part to resolve
before planning again, what to relax next, and when to give up:

==========  ==============================================================
step        relaxes
==========  ==========================================================
0           nothing (plan with every lesson and the fee split by amount)
1           the fee budget left goes whole to the piece (not shared by
            amount between pieces), and the piece may use every free slot
2           uncertainty: bounds learnt before now are set aside (only
            reservations, balances and what is disabled remain); repeated
            at every later plan, so the window keeps moving
3           the part-size floor (divided by :data:`FLOOR_DIVISOR`), and the
            payment's own temporary exclusions (channels/nodes avoided
            after temporary failures, strikes) are forgiven
==========  ==========================================================

The payment gives up only when ``retry_for`` is spent (or the invoice
expired), when the known capacity to the payee (our channels, the payee's
channels, route hints) is proven short of what is left, or when nothing is in
flight and even the most relaxed plan finds nothing. ``ended_by`` in a failed
payment's ``data`` says which (:data:`ENDED_BY`).
"""

from __future__ import annotations

import msgspec

from barq.errors import (
    AlreadyPaid,
    BarqError,
    DestinationPermanentFailure,
    InvalidParams,
    NodeError,
    StoppedRetrying,
)

__all__ = [
    "ENDED_BY",
    "FLOOR_DIVISOR",
    "RELAX_STEPS",
    "Relax",
    "capacity_short",
    "ended_by_default",
    "replan_wait_s",
]

#: why a payment that failed stopped (``data["ended_by"]``)
ENDED_BY = (
    "retry_for",  # retry_for spent (or the invoice expired) with the amount not delivered
    "capacity",  # the known capacity to the payee is proven short of what is left
    "no_route",  # nothing in flight and even the most relaxed plan found no route
    "destination",  # the payee refused a part for good
    "node",  # the node refused parts or lost track of one
    "already_paid",  # the node says the hash was paid already
    "attempts",  # the attempt cap (a payee failing every part at once)
    "invalid",  # the request cannot be routed as given (bad parameters)
)

#: the part-size floor is divided by this at step 3
FLOOR_DIVISOR = 8

#: first wait for a part to resolve before planning again, doubled per wait up to the cap
FIRST_WAIT_S = 0.5
MAX_WAIT_S = 8.0


class Relax(msgspec.Struct, frozen=True, kw_only=True):
    """One step of relaxation (see the module table)."""

    step: int = 0
    whole_fee: bool = False
    all_slots: bool = False
    forget_learnt: bool = False
    floor_divisor: int = 1
    forgive: bool = False


RELAX_STEPS: tuple[Relax, ...] = (
    Relax(),
    Relax(step=1, whole_fee=True, all_slots=True),
    Relax(step=2, whole_fee=True, all_slots=True, forget_learnt=True),
    Relax(
        step=3,
        whole_fee=True,
        all_slots=True,
        forget_learnt=True,
        floor_divisor=FLOOR_DIVISOR,
        forgive=True,
    ),
)


def replan_wait_s(waits: int) -> float:
    """How long to wait for a part in flight to resolve before planning again, after
    ``waits`` waits that saw nothing resolve (0.5 s, 1 s, 2 s, ... capped at 8 s)."""
    return min(FIRST_WAIT_S * float(2 ** min(waits, 8)), MAX_WAIT_S)


def capacity_short(
    *, left_msat: int, our_spendable_msat: int | None, payee_capacity_msat: int | None
) -> str | None:
    """Why ``left_msat`` (amount not yet delivered) can never arrive, or ``None``.

    Args:
        left_msat: the amount not delivered (in flight + unassigned).
        our_spendable_msat: what our channels can send now plus what our own
            parts in flight hold (``None``: unknown).
        payee_capacity_msat: the total capacity of the payee's channels
            (gossip, our channels to it; ``None``: unknown, e.g. private
            channels in route hints).
    """
    if our_spendable_msat is not None and left_msat > our_spendable_msat:
        return (
            f"our channels can send {our_spendable_msat} msat in all (with our parts in "
            f"flight), {left_msat} msat are left to pay"
        )
    if payee_capacity_msat is not None and left_msat > payee_capacity_msat:
        return (
            f"the payee's channels hold {payee_capacity_msat} msat in all, "
            f"{left_msat} msat are left to pay"
        )
    return None


def ended_by_default(error: BarqError) -> str:
    """``ended_by`` for a stop whose caller did not name it (by the error's kind)."""
    if isinstance(error, DestinationPermanentFailure):
        return "destination"
    if isinstance(error, AlreadyPaid):
        return "already_paid"
    if isinstance(error, NodeError):
        return "node"
    if isinstance(error, StoppedRetrying):
        return "retry_for"
    if isinstance(error, InvalidParams):
        return "invalid"
    return "no_route"
