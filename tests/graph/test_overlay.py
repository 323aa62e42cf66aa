"""Overlays: our channels from listpeerchannels, invoice route hints."""

from __future__ import annotations

import pytest
from graph_helpers import node_id

from barq.graph import (
    DEFAULT_HINT_CAPACITY_MSAT,
    Graph,
    hint_capacity_msat,
    local_edges,
    overlay_local_channels,
    overlay_route_hints,
)
from barq.model import ChannelUpdate, HalfChannel, LocalChannel, RouteHintHop

ME, P1, P2, P3, X, DEST = (node_id(i) for i in (5, 1, 7, 3, 9, 8))


def _half(scid: str, src: str, dst: str, **kw: object) -> HalfChannel:
    base: dict[str, object] = dict(
        scid=scid,
        direction=0 if src < dst else 1,
        source=src,
        destination=dst,
        capacity_msat=5_000_000_000,
        fee_base_msat=1000,
        fee_ppm=100,
        cltv_delta=40,
        htlc_min_msat=1000,
        htlc_max_msat=4_000_000_000,
        enabled=True,
        private=False,
    )
    base.update(kw)
    return HalfChannel(**base)  # type: ignore[arg-type]


def _gossip() -> Graph:
    return Graph.from_half_channels(
        [
            _half("10x1x0", ME, P1, enabled=False),  # our public channel (stale disable in gossip)
            _half("10x1x0", P1, ME, fee_base_msat=7),
            _half("11x1x0", ME, P2),  # closing channel
            _half("11x1x0", P2, ME),
            _half("20x1x0", P1, X),
            _half("21x1x0", X, DEST, fee_base_msat=10, fee_ppm=10, cltv_delta=10),
        ]
    )


def _local(scid: str | None, peer: str, **kw: object) -> LocalChannel:
    base: dict[str, object] = dict(
        peer_id=peer,
        scid=scid,
        direction=None if scid is None else (0 if peer > ME else 1),
        state="CHANNELD_NORMAL",
        peer_connected=True,
        spendable_msat=1_000_000,
        receivable_msat=1_000_000,
        capacity_msat=2_000_000_000,
    )
    base.update(kw)
    return LocalChannel(**base)  # type: ignore[arg-type]


def _h(g: Graph, scid: str, src: str, dst: str) -> HalfChannel:
    e = g.edge(scid, 0 if src < dst else 1)
    assert e is not None, f"{scid} {src[:6]}->{dst[:6]} missing"
    h = g.half_channel(e)
    assert (h.source, h.destination) == (src, dst)
    return h


def test_public_channel_gets_our_capacity_and_state() -> None:
    g0 = _gossip()
    g = overlay_local_channels(
        g0,
        ME,
        [
            _local("10x1x0", P1),
            _local("11x1x0", P2, state="ONCHAIN"),
        ],
    )
    out = _h(g, "10x1x0", ME, P1)
    assert out.capacity_msat == 2_000_000_000
    assert out.htlc_max_msat == 2_000_000_000  # capped at the (smaller) capacity
    assert out.enabled  # usable now, whatever our stale gossip said
    assert (out.fee_base_msat, out.fee_ppm, out.cltv_delta) == (1000, 100, 40)  # gossip kept
    assert not out.private
    back = _h(g, "10x1x0", P1, ME)
    assert (back.capacity_msat, back.fee_base_msat, back.enabled) == (2_000_000_000, 7, True)
    # not CHANNELD_NORMAL: both directions disabled
    assert not _h(g, "11x1x0", ME, P2).enabled
    assert not _h(g, "11x1x0", P2, ME).enabled
    # untouched rows and the input graph
    assert _h(g, "20x1x0", P1, X) == _h(g0, "20x1x0", P1, X)
    assert not _h(g0, "10x1x0", ME, P1).enabled and g0.num_edges == g.num_edges == 6


def test_disconnected_peer_disables_our_direction() -> None:
    g = overlay_local_channels(_gossip(), ME, [_local("10x1x0", P1, peer_connected=False)])
    assert not _h(g, "10x1x0", ME, P1).enabled
    assert not _h(g, "10x1x0", P1, ME).enabled


def test_private_channel_is_created() -> None:
    g = overlay_local_channels(
        _gossip(),
        ME,
        [
            _local("30x1x0", P3, private=True, htlc_min_msat=5),
            _local(None, P2),  # not yet confirmed: no scid, cannot be routed
        ],
    )
    out = _h(g, "30x1x0", ME, P3)
    assert (out.fee_base_msat, out.fee_ppm, out.cltv_delta, out.htlc_min_msat) == (0, 0, 0, 5)
    assert out.capacity_msat == out.htlc_max_msat == 2_000_000_000
    assert out.private and out.enabled
    assert g.edge("30x1x0", 1 - out.direction) is None  # peer -> us unknown: skipped
    assert g.num_edges == 7
    assert sorted(g.half_channel(int(e)).scid for e in local_edges(g, ME)) == [
        "10x1x0",
        "11x1x0",
        "30x1x0",
    ]
    assert local_edges(g, node_id(99)).tolist() == []


