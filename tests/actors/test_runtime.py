"""Payments end to end through the runtime, against ScriptedNode: one test per behaviour.

The diamond (see ``actor_helpers``): us -> a -> dest over 101/103 is cheapest,
us -> b -> dest over 102/104 next, us -> c -> dest over 105/106 dearest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import trio
from actor_helpers import (
    CONFIG,
    Diamond,
    Scripted,
    StoreJournal,
    diamond,
    fails_at_channel,
    through,
    uses,
)

from barq.actors import open_runtime
from barq.errors import (
    AlreadyPaid,
    BarqError,
    DestinationPermanentFailure,
    GraphLoadError,
    InvalidParams,
    NodeError,
    RouteNotFound,
    RouteTooExpensive,
    RpcConnectionError,
    StoppedRetrying,
    UnknownStrategy,
)
from barq.graph import Graph
from barq.graph.synthetic import line_network
from barq.model import ChannelUpdate, FailCode, PartStatus, RouteHintHop, SendpayStatus
from barq.model.payment import (
    EngineConfig,
    PartEnded,
    PartStarted,
    PartState,
    PaymentEnded,
    PaymentStarted,
    PaymentStatus,
    PayParams,
)
from barq.store import open_store
from barq.testing import Fail, Limits, Refuse, ScriptedNode, SentPart, Succeed, fail_at

AMOUNT = 50_000_000
LIMITS = Limits(
    maxfee_msat=max(CONFIG.maxfee_base_msat, AMOUNT * CONFIG.maxfee_ppm // 10**6),
    maxdelay=CONFIG.maxdelay,
    maxparts=CONFIG.maxparts,
)


def setup(handler: Any = None, d: Diamond | None = None, **kw: Any) -> tuple[Diamond, ScriptedNode]:
    d = d or diamond()
    node = ScriptedNode(
        graph=kw.pop("graph", d.graph), our_id=d.us, handler=handler or Scripted(), **kw
    )
    return d, node


def invoice(node: ScriptedNode, d: Diamond, amount: int | None = AMOUNT, **kw: Any) -> str:
    b = node.add_invoice(payee=d.dest, amount_msat=amount, **kw)
    if amount is not None:
        fee = max(CONFIG.maxfee_base_msat, amount * CONFIG.maxfee_ppm // 10**6)
        node.expect(b, Limits(maxfee_msat=fee, maxdelay=CONFIG.maxdelay, maxparts=CONFIG.maxparts))
    return b


def channels_of(node: ScriptedNode, payment_hash: str | None = None) -> list[list[str]]:
    return [
        [h.channel for h in p.route.hops]
        for p in node.sent
        if payment_hash is None or p.payment_hash == payment_hash
    ]


CHEAP, MIDDLE, DEAR = ["101x1x0", "103x1x0"], ["102x1x0", "104x1x0"], ["105x1x0", "106x1x0"]


# -- the happy path -----------------------------------------------------------------------


@pytest.mark.trio
async def test_pays_over_the_cheapest_route_with_events_and_status(autojump_clock: Any) -> None:
    d, node = setup()
    b = invoice(node, d)
    events: list[Any] = []
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=b, label="coffee"), on_event=events.append)
            assert view.status is PaymentStatus.COMPLETE
            assert view.delivered_msat == AMOUNT and view.inflight_msat == 0
            assert view.fee_msat == 1000 + AMOUNT * 100 // 10**6
            assert view.amount_sent_msat == AMOUNT + view.fee_msat
            assert view.payment_preimage is not None and view.attempts == 1
            assert view.label == "coffee" and view.groupid == 1
            [st] = rt.status()
            assert st == view
            with pytest.raises(AttributeError):  # readers get frozen views
                st.parts = ()  # type: ignore[misc]
            assert len(rt.status(view.payment_hash)[0].parts) == 1
            assert rt.status("00" * 32) == []
    assert channels_of(node) == [CHEAP]
    assert [type(e) for e in events] == [PaymentStarted, PartStarted, PartEnded, PaymentEnded]
    sent = node.sent[0]
    assert (sent.partid, sent.groupid, sent.total_msat) == (1, 1, AMOUNT)
    assert sent.payment_secret == node.invoice(b).payment_secret
    assert node.violations == []


@pytest.mark.trio
async def test_node_calls_per_payment(autojump_clock: Any) -> None:
    """One ``decode`` and one ``listsendpays`` per payment (none when the caller gives
    them); ``getinfo`` once per runtime, not per payment."""
    d, node = setup()
    b1, b2, b3 = invoice(node, d), invoice(node, d), invoice(node, d)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            info_at_start = node.calls["get_info"]
            await rt.pay(PayParams(invstring=b1))
            await rt.pay(PayParams(invstring=b2))
            assert node.calls["decode_invoice"] == 2 and node.calls["listsendpays"] == 2
            # a caller that already decoded the invoice and listed its sendpays
            view = await rt.pay(PayParams(invstring=b3), invoice=node.invoice(b3), sendpays=[])
            assert view.status is PaymentStatus.COMPLETE
            assert node.calls["decode_invoice"] == 2 and node.calls["listsendpays"] == 2
            assert node.calls["get_info"] == info_at_start
    assert node.violations == []


@pytest.mark.trio
async def test_given_invoice_and_sendpays_are_checked(autojump_clock: Any) -> None:
    d, node = setup()
    b1, b2 = invoice(node, d), invoice(node, d)
    other = PartStatus(
        payment_hash="ab" * 32,
        partid=1,
        groupid=1,
        status=SendpayStatus.FAILED,
        amount_msat=1,
        amount_sent_msat=1,
    )
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with pytest.raises(InvalidParams, match=r"not params\.invstring"):
                await rt.pay(PayParams(invstring=b1), invoice=node.invoice(b2))
            with pytest.raises(InvalidParams, match="payment hash"):
                await rt.pay(PayParams(invstring=b1), invoice=node.invoice(b1), sendpays=[other])
    assert node.sent == []


@pytest.mark.trio
async def test_given_sendpays_are_adopted(autojump_clock: Any) -> None:
    """A complete part in the ``sendpays`` handed in means paid: nothing is sent."""
    d, node = setup()
    b = invoice(node, d)
    h = node.invoice(b).payment_hash
    done = PartStatus(
        payment_hash=h,
        partid=1,
        groupid=3,
        status=SendpayStatus.COMPLETE,
        amount_msat=AMOUNT,
        amount_sent_msat=AMOUNT + 5,
        payment_preimage="11" * 32,
    )
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=b), invoice=node.invoice(b), sendpays=[done])
    assert view.status is PaymentStatus.COMPLETE and view.groupid == 3
    assert view.payment_preimage == "11" * 32 and view.fee_msat == 5
    assert node.sent == [] and node.calls["listsendpays"] == 0


@pytest.mark.trio
async def test_event_callback_errors_are_contained(autojump_clock: Any) -> None:
    d, node = setup()

    def boom(event: Any) -> None:
        raise RuntimeError("callback bug")

    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d)), on_event=boom)
    assert view.status is PaymentStatus.COMPLETE


# -- failures, one class each ---------------------------------------------------------------


@pytest.mark.trio
async def test_liquidity_failure_is_learnt_for_this_and_the_next_payment(
    autojump_clock: Any,
) -> None:
    """A depleted channel on the cheapest path: the retry and a second payment avoid it."""
    d, node = setup(Scripted().when(through("103x1x0"), fails_at_channel("103x1x0")))
    b1, b2 = invoice(node, d), invoice(node, d)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            v1 = await rt.pay(PayParams(invstring=b1))
            v2 = await rt.pay(PayParams(invstring=b2))
            knowledge = await rt.export_knowledge()
    assert channels_of(node, v1.payment_hash) == [CHEAP, MIDDLE]
    assert channels_of(node, v2.payment_hash) == [MIDDLE]
    assert [p.state for p in v1.parts] == [PartState.FAILED, PartState.SUCCEEDED]
    assert v1.parts[0].failure is not None
    assert v1.parts[0].failure.failcode == FailCode.TEMPORARY_CHANNEL_FAILURE
    learnt = {e.scid_dir: e for e in knowledge if hasattr(e, "hi_msat")}
    assert learnt[d.sd("103x1x0", d.a)].hi_msat < AMOUNT  # type: ignore[union-attr]
    assert node.violations == []


@pytest.mark.trio
async def test_persisted_knowledge_is_used_from_the_start(autojump_clock: Any) -> None:
    d, node = setup(Scripted().when(through("103x1x0"), fails_at_channel("103x1x0")))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            await rt.pay(PayParams(invstring=invoice(node, d)))
            saved = await rt.export_knowledge()
        node.sent.clear()
        async with open_runtime(node, CONFIG, knowledge=saved) as rt:
            await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node) == [MIDDLE]


@pytest.mark.trio
async def test_fee_insufficient_applies_the_channel_update(autojump_clock: Any) -> None:
    d, _ = setup()
    sd = d.sd("103x1x0", d.a)
    upd = ChannelUpdate(
        scid="103x1x0",
        direction=int(sd[-1]),
        fee_base_msat=1500,
        fee_ppm=100,
        cltv_delta=40,
        htlc_min_msat=1000,
        timestamp=2,
    )
    state = {"n": 0}

    def handler(p: SentPart) -> Any:
        state["n"] += 1
        if state["n"] == 1:
            return fail_at(p.route, 1, FailCode.FEE_INSUFFICIENT, update=upd)
        return Succeed()

    _, node = setup(handler, d)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node) == [CHEAP, CHEAP]  # still the cheapest, at the new price
    assert node.sent[0].route.fee_msat == 1000 + AMOUNT * 100 // 10**6
    assert node.sent[1].route.fee_msat == 1500 + AMOUNT * 100 // 10**6
    assert view.status is PaymentStatus.COMPLETE


@pytest.mark.parametrize(
    "code",
    [
        FailCode.INCORRECT_CLTV_EXPIRY,
        FailCode.AMOUNT_BELOW_MINIMUM,
        FailCode.EXPIRY_TOO_SOON,
        FailCode.CHANNEL_DISABLED,
    ],
)
@pytest.mark.trio
async def test_update_failure_without_update_avoids_the_channel(
    autojump_clock: Any, code: FailCode
) -> None:
    d, node = setup(Scripted().when(through("103x1x0"), fails_at_channel("103x1x0", code)))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            v1 = await rt.pay(PayParams(invstring=invoice(node, d)))
            v2 = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node, v1.payment_hash) == [CHEAP, MIDDLE]
    # only CHANNEL_DISABLED is remembered across payments (for a while)
    expect2 = [MIDDLE] if code is FailCode.CHANNEL_DISABLED else [CHEAP, MIDDLE]
    assert channels_of(node, v2.payment_hash) == expect2


@pytest.mark.parametrize("code", [FailCode.UNKNOWN_NEXT_PEER, FailCode.PERMANENT_CHANNEL_FAILURE])
@pytest.mark.trio
async def test_permanent_channel_failures_disable_the_channel(
    autojump_clock: Any, code: FailCode
) -> None:
    d, node = setup(Scripted().when(through("103x1x0"), fails_at_channel("103x1x0", code)))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            v1 = await rt.pay(PayParams(invstring=invoice(node, d)))
            v2 = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node, v1.payment_hash) == [CHEAP, MIDDLE]
    assert channels_of(node, v2.payment_hash) == [MIDDLE]


@pytest.mark.parametrize("code", [FailCode.PERMANENT_NODE_FAILURE, FailCode.TEMPORARY_NODE_FAILURE])
@pytest.mark.trio
async def test_node_failures_avoid_the_node(autojump_clock: Any, code: FailCode) -> None:
    # node a reports the failure (erring index 1): a itself is at fault
    d, node = setup(Scripted().when(through("103x1x0"), fails_at_channel("103x1x0", code)))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            v1 = await rt.pay(PayParams(invstring=invoice(node, d)))
            v2 = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node, v1.payment_hash) == [CHEAP, MIDDLE]
    assert channels_of(node, v2.payment_hash) == [MIDDLE]


@pytest.mark.trio
async def test_destination_refusal_stops_and_waits_for_parts_in_flight(autojump_clock: Any) -> None:
    """Two parts: one is refused by the payee at once, the other is slow. No retry, 203,
    and the error comes only once the slow part has resolved."""
    d = diamond(cap_sat=600_000)  # 1,000,000 sat needs two parts

    def handler(p: SentPart) -> Any:
        if uses(p.route, "103x1x0"):
            return fail_at(p.route, 2, FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, after_s=1)
        return Fail(failure=fail_at(p.route, 2, FailCode.MPP_TIMEOUT).failure, after_s=40)

    _, node = setup(handler, d)
    b = invoice(node, d, 1_000_000_000)
    with trio.fail_after(300):
        async with open_runtime(node, CONFIG) as rt:
            t0 = trio.current_time()
            with pytest.raises(DestinationPermanentFailure) as info:
                await rt.pay(PayParams(invstring=b))
            assert trio.current_time() - t0 >= 40
    assert len(node.sent) == 2
    data = info.value.data
    assert {a["failcodename"] for a in data["attempts"]} == {
        "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS",
        "WIRE_MPP_TIMEOUT",
    }
    assert data["inflight_msat"] == 0 and data["status"] == "failed"
    assert info.value.code == 203
    parts = await node.listsendpays()
    assert all(p.status is not SendpayStatus.PENDING for p in parts)


@pytest.mark.trio
async def test_mpp_timeout_retries_the_amount(autojump_clock: Any) -> None:
    state = {"n": 0}

    def handler(p: SentPart) -> Any:
        state["n"] += 1
        return fail_at(p.route, 2, FailCode.MPP_TIMEOUT) if state["n"] == 1 else Succeed()

    d, node = setup(handler)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node) == [CHEAP, CHEAP]  # the route was fine: same one again
    assert [p.partid for p in node.sent] == [1, 2]
    assert view.status is PaymentStatus.COMPLETE


@pytest.mark.trio
async def test_failure_at_our_first_hop_refreshes_our_channels(autojump_clock: Any) -> None:
    d, node = setup(
        Scripted().when(
            through("101x1x0"),
            lambda p: fail_at(p.route, 0, FailCode.TEMPORARY_CHANNEL_FAILURE, our_id=d.us),
        )
    )
    d2 = d
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            before = node.calls["list_peer_channels"]
            await rt.pay(PayParams(invstring=invoice(node, d2)))
            # one refresh when the payment opened, one after the local failure
            assert node.calls["list_peer_channels"] == before + 2
    assert channels_of(node)[0] == CHEAP and channels_of(node)[-1] != CHEAP


@pytest.mark.trio
async def test_local_balance_refresh_steers_routes(autojump_clock: Any) -> None:
    """Our channel 101 is nearly empty (listpeerchannels): the router never tries it."""
    d, node = setup()
    node.set_spendable("101x1x0", 1_000)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            await rt.pay(PayParams(invstring=invoice(node, d)))
    assert channels_of(node) == [MIDDLE]


@pytest.mark.trio
async def test_immediate_refusal_with_a_failure_is_retried(autojump_clock: Any) -> None:
    d, node = setup(
        Scripted().when(
            through("101x1x0"),
            lambda p: Refuse(
                message="First peer not ready",
                failure=fail_at(p.route, 0, FailCode.TEMPORARY_CHANNEL_FAILURE).failure,
            ),
        )
    )
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert view.status is PaymentStatus.COMPLETE
    assert [p.partid for p in node.sent] == [1, 2]  # a refused partid is never reused
    assert view.parts[0].state is PartState.FAILED
    assert "sendpay refused" in (view.parts[0].reason or "")


@pytest.mark.trio
async def test_repeated_plain_refusals_give_up(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Refuse(message="nope", rpc_code=-1))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with pytest.raises(NodeError, match="refused 3 parts"):
                await rt.pay(PayParams(invstring=invoice(node, d)))
    assert len(node.sent) == 3


@pytest.mark.trio
async def test_refusal_already_paid_stops(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Refuse(message="Already succeeded", rpc_code=201))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with pytest.raises(AlreadyPaid):
                await rt.pay(PayParams(invstring=invoice(node, d)))
    assert len(node.sent) == 1


# -- restarts: listsendpays ---------------------------------------------------------------


@pytest.mark.trio
async def test_already_paid_returns_complete_without_sending(autojump_clock: Any) -> None:
    d, node = setup()
    b = invoice(node, d)
    h = node.invoice(b).payment_hash
    node.preload(
        [
            PartStatus(
                payment_hash=h,
                partid=1,
                groupid=1,
                status=SendpayStatus.COMPLETE,
                amount_msat=AMOUNT,
                amount_sent_msat=AMOUNT + 10,
                payment_preimage="77" * 32,
            )
        ]
    )
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=b))
    assert view.status is PaymentStatus.COMPLETE and view.payment_preimage == "77" * 32
    assert view.fee_msat == 10 and node.sent == []


@pytest.mark.trio
async def test_pending_parts_are_adopted(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Succeed(after_s=5))
    b = invoice(node, d)
    h = node.invoice(b).payment_hash
    node.preload(
        [
            PartStatus(
                payment_hash=h,
                partid=1,
                groupid=2,
                status=SendpayStatus.FAILED,
                amount_msat=AMOUNT,
                amount_sent_msat=AMOUNT,
            ),
            PartStatus(
                payment_hash=h,
                partid=3,
                groupid=2,
                status=SendpayStatus.PENDING,
                amount_msat=20_000_000,
                amount_sent_msat=20_000_100,
                destination=d.dest,
            ),
        ]
    )
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=b))
    assert view.status is PaymentStatus.COMPLETE and view.groupid == 2
    [new] = node.sent
    assert (new.groupid, new.partid, new.route.amount_msat) == (2, 4, 30_000_000)
    assert node.violations == []
    # the group's earlier failed part is kept as it ended; only part 4 was sent now
    assert sorted(p.partid for p in view.parts) == [1, 3, 4]
    assert [p.state for p in view.parts if p.partid == 1] == [PartState.FAILED]


@pytest.mark.trio
async def test_failed_earlier_attempts_mean_a_new_group(autojump_clock: Any) -> None:
    d, node = setup()
    b = invoice(node, d)
    h = node.invoice(b).payment_hash
    node.preload(
        [
            PartStatus(
                payment_hash=h,
                partid=7,
                groupid=4,
                status=SendpayStatus.FAILED,
                amount_msat=AMOUNT,
                amount_sent_msat=AMOUNT,
            )
        ]
    )
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            await rt.pay(PayParams(invstring=b))
    assert [(p.groupid, p.partid) for p in node.sent] == [(5, 1)]


# -- giving up ------------------------------------------------------------------------------


@pytest.mark.trio
async def test_deadline_gives_210_after_parts_in_flight_resolve(autojump_clock: Any) -> None:
    d, node = setup(lambda p: fail_at(p.route, 1, FailCode.TEMPORARY_CHANNEL_FAILURE, after_s=25))
    cfg = msgspec.structs.replace(CONFIG, retry_for_s=60.0)
    with trio.fail_after(500):
        async with open_runtime(node, cfg) as rt:
            t0 = trio.current_time()
            with pytest.raises(StoppedRetrying, match="retry_for") as info:
                await rt.pay(PayParams(invstring=invoice(node, d)))
            took = trio.current_time() - t0
    # parts at 0, 25, 50 s; the third resolves at 75 s, after the 60 s deadline
    assert len(node.sent) == 3 and 75 <= took < 80
    assert info.value.code == 210 and len(info.value.data["attempts"]) == 3
    assert all(p.status is SendpayStatus.FAILED for p in await node.listsendpays())


@pytest.mark.trio
async def test_part_in_flight_at_the_deadline_can_still_complete(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Succeed(after_s=90))
    with trio.fail_after(500):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d), retry_for_s=10))
    assert view.status is PaymentStatus.COMPLETE and len(node.sent) == 1


@pytest.mark.trio
async def test_no_route_is_205_and_too_expensive_is_206(autojump_clock: Any) -> None:
    d, node = setup()
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with pytest.raises(RouteNotFound) as nf:
                await rt.pay(
                    PayParams(invstring=invoice(node, d, 5_000_000_000), strategy="singlepath")
                )
            assert nf.value.code == 205 and nf.value.data["attempts"] == []
            with pytest.raises(RouteTooExpensive) as te:
                await rt.pay(PayParams(invstring=invoice(node, d), maxfee_msat=0))
            assert te.value.code == 206 and te.value.message.startswith(
                "Failed: Could not find route without excessive cost"
            )
            assert "fee" in te.value.data["detail"]
    assert node.sent == []


@pytest.mark.trio
async def test_unknown_destination_without_hints(autojump_clock: Any) -> None:
    _d, node = setup()
    b = node.add_invoice(payee="02" + "ee" * 32, amount_msat=AMOUNT)
    events: list[Any] = []
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with pytest.raises(
                RouteNotFound,
                match=r"^Failed: Unknown destination node .*: not in the gossip graph",
            ):
                await rt.pay(PayParams(invstring=b), on_event=events.append)
            assert rt.status() == []
    assert events == [] and node.sent == []


@pytest.mark.trio
async def test_route_hints_reach_a_private_channel(autojump_clock: Any) -> None:
    d = diamond(private_last=True)
    public = Graph.from_half_channels(h for h in d.graph.half_channels() if h.scid != "106x1x0")
    _, node = setup(d=d, graph=public)
    hint = (
        (
            RouteHintHop(
                node_id=d.c, scid="106x1x0", fee_base_msat=3000, fee_ppm=900, cltv_delta=40
            ),
        ),
    )
    b = invoice(node, d, route_hints=hint)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            await rt.pay(PayParams(invstring=b, exclude=(d.sd("103x1x0", d.a), d.b)))
    assert channels_of(node) == [DEAR]
    assert node.violations == []


# -- splitting --------------------------------------------------------------------------------


@pytest.mark.trio
async def test_single_path_strategy_halves_when_no_path_carries_the_amount(
    autojump_clock: Any,
) -> None:
    d, node = setup()
    b = invoice(node, d, 1_500_000_000)  # every channel holds 1,000,000 sat
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=b, strategy="dijkstra"))
    assert view.status is PaymentStatus.COMPLETE and len(view.parts) == 2
    assert sorted(p.route.amount_msat for p in node.sent) == [750_000_000, 750_000_000]
    assert node.violations == []


@pytest.mark.trio
async def test_amountless_invoice(autojump_clock: Any) -> None:
    d, node = setup()
    b = invoice(node, d, None)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            view = await rt.pay(PayParams(invstring=b, amount_msat=12_345_000))
    assert view.delivered_msat == 12_345_000 and node.sent[0].total_msat == 12_345_000


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.trio
async def test_same_invoice_twice_at_once_is_sent_once(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Succeed(after_s=3))
    b = invoice(node, d)
    views: list[Any] = []
    second_events: list[Any] = []
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            async with anyio.create_task_group() as tg:

                async def one(events: list[Any] | None) -> None:
                    views.append(
                        await rt.pay(
                            PayParams(invstring=b),
                            on_event=None if events is None else events.append,
                        )
                    )

                tg.start_soon(one, None)
                await trio.sleep(0.5)
                tg.start_soon(one, second_events)
            # later: already paid, answered from listsendpays
            again = await rt.pay(PayParams(invstring=b))
    assert len(node.sent) == 1 and views[0] == views[1] and second_events == []
    assert again.status is PaymentStatus.COMPLETE and len(node.sent) == 1


@pytest.mark.trio
async def test_ten_concurrent_payments_share_liquidity_correctly(autojump_clock: Any) -> None:
    """Ten payments of 300,000 sat at once over three 1,000,000 sat paths: reservations keep
    them from planning over the same sats, so no part ever fails for liquidity."""
    d, node = setup(lambda p: Succeed(after_s=2))
    bolts = [invoice(node, d, 300_000_000) for _ in range(9)]
    done: list[Any] = []
    with trio.fail_after(200):
        async with open_runtime(node, CONFIG) as rt, anyio.create_task_group() as tg:
            for bo in bolts:

                async def one(bo: str = bo) -> None:
                    done.append(await rt.pay(PayParams(invstring=bo)))

                tg.start_soon(one)
    assert len(done) == 9 and all(v.status is PaymentStatus.COMPLETE for v in done)
    load: dict[str, int] = {}
    for p in node.sent:
        for h in p.route.hops:
            load[h.channel] = load.get(h.channel, 0) + h.amount_msat
    assert max(load.values()) <= 1_000_000_000  # never more than a channel holds
    assert node.violations == []


@pytest.mark.trio
async def test_payment_waits_for_liquidity_other_payments_hold(autojump_clock: Any) -> None:
    """One path of 1,000,000 sat. Payment A holds 900,000 sat for 20 s, then the payee
    refuses it; payment B (500,000 sat), started meanwhile, waits instead of failing."""
    g, _ = line_network(3)
    dest = g.nodes[2]

    def handler(p: SentPart) -> Any:
        if p.route.amount_msat == 900_000_000:
            return fail_at(p.route, 2, FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, after_s=20)
        return Succeed(after_s=1)

    node = ScriptedNode(graph=g, our_id=g.nodes[0], handler=handler)
    a = node.add_invoice(payee=dest, amount_msat=900_000_000)
    b = node.add_invoice(payee=dest, amount_msat=500_000_000)
    cfg = msgspec.structs.replace(CONFIG, maxfee_ppm=100_000)
    outcome: dict[str, Any] = {}
    with trio.fail_after(200):
        async with open_runtime(node, cfg) as rt, anyio.create_task_group() as tg:

            async def pay_a() -> None:
                with pytest.raises(DestinationPermanentFailure):
                    await rt.pay(PayParams(invstring=a))

            async def pay_b() -> None:
                await trio.sleep(1)
                outcome["b"] = await rt.pay(PayParams(invstring=b, strategy="singlepath"))

            tg.start_soon(pay_a)
            tg.start_soon(pay_b)
    assert outcome["b"].status is PaymentStatus.COMPLETE
    [sent_b] = [p for p in node.sent if p.route.amount_msat == 500_000_000]
    assert sent_b.at >= node.sent[0].at + 20


@pytest.mark.trio
async def test_payment_survives_its_caller_being_cancelled(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Succeed(after_s=10))
    b = invoice(node, d)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with trio.move_on_after(1):
                await rt.pay(PayParams(invstring=b))
            [live] = rt.status()
            assert live.status is PaymentStatus.PENDING and live.inflight_msat == AMOUNT
            await trio.sleep(20)
            [done] = rt.status()
            assert done.status is PaymentStatus.COMPLETE


# -- the rest of the facade -----------------------------------------------------------------


@pytest.mark.trio
async def test_route_plans_without_reserving(autojump_clock: Any) -> None:
    d, node = setup()
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            r1 = await rt.route(d.dest, 900_000_000)
            r2 = await rt.route(d.dest, 900_000_000)
            assert r1 == r2 and [h.channel for h in r1[0].hops] == CHEAP
            with pytest.raises(UnknownStrategy):
                await rt.route(d.dest, 1000, strategy="nope")
            with pytest.raises(RouteNotFound):
                await rt.route(d.dest, 5_000_000_000, strategy="singlepath")
            with pytest.raises(BarqError):
                await rt.route(d.dest, 0)
    assert node.sent == []


@pytest.mark.trio
async def test_refresh_graph_picks_up_new_channels(autojump_clock: Any) -> None:
    d, node = setup()
    dear_only = Graph.from_half_channels(
        h for h in d.graph.half_channels() if h.scid not in ("103x1x0", "104x1x0")
    )
    node.graph = dear_only
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            assert [h.channel for h in (await rt.route(d.dest, 1000))[0].hops] == DEAR
            node.graph = d.graph
            await rt.refresh_graph()
            assert [h.channel for h in (await rt.route(d.dest, 1000))[0].hops] == CHEAP
        with pytest.raises(BarqError, match="shut down"):
            await rt.pay(PayParams(invstring=invoice(node, d)))


@pytest.mark.trio
async def test_validation_errors_raise_before_anything_is_sent(autojump_clock: Any) -> None:
    d, node = setup()
    with trio.fail_after(100):
        async with open_runtime(node, EngineConfig(strategies_in_thread=False)) as rt:
            with pytest.raises(BarqError, match="unknown invoice"):
                await rt.pay(PayParams(invstring="lnbc1garbage"))
            with pytest.raises(BarqError, match="maxparts"):
                await rt.pay(PayParams(invstring=invoice(node, d), maxparts=0))
            assert rt.status() == []
    assert node.sent == []


@pytest.mark.trio
async def test_startup_and_body_errors_come_out_alone() -> None:
    d, _ = setup()

    class NoGraph(ScriptedNode):
        async def gossip_graph(self) -> Graph:
            raise GraphLoadError("gossip_store: truncated record at offset 12")

    with trio.fail_after(10):
        with pytest.raises(GraphLoadError, match="truncated"):
            async with open_runtime(NoGraph(graph=d.graph, our_id=d.us), CONFIG):
                pass  # pragma: no cover
        with pytest.raises(KeyError):
            async with open_runtime(ScriptedNode(graph=d.graph, our_id=d.us), CONFIG):
                raise KeyError("the caller's own error")


@pytest.mark.trio
async def test_strategies_in_a_worker_thread() -> None:
    """The default (real clock): the router runs strategies with anyio.to_thread."""
    d, node = setup(lambda p: Succeed())
    cfg = msgspec.structs.replace(CONFIG, strategies_in_thread=True)
    with trio.fail_after(30):
        async with open_runtime(node, cfg) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d), strategy="probabilistic"))
    assert view.status is PaymentStatus.COMPLETE and view.compute_s > 0


@pytest.mark.trio
async def test_sending_stops_when_the_invoice_expires(autojump_clock: Any) -> None:
    """retry_for is 60 s but the invoice expires in 20 s: no part is sent after that."""
    clock = _FakeUnixClock()
    d, node = setup(
        lambda p: fail_at(p.route, 1, FailCode.TEMPORARY_CHANNEL_FAILURE, after_s=15), clock=clock
    )
    b = invoice(node, d, expiry_s=20)
    with trio.fail_after(500):
        async with open_runtime(node, CONFIG, clock=clock) as rt:
            with pytest.raises(StoppedRetrying, match="invoice expired"):
                await rt.pay(PayParams(invstring=b))
    assert [p.at - node.sent[0].at for p in node.sent] == [0, 15]


class _FakeUnixClock:
    """UNIX-like seconds that follow trio's (mock) clock."""

    def __init__(self) -> None:
        self.t0: float | None = None

    def __call__(self) -> float:
        now = trio.current_time()
        if self.t0 is None:
            self.t0 = now
        return 1_700_000_000.0 + now - self.t0


