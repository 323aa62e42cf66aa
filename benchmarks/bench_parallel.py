"""The same ``barq bench`` run three ways: one process, every core, a local dask cluster.

Prints the wall time of each (worker start-up included), the speed-up over one
process, and checks that the three gave the same records (all but the
wall-clock ``compute_s``). ``nox -s speedup`` runs it on the mainnet snapshot::

    python benchmarks/bench_parallel.py --graph ../shared/data/gossip-store-2024-09-22.compressed

A benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from barq.bench.metrics import PaymentRecord
from barq.bench.runner import BenchConfig, run_bench
from barq.graph import load_graph


def _strip(records: Sequence[PaymentRecord]) -> list[PaymentRecord]:
    return [msgspec.structs.replace(r, compute_s=0.0) for r in records]


def _timed(fn: Callable[[], list[PaymentRecord]]) -> tuple[list[PaymentRecord], float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", type=Path, required=True)
    p.add_argument("--strategies", default="mincostflow,dijkstra")
    p.add_argument("--amounts-sat", default="10000,1000000")
    p.add_argument("--payments", type=int, default=8)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args(argv)
    graph = load_graph(a.graph)
    cfg = BenchConfig(
        strategies=tuple(a.strategies.split(",")),
        amounts_msat=tuple(int(x) * 1000 for x in a.amounts_sat.split(",")),
        payments=a.payments,
        seed=a.seed,
        feasible_only=True,
    )
    n = a.payments * len(cfg.amounts_msat) * len(cfg.strategies)
    print(f"{a.graph.name}: {graph.num_nodes:,} nodes; {n} payments (feasible only), seed {a.seed}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    serial, t1 = _timed(lambda: run_bench(graph, cfg, jobs=1))
    many, tn = _timed(lambda: run_bench(graph, cfg, jobs=a.jobs))
    results = [("--jobs 1", t1, serial), (f"--jobs {a.jobs}", tn, many)]
    try:
        from distributed import LocalCluster
    except ImportError:
        print("dask: not installed (pip install 'barq[dask]'), skipped")
    else:
        t0 = time.perf_counter()
        with LocalCluster(
            n_workers=a.jobs, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            started = time.perf_counter() - t0
            on_dask, td = _timed(lambda: run_bench(graph, cfg, dask=cluster.scheduler_address))
        results.append((f"--dask ({a.jobs} local workers)", td, on_dask))
        print(f"(LocalCluster start-up, not counted: {started:.1f} s)")
    print(f"{'how':<28} {'wall s':>8} {'speed-up':>9}  same records as --jobs 1")
    same_everywhere = True
    for how, t, recs in results:
        same = _strip(recs) == _strip(serial)
        same_everywhere &= same
        print(f"{how:<28} {t:8.1f} {t1 / t:8.2f}x  {'yes' if same else 'NO'}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0 if same_everywhere else 1


if __name__ == "__main__":
    sys.exit(main())
