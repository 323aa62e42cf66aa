"""Barq as a drop-in for pay/xpay on a real node: the router's side (issue 12 items 1, 6, 7).

Every scenario runs once through ``barqpay`` and once through ``pay`` redirected to
Barq (``barq-handle-pay``, ``xpay-handle-pay`` off), each on its own network.

The graph-freshness scenarios (item 1) start Barq once the network is known to the
payer and make one small payment: whatever Barq's router read then is fresh, and it
knows the payee. Only after that is the new channel made, and the payment follows at
once (waiting on lightningd's state, never sleeping), so a router that reuses a
graph for a while (807401a reloaded it after 60 s or for an unknown payee) plans
without the new channel. Invoices carry no route hint unless the scenario is about
one. Test names stay short: lightningd's RPC socket path (under pyln's test
directory, named after the test) must fit a unix socket address (108 bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from regtest_env import MISSING, PLUGIN, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from _contract_net import VIAS, invoice, pay, payer, sendpays, wait_gossip
from pyln.testing.utils import only_one, sync_blockheight, wait_for

ZEROCONF_PLUGIN = Path("/opt/barq-stack/lightning/tests/plugins/zeroconf-selective.py")
RETRY_FOR = 60
#: the payer before Barq starts: xpay leaves ``pay`` alone
LATE = {"xpay-handle-pay": False}

per_via = pytest.mark.parametrize("via", VIAS)


def _announce(node_factory: Any, nodes: list[Any]) -> None:
    """6 blocks (funding announced) and every node at the chain's height."""
    node_factory.bitcoind.generate_block(6)
    sync_blockheight(node_factory.bitcoind, nodes)


def _normal(node: Any, peer: Any) -> list[dict[str, Any]]:
    chans: list[dict[str, Any]] = node.rpc.listpeerchannels(peer.info["id"])["channels"]
    return [c for c in chans if c["state"] == "CHANNELD_NORMAL"]


def _start_barq(node: Any, warm_to: Any) -> None:
    """Barq started on ``node`` now (its router reads the graph as it is), then one small
    payment to ``warm_to``: the router has just planned on that graph."""
    node.rpc.plugin_start(PLUGIN, **{"barq-handle-pay": "true"})
    wait_for(lambda: node.rpc.call("barqstatus")["engine"]["state"] == "running")
    res = pay(node, "barqpay", invoice(warm_to, 1_000, "warm"))
    assert res["status"] == "complete", res


def _open(node_factory: Any, a: Any, b: Any, sat: int, nodes: list[Any], **kw: Any) -> str:
    """A new channel ``a`` -> ``b`` (``a`` connected, wallet funded), 6 blocks deep and
    CHANNELD_NORMAL at ``a``: its short channel id."""
    before = {c.get("short_channel_id") for c in _normal(a, b)}
    txid = a.rpc.fundchannel(b.info["id"], sat, **kw)["txid"]
    node_factory.bitcoind.generate_block(6, wait_for_mempool=txid)
    sync_blockheight(node_factory.bitcoind, nodes)
    wait_for(lambda: {c.get("short_channel_id") for c in _normal(a, b)} - before != set())
    [scid] = {c.get("short_channel_id") for c in _normal(a, b)} - before
    return str(scid)


def _gossip_has(node: Any, scid: str) -> None:
    """``node``'s gossip has both directions of ``scid`` (nothing about Barq)."""
    wait_for(lambda: len(node.rpc.listchannels(scid)["channels"]) == 2)


def _new_after_barq(
    node_factory: Any, nodes: list[Any], directions: int, warm_to: Any, a: Any, b: Any
) -> str:
    """Announce what was funded (``nodes[0]`` sees ``directions``), start Barq on ``nodes[0]``
    (warm payment to ``warm_to``), then a new public channel ``a`` -> ``b``: its scid once
    ``nodes[0]``'s gossip has it."""
    _announce(node_factory, nodes)
    wait_gossip(nodes[0], directions)
    _start_barq(nodes[0], warm_to)
    scid = _open(node_factory, a, b, 1_500_000, nodes)
    _gossip_has(nodes[0], scid)
    return scid


