"""The engine paying keysend and BOLT 12 on the simulated network (parts by injected onion).

The simulator's onions are in the clear (:mod:`barq.sim.onion`): what is tested here is
the engine's side (routing to a blinded edge, building every part's payloads, sending them
with createonion + injectpaymentonion, accounting, MPP), not Sphinx.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio
from actor_helpers import CONFIG, diamond

from barq.actors import open_runtime
from barq.errors import InvalidParams, RouteNotFound
from barq.graph.synthetic import builtin_network
from barq.model import NodeId
from barq.model.payment import EngineConfig, PaymentStatus, PayParams
from barq.sim import SimulatedNetwork
from barq.sim.node import SimulatedNode

SIM_CONFIG = EngineConfig(strategies_in_thread=False, min_part_msat=100_000)


def _keysend(amount: int, **kw: Any) -> PayParams:
    return PayParams(invstring="", amount_msat=amount, **kw)


@pytest.mark.trio
async def test_keysend_is_paid_and_shown_like_any_payment(autojump_clock: Any) -> None:
    graph, keys = builtin_network(1)
    us, payee = graph.nodes[0], graph.nodes[7]
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=1, keys=keys) as net:
            node = net.node(us)
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                out = await rt.keysend(_keysend(2_000_000), payee, {"65537": "62617271"})
                v = out.view
                assert v.status is PaymentStatus.COMPLETE and v.destination == payee
                assert v.payment_preimage is not None
                assert hashlib.sha256(bytes.fromhex(v.payment_preimage)).hexdigest() == (
                    v.payment_hash
                )
                assert net.received_msat(v.payment_hash) == 2_000_000 == v.delivered_msat
                assert [s.payment_hash for s in rt.status()] == [v.payment_hash]
                sent = await node.listsendpays(v.payment_hash)
                assert sent and all(p.status == "complete" for p in sent if p.partid)


@pytest.mark.trio
async def test_keysend_splits_when_the_payee_has_basic_mpp(autojump_clock: Any) -> None:
    """Every path of the diamond holds 500,000 sat: 1,400,000 sat needs three parts."""
    d = diamond()
    with trio.fail_after(3600):
        async with (
            SimulatedNetwork.open(d.graph, seed=3, liquidity="half") as net,
            open_runtime(net.node(d.us), CONFIG, clock=net.now) as rt,
        ):
            out = await rt.keysend(_keysend(1_400_000_000), d.dest)
            ok = [p for p in out.view.parts if p.state == "succeeded"]
            assert len(ok) >= 3
            assert net.received_msat(out.view.payment_hash) == 1_400_000_000
            assert net.overpayments == []


@pytest.mark.trio
async def test_keysend_refusals_send_nothing(autojump_clock: Any) -> None:
    graph, keys = builtin_network(1)
    us = graph.nodes[0]
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=1, keys=keys) as net:
            node = net.node(us)
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                with pytest.raises(InvalidParams, match="yourself"):
                    await rt.keysend(_keysend(1000), us)
                with pytest.raises(RouteNotFound, match="Unknown destination"):
                    await rt.keysend(_keysend(1000), NodeId("02" + "42" * 32))
                with pytest.raises(InvalidParams, match="reserved"):
                    await rt.keysend(_keysend(1000), graph.nodes[3], {"7": "00"})
                assert await node.listsendpays() == []


class _Bolt12Sim(SimulatedNode):
    """A payer whose ``decode`` knows one BOLT 12 invoice (the simulator has none)."""

    decoded: dict[str, dict[str, Any]]

    async def decode(self, invstring: str) -> dict[str, Any]:
        return self.decoded[invstring]


def _bolt12_decode(
    payment_hash: str, amount: int, payees: list[NodeId], now: float, htlc_max: int = 10**12
) -> dict[str, Any]:
    """CLN's ``decode`` shape for an invoice with one-hop paths (introduction node = payee)."""
    payinfo = {
        "fee_base_msat": 0,
        "fee_proportional_millionths": 0,
        "cltv_expiry_delta": 18,
        "htlc_minimum_msat": 0,
        "htlc_maximum_msat": htlc_max,
        "features": "",
    }
    return {
        "type": "bolt12 invoice",
        "valid": True,
        "invoice_payment_hash": payment_hash,
        "invoice_amount_msat": amount,
        "invoice_created_at": int(now),
        "invoice_relative_expiry": 3600,
        "invoice_node_id": payees[0],
        "invoice_features": "020000",
        "invoice_paths": [
            {
                "first_node_id": p,
                "first_path_key": "02" + "33" * 32,
                "payinfo": payinfo,
                "path": [{"blinded_node_id": "02" + "44" * 32, "encrypted_recipient_data": "00"}],
            }
            for p in payees
        ],
    }


@pytest.mark.trio
async def test_bolt12_invoice_is_paid_over_its_blinded_path(autojump_clock: Any) -> None:
    graph, keys = builtin_network(1)
    us, payee = graph.nodes[0], graph.nodes[9]
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=1, keys=keys) as net:
            node = _Bolt12Sim(net, us)
            h = net.decode(net.create_invoice(payee, 3_000_000)).payment_hash
            node.decoded = {"lni1sim": _bolt12_decode(h, 3_000_000, [payee], net.now())}
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                with pytest.raises(InvalidParams, match="amount_msat parameter unnecessary"):
                    await rt.pay(PayParams(invstring="lni1sim", amount_msat=5))
                view = await rt.pay(PayParams(invstring="lni1sim"))
            assert view.status is PaymentStatus.COMPLETE and view.payment_hash == h
            assert net.is_paid(h) and net.received_msat(h) == 3_000_000
            assert view.bolt11 == "lni1sim"
            sent = await node.listsendpays(h)
            assert all(p.destination == payee for p in sent)  # the path's end, in the clear


@pytest.mark.trio
async def test_bolt12_payment_splits_across_paths_by_their_htlc_maximum(
    autojump_clock: Any,
) -> None:
    """Two paths of 2,000,000 msat each (payinfo ``htlc_maximum_msat``) for 3,000,000 msat:
    the router learns each path's limit from the refused part and splits across both."""
    graph, keys = builtin_network(1)
    us, payee = graph.nodes[0], graph.nodes[9]
    with trio.fail_after(3600):
        async with SimulatedNetwork.open(graph, seed=1, keys=keys) as net:
            node = _Bolt12Sim(net, us)
            h = net.decode(net.create_invoice(payee, 3_000_000)).payment_hash
            decoded = _bolt12_decode(h, 3_000_000, [payee, payee], net.now(), htlc_max=2_000_000)
            node.decoded = {"lni1two": decoded}
            async with open_runtime(node, SIM_CONFIG, clock=net.now) as rt:
                view = await rt.pay(PayParams(invstring="lni1two", maxparts=4))
            assert view.status is PaymentStatus.COMPLETE and net.received_msat(h) == 3_000_000
            ok = [p for p in view.parts if p.state == "succeeded"]
            assert all(p.amount_msat <= 2_000_000 for p in ok)
            assert len({p.route.hops[-1].channel for p in ok}) == 2  # both paths carried parts
            assert net.overpayments == []
