"""``barq-slow-mode`` and the answer's ``pending_parts``/``answer_at``/``timings_ms``."""

from __future__ import annotations

from barq.model import Hop, Route
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView, PayOutcome
from barq.plugin.options import OPTIONS, config_from_init
from barq.plugin.results import pay_result


def test_slow_mode_option_reaches_the_engine() -> None:
    assert ("barq-slow-mode", False) in [(n, d) for n, d, _, _ in OPTIONS]
    conf = {"lightning-dir": "/ln"}
    assert config_from_init({}, conf).engine_config().slow_mode is False
    for value in (True, "true"):
        assert config_from_init({"barq-slow-mode": value}, conf).engine_config().slow_mode


def _part(partid: int, state: PartState) -> PartView:
    hop = Hop(id="02" + "11" * 32, channel="1x1x1", direction=0, amount_msat=10, delay=18)
    return PartView(
        partid=partid,
        groupid=1,
        amount_msat=10,
        amount_sent_msat=10,
        fee_msat=0,
        route=Route(hops=(hop,)),
        state=state,
        started_at=1.0,
    )


def test_an_early_answer_counts_its_pending_parts_and_shows_its_timings() -> None:
    view = PaymentView(
        payment_hash="ab" * 32,
        destination="02" + "11" * 32,
        amount_msat=20,
        status=PaymentStatus.COMPLETE,
        strategy="mincostflow",
        created_at=1.0,
        parts=(_part(1, PartState.SUCCEEDED), _part(2, PartState.INFLIGHT)),
    )
    out = pay_result(
        PayOutcome(view=view, answer_at="preimage", timings_ms={"plan": 1.5}), parse_ms=0.25
    )
    assert out["pending_parts"] == 1 and out["answer_at"] == "preimage"
    assert out["timings_ms"]["plan"] == 1.5 and out["timings_ms"]["parse"] == 0.25
    assert "answer" in out["timings_ms"]
    assert [a["state"] for a in out["attempts"]] == ["succeeded", "inflight"]
