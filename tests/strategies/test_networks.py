"""Every strategy on the synthetic demo network and (when present) the mainnet snapshot."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_helpers import check_contract, snapshot_path

from barq.errors import RouteNotFound, RouteTooExpensive
from barq.graph import Graph
from barq.model import RouteInput
from barq.routing import RoutingContext
from barq.strategies import get_strategy

NAMES = ["direct", "dijkstra", "probabilistic", "singlepath", "presplit", "mincostflow"]


def _pairs(g: Graph, k: int, seed: int) -> list[tuple[int, int]]:
    from barq.graph import largest_scc

    scc = largest_scc(g)
    rng = np.random.default_rng(seed)
    return [tuple(int(x) for x in rng.choice(scc, 2, replace=False)) for _ in range(k)]  # type: ignore[misc]


def _run(
    g: Graph, ctx: RoutingContext, pairs: list[tuple[int, int]], amount: int, name: str
) -> int:
    ok = 0
    strategy = get_strategy(name)
    for s, t in pairs:
        request = RouteInput(
            source=g.nodes[s],
            destination=g.nodes[t],
            amount_msat=amount,
            maxfee_msat=max(5000, amount // 100),
            maxparts=16,
        )
        try:
            routes = strategy.find_routes(request, ctx)
        except (RouteNotFound, RouteTooExpensive):
            continue
        check_contract(request, ctx, routes)
        ok += 1
    return ok


@pytest.mark.parametrize("name", NAMES)
def test_builtin_network(name: str) -> None:
    synthetic = pytest.importorskip("barq.graph.synthetic")
    g, _ = synthetic.builtin_network(seed=1, n_nodes=40)
    ctx = RoutingContext.uninformed(g)
    pairs = _pairs(g, 12, seed=7)
    ok = sum(_run(g, ctx, pairs, amount, name) for amount in (50_000_000, 500_000_000))
    if name != "direct":  # direct needs a channel with the destination
        assert ok >= 20, f"{name} found routes for only {ok} of 24 requests"


@pytest.fixture(scope="module")
def mainnet() -> Graph:
    p = snapshot_path()
    if p is None:
        pytest.skip("mainnet snapshot not found (../shared/data or $BARQ_GRAPH)")
    from barq.graph import load_compressed

    return load_compressed(p)


@pytest.mark.parametrize(
    "name", ["dijkstra", "probabilistic", "presplit", "mincostflow", "cheapflow"]
)
def test_mainnet_smoke(mainnet: Graph, name: str) -> None:
    ctx = RoutingContext.uninformed(mainnet)
    ok = _run(mainnet, ctx, _pairs(mainnet, 4, seed=3), 10_000_000, name)
    assert ok >= 2, f"{name}: only {ok} of 4 mainnet requests of 10k sat found routes"
