"""Barq as a drop-in for pay/xpay on a real node: the router's side (issue 12 items 1, 4, 6, 7).

Every scenario pays once through ``barqpay`` and once through ``pay`` redirected to
Barq (``barq-handle-pay``, ``xpay-handle-pay`` off) on the same network. Invoices
carry no route hint unless the scenario is about one. Test names stay short:
lightningd's RPC socket path (under pyln's test directory, named after the test)
must fit a unix socket address (108 bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from regtest_env import MISSING, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from _contract_net import VIAS, invoice, pay, payer, sendpays, wait_gossip
from pyln.testing.utils import only_one, sync_blockheight, wait_for

ZEROCONF_PLUGIN = (
    Path("/opt/barq-stack/lightning/tests/plugins/zeroconf-selective.py")
    if Path("/opt/barq-stack/lightning/tests/plugins/zeroconf-selective.py").exists()
    else None
)
RETRY_FOR = 60


def _announce(node_factory: Any, nodes: list[Any]) -> None:
    """6 blocks (funding announced) and every node at the chain's height."""
    node_factory.bitcoind.generate_block(6)
    sync_blockheight(node_factory.bitcoind, nodes)


def _normal(node: Any, peer: Any) -> list[dict[str, Any]]:
    chans: list[dict[str, Any]] = node.rpc.listpeerchannels(peer.info["id"])["channels"]
    return [c for c in chans if c["state"] == "CHANNELD_NORMAL"]


def _hops(node: Any, payment_hash: str) -> list[dict[str, Any]]:
    parts = sendpays(node, payment_hash)
    assert parts, "nothing was sent"
    return parts


def test_new_forwarder_channel(node_factory: Any) -> None:
    """l2 opens a channel to the (already known) payee l3; as soon as l1's gossip has it,
    the next payment uses it: the old l3 -> l2 channel has no liquidity toward l3."""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[payer(), {}, {}])
    l1.fundchannel(l2, 2_000_000)
    l3.fundchannel(l2, 1_000_000)  # l3 holds it all: nothing can reach l3 over it
    _announce(node_factory, [l1, l2, l3])
    wait_gossip(l1, 4)
    warm = invoice(l2, 1_000, "warm")
    assert pay(l1, "barqpay", warm)["status"] == "complete"  # the router has read the graph
    l2.fundchannel(l3, 1_500_000)
    _announce(node_factory, [l1, l2, l3])
    wait_gossip(l1, 6)  # the new channel is in l1's gossip_store: no sleep beyond that
    for via in VIAS:
        bolt11 = invoice(l3, 400_000_000, f"new-{via}")
        res = pay(l1, via, bolt11, retry_for=RETRY_FOR)
        assert res["status"] == "complete", res


def test_after_fundchannel(node_factory: Any) -> None:
    """The payer's own channel, funded and 6 blocks deep, is used at once (no gossip wait)."""
    l1, l2 = node_factory.get_nodes(2, opts=[payer(), {}])
    l1.fundchannel(l2, 1_000_000)
    _announce(node_factory, [l1, l2])
    for via in VIAS:
        res = pay(l1, via, invoice(l2, 50_000_000, f"fresh-{via}"), retry_for=RETRY_FOR)
        assert res["status"] == "complete", res


@pytest.mark.skipif(ZEROCONF_PLUGIN is None, reason="CLN's zeroconf-selective.py test plugin")
def test_zero_conf(node_factory: Any) -> None:
    """A zero-conf channel (no short_channel_id yet, only its alias) carries the payment."""
    l1 = node_factory.get_node(options=payer())
    l2 = node_factory.get_node(
        options={"plugin": str(ZEROCONF_PLUGIN), "zeroconf_allow": l1.info["id"]}
    )
    l1.fundwallet(2_000_000)
    l1.connect(l2)
    l1.rpc.fundchannel(l2.info["id"], 1_000_000, mindepth=0)
    wait_for(lambda: len(_normal(l1, l2)) == 1)
    assert "short_channel_id" not in only_one(_normal(l1, l2))  # not confirmed: alias only
    for via in VIAS:
        res = pay(l1, via, invoice(l2, 20_000_000, f"zeroconf-{via}"), retry_for=RETRY_FOR)
        assert res["status"] == "complete", res


