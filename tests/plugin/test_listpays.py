"""``listpays`` as lightningd builds it from ``listsendpays`` (CLN v26.06 plugins/xpay/listpays.c),
with "pending" for a hash Barq is still paying."""

from __future__ import annotations

from typing import Any

from barq.model.payment import PaymentStatus, PaymentView
from barq.plugin.listpays import ListpaysQuery, concerns, listpays_query, listpays_result

H1, H2 = "a1" * 32, "b2" * 32
B1 = "lnbcrt1first"


def _part(h: str, group: int, partid: int, status: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "created_index": 10 * group + partid,
        "payment_hash": h,
        "groupid": group,
        "partid": partid,
        "status": status,
        "amount_msat": 1000,
        "amount_sent_msat": 1010,
        "destination": "02" + "33" * 32,
        "created_at": 100 + partid,
        "bolt11": B1 if h == H1 else "lnbcrt1second",
    }
    out.update(kw)
    return out


def test_query_reads_keyword_and_positional_forms() -> None:
    assert listpays_query({"bolt11": "LIGHTNING:LNBCRT1FIRST"}) == ListpaysQuery(bolt11=B1)
    assert listpays_query([B1, None, "pending"]) == ListpaysQuery(bolt11=B1, status="pending")
    assert listpays_query({"payment_hash": H1.upper()}) == ListpaysQuery(payment_hash=H1)
    assert listpays_query({}) == ListpaysQuery()
    # what lightningd should answer itself: paging, bad values, odd shapes
    for params in (
        {"index": "created", "start": 1},
        {"status": "weird"},
        {"payment_hash": "ab"},
        {"bolt11": 5},
        [1, 2, 3, 4, 5, 6, 7],
        "x",
    ):
        assert listpays_query(params) is None


def _view(h: str, bolt11: str) -> PaymentView:
    return PaymentView(
        payment_hash=h,
        destination="02" + "33" * 32,
        amount_msat=1000,
        status=PaymentStatus.PENDING,
        strategy="x",
        created_at=1.0,
        bolt11=bolt11,
    )


def test_concerns_only_the_payments_barq_runs() -> None:
    paying = [_view(H1, B1)]
    assert concerns(ListpaysQuery(), paying)
    assert concerns(ListpaysQuery(bolt11=B1), paying)
    assert concerns(ListpaysQuery(payment_hash=H1), paying)
    assert not concerns(ListpaysQuery(payment_hash=H2), paying)
    assert not concerns(ListpaysQuery(bolt11="lnbcrt1other"), paying)
    assert not concerns(ListpaysQuery(), [])


def test_result_merges_groups_like_lightningd() -> None:
    sendpays = [
        _part(H1, 1, 1, "failed"),
        _part(H1, 1, 2, "failed"),
        _part(H1, 2, 1, "complete", payment_preimage="77" * 32, completed_at=205),
        _part(H1, 2, 2, "complete", completed_at=203, created_index=5),
        _part(H2, 1, 1, "failed"),
    ]
    pays = listpays_result(sendpays, ListpaysQuery(), paying=())["pays"]
    assert [(p["payment_hash"], p["status"]) for p in pays] == [
        (H1, "failed"),
        (H1, "complete"),
        (H2, "failed"),
    ]
    done = pays[1]
    assert done["amount_msat"] == 2000 and done["amount_sent_msat"] == 2020
    assert done["number_of_parts"] == 2 and done["preimage"] == "77" * 32
    assert done["completed_at"] == 203 and done["created_index"] == 5
    assert done["bolt11"] == B1 and done["created_at"] == 101
    failed = pays[0]
    assert "amount_msat" not in failed and failed["amount_sent_msat"] == 0


def test_a_hash_barq_is_paying_is_pending_never_failed() -> None:
    sendpays = [_part(H1, 1, 1, "failed"), _part(H1, 2, 1, "failed"), _part(H2, 1, 1, "failed")]
    pays = listpays_result(sendpays, ListpaysQuery(), paying=[H1])["pays"]
    assert [p["status"] for p in pays] == ["pending", "pending", "failed"]
    only = listpays_result(sendpays, ListpaysQuery(status="failed"), paying=[H1])["pays"]
    assert [p["payment_hash"] for p in only] == [H2]
    done = [_part(H1, 1, 1, "complete")]
    assert listpays_result(done, ListpaysQuery(), paying=[H1])["pays"][0]["status"] == "complete"