@pytest.mark.trio
async def test_waitsendpay_timeouts_just_wait_again(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Succeed(after_s=12))
    cfg = msgspec.structs.replace(CONFIG, waitsendpay_timeout_s=5.0)
    with trio.fail_after(100):
        async with open_runtime(node, cfg) as rt:
            view = await rt.pay(PayParams(invstring=invoice(node, d)))
    assert view.status is PaymentStatus.COMPLETE and len(node.sent) == 1
    assert node.calls["waitsendpay"] == 3  # 5 s, 5 s, then the answer at 12 s


@pytest.mark.trio
async def test_a_part_the_node_loses_is_never_reused(autojump_clock: Any) -> None:
    d, _ = setup()

    class Flaky(ScriptedNode):
        async def waitsendpay(
            self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
        ) -> PartStatus:
            self.calls["waitsendpay"] += 1
            raise RpcConnectionError("lightning-rpc: connection reset")

    node = Flaky(graph=d.graph, our_id=d.us, handler=lambda p: Succeed(after_s=1))
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            with pytest.raises(NodeError, match="lost track of part 1") as info:
                await rt.pay(PayParams(invstring=invoice(node, d)))
    assert len(node.sent) == 1  # its amount may still be in flight: nothing else is sent
    assert node.calls["waitsendpay"] == 5
    assert info.value.data["attempts"][0]["outcome"] == "failed"


