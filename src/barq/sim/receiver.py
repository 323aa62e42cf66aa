"""The payee: accepts a part by the invoice's terms and holds it until its MPP set is complete.

A part that reaches its destination is checked with
:func:`barq.sim.rules.payee_refusal` (unknown hash, already paid, wrong
secret, expired, final CLTV, ``total_msat`` against the invoice) and failed
with ``INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS`` when refused. Otherwise it
joins the hash's MPP set (every part must name the set's ``total_msat``) and
is *held* (basic MPP): once the parts held sum to ``total_msat`` all of them
settle with the preimage; if that does not happen within ``mpp_timeout_s``
of the set's first part, every held part fails with ``MPP_TIMEOUT``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio
import msgspec

from barq.model import FailCode, PaymentHash, RouteFailure
from barq.sim import rules
from barq.sim.invoices import Invoices
from barq.sim.parts import Part

__all__ = ["MppReceiver", "Overpayment"]


class Overpayment(msgspec.Struct, frozen=True, kw_only=True):
    """A receiver settled more than the invoice asked for."""

    payment_hash: PaymentHash
    invoice_msat: int
    total_msat: int
    received_msat: int


@dataclass(slots=True)
class _MppSet:
    total_msat: int
    deadline: float
    event: anyio.Event
    sum_msat: int = 0
    count: int = 0
    outcome: Literal["pending", "settled", "timeout"] = "pending"


class MppReceiver:
    """Every payee of the network receiving parts (one MPP set per payment hash at a time).

    Args:
        invoices: the invoices the payees issued (their records are updated on settling).
        mpp_timeout_s: how long an incomplete set is held.
        now: simulated UNIX time (invoice expiry).

    Attributes:
        overpayments: every set that settled more than its invoice's amount.
    """

    def __init__(
        self, invoices: Invoices, *, mpp_timeout_s: float, now: Callable[[], float]
    ) -> None:
        self.invoices = invoices
        self.mpp_timeout_s = mpp_timeout_s
        self.overpayments: list[Overpayment] = []
        self._now = now
        self._sets: dict[str, _MppSet] = {}

    async def receive(self, part: Part, direction: int) -> tuple[str | None, RouteFailure | None]:
        """The destination got ``part`` over its last hop (``direction`` of that channel).

        Returns:
            ``(preimage, None)`` once its set settled, else ``(None, failure)``
            as the destination reports it (``erring_index`` = ``len(route)``).
        """
        info = part.info
        hops = info.route.hops
        n = len(hops)
        dest = hops[-1].id

        def fail(code: FailCode, msg: str) -> tuple[None, RouteFailure]:
            return None, RouteFailure(
                failcode=int(code),
                erring_index=n,
                erring_node=dest,
                erring_channel=hops[-1].channel,
                erring_direction=direction,
                message=msg,
            )

        unknown = FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
        inv = self.invoices.get(info.payment_hash)
        if inv is not None and inv.payee != dest:
            inv = None
        why = rules.payee_refusal(
            inv.terms if inv is not None else None,
            paid=inv is not None and inv.paid,
            payment_secret=part.payment_secret,
            final_delay=hops[-1].delay,
            total_msat=info.total_msat,
            now=self._now(),
        )
        if why is not None or inv is None:
            return fail(unknown, why or "unknown payment hash")
        s = self._sets.get(info.payment_hash)
        if s is None:
            s = self._sets[info.payment_hash] = _MppSet(
                total_msat=info.total_msat,
                deadline=anyio.current_time() + self.mpp_timeout_s,
                event=anyio.Event(),
            )
        else:
            why = rules.mpp_total_refusal(s.total_msat, info.total_msat)
            if why is not None:
                return fail(unknown, why)
        s.sum_msat += hops[-1].amount_msat
        s.count += 1
        if rules.mpp_complete(s.sum_msat, s.total_msat):
            s.outcome = "settled"
            del self._sets[info.payment_hash]
            inv.paid = True
            inv.received_msat += s.sum_msat
            inv.parts_settled += s.count
            amount = inv.terms.amount_msat
            if amount is not None and s.sum_msat > amount:
                self.overpayments.append(
                    Overpayment(
                        payment_hash=inv.payment_hash,
                        invoice_msat=amount,
                        total_msat=s.total_msat,
                        received_msat=s.sum_msat,
                    )
                )
            s.event.set()
        else:
            with anyio.move_on_after(s.deadline - anyio.current_time()):
                await s.event.wait()
            if s.outcome == "pending":
                s.outcome = "timeout"
                if self._sets.get(info.payment_hash) is s:
                    del self._sets[info.payment_hash]
                s.event.set()
        if s.outcome == "settled":
            return inv.preimage, None
        return fail(FailCode.MPP_TIMEOUT, "MPP timeout")
