"""What crosses the engine's public boundary: pay parameters, events, views, outcomes.

The entry points (``barq.plugin``, ``barq.cli``) speak only these types to
the actor runtime (``barq.actors.runtime``).

A payment is told as a stream of frozen events::

    PaymentStarted  (PartAdopted)*  (PartStarted | PartEnded)*  PaymentEnded

and a :class:`PaymentView` is nothing but their fold
(:func:`barq.payment.fold`): observers (``on_event``, the store, the plugin's
notifications) get the events, readers (``barqstatus``, results) the frozen
views. Neither can change what the engine holds.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from barq.model import NodeId, PartId, PaymentHash, Route, RouteFailure

__all__ = [
    "EngineConfig",
    "PartAdopted",
    "PartEnded",
    "PartOutcome",
    "PartStarted",
    "PartState",
    "PartView",
    "PayOutcome",
    "PayParams",
    "PaymentEnded",
    "PaymentEvent",
    "PaymentStarted",
    "PaymentStatus",
    "PaymentView",
]


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Engine-wide settings (plugin options / CLI flags), fixed at start.

    Defaults follow CLN's ``xpay``/``pay`` where they exist: fee budget is the
    larger of ``maxfee_base_msat`` and ``maxfee_percent`` of the amount.
    """

    default_strategy: str = "adaptive"
    maxfee_base_msat: int = 5000
    maxfee_ppm: int = 10_000  # 1 %
    retry_for_s: float = 60.0
    maxdelay: int = 2016
    maxparts: int = 64  # parts in flight + succeeded at once; xpay sets no limit at all
    min_part_msat: int = 10_000_000  # never split below 10k sat unless the amount is smaller
    estimator_half_life_s: float = 3600.0
    gossip_refresh_s: float = 60.0  # reload the gossip graph at most this often (or when stale)
    waitsendpay_timeout_s: float | None = None
    strategies_in_thread: bool = True  # False under a simulated clock
    route_timeout_s: float = 10.0  # a route computation abandoned after this (askrene-timeout)
    route_threads: int = 4  # route computations at once in worker threads (askrene: 4)
    slow_mode: bool = False  # answer a pay call when every part settled, not at the preimage

    def default_maxfee_msat(self, amount_msat: int) -> int:
        """The fee budget for ``amount_msat`` when the caller gives none.

        Returns:
            ``max(maxfee_base_msat, amount_msat * maxfee_ppm // 1_000_000)``.
        """
        return max(self.maxfee_base_msat, amount_msat * self.maxfee_ppm // 1_000_000)


class PayParams(msgspec.Struct, frozen=True, kw_only=True):
    """One ``barqpay`` call, already type-checked (not yet validated against the invoice).

    ``None`` means "use the engine default". ``maxfee_ppm``/``exemptfee_msat``
    are ``pay``'s ``maxfeepercent``/``exemptfee`` (the fee budget is then
    xpay's: that share of the amount, at least the exempt fee);
    ``partial_msat`` delivers only that much of the invoice's amount (the
    rest is another payer's, as ``pay``'s ``partial_msat``); ``description``
    must hash to the invoice's description hash when it has one.
    ``quantity``/``payer_note`` are for paying an offer (``fetchinvoice``'s).
    """

    invstring: str
    amount_msat: int | None = None
    maxparts: int | None = None
    maxfee_msat: int | None = None
    retry_for_s: float | None = None
    maxdelay: int | None = None
    exclude: tuple[str, ...] = ()
    strategy: str | None = None
    label: str | None = None
    maxfee_ppm: int | None = None
    exemptfee_msat: int | None = None
    partial_msat: int | None = None
    description: str | None = None
    quantity: int | None = None
    payer_note: str | None = None


class PartState(StrEnum):
    PLANNED = "planned"
    INFLIGHT = "inflight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RESPLIT = "resplit"  # failed for liquidity; its amount was split again


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


class PartOutcome(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """How one part ended (a shard worker's report, read by the payment's book).

    Attributes:
        state: ``SUCCEEDED`` or ``FAILED``.
        sent: an HTLC left us (``sendpay`` accepted the part). False for an
            immediate refusal or a part never sent (deadline passed first).
        failure: the BOLT 4 failure, when the node reported one.
        preimage: the payment preimage on success.
        reason: one human line (why it failed, or how it was adopted).
        rpc_code: the node's JSON-RPC code for a refusal that carried no failure.
        lost: ``waitsendpay`` kept failing: the part may still be in flight, its
            amount must not be reused.
    """

    state: PartState
    sent: bool
    failure: RouteFailure | None = None
    preimage: str | None = None
    reason: str | None = None
    rpc_code: int | None = None
    lost: bool = False


# -- views: folds of the events (frozen; build new ones with msgspec.structs.replace) ----------


class PartView(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt (one ``sendpay`` part) of a payment, for status and results."""

    partid: PartId
    groupid: int
    amount_msat: int
    amount_sent_msat: int
    fee_msat: int
    route: Route
    state: PartState
    started_at: float
    finished_at: float | None = None
    failure: RouteFailure | None = None
    reason: str | None = None


class PaymentView(msgspec.Struct, frozen=True, kw_only=True):
    """A payment with all its parts: ``barqstatus``'s and ``barqpay``'s shape.

    Totals: ``amount_sent_msat`` and ``fee_msat`` count succeeded parts;
    ``inflight_msat`` parts still pending; ``attempts`` every part sent;
    ``compute_s`` the wall-clock time the router spent in strategies for it.
    """

    payment_hash: PaymentHash
    destination: NodeId
    amount_msat: int
    status: PaymentStatus
    strategy: str
    created_at: float
    groupid: int = 0
    bolt11: str | None = None
    label: str | None = None
    completed_at: float | None = None
    payment_preimage: str | None = None
    amount_sent_msat: int = 0
    delivered_msat: int = 0
    inflight_msat: int = 0
    fee_msat: int = 0
    attempts: int = 0
    maxfee_msat: int = 0
    compute_s: float = 0.0  # wall-clock seconds spent inside strategies for this payment
    parts: tuple[PartView, ...] = ()
    error: str | None = None
    error_code: int | None = None


class PayOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one pay call produced: the payment, and how it was obtained.

    Attributes:
        view: the payment (status complete).
        already_paid: an earlier payment of this invoice; nothing was sent now.
        joined: another call for the same payment hash was running; this is its result.
        timings_ms: where the call's wall time went (``barq.actors._timings``).
        answer_at: ``"preimage"`` (answered at the first preimage: parts may still be in
            flight) or ``"end"`` (every part settled).
    """

    view: PaymentView
    already_paid: bool = False
    joined: bool = False
    timings_ms: dict[str, float] = msgspec.field(default_factory=dict)
    answer_at: str = "end"


# -- events --------------------------------------------------------------------------------


class PaymentStarted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The payment is validated and about to send; ``at`` is its creation time."""

    payment_hash: PaymentHash
    destination: NodeId
    amount_msat: int
    strategy: str
    at: float
    groupid: int = 0
    bolt11: str | None = None
    label: str | None = None
    maxfee_msat: int = 0


class PartAdopted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A part an earlier run sent (``listsendpays``: still pending) now counts as in flight.

    ``route`` is the one recorded by that run (empty when unknown); ``at`` its
    start time.
    """

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    amount_msat: int
    amount_sent_msat: int
    at: float
    route: Route = Route(hops=())
    reason: str | None = None


class PartStarted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A part was handed to a shard worker over ``route``.

    ``compute_s`` is the payment's time in strategies so far (cumulative).
    """

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    amount_msat: int
    route: Route
    at: float
    compute_s: float = 0.0


class PartEnded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A part ended in ``state`` (``preimage`` when it succeeded)."""

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    amount_msat: int
    state: PartState
    at: float
    failure: RouteFailure | None = None
    reason: str | None = None
    preimage: str | None = None


class PaymentEnded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The payment ended (``error``/``error_code`` when it failed)."""

    payment_hash: PaymentHash
    groupid: int
    status: PaymentStatus
    at: float
    error: str | None = None
    error_code: int | None = None
    compute_s: float = 0.0


PaymentEvent = PaymentStarted | PartAdopted | PartStarted | PartEnded | PaymentEnded
