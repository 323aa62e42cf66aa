"""LightningdNode against a fake lightningd replaying Core Lightning's documented answers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from fake_lightningd import EXAMPLES, Handler, Reply, running
from wire_bytes import channel_update, with_update

from barq.errors import (
    GraphLoadError,
    InvalidInvoice,
    PartFailed,
    RpcError,
)
from barq.model import (
    ChannelUpdate,
    FailCode,
    Hop,
    Route,
    RouteHintHop,
    SendpayStatus,
)
from barq.node._answers import htlc_commit_fee_msat, marginal_feerate
from barq.node.base import NodeInterface
from barq.node.lightningd import CURRENCY_NETWORKS, LightningdNode

OUR_ID = "02287bfac8b99b35477ebe9334eede1e32b189e24644eb701c079614712331cec0"
PEER = "033845802d25b4e074ccfd7cd8b339a41dc75bf9978a034800444b51d42b07799a"
DEST = "03cecbfdc68544cc596223b68ce0710c9e5d2c9cb317ee07822d95079acc703d31"
PAYMENT_HASH = "7279b503a14344267e464829da26fcafa4e5a89c6d625a22b9345a874bdfbbf9"
SECRET = "21f8a38be36697218d2db22cbbca621d96ffc0a63f3585860351b1d905f72cc2"
TIMEOUT_S = 5
BOLT12_FIXTURE = Path(__file__).parents[1] / "onion" / "fixtures" / "bolt12_regtest.json"


def route() -> Route:
    return Route(
        hops=(
            Hop(id=PEER, channel="116x1x1", direction=1, amount_msat=10001, delay=15),
            Hop(id=DEST, channel="118x1x0", direction=0, amount_msat=10000, delay=9),
        )
    )


def fail_data(**routefail: Any) -> dict[str, Any]:
    """waitsendpay's error data: the payment's fields then the routing failure (pay.c)."""
    return {
        "created_index": 2,
        "id": 2,
        "payment_hash": PAYMENT_HASH,
        "groupid": 1,
        "partid": 3,
        "destination": DEST,
        "amount_msat": 10000,
        "amount_sent_msat": 10001,
        "created_at": 1738000000,
        "status": "failed",
        **routefail,
    }


def test_is_node_interface() -> None:
    assert isinstance(LightningdNode("/nonexistent/lightning-rpc"), NodeInterface)


@pytest.mark.trio
async def test_get_info(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"getinfo": Reply(result=EXAMPLES["getinfo"])}) as (fake, node):
            info = await node.get_info()
    assert info.id == PEER
    assert (info.network, info.blockheight, info.alias) == ("regtest", 114, "SILENTARTIST-v26.09")
    assert info.lightning_dir == "/home/rusty/.lightning/regtest"
    request = fake.requests[0].raw
    assert request["jsonrpc"] == "2.0" and request["method"] == "getinfo"
    assert request["id"] == "barq:getinfo#1"


@pytest.mark.trio
async def test_call_generic(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        handlers: dict[str, Handler] = {
            "listpeerchannels": lambda r: Reply(result=EXAMPLES["listpeerchannels"]),
        }
        async with running(sock, handlers) as (fake, node):
            got = await node.call("listpeerchannels", {"id": PEER})
    assert got == EXAMPLES["listpeerchannels"]
    assert got["channels"][0]["their_max_htlc_value_in_flight_msat"] == 2**64 - 1
    assert fake.requests[0].params == {"id": PEER}


@pytest.mark.trio
async def test_decode_invoice(sock: Path) -> None:
    bolt11 = EXAMPLES["decode_bolt11_string"]
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"decode": Reply(result=EXAMPLES["decode_bolt11"])}) as (
            fake,
            node,
        ):
            inv = await node.decode_invoice(bolt11)
    assert fake.requests[0].params == {"string": bolt11}
    assert inv.bolt11 == bolt11
    assert inv.payee == PEER
    assert inv.network == "regtest"
    assert inv.amount_msat == 200000
    assert inv.payment_hash == "7e5375391640549587500c1bfa05d046e49d6278df8b1e9c98b7b551cf778d10"
    assert inv.payment_secret == "8116f629c59c3be34f859e405985ff9d31ecaa9b9f072084027596e5d8678be0"
    assert (inv.created_at, inv.expiry, inv.expires_at) == (1738000000, 604800, 1738604800)
    assert inv.min_final_cltv_expiry == 5
    assert inv.description == "l22 description"
    assert inv.features == "02024100"
    assert inv.route_hints == (
        (RouteHintHop(node_id=DEST, scid="118x1x0", fee_base_msat=1, fee_ppm=10, cltv_delta=6),),
    )


@pytest.mark.trio
async def test_decode_invoice_legacy_msat_strings_and_no_amount(sock: Path) -> None:
    legacy = copy.deepcopy(EXAMPLES["decode_bolt11"])
    legacy["amount_msat"] = "200000msat"
    legacy["routes"][0][0]["fee_base_msat"] = "1000msat"
    amountless = copy.deepcopy(EXAMPLES["decode_bolt11"])
    del amountless["amount_msat"], amountless["routes"]
    answers = iter([legacy, amountless])
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"decode": lambda r: Reply(result=next(answers))}) as (_, node):
            a = await node.decode_invoice("lnbcrt2u1...")
            b = await node.decode_invoice("lnbcrt1...")
    assert a.amount_msat == 200000 and a.route_hints[0][0].fee_base_msat == 1000
    assert b.amount_msat is None and b.route_hints == ()


def test_currency_networks() -> None:
    # lightning_hrp -> network_name in CLN's bitcoin/chainparams.c
    assert CURRENCY_NETWORKS == {
        "bc": "bitcoin",
        "tb": "testnet",
        "tbs": "signet",
        "bcrt": "regtest",
        "ex": "liquid",
        "ert": "liquid-regtest",
    }


@pytest.mark.trio
@pytest.mark.parametrize(("currency", "network"), [("bc", "bitcoin"), ("tbs", "signet")])
async def test_decode_invoice_network(sock: Path, currency: str, network: str) -> None:
    answer = dict(EXAMPLES["decode_bolt11"], currency=currency)
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"decode": Reply(result=answer)}) as (_, node):
            assert (await node.decode_invoice("ln...")).network == network


@pytest.mark.trio
@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Reply(result=EXAMPLES["decode_bolt12_offer"]), "bolt12 is not supported"),
        (Reply(result=EXAMPLES["decode_rune"]), "not a bolt11 invoice"),
        (Reply(result=dict(EXAMPLES["decode_bolt11"], valid=False)), "valid: false"),
        (Reply(result=dict(EXAMPLES["decode_bolt11"], currency="xyz")), "unknown currency"),
        (Reply(error={"code": -32602, "message": "string: Unparsable string"}), "Unparsable"),
    ],
)
async def test_decode_invoice_rejects(sock: Path, reply: Reply, match: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"decode": reply}) as (_, node):
            with pytest.raises(InvalidInvoice, match=match) as err:
                await node.decode_invoice(EXAMPLES["decode_bolt12_offer_string"])
    assert err.value.code == -32602


@pytest.mark.trio
async def test_decode_invoice_missing_command_is_not_invalid_invoice(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {}) as (_, node):
            with pytest.raises(RpcError, match="Unknown command 'decode'") as err:
                await node.decode_invoice("lnbcrt1...")
    assert not isinstance(err.value, InvalidInvoice)
    assert err.value.rpc_code == -32601 and err.value.method == "decode"


@pytest.mark.trio
async def test_list_peer_channels(sock: Path) -> None:
    answer = copy.deepcopy(EXAMPLES["listpeerchannels"])
    zeroconf = copy.deepcopy(answer["channels"][1])
    del zeroconf["short_channel_id"]
    zeroconf["peer_id"] = OUR_ID
    answer["channels"].append(zeroconf)
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"listpeerchannels": Reply(result=answer)}) as (_, node):
            chans = await node.list_peer_channels()
    assert [c.scid for c in chans] == ["116x1x1", "130x1x0", "168x1x0", "13764112x10523633x59145"]
    first = chans[0]
    assert first.peer_id == "038194b5f32bdf0aa59812c86c4ef7ad2f294104fa027d1ace9b469bb6f88cf37b"
    assert (first.direction, first.state, first.peer_connected) == (0, "CHANNELD_NORMAL", True)
    assert (first.spendable_msat, first.receivable_msat) == (599507210, 363951708)
    assert first.capacity_msat == 1000000000
    assert (first.htlc_min_msat, first.htlc_max_msat) == (0, 990000000)
    assert first.max_accepted_htlcs == 483 and not first.private
    assert [c.usable for c in chans] == [True, True, False, True]
    assert chans[2].direction == 1


@pytest.mark.trio
async def test_list_peer_channels_htlc_commitment_fee(sock: Path) -> None:
    # channels we opened: each further HTLC adds 172 weight at lightningd's fee-spike
    # feerate (marginal_feerate(3755) = 7245 perkw: 1246.14 sat, rounded up)
    answer = copy.deepcopy(EXAMPLES["listpeerchannels"])
    ours, theirs, unconfirmed = (copy.deepcopy(answer["channels"][0]) for _ in range(3))
    ours["opener"] = "local"
    unconfirmed["opener"] = "local"
    del unconfirmed["feerate"]
    assert theirs["opener"] == "remote" and theirs["feerate"]["perkw"] == 3755
    answer["channels"] = [ours, theirs, unconfirmed]
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"listpeerchannels": Reply(result=answer)}) as (_, node):
            chans = await node.list_peer_channels()
    assert [c.htlc_fee_msat for c in chans] == [1_247_000, 0, 0]


def test_htlc_commitment_fee_follows_lightningd() -> None:
    assert marginal_feerate(253) == 506 and marginal_feerate(45000) == 49500
    assert marginal_feerate(100) == 506  # below the floor: counted at 253
    assert marginal_feerate(50000) == 55000
    assert htlc_commit_fee_msat(253) == 88_000  # 506 * 172 / 1000 = 87.03 sat
    assert htlc_commit_fee_msat(0) == 0


@pytest.mark.trio
async def test_list_peer_channels_legacy_msat_strings(sock: Path) -> None:
    chan = {
        "peer_id": PEER,
        "peer_connected": True,
        "state": "CHANNELD_NORMAL",
        "short_channel_id": "103x1x0",
        "direction": 1,
        "private": True,
        "total_msat": "1000000000msat",
        "spendable_msat": "400000000msat",
        "receivable_msat": "590000000msat",
        "minimum_htlc_out_msat": "1msat",
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"listpeerchannels": Reply(result={"channels": [chan]})}) as (
            _,
            node,
        ):
            (c,) = await node.list_peer_channels()
    assert (c.capacity_msat, c.spendable_msat, c.receivable_msat) == (
        1000000000,
        400000000,
        590000000,
    )
    assert (c.htlc_min_msat, c.htlc_max_msat, c.private) == (1, None, True)


@pytest.mark.trio
async def test_sendpay(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"sendpay": Reply(result=EXAMPLES["sendpay"])}) as (fake, node):
            part = await node.sendpay(
                route(), PAYMENT_HASH, partid=0, groupid=1, total_msat=10000, payment_secret=SECRET
            )
    assert fake.requests[0].params == {
        "route": EXAMPLES["sendpay_request"]["route"],
        "payment_hash": PAYMENT_HASH,
        "partid": 0,
        "groupid": 1,
        "amount_msat": 10000,
        "payment_secret": SECRET,
    }
    assert part.status is SendpayStatus.PENDING
    assert (part.payment_hash, part.partid, part.groupid, part.id) == (PAYMENT_HASH, 0, 1, 2)
    assert (part.amount_msat, part.amount_sent_msat) == (10000, 10001)
    assert part.destination == DEST and part.created_at == 1738000000


@pytest.mark.trio
async def test_sendpay_passes_bolt11_label_and_fills_missing_fields(sock: Path) -> None:
    bare = {
        "message": "Monitor status with listpays or waitsendpay",
        "created_index": 9,
        "id": 9,
        "payment_hash": PAYMENT_HASH,
        "amount_sent_msat": 10001,
        "created_at": 1738000000,
        "status": "pending",
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"sendpay": Reply(result=bare)}) as (fake, node):
            part = await node.sendpay(
                route(),
                PAYMENT_HASH,
                partid=4,
                groupid=7,
                total_msat=30000,
                payment_secret=None,
                bolt11="lnbcrt300n1...",
                label="barq",
            )
    params = fake.requests[0].params
    assert params["bolt11"] == "lnbcrt300n1..." and params["label"] == "barq"
    assert "payment_secret" not in params
    assert (part.partid, part.groupid, part.amount_msat) == (4, 7, 10000)


@pytest.mark.trio
async def test_sendpay_immediate_failure_is_part_failed(sock: Path) -> None:
    error = {
        "code": 204,
        "message": "failed: WIRE_TEMPORARY_CHANNEL_FAILURE (First peer not ready)",
        "data": {
            "erring_index": 0,
            "failcode": 4103,
            "failcodename": "WIRE_TEMPORARY_CHANNEL_FAILURE",
            "erring_node": OUR_ID,
            "erring_channel": "116x1x1",
            "erring_direction": 1,
        },
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"sendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(PartFailed) as err:
                await node.sendpay(
                    route(),
                    PAYMENT_HASH,
                    partid=1,
                    groupid=1,
                    total_msat=10000,
                    payment_secret=SECRET,
                )
    f = err.value.failure
    assert (f.failcode, f.erring_index, f.erring_node) == (4103, 0, OUR_ID)
    assert (f.erring_channel, f.erring_direction, f.channel_update) == ("116x1x1", 1, None)
    assert f.failcodename == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert "First peer not ready" in f.message
    assert (err.value.method, err.value.rpc_code) == ("sendpay", 204)


@pytest.mark.trio
async def test_sendpay_other_error_is_rpc_error(sock: Path) -> None:
    error = {"code": 201, "message": "Already succeeded with amount 10000msat"}
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"sendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(RpcError) as err:
                await node.sendpay(
                    route(),
                    PAYMENT_HASH,
                    partid=1,
                    groupid=1,
                    total_msat=10000,
                    payment_secret=SECRET,
                )
    assert not isinstance(err.value, PartFailed)
    assert (err.value.rpc_code, err.value.code, err.value.method) == (201, 201, "sendpay")
    assert "Already succeeded" in err.value.message


@pytest.mark.trio
async def test_waitsendpay_complete(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": Reply(result=EXAMPLES["waitsendpay"])}) as (
            fake,
            node,
        ):
            part = await node.waitsendpay(PAYMENT_HASH, partid=0, groupid=1, timeout_s=2.5)
    assert fake.requests[0].params == {
        "payment_hash": PAYMENT_HASH,
        "partid": 0,
        "groupid": 1,
        "timeout": 3,
    }
    assert part.status is SendpayStatus.COMPLETE
    assert part.payment_preimage == (
        "3e3b17b070d9dc4a3e3b17b070d9dc4a3e3b17b070d9dc4a3e3b17b070d9dc4a"
    )
    assert (part.completed_at, part.amount_msat, part.amount_sent_msat) == (
        1738000000,
        10000,
        10001,
    )


@pytest.mark.trio
@pytest.mark.parametrize("prefixed", [False, True])
async def test_waitsendpay_204_with_channel_update(sock: Path, prefixed: bool) -> None:
    update = channel_update(
        scid=(118, 1, 0),
        direction=0,
        fee_base=1000,
        ppm=500,
        cltv=40,
        htlc_min=1,
        htlc_max=100_000_000,
        prefixed=prefixed,
    )
    raw = with_update(FailCode.FEE_INSUFFICIENT, (10001).to_bytes(8, "big"), update)
    error = {
        "code": 204,
        "message": "failed: WIRE_FEE_INSUFFICIENT (reply from remote)",
        "data": fail_data(
            erring_index=1,
            failcode=4108,
            failcodename="WIRE_FEE_INSUFFICIENT",
            erring_node=PEER,
            erring_channel="118x1x0",
            erring_direction=0,
            raw_message=raw.hex(),
        ),
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(PartFailed) as err:
                await node.waitsendpay(PAYMENT_HASH, partid=3, groupid=1)
    f = err.value.failure
    assert (f.failcode, f.erring_index, f.erring_node) == (FailCode.FEE_INSUFFICIENT, 1, PEER)
    assert (f.erring_channel, f.erring_direction) == ("118x1x0", 0)
    assert f.channel_update is not None and len(f.channel_update.signed) == 136
    assert msgspec.structs.replace(f.channel_update, signed=b"") == ChannelUpdate(
        scid="118x1x0",
        direction=0,
        fee_base_msat=1000,
        fee_ppm=500,
        cltv_delta=40,
        htlc_min_msat=1,
        htlc_max_msat=100_000_000,
        timestamp=1738000123,
    )
    assert (err.value.rpc_code, err.value.method) == (204, "waitsendpay")
    assert err.value.rpc_data["raw_message"] == raw.hex()


@pytest.mark.trio
@pytest.mark.parametrize(
    ("code", "failcode", "name"),
    [
        (203, 16399, "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS"),
        # a BADONION code lightningd could place (a peer failing directly): 202 with the fields
        (202, 0xC005, "WIRE_INVALID_ONION_HMAC"),
    ],
)
async def test_waitsendpay_placed_failure_203_or_badonion_202(
    sock: Path, code: int, failcode: int, name: str
) -> None:
    error = {
        "code": code,
        "message": f"failed: {name} (reply from remote)",
        "data": fail_data(
            erring_index=2,
            failcode=failcode,
            failcodename=name,
            erring_node=DEST,
            erring_channel="118x1x0",
            erring_direction=0,
            raw_message="400f00000000000027100000006c",
        ),
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(PartFailed) as err:
                await node.waitsendpay(PAYMENT_HASH, partid=3, groupid=1)
    f = err.value.failure
    assert (f.failcode, f.erring_index, f.erring_node, f.channel_update) == (
        failcode,
        2,
        DEST,
        None,
    )
    assert f.code() is FailCode(failcode)
    assert err.value.rpc_code == code


@pytest.mark.trio
async def test_waitsendpay_malformed_raw_message_still_part_failed(sock: Path) -> None:
    error = {
        "code": 204,
        "message": "failed: WIRE_TEMPORARY_CHANNEL_FAILURE (reply from remote)",
        "data": fail_data(
            erring_index=1,
            failcode=4103,
            erring_node=PEER,
            erring_channel="118x1x0",
            erring_direction=0,
            raw_message="1007008a0102zz",
        ),
    }
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(PartFailed) as err:
                await node.waitsendpay(PAYMENT_HASH, partid=3, groupid=1)
    assert err.value.failure.failcode == 4103 and err.value.failure.channel_update is None


@pytest.mark.trio
async def test_waitsendpay_202_unreadable_onion_is_a_failed_part_reason_unknown(
    sock: Path,
) -> None:
    """A failed injected part: lightningd keeps its error onion, which it cannot read
    (``wait_payment`` in ``lightningd/pay.c``): a failed part, nothing learnt of the route.
    The answer is lightningd v26.06's own (captured by ``tests/onion/test_regtest_onion.py``)."""
    error = json.loads(BOLT12_FIXTURE.read_text())["waitsendpay_error_for_failed_injected_part"]
    assert error["code"] == 202 and "onionreply" in error["data"]
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(PartFailed) as err:
                await node.waitsendpay(PAYMENT_HASH, partid=3, groupid=1)
    assert err.value.failure is None
    assert (err.value.rpc_code, err.value.method) == (202, "waitsendpay")


