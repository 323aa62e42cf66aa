"""Put what only we know on top of the gossip graph: our channels, invoice route hints.

Both functions return a new :class:`Graph` (the input is not modified) built
with :meth:`Graph.with_half_channels`; direction numbering always follows
BOLT 7 (direction 0 leaves the smaller node id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from barq.graph._graph import Graph
from barq.model import (
    ChannelUpdate,
    HalfChannel,
    LocalChannel,
    NodeId,
    RouteHintHop,
    Scid,
    direction_of,
    scid_to_u64,
)

__all__ = [
    "DEFAULT_HINT_CAPACITY_MSAT",
    "hint_capacity_msat",
    "local_edges",
    "overlay_local_channels",
    "overlay_route_hints",
]

DEFAULT_HINT_CAPACITY_MSAT = 10**12
"""Assumed capacity of a route-hint channel when the caller gives none: 10 BTC.

A hint channel's capacity is unknown; the payee chose it because it can
receive the invoice's amount, so the prior should make it very likely to
carry any single payment. Callers that know the amount should pass
:func:`hint_capacity_msat` instead (xpay's rule)."""


def hint_capacity_msat(amount_msat: int, maxfee_msat: int = 0) -> int:
    """xpay's assumed hint capacity: 100 x (amount + fee budget).

    Under the uniform liquidity prior that gives the hint about 99 % success
    for the whole payment, and a failure will correct it quickly.
    """
    return max(1, 100 * (amount_msat + maxfee_msat))


def _synthetic(scid: Scid) -> bool:
    """A channel of block 0: none was ever mined there (Barq's and xpay's synthetic scids)."""
    try:
        return scid_to_u64(scid) >> 40 == 0
    except ValueError:
        return False


def local_edges(graph: Graph, our_id: NodeId) -> npt.NDArray[np.int64]:
    """Rows of the half-channels leaving ``our_id`` (empty if we are not in the graph)."""
    i = graph.node_index.get(our_id)
    if i is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(graph.src == i).astype(np.int64)


def overlay_local_channels(
    graph: Graph,
    our_id: NodeId,
    channels: Iterable[LocalChannel],
    *,
    peer_policies: Mapping[Scid, ChannelUpdate] | None = None,
) -> Graph:
    """Our channels (``listpeerchannels``) on top of ``graph``.

    For every channel with a short channel id (others cannot appear in a route):

    * our outgoing half-channel (``ch.direction``, or from the id order) gets
      ``capacity_msat = ch.capacity_msat`` and ``htlc_max_msat <= capacity``;
      its gossip policy (fees, cltv, htlc limits) is kept: our own first hop
      charges us nothing, the route builder knows that. Without a gossip row
      (private or unannounced channel) it is created with fee 0, cltv 0,
      ``htlc_min = ch.htlc_min_msat`` and ``htlc_max = capacity``;
    * ``enabled`` is ``ch.usable`` (``CHANNELD_NORMAL`` and peer connected),
      whatever gossip said (our own gossip lags our state). A channel that is
      not usable is disabled in *both* directions (a closing or disconnected
      channel forwards nothing either way, as askrene disables both
      directions of our dying channels);
    * the peer -> us direction keeps its gossip row (capacity updated); a
      ``peer_policies[scid]`` (e.g. ``listpeerchannels`` ``updates.remote``)
      replaces its policy or creates it; without either it is left out;
    * ``private`` is True for channels absent from gossip or flagged private.

    Which rows are ours: :func:`local_edges` (``src`` is our node index);
    exact spendable amounts are liquidity knowledge for the router, not graph
    data.

    Args:
        graph: the gossip graph.
        our_id: our node id.
        channels: ``LocalChannel`` records (a repeated scid: the last wins).
        peer_policies: the peer's policy toward us, by scid.
    """
    policies = peer_policies or {}
    extra: list[HalfChannel] = []
    for ch in channels:
        if ch.scid is None:
            continue
        scid = ch.scid
        out_dir = ch.direction if ch.direction is not None else direction_of(our_id, ch.peer_id)
        in_dir = 1 - out_dir
        cap = ch.capacity_msat
        usable = ch.usable
        e_out = graph.edge(scid, out_dir)
        e_in = graph.edge(scid, in_dir)
        private = ch.private or (e_out is None and e_in is None)
        if e_out is not None:
            g = graph.half_channel(e_out)
            extra.append(
                HalfChannel(
                    scid=scid,
                    direction=out_dir,
                    source=our_id,
                    destination=ch.peer_id,
                    capacity_msat=cap,
                    fee_base_msat=g.fee_base_msat,
                    fee_ppm=g.fee_ppm,
                    cltv_delta=g.cltv_delta,
                    htlc_min_msat=g.htlc_min_msat,
                    htlc_max_msat=min(g.htlc_max_msat, cap),
                    enabled=usable,
                    private=private,
                )
            )
        else:
            extra.append(
                HalfChannel(
                    scid=scid,
                    direction=out_dir,
                    source=our_id,
                    destination=ch.peer_id,
                    capacity_msat=cap,
                    fee_base_msat=0,
                    fee_ppm=0,
                    cltv_delta=0,
                    htlc_min_msat=ch.htlc_min_msat,
                    htlc_max_msat=cap,
                    enabled=usable,
                    private=private,
                )
            )
        pol = policies.get(scid)
        if pol is not None:
            hmax = cap if pol.htlc_max_msat is None else min(pol.htlc_max_msat, cap)
            extra.append(
                HalfChannel(
                    scid=scid,
                    direction=in_dir,
                    source=ch.peer_id,
                    destination=our_id,
                    capacity_msat=cap,
                    fee_base_msat=pol.fee_base_msat,
                    fee_ppm=pol.fee_ppm,
                    cltv_delta=pol.cltv_delta,
                    htlc_min_msat=pol.htlc_min_msat,
                    htlc_max_msat=hmax,
                    enabled=usable and not pol.disabled,
                    private=private,
                )
            )
        elif e_in is not None:
            g = graph.half_channel(e_in)
            extra.append(
                HalfChannel(
                    scid=scid,
                    direction=in_dir,
                    source=ch.peer_id,
                    destination=our_id,
                    capacity_msat=cap,
                    fee_base_msat=g.fee_base_msat,
                    fee_ppm=g.fee_ppm,
                    cltv_delta=g.cltv_delta,
                    htlc_min_msat=g.htlc_min_msat,
                    htlc_max_msat=min(g.htlc_max_msat, cap),
                    enabled=g.enabled and usable,
                    private=private,
                )
            )
    return graph.with_half_channels(extra)


def overlay_route_hints(
    graph: Graph,
    destination: NodeId,
    hints: Sequence[Sequence[RouteHintHop]],
    *,
    default_capacity_msat: int = DEFAULT_HINT_CAPACITY_MSAT,
    our_id: NodeId | None = None,
) -> Graph:
    """An invoice's route hints (private last hops) on top of ``graph``.

    Each hint is a path ``hop_1 .. hop_k``: ``hop_i.node_id`` forwards over
    ``hop_i.scid`` to ``hop_{i+1}.node_id``, the last one to ``destination``,
    with the hop's fee and cltv delta. Direction comes from the id order.

    * A new half-channel gets ``capacity = htlc_max = default_capacity_msat``
      (unknown; see :data:`DEFAULT_HINT_CAPACITY_MSAT` and
      :func:`hint_capacity_msat`), ``htlc_min`` 0, ``enabled`` and
      ``private`` True.
    * Public gossip wins when the same ``(scid, direction)`` already exists
      between the same two nodes: its capacity, htlc limits and ``enabled``
      stay; only fee base, fee rate and cltv delta become the larger of
      gossip's and the hint's (a forwarder accepts being overpaid but fails
      an underpaid HTLC, and the hint may be newer than gossip).
    * A hop whose ``(scid, direction)`` exists between *other* nodes is
      ignored (gossip wins), as are hops from ``our_id`` (we know our own
      channels better; xpay does the same) and hops to themselves. A hop from
      ``our_id`` over a synthetic channel of block 0 (no real channel was
      mined there) is kept: it is no channel of ours but the lead edge of a
      blinded path that starts at us (:mod:`barq.onion.blinded`).
    * When two hints give the same hop, the later one wins.
    """
    extra: dict[tuple[Scid, int], HalfChannel] = {}
    for hint in hints:
        for i, hop in enumerate(hint):
            nxt = hint[i + 1].node_id if i + 1 < len(hint) else destination
            src = hop.node_id
            if src == nxt or (src == our_id and not _synthetic(hop.scid)):
                continue
            d = direction_of(src, nxt)
            e = graph.edge(hop.scid, d)
            if e is None:
                extra[(hop.scid, d)] = HalfChannel(
                    scid=hop.scid,
                    direction=d,
                    source=src,
                    destination=nxt,
                    capacity_msat=default_capacity_msat,
                    fee_base_msat=hop.fee_base_msat,
                    fee_ppm=hop.fee_ppm,
                    cltv_delta=hop.cltv_delta,
                    htlc_min_msat=0,
                    htlc_max_msat=default_capacity_msat,
                    enabled=True,
                    private=True,
                )
                continue
            g = graph.half_channel(e)
            if g.source != src or g.destination != nxt:
                continue
            extra[(hop.scid, d)] = HalfChannel(
                scid=hop.scid,
                direction=d,
                source=src,
                destination=nxt,
                capacity_msat=g.capacity_msat,
                fee_base_msat=max(g.fee_base_msat, hop.fee_base_msat),
                fee_ppm=max(g.fee_ppm, hop.fee_ppm),
                cltv_delta=max(g.cltv_delta, hop.cltv_delta),
                htlc_min_msat=g.htlc_min_msat,
                htlc_max_msat=g.htlc_max_msat,
                enabled=g.enabled,
                private=g.private,
            )
    return graph.with_half_channels(extra.values())
