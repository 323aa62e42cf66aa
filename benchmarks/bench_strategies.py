"""Benchmark the built-in routing strategies on the mainnet snapshot (a script, not a test).

    python benchmarks/bench_strategies.py [--graph SNAPSHOT] [--pairs 50] [--seed 1]
                                          [--strategies dijkstra,mincostflow] [--maxparts 16]

Prints, per strategy and amount, the compute time of ``find_routes`` (p50 /
p95 / max, ms) and how many requests found routes (the rest raised
RouteNotFound / RouteTooExpensive). Knowledge is gossip only
(``RoutingContext.uninformed``: liquidity uniform in ``[0, capacity]``);
fee budget 1 % of the amount (at least 5,000 msat), ``maxparts`` 16.

Requests (seeded):

* ``100k sat`` (one part): source and destination drawn from the largest
  strongly connected component of the half-channels that can carry 100k sat
  (enabled, ``htlc_max`` and capacity >= the amount);
* ``0.1 BTC``: the same component, restricted to nodes with at least 10x the
  amount in channels out (source) and in (destination), so that the amount
  can usually flow at all.

The first call on a graph builds the cached per-graph topology (shown as
``warm-up``); it is not counted. Targets: one part <= 10 ms p50;
``mincostflow`` on 0.1 BTC <= 200 ms p50.

Snapshot: ``--graph``, else ``$BARQ_GRAPH``, else ``<repo>/../shared/data``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from barq.graph import Graph

SNAPSHOT_NAME = "gossip-store-2024-09-22.compressed"
PART_MSAT = 100_000_000  # 100k sat
BIG_MSAT = 10_000_000_000  # 0.1 BTC


def _find_snapshot(arg: str | None) -> Path | None:
    env = arg or os.environ.get("BARQ_GRAPH")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if p.is_dir():
        p = p / SNAPSHOT_NAME
    return p if p.is_file() else None


def _pairs(g: Graph, amount: int, k: int, seed: int, big: bool) -> list[tuple[int, int]]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    m = g.enabled & (g.htlc_max_msat >= PART_MSAT) & (g.capacity_msat >= PART_MSAT)
    n = g.num_nodes
    adj = csr_matrix((np.ones(int(m.sum())), (g.src[m], g.dst[m])), shape=(n, n))
    _, labels = connected_components(adj, directed=True, connection="strong")
    scc = np.flatnonzero(labels == np.argmax(np.bincount(labels)))
    sources = dests = scc
    if big:
        cap = g.capacity_msat[m]
        out_cap = np.bincount(g.src[m], weights=cap, minlength=n)
        in_cap = np.bincount(g.dst[m], weights=cap, minlength=n)
        sources = scc[out_cap[scc] >= 10 * amount]
        dests = scc[in_cap[scc] >= 10 * amount]
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    while len(out) < k:
        s, t = int(rng.choice(sources)), int(rng.choice(dests))
        if s != t:
            out.append((s, t))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", help="GOSSMAP_COMPRESSv1 snapshot (default ../shared/data)")
    ap.add_argument("--pairs", type=int, default=50, help="requests per strategy and amount")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--maxparts", type=int, default=16)
    ap.add_argument(
        "--strategies", default="direct,dijkstra,probabilistic,singlepath,presplit,mincostflow"
    )
    args = ap.parse_args(argv)

    path = _find_snapshot(args.graph)
    if path is None:
        print("mainnet snapshot not found: pass --graph or set BARQ_GRAPH", file=sys.stderr)
        return 2

    from barq.errors import RouteNotFound, RouteTooExpensive
    from barq.graph import load_compressed
    from barq.model import RouteInput
    from barq.routing import RoutingContext
    from barq.strategies import get_strategy

    t0 = time.perf_counter()
    g = load_compressed(path)
    print(f"{g} loaded from {path.name} in {time.perf_counter() - t0:.2f} s")
    ctx = RoutingContext.uninformed(g)
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    workloads = {
        "100k sat": (PART_MSAT, _pairs(g, PART_MSAT, args.pairs, args.seed, big=False)),
        "0.1 BTC": (BIG_MSAT, _pairs(g, BIG_MSAT, args.pairs, args.seed + 1, big=True)),
    }

    # warm-up: builds the per-graph topology cache once
    s, t = workloads["100k sat"][1][0]
    t0 = time.perf_counter()
    with contextlib.suppress(RouteNotFound, RouteTooExpensive):
        get_strategy("dijkstra").find_routes(
            RouteInput(source=g.nodes[s], destination=g.nodes[t], amount_msat=PART_MSAT), ctx
        )
    print(f"warm-up (topology cache + first search): {1e3 * (time.perf_counter() - t0):.1f} ms")

    header = (
        f"{'strategy':<14}{'amount':>10}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        f"{'found':>8}{'205':>6}{'206':>6}{'parts':>7}{'fee ppm':>9}{'P(all)':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        strategy = get_strategy(name)
        for label, (amount, pairs) in workloads.items():
            times: list[float] = []
            found = nf = te = 0
            parts: list[int] = []
            fees: list[float] = []
            probs: list[float] = []
            for s, t in pairs:
                request = RouteInput(
                    source=g.nodes[s],
                    destination=g.nodes[t],
                    amount_msat=amount,
                    maxfee_msat=max(5000, amount // 100),
                    maxparts=args.maxparts,
                )
                t0 = time.perf_counter()
                try:
                    routes = strategy.find_routes(request, ctx)
                except RouteNotFound:
                    nf += 1
                    routes = []
                except RouteTooExpensive:
                    te += 1
                    routes = []
                times.append(time.perf_counter() - t0)
                if routes:
                    found += 1
                    parts.append(len(routes))
                    fees.append(1e6 * sum(r.fee_msat for r in routes) / amount)
                    probs.append(float(np.prod([r.probability or 0.0 for r in routes])))
            ms = 1e3 * np.asarray(times)

            def med(xs: list[float] | list[int], fmt: str) -> str:
                return format(float(np.median(xs)), fmt) if xs else "-"

            print(
                f"{name:<14}{label:>10}{np.percentile(ms, 50):>9.1f}"
                f"{np.percentile(ms, 95):>9.1f}{ms.max():>9.1f}{found:>8}{nf:>6}{te:>6}"
                f"{med(parts, '.0f'):>7}{med(fees, '.1f'):>9}{med(probs, '.3f'):>8}"
            )
    print(
        "parts / fee ppm / P(all): medians over the requests that found routes; P(all) is "
        "the product of the routes' probabilities (uniform model, gossip only)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
