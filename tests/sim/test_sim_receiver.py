"""The payee: invoice checks, basic MPP (hold until the total), MPP timeout; invoices."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
from sim_helpers import (
    SAT,
    SIM_BUDGET_S,
    diamond,
    invoice,
    opened,
    route_of,
    rows_of_path,
    send_and_wait,
)

from barq.errors import InvalidInvoice, PartFailed, RpcError
from barq.graph.synthetic import line_network
from barq.invoice import bolt11
from barq.model import FailCode, SendpayStatus


@pytest.mark.trio
async def test_final_node_checks(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(3)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            details = FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
            amount = 1_000 * SAT
            inv = await invoice(net, node, g.nodes[2], amount, min_final_cltv=30)
            assert inv.min_final_cltv_expiry == 30
            # final CLTV too small
            err = await send_and_wait(node, route_of(g, [0, 1, 2], amount, final_cltv=18), inv)
            assert err.failure.failcode == details and err.failure.erring_index == 2
            assert err.rpc_code == 203  # destination PERM failure, as lightningd
            assert err.failure.erring_channel == "102x1x0"
            route = route_of(g, [0, 1, 2], amount, final_cltv=30)
            # wrong and missing payment_secret
            for i, secret in enumerate(("00" * 32, None)):
                err = await send_and_wait(node, route, inv, partid=i + 1, secret=secret)
                assert err.failure.failcode == details and err.rpc_code == 203
            # total below the invoice amount, above twice it
            for i, total in enumerate((amount - 1, 2 * amount + 1)):
                err = await send_and_wait(node, route, inv, partid=10 + i, total_msat=total)
                assert err.failure.failcode == details
            # unknown payment hash
            fake = msgspec.structs.replace(inv, payment_hash="11" * 32)
            err = await send_and_wait(node, route, fake)
            assert err.failure.failcode == details
            # nothing was received, nothing is locked
            assert net.received_msat(inv.payment_hash) == 0
            assert net.locked_msat("101x1x0", 0) + net.locked_msat("101x1x0", 1) == 0
            # and then the right payment works
            ok = await send_and_wait(node, route, inv, partid=20)
            assert ok.status == SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_expired_invoice_fails_at_destination(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = line_network(2)
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            inv = await invoice(net, node, g.nodes[1], 1_000 * SAT, expiry_s=10)
            await trio.sleep(11)
            err = await send_and_wait(node, route_of(g, [0, 1], 1_000 * SAT), inv)
            assert err.failure.failcode == FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS


@pytest.mark.trio
async def test_mpp_two_paths_reach_the_total(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = diamond()
        async with opened(g, keys) as net:
            node = net.node(g.nodes[0])
            total = 800_000 * SAT  # more than any single path holds (500k per side)
            inv = await invoice(net, node, g.nodes[3], total)
            r1 = route_of(g, [0, 1, 3], 450_000 * SAT)
            r2 = route_of(g, [0, 2, 3], 350_000 * SAT)
            for pid, r in ((1, r1), (2, r2)):
                st = await node.sendpay(
                    r,
                    inv.payment_hash,
                    partid=pid,
                    groupid=1,
                    total_msat=total,
                    payment_secret=inv.payment_secret,
                )
                assert st.status == SendpayStatus.PENDING
            # while both are in flight our spendable balances show the locks
            spend = {c.scid: c.spendable_msat for c in await node.list_peer_channels()}
            assert sorted(spend.values()) == sorted(500_000 * SAT - r.sent_msat for r in (r1, r2))
            res = [await node.waitsendpay(inv.payment_hash, partid=p, groupid=1) for p in (1, 2)]
            assert all(r.status == SendpayStatus.COMPLETE for r in res)
            assert res[0].payment_preimage == res[1].payment_preimage
            assert net.received_msat(inv.payment_hash) == total
            assert net.overpayments == []
            parts = await node.listsendpays(inv.payment_hash)
            assert [(p.partid, p.status) for p in parts] == [
                (1, SendpayStatus.COMPLETE),
                (2, SendpayStatus.COMPLETE),
            ]
            # paying again is refused by our own node
            with pytest.raises(RpcError) as ei:
                await node.sendpay(
                    r1,
                    inv.payment_hash,
                    partid=3,
                    groupid=2,
                    total_msat=total,
                    payment_secret=inv.payment_secret,
                )
            assert ei.value.rpc_code == 201


@pytest.mark.trio
async def test_mpp_timeout_after_60_simulated_seconds(autojump_clock: Any) -> None:
    with trio.fail_after(SIM_BUDGET_S):
        g, keys = diamond()
        async with opened(g, keys, hop_latency_s=0.05, latency_jitter_s=0) as net:
            node = net.node(g.nodes[0])
            total = 800_000 * SAT
            inv = await invoice(net, node, g.nodes[3], total)
            r1 = route_of(g, [0, 1, 3], 300_000 * SAT)
            t0 = trio.current_time()
            await node.sendpay(
                r1,
                inv.payment_hash,
                partid=1,
                groupid=1,
                total_msat=total,
                payment_secret=inv.payment_secret,
            )
            with pytest.raises(RpcError) as pending:
                await node.waitsendpay(inv.payment_hash, partid=1, groupid=1, timeout_s=30)
            assert pending.value.rpc_code == 200 and not isinstance(pending.value, PartFailed)
            # the HTLCs stay locked while the receiver holds the part
            e01 = rows_of_path(g, [0, 1])[0]
            assert net.locked_msat(g.scid[e01], int(g.direction[e01])) == r1.sent_msat
            with pytest.raises(PartFailed) as ei:
                await node.waitsendpay(inv.payment_hash, partid=1, groupid=1)
            f = ei.value.failure
            assert f.failcode == FailCode.MPP_TIMEOUT and f.erring_index == len(r1.hops)
            assert ei.value.rpc_code == 204  # MPP_TIMEOUT is not PERM
            elapsed = trio.current_time() - t0
            assert elapsed == pytest.approx(0.1 + 60 + 0.1, abs=1e-6)  # there, held, back
            assert net.received_msat(inv.payment_hash) == 0
            assert net.locked_msat(g.scid[e01], 0) + net.locked_msat(g.scid[e01], 1) == 0
            # a new set can still complete the payment after the timeout
            r2 = route_of(g, [0, 2, 3], 400_000 * SAT)
            r3 = route_of(g, [0, 1, 3], 400_000 * SAT)
            for pid, r in ((2, r2), (3, r3)):
                await node.sendpay(
                    r,
                    inv.payment_hash,
                    partid=pid,
                    groupid=1,
                    total_msat=total,
                    payment_secret=inv.payment_secret,
                )
            for pid in (2, 3):
                st = await node.waitsendpay(inv.payment_hash, partid=pid, groupid=1)
                assert st.status == SendpayStatus.COMPLETE


@pytest.mark.trio
async def test_invoices_for_nodes_without_keys() -> None:
    with trio.fail_after(5):
        g, _ = line_network(2)
        async with opened(g, None) as net:  # no private keys known
            node = net.node(g.nodes[0])
            text = net.create_invoice(g.nodes[1], 5_000, description="x")
            inv = await node.decode_invoice(text)
            assert inv.payee == g.nodes[1] and inv.amount_msat == 5_000
            with pytest.raises(InvalidInvoice):
                bolt11.decode(text)  # a strict decoder sees the simulator's signature
            with pytest.raises(InvalidInvoice):
                await node.decode_invoice(text[:-1] + ("q" if text[-1] != "q" else "p"))
            assert net.preimage_of(inv.payment_hash) is not None
