"""The plugin's pure helpers: amounts, exclude lists, pay redirection, config, JSON shapes."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_driver import PAYEE, route_to

from barq.actors.messages import ChannelKnowledge, DisabledChannel, DisabledNode
from barq.errors import InvalidParams, RouteTooExpensive, UnknownStrategy
from barq.limits import AMOUNT_MSAT, MAX_MSAT, MAXFEE_MSAT
from barq.model import RouteFailure
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView
from barq.payment.plan import xpay_maxfee
from barq.plugin.host import knowledge_entries, knowledge_records
from barq.plugin.options import config_from_init
from barq.plugin.params import barqpay_params, parse_exclude, parse_msat
from barq.plugin.redirect import NotRedirectable, pay_redirect_params
from barq.plugin.results import payment_json, rpc_error, unwrap_group

X = MAXFEE_MSAT.named("x")


@pytest.mark.parametrize(
    ("value", "msat"),
    [
        (0, 0),
        (1234, 1234),
        (1234.0, 1234),
        ("1234", 1234),
        ("1234msat", 1234),
        ("12sat", 12_000),
        ("1.234sat", 1234),
        ("0.001btc", 100_000_000),
        ("1btc", 100_000_000_000),
        ("0.00000000001btc", 1),
        (" 5SAT ", 5000),
    ],
)
def test_parse_msat_accepts_cln_forms(value: Any, msat: int) -> None:
    assert parse_msat(value, X) == msat


@pytest.mark.parametrize(
    "value",
    [
        -1,
        "-1",
        "1.5sat",
        "1.2345sat",
        "0.000000000001btc",
        "12 sats",
        "lots",
        "",
        None,
        True,
        1.5,
        [1],
        {"msat": 1},
    ],
)
def test_parse_msat_rejects(value: Any) -> None:
    with pytest.raises(InvalidParams, match="x:"):
        parse_msat(value, X)


def test_parse_msat_range_is_the_limits_one() -> None:
    with pytest.raises(InvalidParams, match="amount_msat: must be between 1 and"):
        parse_msat(0, AMOUNT_MSAT)
    assert parse_msat(MAX_MSAT, AMOUNT_MSAT) == MAX_MSAT
    with pytest.raises(InvalidParams, match="amount_msat"):  # more than 21 million BTC
        parse_msat(2**64, AMOUNT_MSAT)


def test_parse_exclude() -> None:
    node = "03" + "ab" * 32
    assert parse_exclude(None) == ()
    assert parse_exclude(["1x2x3/1", node.upper()]) == ("1x2x3/1", node)
    assert parse_exclude('["1x2x3/0"]') == ("1x2x3/0",)
    assert parse_exclude("1x2x3/0") == ("1x2x3/0",)
    for bad in (["1x2/0"], ["1x2x3/3"], ["04" + "ab" * 32], [None], 5, "[1"):
        with pytest.raises(InvalidParams, match="exclude"):
            parse_exclude(bad)


def test_barqpay_params_defaults_are_none() -> None:
    p = barqpay_params("LIGHTNING:lnbcrt1xyz")
    assert p.invstring == "lnbcrt1xyz"
    assert (
        p.amount_msat,
        p.maxparts,
        p.maxfee_msat,
        p.retry_for_s,
        p.maxdelay,
        p.strategy,
        p.label,
        p.exclude,
    ) == (None, None, None, None, None, None, None, ())
    assert barqpay_params("ln1", maxparts=1000).maxparts == 1000
    assert barqpay_params("ln1", label=7).label == "7"
    with pytest.raises(UnknownStrategy, match="available"):
        barqpay_params("ln1", strategy="nope")


def test_pay_redirect_params() -> None:
    # pay's parameters keep their names (barqpay takes them all); bolt11 becomes invstring
    assert pay_redirect_params({"bolt11": "lnbc1", "amount_msat": 5, "riskfactor": 2}) == {
        "invstring": "lnbc1",
        "amount_msat": 5,
        "riskfactor": 2,
    }
    assert pay_redirect_params(["lnbc1", None, "l", None, "0.5", 10, None, "3000msat"]) == {
        "invstring": "lnbc1",
        "label": "l",
        "maxfeepercent": "0.5",
        "retry_for": 10,
        "exemptfee": "3000msat",
    }
    positional = ["lnbc1", *([None] * 11), 7]  # the 13th: partial_msat
    assert pay_redirect_params(positional) == {"invstring": "lnbc1", "partial_msat": 7}
    # BOLT 12 invoices and offers go to barqpay too (issue 14)
    assert pay_redirect_params({"bolt11": "lni1x"}) == {"invstring": "lni1x"}
    assert pay_redirect_params({"bolt11": "LIGHTNING:LNO1x"}) == {"invstring": "LIGHTNING:LNO1x"}
    for bad in (
        {"amount_msat": 1},
        {"bolt11": 5},
        "x",
        {"bolt11": "lnbc1", "localinvreqid": "00" * 32},
        ["lnbc1"] * 14,
    ):
        with pytest.raises(NotRedirectable):
            pay_redirect_params(bad)


def test_xpay_maxfee() -> None:
    assert xpay_maxfee(2_000_000, None, None) == 10_000  # 0.5 %
    assert xpay_maxfee(100_000, None, None) == 5000  # at least the default exemptfee
    assert xpay_maxfee(2_000_000, 10_000, 50_000) == 50_000


def test_config_from_init_defaults_and_paths() -> None:
    cfg = config_from_init(
        {}, {"lightning-dir": "/ln/regtest", "rpc-file": "rpc", "network": "regtest"}
    )
    assert cfg.db_path == "/ln/regtest/barq.sqlite3" and str(cfg.rpc_path) == "/ln/regtest/rpc"
    e = cfg.engine_config()
    assert (
        e.default_strategy,
        e.maxfee_base_msat,
        e.maxfee_ppm,
        e.retry_for_s,
        e.maxdelay,
        e.maxparts,
    ) == ("adaptive", 5000, 10_000, 60.0, 2016, 64)
    assert not cfg.handle_pay
    cfg = config_from_init(
        {"barq-db": "/abs/x.db", "barq-handle-pay": "true"}, {"lightning-dir": "/ln"}
    )
    assert cfg.db_path == "/abs/x.db" and cfg.handle_pay
    assert (
        config_from_init({"barq-db": "sub/x.db"}, {"lightning-dir": "/ln"}).db_path
        == "/ln/sub/x.db"
    )


def _view(status: PaymentStatus = PaymentStatus.FAILED) -> PaymentView:
    f = RouteFailure(failcode=0x400F, erring_index=2, erring_node=PAYEE, message="boom")
    return PaymentView(
        payment_hash="ab" * 32,
        destination=PAYEE,
        amount_msat=1000,
        status=status,
        strategy="direct",
        created_at=100.0,
        completed_at=103.0,
        groupid=2,
        error="destination refused",
        error_code=203,
        attempts=1,
        parts=(
            PartView(
                partid=1,
                groupid=2,
                amount_msat=1000,
                amount_sent_msat=1001,
                fee_msat=1,
                route=route_to(1000),
                state=PartState.FAILED,
                started_at=101.0,
                finished_at=102.5,
                failure=f,
                reason="WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS",
            ),
        ),
    )


def test_payment_json_shape() -> None:
    j = payment_json(_view())
    assert j["parts"] == 1 and j["status"] == "failed" and j["elapsed_s"] == 3.0
    assert "payment_preimage" not in j and j["error_code"] == 203
    [a] = j["attempts"]
    assert a["elapsed_s"] == 1.5 and a["state"] == "failed"
    assert a["failure"] == {
        "failcode": 0x400F,
        "failcodename": "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS",
        "erring_index": 2,
        "erring_node": PAYEE,
        "message": "boom",
    }


def test_rpc_error_mapping() -> None:
    import msgspec

    code, msg, data = rpc_error(RouteTooExpensive("too dear", data=msgspec.to_builtins(_view())))
    assert code == 206 and msg == "too dear"
    assert data is not None and data["attempts"][0]["failure"]["erring_index"] == 2
    assert rpc_error(InvalidParams("bad", data={"param": "x"})) == (-32602, "bad", {"param": "x"})
    code, msg, data = rpc_error(KeyError("k"), method="barqpay")
    assert code == 209 and msg == "internal error in barqpay: KeyError: 'k'"


def test_knowledge_round_trip() -> None:
    entries = [
        ChannelKnowledge(scid_dir="1x1x1/0", lo_msat=1, hi_msat=2, updated_at=3.0),
        DisabledChannel(scid_dir="1x1x1/1", until=4.0, reason="r"),
        DisabledNode(node_id=PAYEE, until=5.0),
    ]
    rows = knowledge_records(entries)
    assert [r.kind for r in rows] == ["channel", "disabled_channel", "disabled_node"]
    assert knowledge_entries(rows) == entries
    from barq.store import KnowledgeRecord

    logged: list[str] = []
    bad = KnowledgeRecord(kind="channel", key="1x1x1/0")  # no bounds
    assert knowledge_entries([bad], lambda m, lvl: logged.append(m)) == []
    assert "skipping" in logged[0]


def test_exception_groups_are_looked_into() -> None:
    inner = RouteTooExpensive("dear")
    group = BaseExceptionGroup("nursery", [ValueError("x"), ExceptionGroup("g", [inner])])
    assert unwrap_group(group) is inner
    assert rpc_error(group)[:2] == (206, "dear")
    plain = ExceptionGroup("g", [KeyError("k")])
    assert isinstance(unwrap_group(plain), KeyError)
