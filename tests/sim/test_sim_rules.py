"""The acceptance rules (barq.sim.rules): each rule alone, and the one copy both nodes use."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
from sim_helpers import SAT, SIM_BUDGET_S, opened, route_of

from barq.errors import (
    PAY_DESTINATION_PERM_FAIL,
    PAY_IN_PROGRESS,
    PAY_RHASH_ALREADY_USED,
    PartFailed,
    RpcError,
)
from barq.graph.synthetic import line_network
from barq.model import FailCode, Hop, Invoice, Route, SendpayStatus
from barq.sim import rules
from barq.sim.rules import Earlier, ForwardChannel, InvoiceTerms, OwnChannel, Refusal
from barq.testing import ScriptedNode, Succeed

NODE = "02" + "11" * 32
PEER = "03" + "22" * 32


def hop(amount_msat: int, delay: int = 18, node: str = PEER, channel: str = "1x1x1") -> Hop:
    return Hop(id=node, channel=channel, direction=0, amount_msat=amount_msat, delay=delay)


# -- the route and the payer's earlier parts ---------------------------------------------


def test_route_error() -> None:
    assert rules.route_error(Route(hops=(hop(1000), hop(900)))) is None
    assert rules.route_error(Route(hops=())) == "sendpay: Empty route"
    assert "bad hop" in (rules.route_error(Route(hops=(hop(1000), hop(0)))) or "")
    assert "bad hop" in (rules.route_error(Route(hops=(hop(1000, delay=-1),))) or "")
    known = {PEER}.__contains__
    assert rules.route_error(Route(hops=(hop(1000),)), known=known) is None
    unknown = Route(hops=(hop(1000, node=NODE),))
    assert rules.route_error(unknown) is None  # nodes are only checked when asked
    assert rules.route_error(unknown, known=known) == f"sendpay: unknown node {NODE} in route"


def earlier(status: SendpayStatus, partid: int = 1, groupid: int = 1, total: int = 100) -> Earlier:
    return Earlier(status=status, groupid=groupid, partid=partid, total_msat=total, amount_msat=60)


def refusal(parts: list[Earlier], partid: int = 2, groupid: int = 1, total: int = 100) -> Any:
    return rules.sendpay_refusal(
        parts, payment_hash="ab" * 32, partid=partid, groupid=groupid, total_msat=total
    )


def test_sendpay_refusal_mirrors_lightningd() -> None:
    pending, failed = SendpayStatus.PENDING, SendpayStatus.FAILED
    assert refusal([]) is None
    assert refusal([earlier(pending)]) is None  # another part of the same group and total
    assert refusal([earlier(failed, partid=2)]) is None  # a failed part id may be reused
    assert refusal([earlier(failed, groupid=7, total=5)]) is None  # failed parts do not count
    done = refusal([earlier(pending), earlier(SendpayStatus.COMPLETE, partid=3)])
    assert isinstance(done, RpcError) and done.rpc_code == PAY_RHASH_ALREADY_USED
    assert done.method == "sendpay" and "Already succeeded with amount 60msat" in done.message
    other_group = refusal([earlier(pending, groupid=2)])
    assert other_group is not None and other_group.rpc_code == PAY_IN_PROGRESS
    assert "groupid=2 still in progress" in other_group.message
    same_part = refusal([earlier(pending, partid=2)])
    assert same_part is not None and same_part.rpc_code == PAY_IN_PROGRESS
    assert "already in flight" in same_part.message
    other_total = refusal([earlier(pending, total=99)])
    assert other_total is not None and other_total.rpc_code == PAY_DESTINATION_PERM_FAIL
    # the part id is checked before the total, as lightningd does
    first = refusal([earlier(pending, partid=2, total=99)])
    assert first is not None and first.rpc_code == PAY_IN_PROGRESS


# -- channels ------------------------------------------------------------------------


def test_htlc_refusal_limits_and_boundaries() -> None:
    def check(amount: int, hmax: int | None = 500, available: int = 400) -> Refusal | None:
        return rules.htlc_refusal(
            amount, htlc_min_msat=100, htlc_max_msat=hmax, available_msat=available
        )

    assert check(100) is None and check(400) is None  # both ends included
    assert check(99) == Refusal(FailCode.AMOUNT_BELOW_MINIMUM, "below htlc_minimum 100msat")
    assert check(501, available=1000) == Refusal(
        FailCode.TEMPORARY_CHANNEL_FAILURE, "above htlc_maximum 500msat"
    )
    assert check(501, hmax=None, available=1000) is None  # no maximum given
    assert check(401) == Refusal(FailCode.TEMPORARY_CHANNEL_FAILURE, "insufficient liquidity")
    below = check(50, available=0)  # the minimum is checked before the liquidity
    assert below is not None and below.code == FailCode.AMOUNT_BELOW_MINIMUM


def test_first_hop_refusal() -> None:
    own = OwnChannel(enabled=True, htlc_min_msat=1000, available_msat=5000)
    assert rules.first_hop_refusal(hop(5000), own) is None
    assert rules.first_hop_refusal(hop(5000), None) == Refusal(
        FailCode.UNKNOWN_NEXT_PEER, "First peer not ready"
    )
    disabled = own._replace(enabled=False)
    assert rules.first_hop_refusal(hop(5000), disabled) == Refusal(
        FailCode.CHANNEL_DISABLED, "channel disabled"
    )
    assert rules.first_hop_refusal(hop(999), own) == Refusal(
        FailCode.AMOUNT_BELOW_MINIMUM, "below htlc_minimum 1000msat"
    )
    assert rules.first_hop_refusal(hop(5001), own) == Refusal(
        FailCode.TEMPORARY_CHANNEL_FAILURE, "Capacity exceeded"
    )


def test_forward_refusal_in_bolt4_order() -> None:
    chan = ForwardChannel(
        enabled=True,
        fee_base_msat=1000,
        fee_ppm=100,
        cltv_delta=40,
        htlc_min_msat=1000,
        htlc_max_msat=100_000_000,
        available_msat=60_000_000,
    )
    out = hop(50_000_000, delay=18)
    fee = 1000 + 50_000_000 * 100 // 1_000_000
    good_in = hop(50_000_000 + fee, delay=58)
    assert rules.forward_refusal(good_in, out, chan) is None
    assert rules.forward_refusal(good_in, out, None) == Refusal(
        FailCode.UNKNOWN_NEXT_PEER, "unknown next peer"
    )
    short = hop(50_000_000 + fee - 1, delay=58)
    assert rules.forward_refusal(short, out, chan) == Refusal(
        FailCode.FEE_INSUFFICIENT, f"fee {fee - 1} < {fee}msat"
    )
    early = hop(50_000_000 + fee, delay=57)
    assert rules.forward_refusal(early, out, chan) == Refusal(
        FailCode.INCORRECT_CLTV_EXPIRY, "cltv delta 39 < 40"
    )
    # disabled comes first, then the fee, then the CLTV, then the HTLC limits
    off = chan._replace(enabled=False, available_msat=0)
    assert rules.forward_refusal(short, out, off) == Refusal(
        FailCode.CHANNEL_DISABLED, "channel disabled"
    )
    fee_first = rules.forward_refusal(short, out, chan._replace(available_msat=0))
    assert fee_first is not None and fee_first.code == FailCode.FEE_INSUFFICIENT
    dry = chan._replace(available_msat=50_000_000 - 1)
    assert rules.forward_refusal(good_in, out, dry) == Refusal(
        FailCode.TEMPORARY_CHANNEL_FAILURE, "insufficient liquidity"
    )
    capped = chan._replace(htlc_max_msat=49_999_999)
    assert rules.forward_refusal(good_in, out, capped) == Refusal(
        FailCode.TEMPORARY_CHANNEL_FAILURE, "above htlc_maximum 49999999msat"
    )
    high_min = chan._replace(htlc_min_msat=50_000_001)
    assert rules.forward_refusal(good_in, out, high_min) == Refusal(
        FailCode.AMOUNT_BELOW_MINIMUM, "below htlc_minimum 50000001msat"
    )


# -- the payee -------------------------------------------------------------------------

TERMS = InvoiceTerms(
    payment_secret="55" * 32, amount_msat=1000, min_final_cltv=18, created_at=100, expiry_s=60
)


def payee(terms: InvoiceTerms | None = TERMS, **kw: Any) -> str | None:
    args: dict[str, Any] = dict(
        paid=False, payment_secret="55" * 32, final_delay=18, total_msat=1000, now=160.0
    )
    args.update(kw)
    return rules.payee_refusal(terms, **args)


def test_payee_refusal() -> None:
    assert payee() is None
    assert payee(None) == "unknown payment hash"
    assert payee(paid=True) == "invoice already paid"
    assert payee(payment_secret=None) == "wrong or missing payment_secret"
    assert payee(payment_secret="00" * 32) == "wrong or missing payment_secret"
    assert payee(now=160.5) == "invoice expired"
    assert payee(final_delay=17) == "final cltv 17 < 18"
    assert payee(total_msat=2000) is None  # up to twice the amount
    assert payee(total_msat=999) == "total_msat 999 does not match invoice amount 1000"
    assert payee(total_msat=2001) == "total_msat 2001 does not match invoice amount 1000"
    anything = msgspec.structs.replace(TERMS, amount_msat=None)
    assert payee(anything, total_msat=1) is None and payee(anything, total_msat=10**12) is None
    # in order: known, paid, secret, expiry, CLTV, amount
    assert payee(paid=True, payment_secret=None, total_msat=1) == "invoice already paid"
    assert payee(payment_secret=None, now=1e9) == "wrong or missing payment_secret"
    assert payee(now=1e9, final_delay=0) == "invoice expired"
    assert payee(final_delay=0, total_msat=1) == "final cltv 0 < 18"


def test_mpp_set_rules() -> None:
    assert rules.mpp_total_refusal(1000, 1000) is None
    why = rules.mpp_total_refusal(1000, 1200)
    assert why == "total_msat 1200 differs from the other parts' 1000"
    assert not rules.mpp_complete(999, 1000)
    assert rules.mpp_complete(1000, 1000) and rules.mpp_complete(1001, 1000)


# -- one copy of each rule, used by the simulator and by the scripted node ------------------

SHARED = ("route_error", "sendpay_refusal", "first_hop_refusal", "payee_refusal")
"""The rules both the simulated network and :class:`barq.testing.ScriptedNode` apply."""


async def pay_once(node: Any, route: Route, inv: Invoice, *, partid: int = 1) -> Any:
    """One part sent and waited for: its status or the PartFailed (at sendpay or later)."""
    try:
        await node.sendpay(
            route,
            inv.payment_hash,
            partid=partid,
            groupid=1,
            total_msat=inv.amount_msat,
            payment_secret=inv.payment_secret,
        )
        return await node.waitsendpay(inv.payment_hash, partid=partid, groupid=1)
    except PartFailed as e:
        return e


async def both_nodes(amount_msat: int) -> tuple[list[Any], list[Any]]:
    """Pay ``amount_msat`` over 0 -> 1 -> 2 once on the simulator, once on a ScriptedNode."""
    g, keys = line_network(3, 1_000_000)
    route = route_of(g, [0, 1, 2], amount_msat)
    async with opened(g, keys) as net:
        sim = net.node(g.nodes[0])
        inv = await sim.decode_invoice(net.create_invoice(g.nodes[2], amount_msat))
        on_sim = [await pay_once(sim, route, inv)]
    scripted = ScriptedNode(graph=g, our_id=g.nodes[0], handler=lambda p: Succeed(after_s=1))
    sinv = scripted.invoice(scripted.add_invoice(payee=g.nodes[2], amount_msat=amount_msat))
    on_scripted = [await pay_once(scripted, route, sinv)]
    return on_sim, on_scripted


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.trio
async def test_both_nodes_call_the_one_rule(
    name: str, monkeypatch: pytest.MonkeyPatch, autojump_clock: Any
) -> None:
    calls: list[str] = []
    real = getattr(rules, name)

    def spy(*args: Any, **kw: Any) -> Any:
        calls.append(name)
        return real(*args, **kw)

    monkeypatch.setattr(rules, name, spy)
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3, 1_000_000)
        route = route_of(g, [0, 1, 2], 1_000 * SAT)
        async with opened(g, keys) as net:
            sim = net.node(g.nodes[0])
            inv = await sim.decode_invoice(net.create_invoice(g.nodes[2], 1_000 * SAT))
            assert (await pay_once(sim, route, inv)).status is SendpayStatus.COMPLETE
        assert calls, f"the simulator never asked rules.{name}"
        calls.clear()
        scripted = ScriptedNode(graph=g, our_id=g.nodes[0])
        sinv = scripted.invoice(scripted.add_invoice(payee=g.nodes[2], amount_msat=1_000 * SAT))
        assert (await pay_once(scripted, route, sinv)).status is SendpayStatus.COMPLETE
        assert calls, f"ScriptedNode never asked rules.{name}"


@pytest.mark.trio
async def test_a_changed_first_hop_rule_shows_in_both(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: Any
) -> None:
    monkeypatch.setattr(
        rules, "first_hop_refusal", lambda hop, own: Refusal(FailCode.CHANNEL_DISABLED, "nope")
    )
    with trio.fail_after(SIM_BUDGET_S):
        on_sim, on_scripted = await both_nodes(1_000 * SAT)
    for err in (*on_sim, *on_scripted):
        assert isinstance(err, PartFailed) and err.method == "sendpay"
        f = err.failure
        assert (f.failcode, f.erring_index, f.message) == (FailCode.CHANNEL_DISABLED, 0, "nope")


@pytest.mark.trio
async def test_a_changed_payee_rule_shows_in_both(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: Any
) -> None:
    monkeypatch.setattr(rules, "payee_refusal", lambda terms, **kw: "the payee changed its mind")
    with trio.fail_after(SIM_BUDGET_S):
        on_sim, on_scripted = await both_nodes(1_000 * SAT)
    for err in (*on_sim, *on_scripted):
        assert isinstance(err, PartFailed)
        f = err.failure
        assert f.failcode == FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
        assert f.erring_index == 2 and f.message == "the payee changed its mind"


@pytest.mark.trio
async def test_unchanged_rules_let_both_pay(autojump_clock: Any) -> None:
    """The control of the two tests above: with the real rules both nodes complete the part."""
    with trio.fail_after(SIM_BUDGET_S):
        on_sim, on_scripted = await both_nodes(1_000 * SAT)
    assert [p.status for p in (*on_sim, *on_scripted)] == [SendpayStatus.COMPLETE] * 2


def test_no_free_htlc_slot_is_a_temporary_channel_failure() -> None:
    full = rules.htlc_refusal(
        1000, htlc_min_msat=1, htlc_max_msat=None, available_msat=10**6, free_slots=0
    )
    assert full == Refusal(FailCode.TEMPORARY_CHANNEL_FAILURE, "Too many HTLCs")
    own = OwnChannel(enabled=True, htlc_min_msat=1, available_msat=10**6, free_slots=0)
    assert rules.first_hop_refusal(hop(5000), own) == full
    assert rules.first_hop_refusal(hop(5000), own._replace(free_slots=1)) is None
