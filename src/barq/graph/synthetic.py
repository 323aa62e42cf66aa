"""Small deterministic networks with real keys: the demo network and test builders.

Every builder returns ``(graph, keys)``: a :class:`~barq.graph.Graph` whose
``graph.nodes[i]`` is node ``i`` (in creation order) and the nodes' secp256k1
private keys, so a simulator can sign their invoices. Node ``i`` of seed ``s``
has private key ``sha256(f"barq-sim-{s}-{i}")``.

Directions follow BOLT 7: direction 0 leaves the lexicographically smaller
node id. Short channel ids are ``{100 + k}x{tx}x{out}`` for the ``k``-th
channel, so they are unique and deterministic.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import coincurve

from barq.errors import InvalidParams
from barq.graph._graph import COLUMNS, Graph
from barq.model import NodeId, Scid, direction_of

__all__ = [
    "ChannelSpec",
    "builtin_network",
    "grid_network",
    "line_network",
    "network_from_channels",
    "node_key",
]

SAT = 1000  # msat


def node_key(seed: int, i: int) -> tuple[NodeId, bytes]:
    """``(node_id, privkey)`` of node ``i``: privkey = sha256("barq-sim-{seed}-{i}")."""
    priv = hashlib.sha256(f"barq-sim-{seed}-{i}".encode()).digest()
    pub = coincurve.PrivateKey(priv).public_key.format(compressed=True).hex()
    return NodeId(pub), priv


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel between node indexes ``a`` and ``b`` and the policy of each side.

    ``policy_ab`` is what ``a`` charges to forward toward ``b``; ``None``
    fields take the builder's defaults. ``htlc_max_msat`` of ``None`` means
    the capacity. ``scid`` of ``None`` means ``{100 + k}x1x0``.
    """

    a: int
    b: int
    capacity_sat: int
    fee_base_msat: tuple[int, int] | None = None
    fee_ppm: tuple[int, int] | None = None
    cltv_delta: tuple[int, int] | None = None
    htlc_min_msat: tuple[int, int] | None = None
    htlc_max_msat: tuple[int | None, int | None] | None = None
    enabled: tuple[bool, bool] = (True, True)
    scid: str | None = None
    private: bool = False


def network_from_channels(
    n_nodes: int,
    channels: Sequence[ChannelSpec],
    *,
    seed: int = 1,
    fee_base_msat: int = 1000,
    fee_ppm: int = 100,
    cltv_delta: int = 40,
    htlc_min_msat: int = 1000,
) -> tuple[Graph, dict[NodeId, bytes]]:
    """Build a graph from explicit channels between nodes ``0..n_nodes-1``.

    Args:
        n_nodes: number of nodes (all appear in ``graph.nodes``, in index order).
        channels: the channels; each gives two half-channels.
        seed: key seed (see :func:`node_key`).
        fee_base_msat, fee_ppm, cltv_delta, htlc_min_msat: default policy.

    Returns:
        ``(graph, keys)`` with ``keys[node_id] = privkey``.

    Raises:
        barq.errors.InvalidParams: a channel names a node outside ``0..n_nodes-1``, joins a
            node to itself, or reuses a short channel id.
    """
    ids_keys = [node_key(seed, i) for i in range(n_nodes)]
    ids = [k[0] for k in ids_keys]
    scids: list[Scid] = []
    cols: dict[str, list[int]] = {k: [] for k in COLUMNS}
    seen: set[str] = set()
    for k, ch in enumerate(channels):
        if not (0 <= ch.a < n_nodes and 0 <= ch.b < n_nodes) or ch.a == ch.b:
            raise InvalidParams(f"channel {k}: bad endpoints {ch.a}, {ch.b} for {n_nodes} nodes")
        scid = Scid(ch.scid or f"{100 + k}x1x0")
        if scid in seen:
            raise InvalidParams(f"channel {k}: duplicate short channel id {scid}")
        seen.add(scid)
        cap = ch.capacity_sat * SAT
        for side, (s, d) in enumerate(((ch.a, ch.b), (ch.b, ch.a))):
            hmax = None if ch.htlc_max_msat is None else ch.htlc_max_msat[side]
            scids.append(scid)
            cols["direction"].append(direction_of(ids[s], ids[d]))
            cols["src"].append(s)
            cols["dst"].append(d)
            cols["capacity_msat"].append(cap)
            cols["fee_base_msat"].append(
                fee_base_msat if ch.fee_base_msat is None else ch.fee_base_msat[side]
            )
            cols["fee_ppm"].append(fee_ppm if ch.fee_ppm is None else ch.fee_ppm[side])
            cols["cltv_delta"].append(cltv_delta if ch.cltv_delta is None else ch.cltv_delta[side])
            cols["htlc_min_msat"].append(
                htlc_min_msat if ch.htlc_min_msat is None else ch.htlc_min_msat[side]
            )
            cols["htlc_max_msat"].append(cap if hmax is None else min(hmax, cap))
            cols["enabled"].append(int(ch.enabled[side]))
            cols["private"].append(int(ch.private))
    graph = Graph(
        nodes=ids,
        scid=scids,
        direction=cols["direction"],
        src=cols["src"],
        dst=cols["dst"],
        capacity_msat=cols["capacity_msat"],
        fee_base_msat=cols["fee_base_msat"],
        fee_ppm=cols["fee_ppm"],
        cltv_delta=cols["cltv_delta"],
        htlc_min_msat=cols["htlc_min_msat"],
        htlc_max_msat=cols["htlc_max_msat"],
        enabled=cols["enabled"],
        private=cols["private"],
    )
    return graph, {nid: priv for nid, priv in ids_keys}


