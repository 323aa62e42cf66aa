"""Per-request overhead of the router and estimator on the mainnet graph (a script, not a test).

    python benchmarks/bench_router.py [--path SNAPSHOT] [-n 30] [--learnt 1000,10000]

What a ``FindRoutes`` costs *besides* the strategy, in milliseconds (p50 / p90):

* ``snapshot``: ``LiquidityKnowledge.snapshot()`` with N learnt half-channels
  (decay applied to each), 50 parts in flight;
* ``context``: ``RouterBook.context()`` turning that snapshot, 50 reserved
  3-hop routes, 100 disabled channels and 20 disabled nodes into a
  :class:`RoutingContext` over every half-channel;
* ``round trip``: one ``FindRoutes`` through the live router + estimator actors
  (trio, strategy replaced by a no-op that returns a fixed route), reply and
  release included;
* ``hints (first/cached)``: the invoice route-hint overlay, built then reused.

Snapshot: ``--path``, else ``$BARQ_GRAPH``, else ``<repo>/../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SNAPSHOT_NAME = "gossip-store-2024-09-22.compressed"


def _snapshot_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("BARQ_GRAPH")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / SNAPSHOT_NAME


def _ms(f: Callable[[], Any], n: int) -> tuple[float, float]:
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return statistics.median(xs), xs[int(0.9 * (len(xs) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path")
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--learnt", default="1000,10000")
    args = ap.parse_args()
    path = _snapshot_path(args.path)
    if not path.exists():
        print(f"snapshot not found: {path} (set --path or BARQ_GRAPH)", file=sys.stderr)
        return 2

    import trio

    from barq.actors._mailbox import ask
    from barq.actors.estimator import LiquidityKnowledge, liquidity_estimator
    from barq.actors.messages import FindRoutes, KnowledgeSnapshot, PartOutcome, ReleaseRoute
    from barq.actors.router import RouterBook, router
    from barq.graph.compressed import load_compressed
    from barq.model import Hop, Route, RouteHintHop, RouteInput, scid_dir
    from barq.model.payment import EngineConfig, PartState
    from barq.strategies import register_strategy
    from barq.testing import ScriptedNode, local_channels

    t = time.perf_counter()
    g = load_compressed(path, node_map=None)
    print(f"graph: {g} loaded in {time.perf_counter() - t:.2f} s")
    rng = random.Random(1)
    our = int(np.bincount(g.src).argmax())
    us = g.nodes[our]
    chans = local_channels(g, us, spendable_msat=lambda c: c // 2)
    t = time.perf_counter()
    book = RouterBook(our_id=us, gossip=g, channels=chans)
    base = book.graph
    base.edge(base.scid[0], int(base.direction[0]))  # build the row index once
    print(
        f"router book (our {len(chans)} channels overlaid, row index built): "
        f"{(time.perf_counter() - t) * 1000:.0f} ms"
    )

    rows = list(range(base.num_edges))
    out = [e for e in rows if int(base.src[e]) == base.node_index[us]]
    clock = [1.7e9]

    def route3() -> Route:
        e1 = rng.choice(out)
        e2, e3 = rng.sample(rows, 2)
        hops = [(e1, 3000), (e2, 2000), (e3, 1000)]
        return Route(
            hops=tuple(
                Hop(
                    id=base.nodes[int(base.dst[e])],
                    channel=base.scid[e],
                    direction=int(base.direction[e]),
                    amount_msat=a,
                    delay=18,
                )
                for e, a in hops
            )
        )

    for _ in range(50):
        book.reserve("bench", base, route3())
    print()
    print(f"{'learnt':>8} {'snapshot p50/p90 ms':>22} {'context p50/p90 ms':>22}")
    for n_learnt in (int(x) for x in args.learnt.split(",")):
        k = LiquidityKnowledge(half_life_s=3600.0, clock=lambda: clock[0])
        for e in rng.sample(rows, n_learnt):
            cap = int(base.capacity_msat[e])
            k.load(
                [
                    _entry(
                        scid_dir(base.scid[e], int(base.direction[e])),
                        cap,
                        rng,
                        clock[0] - rng.uniform(0, 7200),
                    )
                ]
            )
        for _ in range(50):
            k.part_sent(route3(), (10**9, 10**9, 10**9))
        for e in rng.sample(rows, 100):
            k.disable_channel(scid_dir(base.scid[e], int(base.direction[e])), clock[0] + 60)
        for n in rng.sample(base.nodes, 20):
            k.disable_node(n, clock[0] + 60)
        snap = k.snapshot()
        s50, s90 = _ms(k.snapshot, args.n)
        c50, c90 = _ms(lambda s=snap: book.context(base, s, base.nodes[0]), args.n)
        print(f"{len(snap.channels):>8} {s50:>10.2f} / {s90:<9.2f} {c50:>10.2f} / {c90:<9.2f}")

    dest = base.nodes[int(base.dst[out[0]])]
    hints = (
        (RouteHintHop(node_id=dest, scid="999999x1x1", fee_base_msat=1, fee_ppm=1, cltv_delta=40),),
    )
    t = time.perf_counter()
    hg = book.payment_graph("02" + "ab" * 32, hints)
    hg.edge(hg.scid[0], int(hg.direction[0]))
    first = (time.perf_counter() - t) * 1000
    h50, _ = _ms(lambda: book.payment_graph("02" + "ab" * 32, hints), args.n)
    print(f"\nhints overlay: first {first:.0f} ms (row index included), cached {h50:.3f} ms")

    fixed = route3()

    class Noop:
        name = "bench-noop"
        description = "returns a fixed route"
        splits = False
        min_part_msat = None
        halve_on_failure = False

        def find_routes(self, request: RouteInput, ctx: Any) -> list[Route]:
            return [fixed]

    register_strategy("bench-noop", Noop)
    node = ScriptedNode(graph=g, our_id=us, channels=chans)
    times: list[float] = []

    async def actors() -> None:
        import anyio

        est_tx, est_rx = anyio.create_memory_object_stream[Any](16)
        rt_tx, rt_rx = anyio.create_memory_object_stream[Any](16)
        k = LiquidityKnowledge(half_life_s=3600.0, clock=time.time)
        for e in rng.sample(rows, 10_000):
            cap = int(base.capacity_msat[e])
            k.load(
                [_entry(scid_dir(base.scid[e], int(base.direction[e])), cap, rng, time.time() - 60)]
            )
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: liquidity_estimator(
                    inbox=est_rx, knowledge=k, task_status=task_status
                )
            )
            await tg.start(
                lambda task_status: router(
                    inbox=rt_rx,
                    estimator=est_tx.clone(),
                    node=node,
                    config=EngineConfig(strategies_in_thread=False),
                    task_status=task_status,
                )
            )
            req = RouteInput(source=us, destination=dest, amount_msat=1000)
            for _ in range(args.n + 3):
                t0 = time.perf_counter()
                ans = await ask(
                    rt_tx,
                    lambda r: FindRoutes(
                        payment_hash="b", strategy="bench-noop", request=req, reply=r
                    ),
                )
                await rt_tx.send(
                    ReleaseRoute(
                        reservation=ans.routes[0].reservation,
                        outcome=PartOutcome(state=PartState.FAILED, sent=False),
                    )
                )
                times.append((time.perf_counter() - t0) * 1000)
            rt_tx.close()
            est_tx.close()

    trio.run(actors)
    xs = sorted(times[3:])
    print(
        f"round trip FindRoutes (10k learnt, no-op strategy): p50 {statistics.median(xs):.2f}"
        f" ms, p90 {xs[int(0.9 * (len(xs) - 1))]:.2f} ms"
    )
    _ = KnowledgeSnapshot
    return 0


def _entry(sd: str, cap: int, rng: random.Random, at: float) -> Any:
    from barq.actors.messages import ChannelKnowledge

    lo = rng.randint(0, cap // 2)
    hi = rng.randint(lo, cap)
    return ChannelKnowledge(scid_dir=sd, lo_msat=lo, hi_msat=hi, updated_at=at, capacity_msat=cap)


if __name__ == "__main__":
    sys.exit(main())