def test_unannounced_channel_with_peer_policy() -> None:
    pol = ChannelUpdate(
        scid="31x1x0",
        direction=0 if P3 < ME else 1,
        fee_base_msat=3,
        fee_ppm=4,
        cltv_delta=5,
        htlc_min_msat=6,
        htlc_max_msat=None,
    )
    g = overlay_local_channels(_gossip(), ME, [_local("31x1x0", P3)], peer_policies={"31x1x0": pol})
    back = _h(g, "31x1x0", P3, ME)
    assert (back.fee_base_msat, back.fee_ppm, back.cltv_delta, back.htlc_min_msat) == (3, 4, 5, 6)
    assert back.htlc_max_msat == 2_000_000_000 and back.private and back.enabled
    # the policy also overrides gossip for a public channel
    pol2 = ChannelUpdate(
        scid="10x1x0",
        direction=0,
        fee_base_msat=1,
        fee_ppm=2,
        cltv_delta=3,
        htlc_min_msat=0,
        htlc_max_msat=10**12,
        disabled=True,
    )
    g = overlay_local_channels(
        _gossip(), ME, [_local("10x1x0", P1)], peer_policies={"10x1x0": pol2}
    )
    back = _h(g, "10x1x0", P1, ME)
    assert (back.fee_base_msat, back.enabled, back.htlc_max_msat) == (1, False, 2_000_000_000)


def test_direction_from_ids_when_missing() -> None:
    ch = _local("30x1x0", P3)
    ch = LocalChannel(**{**{f: getattr(ch, f) for f in ch.__struct_fields__}, "direction": None})
    g = overlay_local_channels(_gossip(), ME, [ch])
    assert _h(g, "30x1x0", ME, P3).direction == (0 if ME < P3 else 1)


# -- route hints ----------------------------------------------------------------------------


def _hop(node: str, scid: str, base: int = 1, ppm: int = 2, cltv: int = 3) -> RouteHintHop:
    return RouteHintHop(node_id=node, scid=scid, fee_base_msat=base, fee_ppm=ppm, cltv_delta=cltv)


def test_hint_path_adds_private_hops_toward_destination() -> None:
    g0 = _gossip()
    g = overlay_route_hints(g0, DEST, [[_hop(P2, "40x1x0"), _hop(P3, "41x1x0", 5, 6, 7)]])
    h1 = _h(g, "40x1x0", P2, P3)
    h2 = _h(g, "41x1x0", P3, DEST)
    assert (h2.fee_base_msat, h2.fee_ppm, h2.cltv_delta) == (5, 6, 7)
    for h in (h1, h2):
        assert h.private and h.enabled and h.htlc_min_msat == 0
        assert h.capacity_msat == h.htlc_max_msat == DEFAULT_HINT_CAPACITY_MSAT
    assert g.edge("41x1x0", 1 - h2.direction) is None
    assert g.num_edges == g0.num_edges + 2


def test_hint_capacity_parameter() -> None:
    cap = hint_capacity_msat(1_000_000, 5_000)
    assert cap == 100_500_000
    g = overlay_route_hints(_gossip(), DEST, [[_hop(P3, "41x1x0")]], default_capacity_msat=cap)
    assert _h(g, "41x1x0", P3, DEST).capacity_msat == cap


def test_public_gossip_wins_but_fees_go_up() -> None:
    # 21x1x0 X -> DEST exists in gossip with fee 10/10/10
    g = overlay_route_hints(_gossip(), DEST, [[_hop(X, "21x1x0", base=50, ppm=1, cltv=144)]])
    h = _h(g, "21x1x0", X, DEST)
    assert (h.fee_base_msat, h.fee_ppm, h.cltv_delta) == (50, 10, 144)
    assert (h.capacity_msat, h.htlc_max_msat, h.private) == (5_000_000_000, 4_000_000_000, False)


def test_hints_skipped_from_us_or_conflicting_with_gossip() -> None:
    g0 = _gossip()
    # a hint reusing scid 20x1x0 (P1 -> X in gossip) between other nodes: ignored
    g = overlay_route_hints(g0, DEST, [[_hop(P2, "20x1x0")]])
    assert g.num_edges == g0.num_edges
    assert _h(g, "20x1x0", P1, X) == _h(g0, "20x1x0", P1, X)
    # hops leaving us are ours to know
    g = overlay_route_hints(g0, DEST, [[_hop(ME, "50x1x0"), _hop(P3, "51x1x0")]], our_id=ME)
    assert g.edge("50x1x0", 0) is None and g.edge("50x1x0", 1) is None
    _h(g, "51x1x0", P3, DEST)
    # but a synthetic channel of block 0 from us is no channel of ours: the lead edge of a
    # blinded path that starts at us (barq.onion.blinded) is kept
    g = overlay_route_hints(g0, DEST, [[_hop(ME, "0x7x32768"), _hop(P3, "0x7x0")]], our_id=ME)
    _h(g, "0x7x32768", ME, P3)
    _h(g, "0x7x0", P3, DEST)
    # empty hints and hops to themselves change nothing
    assert overlay_route_hints(g0, DEST, [[], [_hop(DEST, "52x1x0")]]).num_edges == g0.num_edges


@pytest.mark.parametrize("dest_first", [True, False])
def test_hint_direction_follows_id_order(dest_first: bool) -> None:
    lo, hi = sorted((P3, DEST))
    src, dst = (hi, lo) if dest_first else (lo, hi)
    g = overlay_route_hints(Graph.from_half_channels([]), dst, [[_hop(src, "60x1x0")]])
    assert g.direction.tolist() == [1 if dest_first else 0]