@pytest.mark.trio
@pytest.mark.parametrize(
    "error",
    [
        {"code": 200, "message": "Timed out while waiting"},
        {"code": -32602, "message": "partid: should be an unsigned 64 bit integer, not '\"x\"'"},
        {"code": 208, "message": "Never attempted payment part 3 for 'cafe'"},
    ],
)
async def test_waitsendpay_other_errors(sock: Path, error: dict[str, Any]) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"waitsendpay": Reply(error=error)}) as (_, node):
            with pytest.raises(RpcError) as err:
                await node.waitsendpay(PAYMENT_HASH, partid=3, groupid=1, timeout_s=1)
    assert not isinstance(err.value, PartFailed)
    assert (err.value.rpc_code, err.value.method) == (error["code"], "waitsendpay")
    assert error["message"] in err.value.message


@pytest.mark.trio
async def test_listsendpays(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"listsendpays": Reply(result=EXAMPLES["listsendpays"])}) as (
            fake,
            node,
        ):
            parts = await node.listsendpays(PAYMENT_HASH)
            await node.listsendpays()
    assert fake.requests[0].params == {"payment_hash": PAYMENT_HASH}
    assert fake.requests[1].params == {}
    expected = EXAMPLES["listsendpays"]["payments"]
    assert len(parts) == len(expected) == 20
    for part, raw in zip(parts, expected, strict=True):
        assert part.id == raw["id"] and part.payment_hash == raw["payment_hash"]
        assert part.status.value == raw["status"]
        assert part.partid == raw.get("partid", 0) and part.groupid == raw["groupid"]
        assert part.amount_sent_msat == raw["amount_sent_msat"]
        assert part.payment_preimage == raw.get("payment_preimage")
        assert part.bolt11 == raw.get("bolt11")
    assert parts[5].groupid == 7996705382748537150  # > 2**62: big ints survive
    assert {p.status for p in parts} == set(SendpayStatus)


