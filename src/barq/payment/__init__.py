"""The payment lifecycle as one sans-IO core: every rule of a payment's life, once.

Nothing here does I/O, awaits, or knows a node, an actor or the plugin: the
engine (``barq.actors``) reads the node and the store, asks these functions,
and does what they answer.

==========================  ===========================================================
rule                        where
==========================  ===========================================================
validate a call -> plan     :func:`validate` (:mod:`barq.payment.plan`)
already paid / adopt /      :func:`decide_prior` from ``listsendpays`` + stored records
fresh group                 (:mod:`barq.payment.prior`)
a second call for a hash    :class:`Flight`, :func:`join_refusal` (:mod:`barq.payment.flights`)
being paid: join it or      on what is paid; :func:`adopt_refusal` for parts in
refuse (200)                flight from an earlier run
accounts and decisions of   :class:`PaymentBook` (:mod:`barq.payment.book`)
one payment (money rules)
what a failure means        :func:`classify` (:mod:`barq.payment.failures`)
after a restart             :func:`plan_recovery` (:mod:`barq.payment.reconcile`)
view = fold(events)         :func:`fold` (:mod:`barq.payment.fold`)
the node's parts as a view  :func:`view_from_sendpays` (:mod:`barq.payment.sendpays`)
where payments are recorded :class:`PaymentJournal` (the persistence port; ``barq.store``)
==========================  ===========================================================
"""

from barq.payment.book import (
    MAX_ATTEMPTS,
    MAX_REFUSALS,
    MAX_STRIKES,
    PartOrder,
    PaymentBook,
    Publish,
    attempt_detail,
)
from barq.payment.failures import FailureKind, Verdict, classify
from barq.payment.flights import Flight, Terms, adopt_refusal, fresh_error, join_refusal
from barq.payment.fold import fold, fold_all
from barq.payment.plan import PaymentPlan, StrategyTraits, paid_amount, validate
from barq.payment.ports import PaymentJournal
from barq.payment.prior import Paid, Resume, decide_prior
from barq.payment.reconcile import (
    RECOVERED_STRATEGY,
    Recovering,
    RecoveryPlan,
    hashes_in_flight,
    plan_recovery,
)
from barq.payment.sendpays import GroupKey, group_sendpays, view_from_sendpays

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_REFUSALS",
    "MAX_STRIKES",
    "RECOVERED_STRATEGY",
    "FailureKind",
    "Flight",
    "GroupKey",
    "Paid",
    "PartOrder",
    "PaymentBook",
    "PaymentJournal",
    "PaymentPlan",
    "Publish",
    "Recovering",
    "RecoveryPlan",
    "Resume",
    "StrategyTraits",
    "Terms",
    "Verdict",
    "adopt_refusal",
    "attempt_detail",
    "classify",
    "decide_prior",
    "fold",
    "fold_all",
    "fresh_error",
    "group_sendpays",
    "hashes_in_flight",
    "join_refusal",
    "paid_amount",
    "plan_recovery",
    "validate",
    "view_from_sendpays",
]