@pytest.mark.trio
async def test_shutdown_during_a_payment_fails_the_waiting_caller(autojump_clock: Any) -> None:
    d, node = setup(lambda p: Succeed(after_s=100))
    b = invoice(node, d)
    caught: list[BaseException] = []
    with trio.fail_after(300):
        async with anyio.create_task_group() as outer:
            box: list[Any] = []
            ready = trio.Event()

            async def engine() -> None:
                async with open_runtime(node, CONFIG) as rt:
                    box.append(rt)
                    ready.set()
                    await trio.sleep(5)  # then leave: the payment is cancelled

            async def caller() -> None:
                await ready.wait()
                try:
                    await box[0].pay(PayParams(invstring=b))
                except BarqError as exc:
                    caught.append(exc)

            outer.start_soon(engine)
            outer.start_soon(caller)
    assert len(caught) == 1 and "shut down during the payment" in str(caught[0])
    assert [p.status for p in await node.listsendpays()] == [SendpayStatus.PENDING]


class GrowingGossipNode(ScriptedNode):
    """Gossip knows only our own channels until ``grow()`` (lightningd right after start)."""

    def __init__(self, *, full: Graph, start: Graph, **kw: Any) -> None:
        super().__init__(graph=full, **kw)
        self._shown = start

    def grow(self) -> None:
        self._shown = self.graph

    async def gossip_graph(self) -> Graph:
        self.calls["gossip_graph"] += 1
        return self._shown