def test_private_hint(node_factory: Any) -> None:
    """The payee's only channel is unannounced: the invoice's route hint is the way."""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[payer(), {}, {}])
    l1.fundchannel(l2, 1_000_000)
    l2.fundchannel(l3, 1_000_000, announce_channel=False)
    _announce(node_factory, [l1, l2, l3])
    wait_gossip(l1, 2)
    wait_for(lambda: l3.rpc.listincoming()["incoming"] != [])  # l2's policy toward l3 known
    # l3 only hints a peer it does not take for a dead end: it must see l1 -> l2 in gossip
    wait_gossip(l3, 2)
    for via in VIAS:
        bolt11 = l3.rpc.invoice(30_000_000, f"hint-{via}", "barq dropin hint")["bolt11"]
        assert l1.rpc.decode(bolt11).get("routes"), "the invoice should carry the private hint"
        res = pay(l1, via, bolt11, retry_for=RETRY_FOR)
        assert res["status"] == "complete", res


def test_other_opening(node_factory: Any) -> None:
    """A channel still waiting for its funding to confirm is left out, the others are used."""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[payer(), {}, {}])
    l1.fundchannel(l2, 1_000_000)
    _announce(node_factory, [l1, l2, l3])
    l1.fundwallet(2_000_000)
    l1.connect(l3)
    l1.rpc.fundchannel(l3.info["id"], 1_000_000)  # broadcast, not mined: still opening
    opening = only_one(l1.rpc.listpeerchannels(l3.info["id"])["channels"])
    assert opening["state"] != "CHANNELD_NORMAL"
    for via in VIAS:
        res = pay(l1, via, invoice(l2, 30_000_000, f"opening-{via}"), retry_for=RETRY_FOR)
        assert res["status"] == "complete", res


def test_fee_update_retry(node_factory: Any) -> None:
    """l2 raises its fee just before the payment: the failure's (signed) channel_update is
    learnt and the retry pays the new fee over the same channel instead of avoiding it."""
    l1, l2, l3 = node_factory.line_graph(3, opts=[payer(), {}, {}], wait_for_announce=True)
    wait_gossip(l1, 4)
    scid = only_one(_normal(l2, l3))["short_channel_id"]
    base = 1_000
    for via in VIAS:
        base += 7_000
        l2.rpc.setchannel(scid, feebase=base, feeppm=0, enforcedelay=0)
        bolt11 = invoice(l3, 10_000_000, f"fee-{via}")
        res = pay(l1, via, bolt11, retry_for=RETRY_FOR)
        assert res["status"] == "complete", res
        parts = _hops(l1, res["payment_hash"])
        done = [p for p in parts if p["status"] == "complete"]
        assert len(done) == 1, parts
        # one hop's fee on top of the amount: l2's new base fee (ppm 0), over scid
        assert done[0]["amount_sent_msat"] == 10_000_000 + base, parts


def test_payee_30_htlcs(node_factory: Any) -> None:
    """CLN's test_mpp_overload_payee: a well-connected payer, a payee with one channel and
    max-concurrent-htlcs=30, 400,000 sat: never more parts at the payee than it accepts."""
    opts = {"max-concurrent-htlcs": 30}
    l1, l2, l3, l4, l5, l6 = node_factory.get_nodes(
        6, opts=[{**opts, **payer()}, opts, opts, opts, opts, opts]
    )
    amt = 2**24 - 1
    pairs = [
        (l1, l3),
        (l1, l4),
        (l1, l5),
        (l1, l6),
        (l2, l6),
        (l3, l4),
        (l3, l5),
        (l3, l6),
        (l4, l5),
        (l5, l6),
    ]
    for a, b in pairs:
        a.fundbalancedchannel(b, amt)
    _announce(node_factory, [l1, l2, l3, l4, l5, l6])
    wait_gossip(l1, 2 * len(pairs))
    for via in VIAS:
        bolt11 = invoice(l2, 400_000 * 1000, f"overload-{via}")
        res = pay(l1, via, bolt11, retry_for=RETRY_FOR)
        assert res["status"] == "complete", res
        parts = _hops(l1, res["payment_hash"])
        assert len([p for p in parts if p["status"] == "complete"]) <= 30, len(parts)