def _pays(node: Any, via: str, bolt11: str) -> dict[str, Any]:
    res: dict[str, Any] = pay(node, via, bolt11, retry_for=RETRY_FOR)
    assert res["status"] == "complete", res
    return res


# --------------------------------------------------------------------------- item 1: fresh graph


@per_via
def test_forwarder(node_factory: Any, via: str) -> None:
    """A forwarder's new channel to the (known) payee is used at once: the payee's old
    channel has nothing toward it, the new one (l4 -> l3) is the only way in."""
    l1, l2, l3, l4 = node_factory.get_nodes(4, opts=[LATE, {}, {}, {}])
    l1.fundchannel(l2, 2_000_000)
    l1.fundchannel(l4, 2_000_000)
    l3.fundchannel(l2, 1_000_000)  # l3 holds it all: nothing reaches l3 over it
    l4.fundwallet(3_000_000)
    l4.connect(l3)
    _new_after_barq(node_factory, [l1, l2, l3, l4], 6, l2, l4, l3)
    _pays(l1, via, invoice(l3, 400_000_000, f"new-{via}"))


@per_via
def test_fundchannel(node_factory: Any, via: str) -> None:
    """Pay right after fundchannel + 6 blocks (no wait for gossip) over a second channel to
    the same peer: the first one cannot carry the amount any more."""
    l1, l2 = node_factory.get_nodes(2, opts=[LATE, {}])
    l1.fundchannel(l2, 1_000_000)
    _announce(node_factory, [l1, l2])
    wait_gossip(l1, 2)
    _start_barq(l1, l2)
    _pays(l1, "barqpay", invoice(l2, 800_000_000, "drain"))  # the first channel is spent
    assert only_one(_normal(l1, l2))["spendable_msat"] < 500_000_000
    l1.fundwallet(2_000_000)
    _open(node_factory, l1, l2, 1_000_000, [l1, l2])
    _pays(l1, via, invoice(l2, 500_000_000, f"fresh-{via}"))


@pytest.mark.skipif(not ZEROCONF_PLUGIN.exists(), reason="CLN's zeroconf-selective.py plugin")
@per_via
def test_zeroconf(node_factory: Any, via: str) -> None:
    """A zero-conf channel (no short_channel_id yet, only its alias) to a known payee whose
    public channel has nothing toward it carries the payment."""
    l1, l3 = node_factory.get_nodes(2, opts=[LATE, {}])
    l2 = node_factory.get_node(
        options={"plugin": str(ZEROCONF_PLUGIN), "zeroconf_allow": l1.info["id"]}
    )
    l1.fundchannel(l3, 1_000_000)
    l2.fundchannel(l3, 1_000_000)  # l2 holds it all: nothing reaches l2 over it
    l1.fundwallet(2_000_000)
    _announce(node_factory, [l1, l2, l3])
    wait_gossip(l1, 4)
    _start_barq(l1, l3)
    l1.connect(l2)
    l1.rpc.fundchannel(l2.info["id"], 1_000_000, mindepth=0)
    wait_for(lambda: len(_normal(l1, l2)) == 1)
    assert "short_channel_id" not in only_one(_normal(l1, l2))  # not confirmed: alias only
    _pays(l1, via, invoice(l2, 20_000_000, f"zeroconf-{via}"))