@pytest.mark.trio
async def test_gossip_is_reloaded_when_the_destination_is_unknown(autojump_clock: Any) -> None:
    d = diamond()
    g = d.graph
    ours = [e for e in range(g.num_edges) if g.nodes[int(g.src[e])] == d.us]
    start = Graph.from_half_channels(g.half_channel(e) for e in ours)
    node = GrowingGossipNode(full=g, start=start, our_id=d.us, handler=Scripted())
    b = invoice(node, d)
    with trio.fail_after(100):
        async with open_runtime(node, CONFIG) as rt:
            loads = node.calls["gossip_graph"]
            node.grow()  # channels got announced after we started
            view = await rt.pay(PayParams(invstring=b))
    assert view.status is PaymentStatus.COMPLETE
    assert node.calls["gossip_graph"] == loads + 1
    assert channels_of(node) == [CHEAP]


# -- the journal: payments recorded as they happen, restarts reconciled --------------------------


@pytest.mark.trio
async def test_payments_are_recorded_event_by_event(autojump_clock: Any, tmp_path: Path) -> None:
    """The store holds what ``status()`` showed: the same fold of the same events. Once the
    payment ended it left memory; ``astatus`` reads it back from the store."""
    d, node = setup(Scripted().when(through("103x1x0"), fails_at_channel("103x1x0")))
    b = invoice(node, d)
    seen: list[Any] = []
    with open_store(tmp_path / "db") as store, trio.fail_after(100):
        async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:

            def on_event(ev: Any) -> None:
                seen[:] = rt.status()

            view = await rt.pay(PayParams(invstring=b, label="l"), on_event=on_event)
            assert rt.status() == []
            [recent] = await rt.astatus()
        stored = store.get_payments()
    assert stored == seen == [recent] == [view]
    assert [p.state for p in view.parts] == [PartState.FAILED, PartState.SUCCEEDED]


