"""``listpays`` while Barq pays: "pending", never "failed", for a hash Barq is still paying.

lightningd's ``listpays`` merges ``listsendpays`` by ``(payment_hash, groupid)``
and says "failed" for a group whose parts all failed, even while the payer is
about to send the next one (xpay's own ``listpays`` only knows xpay's
attempts). Barq uses one group per payment call, so a wallet polling
``listpays <bolt11>`` during a payment that needs several attempts would see
"failed" between attempts. Through the ``rpc_command`` hook (the one the
``pay`` redirect uses), a ``listpays`` that concerns a payment Barq is running
is answered here: the same entries lightningd would give, with "pending" for
every group of a hash Barq is paying that did not complete (as xpay does for
its own). Any other ``listpays`` continues to lightningd untouched.

This module is pure: :func:`listpays_query` reads the call,
:func:`concerns` says whether Barq answers it, :func:`listpays_result` builds
the answer from ``listsendpays`` (a port of CLN v26.06
``plugins/xpay/listpays.c``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from barq.errors import BarqError
from barq.model import PaymentHash
from barq.model.payment import PaymentView
from barq.plugin.params import canonical_invstring

__all__ = ["LISTPAYS_POSITIONAL", "ListpaysQuery", "concerns", "listpays_query", "listpays_result"]

#: ``listpays``'s positional parameter order (CLN v26.06)
LISTPAYS_POSITIONAL = ("bolt11", "payment_hash", "status", "index", "start", "limit")
_STATUSES = ("pending", "complete", "failed")


class ListpaysQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A ``listpays`` call Barq may answer (``None`` fields: not given)."""

    bolt11: str | None = None
    payment_hash: PaymentHash | None = None
    status: str | None = None

    def sendpays_params(self) -> dict[str, str]:
        """``listsendpays``'s parameters for it (the status is applied afterwards)."""
        out: dict[str, str] = {}
        if self.bolt11 is not None:
            out["bolt11"] = self.bolt11
        if self.payment_hash is not None:
            out["payment_hash"] = self.payment_hash
        return out


def listpays_query(params: Any) -> ListpaysQuery | None:
    """The call as a :class:`ListpaysQuery`, or ``None`` when lightningd should answer it
    (paging with ``index``/``start``/``limit``, anything malformed: lightningd's own
    refusal is the right one)."""
    if isinstance(params, list):
        if len(params) > len(LISTPAYS_POSITIONAL):
            return None
        named = dict(zip(LISTPAYS_POSITIONAL, params, strict=False))
    elif isinstance(params, dict):
        named = dict(params)
    else:
        return None
    named = {k: v for k, v in named.items() if v is not None}
    if set(named) - {"bolt11", "payment_hash", "status"}:
        return None
    bolt11, h, status = named.get("bolt11"), named.get("payment_hash"), named.get("status")
    if status is not None and status not in _STATUSES:
        return None
    if h is not None and not (isinstance(h, str) and len(h) == 64):
        return None
    try:
        inv = None if bolt11 is None else canonical_invstring(bolt11)
    except BarqError:
        return None
    return ListpaysQuery(
        bolt11=inv, payment_hash=None if h is None else PaymentHash(h.lower()), status=status
    )


def concerns(query: ListpaysQuery, paying: Sequence[PaymentView]) -> bool:
    """Whether the call asks about a payment Barq is running (so Barq answers it)."""
    for v in paying:
        if query.payment_hash is not None and v.payment_hash != query.payment_hash:
            continue
        if query.bolt11 is not None and v.bolt11 != query.bolt11:
            continue
        return True
    return False


class _Entry:
    """One ``(payment_hash, groupid)`` of ``listsendpays``, merged as listpays does."""

    def __init__(self, part: Mapping[str, Any]) -> None:
        self.part = part
        self.invstring: str | None = part.get("bolt11") or part.get("bolt12")
        self.description = part.get("description")
        self.complete = self.pending = False
        self.preimage: str | None = None
        self.parts = 0
        self.sent_msat = 0
        self.amount_msat: int | None = 0
        self.created_at = int(part.get("created_at", 0))
        self.completed_at: int | None = None
        self.created_index = int(part.get("created_index", 0))
        self.updated_index = int(part.get("updated_index", 0))

    def add(self, p: Mapping[str, Any]) -> None:
        self.invstring = self.invstring or p.get("bolt11") or p.get("bolt12")
        self.description = self.description or p.get("description")
        self.created_index = min(self.created_index, int(p.get("created_index", 0)))
        self.updated_index = max(self.updated_index, int(p.get("updated_index", 0)))
        status = p.get("status")
        if status not in ("complete", "pending"):
            return
        self.parts += 1
        self.sent_msat += int(p.get("amount_sent_msat", 0))
        amount = p.get("amount_msat")
        self.amount_msat = (
            None if amount is None or self.amount_msat is None else (self.amount_msat + int(amount))
        )
        if status == "complete":
            self.complete = True
            self.preimage = p.get("payment_preimage") or self.preimage
            done = p.get("completed_at")
            if done is not None:
                self.completed_at = min(int(done), self.completed_at or int(done))
        else:
            self.pending = True

    def json(self, paying: bool) -> dict[str, Any]:
        p = self.part
        out: dict[str, Any] = {}
        if self.invstring:
            key = "bolt12" if self.invstring.startswith("lni") else "bolt11"
            out[key] = self.invstring
        if self.description is not None:
            out["description"] = self.description
        if p.get("destination") is not None:
            out["destination"] = p["destination"]
        out["payment_hash"] = p["payment_hash"]
        if self.complete:
            out["status"] = "complete"
        elif self.pending or paying:
            out["status"] = "pending"
        else:
            out["status"] = "failed"
        out["created_at"] = self.created_at
        if self.completed_at is not None:
            out["completed_at"] = self.completed_at
        if p.get("label") is not None:
            out["label"] = p["label"]
        if self.preimage is not None:
            out["preimage"] = self.preimage
        if self.amount_msat is not None and self.parts > 0:
            out["amount_msat"] = self.amount_msat
        out["amount_sent_msat"] = self.sent_msat
        if self.parts > 1:
            out["number_of_parts"] = self.parts
        out["created_index"] = self.created_index
        if self.updated_index:
            out["updated_index"] = self.updated_index
        return out


def listpays_result(
    sendpays: Iterable[Mapping[str, Any]], query: ListpaysQuery, paying: Iterable[str]
) -> dict[str, Any]:
    """``listpays``'s answer from ``listsendpays``'s ``payments``, in their order.

    Args:
        sendpays: ``listsendpays``'s ``payments`` (for the query's bolt11/hash).
        query: the call (its ``status`` filters the merged entries).
        paying: payment hashes Barq is paying now: their groups that did not
            complete say "pending".
    """
    busy = set(paying)
    entries: dict[tuple[str, int], _Entry] = {}
    for p in sendpays:
        key = (str(p.get("payment_hash")), int(p.get("groupid", 0)))
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry(p)
        entry.add(p)
    pays = [e.json(h in busy) for (h, _), e in entries.items()]
    if query.status is not None:
        pays = [p for p in pays if p["status"] == query.status]
    return {"pays": pays}