def line_network(
    n: int,
    capacity_sat: int = 1_000_000,
    *,
    seed: int = 1,
    fee_base_msat: int = 1000,
    fee_ppm: int = 100,
    cltv_delta: int = 40,
    htlc_min_msat: int = 1000,
) -> tuple[Graph, dict[NodeId, bytes]]:
    """Nodes ``0 - 1 - ... - n-1`` joined by one channel each (``{101+i}x1x0`` joins i, i+1)."""
    chans = [
        ChannelSpec(a=i, b=i + 1, capacity_sat=capacity_sat, scid=f"{101 + i}x1x0")
        for i in range(n - 1)
    ]
    return network_from_channels(
        n,
        chans,
        seed=seed,
        fee_base_msat=fee_base_msat,
        fee_ppm=fee_ppm,
        cltv_delta=cltv_delta,
        htlc_min_msat=htlc_min_msat,
    )


def grid_network(
    rows: int,
    cols: int,
    capacity_sat: int = 1_000_000,
    *,
    seed: int = 1,
    fee_base_msat: int = 1000,
    fee_ppm: int = 100,
    cltv_delta: int = 40,
    htlc_min_msat: int = 1000,
) -> tuple[Graph, dict[NodeId, bytes]]:
    """A ``rows x cols`` grid; node ``r*cols + c`` links to its right and lower neighbours."""
    chans: list[ChannelSpec] = []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols:
                chans.append(ChannelSpec(a=i, b=i + 1, capacity_sat=capacity_sat))
            if r + 1 < rows:
                chans.append(ChannelSpec(a=i, b=i + cols, capacity_sat=capacity_sat))
    return network_from_channels(
        rows * cols,
        chans,
        seed=seed,
        fee_base_msat=fee_base_msat,
        fee_ppm=fee_ppm,
        cltv_delta=cltv_delta,
        htlc_min_msat=htlc_min_msat,
    )


_CLTV_CHOICES = (18, 34, 40, 40, 40, 72, 80, 144)
_BASE_FEE_CHOICES = (0, 0, 1, 1000, 1000, 1000, 500, 100)


def _policy(rng: random.Random, cap_msat: int) -> tuple[int, int, int, int, int]:
    base = rng.choice(_BASE_FEE_CHOICES) if rng.random() < 0.85 else rng.randint(0, 1000)
    ppm = round(math.exp(rng.uniform(0.0, math.log(2000))))  # log-uniform 1..2000
    cltv = rng.choice(_CLTV_CHOICES)
    hmin = 1000
    if rng.random() < 0.3:
        hmax = max(hmin, (int(cap_msat * rng.uniform(0.3, 0.99)) // 1000) * 1000)
    else:
        hmax = cap_msat
    return base, max(1, min(ppm, 2000)), cltv, hmin, hmax


def builtin_network(seed: int = 1, n_nodes: int = 40) -> tuple[Graph, dict[NodeId, bytes]]:
    """The demo network: ``n_nodes`` nodes, a few hubs, realistic policies.

    Topology: preferential attachment (each new node opens 1-3 channels to
    existing nodes picked with probability proportional to degree + 1, so
    early nodes become hubs), plus about 8 % extra parallel channels between
    already connected pairs. Capacities are log-uniform in 0.5M..20M sat
    (rounded to 1000 sat); per direction the base fee is 0..1000 msat, the
    rate 1..2000 ppm, the CLTV delta 18..144, ``htlc_min`` 1 sat and
    ``htlc_max`` the capacity or (30 %) less. Same seed, same network.

    Returns:
        ``(graph, keys)``; ``graph.nodes[i]`` is node ``i``.

    Raises:
        barq.errors.InvalidParams: ``n_nodes < 2``.
    """
    if n_nodes < 2:
        raise InvalidParams(f"builtin_network needs at least 2 nodes, got {n_nodes}")
    rng = random.Random(f"barq-builtin-{seed}")
    ids_keys = [node_key(seed, i) for i in range(n_nodes)]
    degree = [0] * n_nodes
    pairs: list[tuple[int, int]] = []
    core = min(3, n_nodes)
    for i in range(core):
        for j in range(i + 1, core):
            pairs.append((i, j))
            degree[i] += 1
            degree[j] += 1
    for i in range(core, n_nodes):
        m = min(i, rng.choice((1, 2, 2, 3)))
        chosen: set[int] = set()
        while len(chosen) < m:
            weights = [0 if j in chosen else degree[j] + 1 for j in range(i)]
            chosen.add(rng.choices(range(i), weights=weights)[0])
        for j in sorted(chosen):
            pairs.append((j, i))
            degree[i] += 1
            degree[j] += 1
    n_parallel = max(1, len(pairs) * 8 // 100)
    pairs += [pairs[rng.randrange(len(pairs))] for _ in range(n_parallel)]

    chans: list[ChannelSpec] = []
    for k, (a, b) in enumerate(pairs):
        cap_sat = (
            round(math.exp(rng.uniform(math.log(500_000), math.log(20_000_000))) / 1000) * 1000
        )
        pol = (_policy(rng, cap_sat * SAT), _policy(rng, cap_sat * SAT))
        chans.append(
            ChannelSpec(
                a=a,
                b=b,
                capacity_sat=cap_sat,
                fee_base_msat=(pol[0][0], pol[1][0]),
                fee_ppm=(pol[0][1], pol[1][1]),
                cltv_delta=(pol[0][2], pol[1][2]),
                htlc_min_msat=(pol[0][3], pol[1][3]),
                htlc_max_msat=(pol[0][4], pol[1][4]),
                scid=f"{100 + k}x{rng.randint(1, 2000)}x{rng.randint(0, 3)}",
            )
        )
    graph, _ = network_from_channels(n_nodes, chans, seed=seed)
    return graph, {nid: priv for nid, priv in ids_keys}
