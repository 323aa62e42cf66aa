"""pay's contract in the sans-IO core: amount rules, partial_msat, pay's fee budget,
description hashes, and how a payment that gave up says so (xpay's words)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from test_book import CONFIG, DEST, INFO, NOW, invoice, plan, strategies

from barq.errors import (
    PAY_UNSPECIFIED_ERROR,
    DestinationPermanentFailure,
    InvalidInvoice,
    InvalidParams,
    InvoiceExpired,
    RouteNotFound,
    RouteTooExpensive,
    StoppedRetrying,
)
from barq.model import Hop, Route, RouteFailure
from barq.model.payment import PartOutcome, PartState, PartView, PayParams
from barq.payment import PaymentBook, paid_amount, validate
from barq.payment.plan import xpay_maxfee
from barq.payment.wording import (
    EXCESSIVE_COST,
    EXCESSIVE_DELAYS,
    SUMMARY_PARTS,
    gave_up,
    part_summary,
    routing_reason,
)

A = "02" + "aa" * 32


# -- amounts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inv_amount", "kw", "words"),
    [
        (100_000, {"amount_msat": 100_000}, "^amount_msat parameter unnecessary"),
        (100_000, {"amount_msat": 5}, "^amount_msat parameter unnecessary"),
        (None, {}, "^amount_msat parameter required"),
        (0, {}, "^Cannot pay bolt11 invoice with zero amount$"),
        (100_000, {"partial_msat": 100_001}, "^partial_msat must be less or equal to total"),
        (None, {"amount_msat": 10, "partial_msat": 11}, "total amount 10msat"),
    ],
)
def test_amount_rules_use_pays_words(
    inv_amount: int | None, kw: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidParams, match=words):
        plan(inv=invoice(inv_amount), **kw)


def test_partial_msat_delivers_part_of_the_total() -> None:
    p = plan(inv=invoice(100_000_000), partial_msat=40_000_000)
    assert (p.amount_msat, p.total_msat) == (40_000_000, 100_000_000)
    # the fee budget follows what this payment delivers
    assert p.maxfee_msat == CONFIG.default_maxfee_msat(40_000_000)
    whole = plan(inv=invoice(None), amount_msat=7_000)
    assert (whole.amount_msat, whole.total_msat) == (7_000, 7_000)
    params = PayParams(invstring="x", partial_msat=3)
    assert paid_amount(params, invoice(None)) == 3


def test_sendpay_total_is_the_invoice_amount_with_partial_msat() -> None:
    p = plan(inv=invoice(100_000_000), partial_msat=40_000_000)
    book = PaymentBook(p, lambda: NOW, lambda ev: None)
    book.open()
    route = Route(
        hops=(Hop(id=DEST, channel="1x1x1", direction=0, amount_msat=40_000_000, delay=18),)
    )
    order = book.start_part(route)
    assert (order.amount_msat, order.total_msat) == (40_000_000, 100_000_000)


def test_pays_fee_budget() -> None:
    assert plan(maxfee_ppm=10_000).maxfee_msat == 1_000_000  # 1 % of 100,000,000 msat
    assert plan(exemptfee_msat=2_000_000).maxfee_msat == 2_000_000
    assert plan(inv=invoice(10_000), maxfee_ppm=10_000).maxfee_msat == 5000  # default exempt
    assert xpay_maxfee(2_000_000, None, None) == 10_000
    with pytest.raises(InvalidParams, match=r"^If you specify maxfee, cannot specify"):
        plan(maxfee_msat=10, maxfee_ppm=1)
    with pytest.raises(InvalidParams, match=r"^If you specify maxfee, cannot specify"):
        plan(maxfee_msat=10, exemptfee_msat=1)


def test_description_must_match_the_hash() -> None:
    text = "a description hashed into the invoice"
    h = hashlib.sha256(text.encode()).hexdigest()
    assert plan(inv=invoice(description_hash=h), description=text).amount_msat
    with pytest.raises(InvalidInvoice, match=r"^Invalid bolt11: h: does not match description"):
        plan(inv=invoice(description_hash=h), description="another")
    assert plan(inv=invoice(), description="no hash to check").amount_msat


def test_invoice_words() -> None:
    with pytest.raises(InvoiceExpired, match=r"^Invoice expired 4\d{2} seconds ago$"):
        plan(inv=invoice(created_at=int(NOW) - 4000))
    with pytest.raises(InvalidInvoice, match=r"^Invalid bolt11 invoice: it is for network bitcoin"):
        plan(inv=invoice(network="bitcoin"))
    with pytest.raises(RouteTooExpensive, match=r"^Failed: Could not find route without excessive"):
        plan(maxdelay=17)
    assert plan(maxdelay=18).maxdelay == 18


def test_validate_takes_a_plain_invoice() -> None:
    v = validate(PayParams(invstring="x"), invoice(), INFO, CONFIG, NOW, strategies=strategies)
    assert v.total_msat == v.amount_msat == 100_000_000


# -- wording -------------------------------------------------------------------------------


def _part(
    partid: int, failure: RouteFailure | None, *, state: PartState = PartState.FAILED
) -> PartView:
    route = Route(
        hops=(
            Hop(id=A, channel="1x1x1", direction=0, amount_msat=1010, delay=24),
            Hop(id=DEST, channel="2x2x2", direction=1, amount_msat=1000, delay=18),
        )
    )
    return PartView(
        partid=partid,
        groupid=1,
        amount_msat=1000,
        amount_sent_msat=1010,
        fee_msat=10,
        route=route,
        state=state,
        started_at=NOW,
        failure=failure,
        reason=None if failure else "refused",
    )


def test_part_summaries_are_xpays_sentences() -> None:
    tcf = RouteFailure(failcode=0x1007, erring_index=1, erring_channel="2x2x2", erring_direction=1)
    assert part_summary(_part(1, tcf)) == (
        "We got temporary_channel_failure for 2x2x2/1, assuming it can't carry 1000msat"
    )
    weird = RouteFailure(failcode=0x400A, erring_index=1)  # unknown_next_peer at hop 1
    assert part_summary(_part(2, weird)) == (
        "We got a weird error (unknown_next_peer) for 2x2x2/1: disabling it for this payment"
    )
    mpp = RouteFailure(failcode=23, erring_index=2)
    assert part_summary(_part(3, mpp)).startswith("Payment of 1000msat reached destination")
    local = RouteFailure(failcode=0x1007, erring_index=0, message="Capacity exceeded")
    assert part_summary(_part(4, local)) == "We got Capacity exceeded for 1x1x1/0"
    assert part_summary(_part(5, None)) == "Part 5 of 1000msat failed: refused"
    assert part_summary(_part(6, None, state=PartState.SUCCEEDED)) is None


def test_routing_reason_knows_askrenes_sentences() -> None:
    fee = RouteTooExpensive("x", data={"cheapest_fee_msat": 11, "maxfee_msat": 10})
    assert routing_reason(fee) == EXCESSIVE_COST
    delay = RouteTooExpensive("x", data={"maxdelay": 10})
    assert routing_reason(delay) == EXCESSIVE_DELAYS
    both = RouteTooExpensive(
        "x", data={"cheapest_fee_msat": 1, "maxfee_msat": 10, "smallest_delay": 20, "maxdelay": 9}
    )
    assert routing_reason(both) == EXCESSIVE_DELAYS
    assert routing_reason(RouteNotFound("no flow of 5 msat")) == "no flow of 5 msat"


def _gave_up(err: Any, parts: tuple[PartView, ...], attempts: int, unassigned: int = 1000) -> Any:
    return gave_up(err, parts, attempts=attempts, amount_msat=1000, unassigned_msat=unassigned)


def test_gave_up_before_and_after_attempts() -> None:
    tcf = RouteFailure(failcode=0x1007, erring_index=1, erring_channel="2x2x2", erring_direction=1)
    tried = (_part(1, tcf),)
    costly = RouteTooExpensive("every route costs", data={"cheapest_fee_msat": 9, "maxfee_msat": 1})
    first = _gave_up(costly, (), 0)
    assert isinstance(first, RouteTooExpensive) and first.code == 206
    assert first.message == f"Failed: {EXCESSIVE_COST}"
    assert first.data["detail"] == "every route costs" and first.data["maxfee_msat"] == 1
    after = _gave_up(RouteNotFound("no flow"), tried, 1)
    assert isinstance(after, RouteNotFound) and after.code == PAY_UNSPECIFIED_ERROR
    assert after.message == (
        "Failed after 1 attempts. We got temporary_channel_failure for 2x2x2/1, assuming it "
        "can't carry 1000msat. Then routing failed: no flow"
    )
    rest = _gave_up(RouteNotFound("no flow"), tried, 2, unassigned=400)
    assert "Then routing for remaining 400msat failed: no flow" in rest.message
    timeout = _gave_up(StoppedRetrying("retry_for (5 s) reached"), tried, 1)
    assert timeout.code == 210 and timeout.message.startswith("Timed out after 1 attempts. We got")
    assert timeout.message.endswith("retry_for (5 s) reached")
    other = DestinationPermanentFailure("x")
    assert _gave_up(other, (), 3) is other


def test_many_failed_parts_keep_the_message_short() -> None:
    tcf = RouteFailure(failcode=0x1007, erring_index=1, erring_channel="2x2x2", erring_direction=1)
    parts = tuple(_part(i, tcf) for i in range(1, 501))
    err = gave_up(
        RouteNotFound("no flow"), parts, attempts=500, amount_msat=1000, unassigned_msat=1000
    )
    assert err.message.count("We got") == SUMMARY_PARTS
    assert f"And {500 - SUMMARY_PARTS} more failed part(s)." in err.message
    assert err.message.endswith("Then routing failed: no flow")


def test_the_book_reports_a_payee_refusal_in_xpays_words() -> None:
    p = plan(inv=invoice(1_000_000))
    book = PaymentBook(p, lambda: NOW, lambda ev: None)
    book.open()
    route = Route(
        hops=(Hop(id=DEST, channel="1x1x1", direction=0, amount_msat=1_000_000, delay=18),)
    )
    order = book.start_part(route)
    failure = RouteFailure(failcode=0x400F, erring_index=1, erring_node=DEST)
    book.part_ended(order.partid, PartOutcome(state=PartState.FAILED, sent=True, failure=failure))
    with pytest.raises(DestinationPermanentFailure) as err:
        book.finish()
    assert err.value.code == 203
    assert err.value.message == (
        "Destination said it doesn't know invoice: incorrect_or_unknown_payment_details"
    )
    assert (
        err.value.data["attempts"][0]["failcodename"] == "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS"
    )
