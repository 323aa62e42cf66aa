"""The persistence port: where the engine records what it decides (``barq.store`` implements it).

The engine appends every event of a payment as it happens (:meth:`record`),
writes whole payments it rebuilt from the node (:meth:`put_payment`: after a
restart, or an invoice found already paid), and reads the records back when
it decides what happened before a call (:meth:`aget_payments`).
"""

from __future__ import annotations

from typing import Protocol

from barq.model import PaymentHash
from barq.model.payment import PaymentEvent, PaymentView

__all__ = ["PaymentJournal"]


class PaymentJournal(Protocol):
    """A payment history the engine writes to and reads from."""

    def record(self, event: PaymentEvent) -> None:
        """Append ``event`` (the changed part's row and the payment's row); never blocks.

        Raises:
            barq.errors.StoreError: the journal is closed.
        """
        ...

    def put_payment(self, view: PaymentView) -> None:
        """Insert or update the whole payment ``view`` and its parts; never blocks.

        Raises:
            barq.errors.StoreError: the journal is closed.
        """
        ...

    async def aget_payments(
        self, payment_hash: PaymentHash | None = None, status: str | None = None
    ) -> list[PaymentView]:
        """Stored payments (with their parts), oldest first, optionally filtered.

        Raises:
            barq.errors.StoreError: the read failed or the journal is closed.
        """
        ...
