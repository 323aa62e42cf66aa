"""The lifecycle rules decided from listsendpays and the records: prior, restart, join, fold."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from barq.errors import AlreadyPaid, BarqError, PaymentInProgress, StoppedRetrying
from barq.model import Hop, Invoice, PartStatus, Route, RouteFailure, SendpayStatus
from barq.model.payment import (
    EngineConfig,
    PartAdopted,
    PartEnded,
    PartStarted,
    PartState,
    PartView,
    PaymentEnded,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
    PayOutcome,
    PayParams,
)
from barq.payment import (
    Flight,
    Paid,
    Resume,
    Terms,
    adopt_refusal,
    decide_prior,
    fold,
    fold_all,
    join_refusal,
    plan_recovery,
    view_from_sendpays,
)

H = "ab" * 32
PAYEE = "02" + "33" * 32
NOW = 1_700_000_000.0


def route_to(amount_msat: int) -> Route:
    """A one-hop route to the payee (what a record keeps; the fee is the sender's)."""
    return Route(
        hops=(Hop(id=PAYEE, channel="9x9x9", direction=1, amount_msat=amount_msat, delay=18),)
    )


def sendpay(
    partid: int,
    groupid: int,
    status: SendpayStatus,
    amount: int = 1000,
    *,
    h: str = H,
    preimage: str | None = None,
) -> PartStatus:
    return PartStatus(
        payment_hash=h,
        partid=partid,
        groupid=groupid,
        status=status,
        amount_msat=amount,
        amount_sent_msat=amount + 1,
        destination=PAYEE,
        created_at=100,
        completed_at=None if status is SendpayStatus.PENDING else 104,
        payment_preimage=preimage,
    )


def record(
    status: PaymentStatus = PaymentStatus.PENDING, *, groupid: int = 2, h: str = H
) -> PaymentView:
    """Barq's record of group ``groupid``: part 1 in flight over a known route."""
    return PaymentView(
        payment_hash=h,
        destination=PAYEE,
        amount_msat=1000,
        status=status,
        strategy="direct",
        created_at=100.0,
        groupid=groupid,
        maxfee_msat=50,
        error="destination refused" if status is PaymentStatus.FAILED else None,
        parts=(
            PartView(
                partid=1,
                groupid=groupid,
                amount_msat=1000,
                amount_sent_msat=1001,
                fee_msat=1,
                route=route_to(1000),
                state=PartState.INFLIGHT,
                started_at=101.0,
            ),
        ),
    )


def invoice(amount: int | None = 1000) -> Invoice:
    return Invoice(
        bolt11="lnbcrt1x",
        payee=PAYEE,
        payment_hash=H,
        amount_msat=amount,
        created_at=int(NOW),
        expiry=3600,
        min_final_cltv_expiry=18,
        network="regtest",
    )


def prior(*parts: PartStatus, records: Any = (), **params: Any) -> Paid | Resume:
    return decide_prior(invoice(), PayParams(invstring="lnbcrt1x", **params), parts, records, NOW)


# -- the node's parts as a payment -------------------------------------------------------------


def test_view_from_sendpays_merges_with_the_record() -> None:
    parts = [
        sendpay(1, 2, SendpayStatus.COMPLETE, preimage="cd" * 32),
        replace(sendpay(2, 2, SendpayStatus.FAILED, 500), amount_sent_msat=502, completed_at=101),
    ]
    v = view_from_sendpays(parts, record())
    assert v.status is PaymentStatus.COMPLETE and v.payment_preimage == "cd" * 32
    assert (v.amount_sent_msat, v.delivered_msat, v.fee_msat, v.attempts) == (1001, 1000, 1, 2)
    assert v.parts[0].route == route_to(1000) and v.parts[1].route.hops == ()
    assert v.parts[0].started_at == 101.0 and v.parts[1].started_at == 100.0
    assert v.strategy == "direct" and v.maxfee_msat == 50 and v.error is None
    alone = view_from_sendpays(parts[1:])
    assert alone.status is PaymentStatus.FAILED and alone.amount_msat == 500
    assert alone.strategy == "" and alone.created_at == 100.0


# -- already paid / adopt / fresh group ----------------------------------------------------------


def test_a_complete_part_means_paid_with_the_record_routes() -> None:
    paid = prior(
        sendpay(1, 1, SendpayStatus.FAILED),
        sendpay(1, 2, SendpayStatus.COMPLETE, preimage="99" * 32),
        records=[record(PaymentStatus.COMPLETE)],
    )
    assert isinstance(paid, Paid) and not paid.record  # the store knows it complete
    assert paid.view.groupid == 2 and paid.view.payment_preimage == "99" * 32
    assert paid.view.parts[0].route == route_to(1000)
    unknown = prior(sendpay(1, 2, SendpayStatus.COMPLETE))
    assert isinstance(unknown, Paid) and unknown.record


def test_paid_with_another_amount_is_refused() -> None:
    done = sendpay(1, 1, SendpayStatus.COMPLETE, 1000)
    with pytest.raises(AlreadyPaid, match="already paid with 1000 msat") as info:
        decide_prior(invoice(None), PayParams(invstring="x", amount_msat=2000), [done], [], NOW)
    assert info.value.code == 201 and info.value.data["status"] == "complete"
    same = decide_prior(invoice(None), PayParams(invstring="x", amount_msat=1000), [done], [], NOW)
    assert isinstance(same, Paid)


def test_pending_parts_are_adopted_with_the_recorded_route() -> None:
    resume = prior(
        sendpay(1, 2, SendpayStatus.PENDING),
        sendpay(3, 2, SendpayStatus.FAILED),
        sendpay(2, 2, SendpayStatus.PENDING, 500),
        sendpay(9, 1, SendpayStatus.FAILED),
        records=[record()],
    )
    assert isinstance(resume, Resume)
    assert (resume.groupid, resume.next_partid, resume.adopted_msat) == (2, 4, 1500)
    first, second = resume.adopted
    assert (first.partid, first.route, first.at) == (1, route_to(1000), 101.0)
    assert first.reason == "adopted: sent by an earlier run"
    assert (second.partid, second.route.hops, second.at) == (2, (), 100.0)
    assert second.reason == "adopted: sent by an earlier run (route unknown)"


def test_fresh_group_above_every_earlier_one() -> None:
    assert prior() == Resume(groupid=1, next_partid=1)
    assert prior(sendpay(4, 3, SendpayStatus.FAILED)) == Resume(groupid=4)
    other = sendpay(1, 9, SendpayStatus.COMPLETE, h="cd" * 32)  # another hash: ignored
    assert prior(other) == Resume()


# -- after a restart ----------------------------------------------------------------------------


def test_plan_recovery_awaits_pending_groups_and_records_finished_ones() -> None:
    done, failed, foreign, flying = "bb" * 32, "cc" * 32, "dd" * 32, "ee" * 32
    plan = plan_recovery(
        [
            sendpay(1, 2, SendpayStatus.COMPLETE, h=done, preimage="77" * 32),
            sendpay(1, 2, SendpayStatus.FAILED, h=failed),
            sendpay(1, 1, SendpayStatus.COMPLETE, h=foreign),
            sendpay(1, 2, SendpayStatus.PENDING, h=flying),
            sendpay(2, 2, SendpayStatus.FAILED, h=flying),
        ],
        [record(h=done), record(h=failed), record(h=flying)],
    )
    assert {v.payment_hash: v.status for v in plan.finished} == {
        done: PaymentStatus.COMPLETE,
        failed: PaymentStatus.FAILED,
    }
    [rec] = plan.recovering
    assert rec.key == (flying, 2) and [p.partid for p in rec.pending] == [1]
    assert rec.view.status is PaymentStatus.PENDING and rec.view.strategy == "direct"
    assert rec.view.parts[0].route == route_to(1000)
    ok = rec.resolved(sendpay(1, 2, SendpayStatus.COMPLETE, h=flying, preimage="11" * 32))
    assert ok.view.status is PaymentStatus.COMPLETE and not ok.pending
    lost = rec.failed(1, 200.0)
    assert lost.view.status is PaymentStatus.FAILED and lost.parts[0].completed_at == 200
    unknown = plan_recovery([sendpay(1, 1, SendpayStatus.PENDING)], [])
    assert unknown.recovering[0].view.strategy == "recovered"


# -- a second call for a hash in flight ---------------------------------------------------------


def test_a_joining_call_gets_the_same_payment_or_a_copy_of_the_error() -> None:
    view = record(PaymentStatus.COMPLETE)
    flight = Flight(payment_hash=H, terms=Terms(amount_msat=1000))
    assert flight.answer(joined=True) is None  # ended without an answer: start again
    flight.outcome = PayOutcome(view=view)
    assert flight.answer(joined=True) == PayOutcome(view=view, joined=True)
    assert flight.answer(joined=False) == PayOutcome(view=view)
    err = StoppedRetrying("gave up", data={"attempts": [1]})
    flight.error = err
    with pytest.raises(BarqError) as a:
        flight.answer(joined=True)
    with pytest.raises(BarqError) as b:
        flight.answer(joined=True)
    assert a.value is not b.value and a.value is not err
    assert a.value.message == err.message and a.value.data == err.data


def test_the_join_rule_compares_what_is_paid() -> None:
    running = Terms(amount_msat=1000, maxfee_msat=50, maxdelay=100, maxparts=4, exclude=frozenset())
    same = running
    looser = Terms(amount_msat=1000, maxfee_msat=80, maxdelay=200, maxparts=8)
    assert join_refusal(H, running, same) is None
    assert join_refusal(H, running, looser) is None  # its limits hold for what is paid
    for call, words in [
        (replace(running, amount_msat=2000), "paying 1000 msat and this call asks for 2000"),
        (replace(running, maxfee_msat=49), "lower fee limit (maxfee_msat 49 < 50)"),
        (replace(running, maxdelay=99), "lower maxdelay"),
        (replace(running, maxparts=1), "fewer parts"),
        (replace(running, exclude=frozenset({"1x1x1/0"})), "excludes 1x1x1/0"),
    ]:
        err = join_refusal(H, running, call)
        assert err is not None and err.code == 200, call
        assert "already in progress" in err.message and words in err.message
        assert err.data["in_progress"]["amount_msat"] == 1000
    # a flight is joined only once its payment started
    flight = Flight(payment_hash=H)
    flight.outcome = PayOutcome(view=record(PaymentStatus.COMPLETE), already_paid=True)
    assert flight.answer(joined=True) is None and flight.answer(joined=False) is not None


def test_terms_from_params_fill_the_engine_defaults() -> None:
    cfg = EngineConfig()
    t = Terms.of_params(PayParams(invstring="x", exclude=("1x1x1/0",)), invoice(), cfg)
    assert t.amount_msat == 1000 and t.maxfee_msat == cfg.default_maxfee_msat(1000)
    assert (t.maxdelay, t.maxparts, t.exclude) == (cfg.maxdelay, cfg.maxparts, {"1x1x1/0"})
    assert Terms.of_params(PayParams(invstring="x"), invoice(None), cfg).amount_msat is None


def test_adopting_parts_of_another_amount_is_refused() -> None:
    """Parts in flight from an earlier run bind the amount (lightningd would refuse another
    total_msat): the record's, the invoice's, or at least what is in flight."""
    pending = sendpay(1, 2, SendpayStatus.PENDING, 600)
    amountless = invoice(None)

    def call(amount: int, records: Any = ()) -> Paid | Resume:
        params = PayParams(invstring="x", amount_msat=amount)
        return decide_prior(amountless, params, [pending], records, NOW)

    rec = replace(record(), amount_msat=1000)
    assert isinstance(call(1000, [rec]), Resume)
    with pytest.raises(PaymentInProgress, match="paying 1000 msat and this call asks for 900"):
        call(900, [rec])
    # without a record only an amount below what is in flight is known to disagree
    assert isinstance(call(900), Resume)
    with pytest.raises(PaymentInProgress, match="paying 600 msat"):
        call(500)
    # a record rebuilt from listsendpays only guessed the amount
    guessed = replace(rec, strategy="recovered", amount_msat=600)
    assert isinstance(call(1000, [guessed]), Resume)
    assert adopt_refusal(H, None, 600, Terms(amount_msat=None)) is None


def test_new_parts_get_ids_above_the_node_and_the_record() -> None:
    """A part id the record holds (a refused sendpay the node does not list) is not reused."""
    rec = replace(record(), parts=(*record().parts, replace(record().parts[0], partid=7)))
    resume = prior(sendpay(1, 2, SendpayStatus.PENDING), records=[rec])
    assert isinstance(resume, Resume) and resume.next_partid == 8


# -- fold ----------------------------------------------------------------------------------------


def test_fold_builds_the_view_from_the_events() -> None:
    events = [
        PaymentStarted(
            payment_hash=H,
            destination=PAYEE,
            amount_msat=3000,
            strategy="mincostflow",
            at=10.0,
            groupid=2,
            label="l",
            maxfee_msat=99,
        ),
        PartAdopted(
            payment_hash=H, partid=1, groupid=2, amount_msat=1000, amount_sent_msat=1002, at=5.0
        ),
        PartStarted(
            payment_hash=H,
            partid=2,
            groupid=2,
            amount_msat=2000,
            route=route_to(2000),
            at=11.0,
            compute_s=0.25,
        ),
        PartEnded(
            payment_hash=H,
            partid=2,
            groupid=2,
            amount_msat=2000,
            state=PartState.FAILED,
            at=12.0,
            failure=RouteFailure(failcode=0x1007, erring_index=1),
            reason="no liquidity",
        ),
    ]
    v = fold_all(events)
    assert v is not None
    assert (v.groupid, v.label, v.maxfee_msat, v.created_at) == (2, "l", 99, 10.0)
    assert (v.attempts, v.inflight_msat, v.delivered_msat, v.compute_s) == (1, 1000, 0, 0.25)
    assert [p.state for p in v.parts] == [PartState.INFLIGHT, PartState.FAILED]
    assert v.parts[0].fee_msat == 2 and v.parts[1].reason == "no liquidity"
    done = fold(
        fold(
            v,
            PartEnded(
                payment_hash=H,
                partid=1,
                groupid=2,
                amount_msat=1000,
                state=PartState.SUCCEEDED,
                at=13.0,
                preimage="55" * 32,
            ),
        ),
        PaymentEnded(
            payment_hash=H, groupid=2, status=PaymentStatus.COMPLETE, at=14.0, compute_s=0.5
        ),
    )
    assert (done.delivered_msat, done.amount_sent_msat, done.fee_msat) == (1000, 1002, 2)
    assert done.status is PaymentStatus.COMPLETE and done.payment_preimage == "55" * 32
    assert (done.completed_at, done.inflight_msat, done.compute_s) == (14.0, 0, 0.5)
    assert v.parts[0].state is PartState.INFLIGHT  # the earlier view is untouched


def test_fold_refuses_events_out_of_order() -> None:
    with pytest.raises(ValueError, match="before PaymentStarted"):
        fold(None, PaymentEnded(payment_hash=H, groupid=1, status=PaymentStatus.FAILED, at=1.0))
    started = fold(
        None, PaymentStarted(payment_hash=H, destination=PAYEE, amount_msat=1, strategy="x", at=0)
    )
    with pytest.raises(ValueError, match="never started"):
        fold(
            started,
            PartEnded(
                payment_hash=H, partid=7, groupid=0, amount_msat=1, state=PartState.FAILED, at=1
            ),
        )