@pytest.mark.trio
async def test_already_paid_answers_from_the_record_and_refuses_another_amount(
    autojump_clock: Any, tmp_path: Path
) -> None:
    d, node = setup()
    b = invoice(node, d, None)
    with open_store(tmp_path / "db") as store, trio.fail_after(100):
        async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:
            first = await rt.pay_outcome(PayParams(invstring=b, amount_msat=AMOUNT))
            again = await rt.pay_outcome(PayParams(invstring=b, amount_msat=AMOUNT))
            with pytest.raises(AlreadyPaid, match=f"already paid with {AMOUNT} msat") as info:
                await rt.pay(PayParams(invstring=b, amount_msat=AMOUNT + 1))
    assert not first.already_paid and again.already_paid
    assert again.view.parts == first.view.parts  # routes from the record
    assert again.view.strategy == first.view.strategy == CONFIG.default_strategy
    assert info.value.code == 201 and len(node.sent) == 1


@pytest.mark.trio
async def test_restart_awaits_parts_left_in_flight_and_records_them(
    autojump_clock: Any, tmp_path: Path
) -> None:
    """After a restart the engine shows a group still in flight, waits for it and records it;
    a payment that ended while it was down is recorded as the node says."""
    d, node = setup(lambda p: Succeed(after_s=30))
    b = invoice(node, d)
    h = node.invoice(b).payment_hash
    done = "cd" * 32
    with open_store(tmp_path / "db") as store:
        async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:
            with trio.move_on_after(5):  # the engine stops with the part in flight
                await rt.pay(PayParams(invstring=b))
        [before] = store.get_payments()
        assert before.status is PaymentStatus.PENDING and before.parts[0].route.hops
        store.put_payment(msgspec.structs.replace(before, payment_hash=done))
        node.preload(
            [
                PartStatus(
                    payment_hash=done,
                    partid=1,
                    groupid=1,
                    status=SendpayStatus.COMPLETE,
                    amount_msat=AMOUNT,
                    amount_sent_msat=AMOUNT + 10,
                    payment_preimage="88" * 32,
                )
            ]
        )
        with trio.fail_after(100):
            async with open_runtime(node, CONFIG, journal=StoreJournal(store)) as rt:
                await trio.sleep(1)
                [flying] = rt.status(h)
                assert flying.status is PaymentStatus.PENDING
                assert flying.parts[0].route == before.parts[0].route  # from the record
                await trio.sleep(60)
                assert rt.status(h) == []  # the recovered group ended and left memory
        got = {v.payment_hash: v for v in store.get_payments()}
    assert got[h].status is PaymentStatus.COMPLETE and got[h].payment_preimage is not None
    assert got[done].status is PaymentStatus.COMPLETE and got[done].payment_preimage == "88" * 32
    assert len(node.sent) == 1  # nothing was sent again