@per_via
def test_hint(node_factory: Any, via: str) -> None:
    """The payee's only channel is unannounced (the invoice's route hint) and the hint's
    entry node l2 is reachable only over a channel announced after Barq planned last."""
    l1, l4, l2, l3 = node_factory.get_nodes(4, opts=[LATE, {}, {}, {}])
    l1.fundchannel(l4, 2_000_000)
    l2.fundchannel(l3, 1_000_000, announce_channel=False)
    l4.fundwallet(3_000_000)
    l4.connect(l2)
    scid = _new_after_barq(node_factory, [l1, l2, l3, l4], 2, l4, l4, l2)
    # l3 hints only a peer it does not take for a dead end: it must see l4 - l2 too
    _gossip_has(l3, scid)
    wait_for(lambda: l3.rpc.listincoming()["incoming"] != [])
    bolt11 = l3.rpc.invoice(30_000_000, f"hint-{via}", "barq dropin hint")["bolt11"]
    assert l1.rpc.decode(bolt11).get("routes"), "the invoice should carry the private hint"
    _pays(l1, via, bolt11)


@per_via
def test_opening(node_factory: Any, via: str) -> None:
    """While our own channel to the payee is still opening (left out: not usable), the
    payment goes over the forwarder's second, new channel to the same peer: the first one
    (300,000 sat) could not carry it whatever its balance. (The amount matters: lightningd
    forwards over any channel to the next peer, so an old channel that is merely empty
    would be replaced by the new one at l2 even for a router that never saw it.)"""
    l1, l2, l3 = node_factory.get_nodes(3, opts=[LATE, {}, {}])
    l1.fundchannel(l2, 2_000_000)
    l3.fundchannel(l2, 300_000)  # l3 holds it all, and less than the payment
    l2.fundwallet(3_000_000)
    l1.fundwallet(2_000_000)
    _new_after_barq(node_factory, [l1, l2, l3], 4, l2, l2, l3)
    l1.connect(l3)
    l1.rpc.fundchannel(l3.info["id"], 1_000_000)  # broadcast, not mined: still opening
    opening = only_one(l1.rpc.listpeerchannels(l3.info["id"])["channels"])
    assert opening["state"] != "CHANNELD_NORMAL"
    _pays(l1, via, invoice(l3, 400_000_000, f"opening-{via}"))


# --------------------------------------------------------------------------- item 6: fee update


@per_via
def test_fee_update(node_factory: Any, via: str) -> None:
    """l2 raises its fee just before the payment, after Barq planned on the old one: the
    failure's (signed) channel_update is learnt and the retry pays the new fee over the
    same channel (the only one) instead of avoiding it."""
    l1, l2, l3 = node_factory.line_graph(3, opts=[LATE, {}, {}], wait_for_announce=True)
    wait_gossip(l1, 4)
    _start_barq(l1, l3)
    scid = only_one(_normal(l2, l3))["short_channel_id"]
    base = 8_000
    l2.rpc.setchannel(scid, feebase=base, feeppm=0, enforcedelay=0)
    res = _pays(l1, via, invoice(l3, 10_000_000, f"fee-{via}"))
    done = [p for p in sendpays(l1, res["payment_hash"]) if p["status"] == "complete"]
    assert len(done) == 1, done
    # one hop's fee on top of the amount: l2's new base fee (ppm 0), over scid
    assert done[0]["amount_sent_msat"] == 10_000_000 + base, done


# --------------------------------------------------------------------------- item 7: HTLC slots


def test_payee_30_htlcs(node_factory: Any) -> None:
    """CLN's test_mpp_overload_payee: a well-connected payer, a payee with one channel and
    max-concurrent-htlcs=30, 400,000 sat: never more parts at the payee than it accepts.
    ``presplit`` (CLN pay's presplitter: parts of about 10,000 sat, 40 here) is the strategy
    that would flood it; the flow strategies make a few large parts over these channels."""
    opts = {"max-concurrent-htlcs": 30}
    l1, l2, l3, l4, l5, l6 = node_factory.get_nodes(
        6, opts=[{**opts, **payer(**{"barq-strategy": "presplit"})}, opts, opts, opts, opts, opts]
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
        res = _pays(l1, via, bolt11)
        parts = sendpays(l1, res["payment_hash"])
        assert len([p for p in parts if p["status"] == "complete"]) <= 30, len(parts)
