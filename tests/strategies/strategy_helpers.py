"""Helpers shared by the strategy tests (imported as ``strategy_helpers``)."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from barq.graph import Graph
from barq.model import HalfChannel, NodeId, Route, RouteInput
from barq.routing import RoutingContext, build_route

SAT = 1000
SNAPSHOT_NAME = "gossip-store-2024-09-22.compressed"


def node_id(i: int) -> NodeId:
    """A real-looking 66-hex node id; ``node_id(i) < node_id(j)`` iff ``i < j``."""
    return "02" + f"{i:04x}" + hashlib.sha256(f"node{i}".encode()).hexdigest()[:60]


N = [node_id(i) for i in range(64)]


class Net:
    """Builds small graphs channel by channel; nodes are ``N[i]``."""

    def __init__(self) -> None:
        self.halves: list[HalfChannel] = []
        self._k = 0

    def channel(
        self,
        a: int,
        b: int,
        cap_sat: int,
        *,
        base: int = 0,
        ppm: int = 0,
        cltv: int = 40,
        htlc_min: int = 1,
        htlc_max: int | None = None,
        enabled: bool = True,
        back: dict[str, Any] | None = None,
    ) -> str:
        """Channel ``a``-``b``; the policy is ``a``'s (toward ``b``); ``back`` overrides
        fields for the ``b -> a`` direction. Returns the scid."""
        self._k += 1
        scid = f"{100 + self._k}x1x0"
        cap = cap_sat * SAT
        fwd = {
            "fee_base_msat": base,
            "fee_ppm": ppm,
            "cltv_delta": cltv,
            "htlc_min_msat": htlc_min,
            "htlc_max_msat": cap if htlc_max is None else htlc_max,
            "enabled": enabled,
        }
        rev = {**fwd, **(back or {})}
        for s, d, pol in ((a, b, fwd), (b, a, rev)):
            self.halves.append(
                HalfChannel(
                    scid=scid,
                    direction=0 if N[s] < N[d] else 1,
                    source=N[s],
                    destination=N[d],
                    capacity_msat=cap,
                    **pol,
                )
            )
        return scid

    def graph(self) -> Graph:
        return Graph.from_half_channels(self.halves)


def sd(g: Graph, scid: str, a: int) -> str:
    """``scid/dir`` of the direction of ``scid`` leaving node ``N[a]``."""
    for d in (0, 1):
        e = g.edge(scid, d)
        if e is not None and g.nodes[int(g.src[e])] == N[a]:
            return g.scid_dir(e)
    raise KeyError((scid, a))


def row(g: Graph, scid: str, a: int) -> int:
    e = g.edge_by_scid_dir(sd(g, scid, a))
    assert e is not None
    return e


def with_liquidity(
    ctx: RoutingContext, g: Graph, known: dict[tuple[str, int], tuple[int, int]]
) -> RoutingContext:
    """``ctx`` with ``[min, max]`` msat set for ``(scid, from_node)`` directions."""
    lo = ctx.min_msat.copy()
    hi = ctx.max_msat.copy()
    for (scid, a), (mn, mx) in known.items():
        e = row(g, scid, a)
        lo[e], hi[e] = mn, mx
    return RoutingContext(
        graph=g, min_msat=lo, max_msat=hi, usable=ctx.usable, inflight_msat=ctx.inflight_msat
    )


def req(src: int, dst: int, amount_msat: int, **kw: Any) -> RouteInput:
    return RouteInput(source=N[src], destination=N[dst], amount_msat=amount_msat, **kw)


def route_edges(g: Graph, route: Route) -> list[int]:
    out = []
    for h in route.hops:
        e = g.edge(h.channel, h.direction)
        assert e is not None, f"route uses unknown channel {h.channel}/{h.direction}"
        out.append(e)
    return out


def check_contract(request: RouteInput, ctx: RoutingContext, routes: list[Route]) -> None:
    """Assert every clause of :meth:`Strategy.find_routes`'s contract."""
    g = ctx.graph
    assert routes, "no routes returned"
    assert len(routes) <= request.maxparts, f"{len(routes)} routes > maxparts"
    assert sum(r.amount_msat for r in routes) == request.amount_msat, "amounts do not add up"
    assert sum(r.fee_msat for r in routes) <= request.maxfee_msat, "fee budget exceeded"
    total: dict[int, int] = defaultdict(int)
    for r in routes:
        r.check()
        assert r.amount_msat > 0
        assert r.delay <= request.maxdelay, f"delay {r.delay} > {request.maxdelay}"
        assert r.destination == request.destination
        edges = route_edges(g, r)
        # consecutive, starting at the source
        at = request.source
        for h, e in zip(r.hops, edges, strict=True):
            assert g.nodes[int(g.src[e])] == at, "hops are not consecutive"
            assert g.nodes[int(g.dst[e])] == h.id
            at = h.id
        # exactly what build_route computes (fees and delays as nodes check them)
        rebuilt = build_route(g, edges, r.amount_msat, request.final_cltv)
        assert rebuilt.hops == r.hops, "hop amounts/delays differ from build_route"
        for h, e in zip(r.hops, edges, strict=True):
            assert bool(ctx.usable[e]) and bool(g.enabled[e]), f"unusable {g.scid_dir(e)}"
            assert g.scid_dir(e) not in request.exclude_channels, "excluded channel used"
            assert g.nodes[int(g.src[e])] not in request.exclude_nodes - {request.source}
            assert g.nodes[int(g.dst[e])] not in request.exclude_nodes
            assert int(g.htlc_min_msat[e]) <= h.amount_msat <= int(g.htlc_max_msat[e]), (
                f"htlc limits broken on {g.scid_dir(e)}"
            )
            total[e] += h.amount_msat
        if r.probability is not None:
            assert 0.0 <= r.probability <= 1.0
    for e, a in total.items():
        assert a <= int(ctx.max_msat[e]), f"{g.scid_dir(e)} carries {a} > max {ctx.max_msat[e]}"


def snapshot_path() -> Path | None:
    """``$BARQ_GRAPH`` (file or directory) or ``<repo>/../shared/data``; None when absent."""
    env = os.environ.get("BARQ_GRAPH")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if p.is_dir():
        p = p / SNAPSHOT_NAME
    return p if p.is_file() else None


def uninformed(g: Graph) -> RoutingContext:
    return RoutingContext.uninformed(g)


def zeros(g: Graph) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.zeros(g.num_edges, dtype=np.int64)
