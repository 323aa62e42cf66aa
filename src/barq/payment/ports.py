"""The persistence port: where the engine records what it decides (``barq.store`` implements it).

The engine appends every event of a payment as it happens (:meth:`record`),
writes whole payments it rebuilt from the node (:meth:`put_payment`: after a
restart, or an invoice found already paid), and reads the records back when
it decides what happened before a call (:meth:`aget_payments`) and for
status (finished payments live only here). A journal that was just created
(:attr:`created`: a new file, or one deleted since the last run) gets the
history rebuilt from ``listsendpays`` (:meth:`put_history`).
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def put_history(self, views: Sequence[PaymentView]) -> None:
        """Insert the payments the engine rebuilt from the node into a journal just created
        (one write; the journal reports how many in its health); never blocks.

        Raises:
            barq.errors.StoreError: the journal is closed.
        """
        ...

    @property
    def created(self) -> bool:
        """The journal's file did not exist when it was opened (first run, or deleted)."""
        ...

    async def aget_payments(
        self,
        payment_hash: PaymentHash | None = None,
        status: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[PaymentView]:
        """Stored payments (with their parts), oldest first, optionally filtered; with
        ``limit``, only that many of the most recent.

        Raises:
            barq.errors.StoreError: the read failed or the journal is closed.
        """
        ...