@pytest.mark.trio
async def test_unexpected_answer_shape_is_rpc_error(sock: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running(
            sock,
            {
                "getinfo": Reply(result={"alias": "no id"}),
                "listsendpays": Reply(
                    result={
                        "payments": [
                            {"payment_hash": PAYMENT_HASH, "status": "weird", "amount_sent_msat": 1}
                        ]
                    }
                ),
            },
        ) as (_, node):
            with pytest.raises(RpcError, match=r"getinfo.*not what barq expects") as err:
                await node.get_info()
            with pytest.raises(RpcError, match="listsendpays"):
                await node.listsendpays()
    assert err.value.method == "getinfo"


@pytest.mark.trio
async def test_gossip_graph_uses_lightning_dir(sock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from barq.graph.gossip_reader import GossipStoreReader

    loaded: list[Path] = []
    sentinel: Any = object()

    def fake_graph(self: GossipStoreReader) -> Any:
        loaded.append(self.path)
        return sentinel

    monkeypatch.setattr(GossipStoreReader, "graph", fake_graph)
    with trio.fail_after(TIMEOUT_S):
        async with running(sock, {"getinfo": Reply(result=EXAMPLES["getinfo"])}) as (fake, node):
            assert await node.gossip_graph() is sentinel
            explicit = LightningdNode(sock, lightning_dir="/srv/cln/bitcoin")
            assert await explicit.gossip_graph() is sentinel
            await explicit.aclose()
    assert loaded == [
        Path("/home/rusty/.lightning/regtest/gossip_store"),
        Path("/srv/cln/bitcoin/gossip_store"),
    ]
    assert [r.method for r in fake.requests] == ["getinfo"]


@pytest.mark.trio
async def test_gossip_graph_errors(sock: Path) -> None:
    node = LightningdNode(sock, lightning_dir="/nowhere")
    with trio.fail_after(TIMEOUT_S):
        with pytest.raises(GraphLoadError, match="/nowhere/gossip_store: no such file"):
            await node.gossip_graph()


@pytest.mark.trio
async def test_gossip_graph_reads_a_real_store(tmp_path: Path) -> None:
    store_writer = pytest.importorskip("barq.graph.store_writer")
    w = store_writer.GossipStoreWriter()
    w.add_channel("103x1x0", PEER, DEST, capacity_sat=1_000_000)
    w.add_update(
        "103x1x0", 0, fee_base_msat=1000, fee_ppm=10, cltv_delta=6, htlc_max_msat=990_000_000
    )
    w.add_update("103x1x0", 1, fee_base_msat=0, fee_ppm=1, cltv_delta=40, htlc_max_msat=990_000_000)
    (tmp_path / "gossip_store").write_bytes(w.getvalue())
    with trio.fail_after(TIMEOUT_S):
        async with LightningdNode(tmp_path / "rpc", lightning_dir=str(tmp_path)) as node:
            graph = await node.gossip_graph()
    assert graph.num_edges == 2
    e = graph.edge("103x1x0", 0)
    assert e is not None
    half = graph.half_channel(e)
    assert (half.source, half.destination) == (PEER, DEST)
    assert (half.fee_base_msat, half.fee_ppm, half.cltv_delta) == (1000, 10, 6)


@pytest.mark.trio
async def test_gossip_graph_reads_only_what_the_store_appended(sock: Path, tmp_path: Path) -> None:
    store_writer = pytest.importorskip("barq.graph.store_writer")
    w = store_writer.GossipStoreWriter()
    w.add_channel("103x1x0", PEER, DEST, capacity_sat=1_000_000)
    w.add_update("103x1x0", 0, fee_base_msat=1000)
    store = tmp_path / "gossip_store"
    store.write_bytes(w.getvalue())
    node = LightningdNode(sock, lightning_dir=str(tmp_path))
    with trio.fail_after(TIMEOUT_S):
        first = await node.gossip_graph()
        assert await node.gossip_graph() is first  # nothing appended: one stat
        w.add_update("103x1x0", 0, fee_base_msat=2000, timestamp=9)  # lightningd appended gossip
        store.write_bytes(w.getvalue())
        second = await node.gossip_graph()
    assert second is not first
    e = second.edge("103x1x0", 0)
    assert e is not None and int(second.fee_base_msat[e]) == 2000
