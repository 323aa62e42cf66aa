"""Benchmark the per-payment graph refresh on the mainnet snapshot (a script, not a test).

    python benchmarks/bench_refresh.py [--path SNAPSHOT] [--records 1000] [-n 15]

Before every payment the router reads our channels and the gossip appended
since the last payment (issue 12 item 1). This measures what that costs on a
mainnet-sized ``gossip_store`` (the snapshot written as a store, 44 MB):

* ``unchanged``: :meth:`GossipStoreReader.graph` when nothing was appended
  (one ``stat``; target < 5 ms);
* ``+N records``: N records appended (channel_updates of known channels with
  new fees, plus new channels: announcement, amount, two updates), then one
  refresh (target < 50 ms for 1,000);
* ``router +N``: the same refresh plus what the router rebuilds on a changed
  gossip graph (our channels overlaid, :meth:`RouterBook.set_gossip`, a
  routing context);
* ``full load``: ``load_gossip_store`` of the whole store, for comparison.

Each row is the median (and max) wall time of ``-n`` runs, and the median CPU time of
the refreshing thread (the machine may be shared: CPU time is what the refresh costs).
Snapshot: ``--path``, else ``$BARQ_GRAPH``, else ``<repo>/../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from barq.actors._router_book import RouterBook
from barq.actors.messages import KnowledgeSnapshot
from barq.graph import Graph, load_compressed, load_gossip_store
from barq.graph.gossip_reader import GossipStoreReader
from barq.graph.store_writer import GossipStoreWriter
from barq.model import Scid
from barq.testing import local_channels

SNAPSHOT_NAME = "gossip-store-2024-09-22.compressed"


def _find_snapshot(arg: str | None) -> Path | None:
    env = arg or os.environ.get("BARQ_GRAPH")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if p.is_dir():
        p = p / SNAPSHOT_NAME
    return p if p.is_file() else None


def _write_store(g: Graph, out: Path) -> None:
    """``g`` as a gossip_store: every channel, one update per enabled direction."""
    w = GossipStoreWriter(checksums=False)
    w.add_uuid()
    seen: set[str] = set()
    for e in range(g.num_edges):
        h = g.half_channel(e)
        if h.scid not in seen:
            seen.add(h.scid)
            w.add_channel(h.scid, h.source, h.destination, capacity_sat=h.capacity_msat // 1000)
        if h.enabled:
            w.add_update(
                h.scid,
                h.direction,
                fee_base_msat=h.fee_base_msat,
                fee_ppm=h.fee_ppm,
                cltv_delta=h.cltv_delta,
                htlc_min_msat=h.htlc_min_msat,
                htlc_max_msat=h.htlc_max_msat,
            )
    out.write_bytes(w.getvalue())


def _append(g: Graph, out: Path, records: int, rng: random.Random, tag: int) -> None:
    """Append ``records`` records: ~90 % updates of known channels, the rest new channels."""
    w = GossipStoreWriter(checksums=False)
    new_channels = records // 40  # 4 records each: ~10 % of the records
    for k in range(new_channels):
        a, b = rng.sample(g.nodes, 2)
        scid = Scid(f"{900_000 + tag}x{k}x0")
        w.add_channel(scid, a, b, capacity_sat=rng.randrange(100_000, 10**7))
        w.add_update(scid, 0, timestamp=tag)
        w.add_update(scid, 1, timestamp=tag)
    for _ in range(records - 4 * new_channels):
        h = g.half_channel(rng.randrange(g.num_edges))
        w.add_update(
            h.scid,
            h.direction,
            fee_base_msat=rng.randrange(2000),
            fee_ppm=rng.randrange(2000),
            cltv_delta=h.cltv_delta,
            htlc_min_msat=h.htlc_min_msat,
            htlc_max_msat=h.htlc_max_msat,
            timestamp=tag,
        )
    with out.open("ab") as f:
        f.write(w.getvalue()[1:])  # without the version byte: appended records only


def _ms(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    """p50 and max wall time, p50 CPU time of this thread (ms): the machine may be shared."""
    wall = [w for w, _ in samples]
    cpu = [c for _, c in samples]
    return statistics.median(wall) * 1e3, max(wall) * 1e3, statistics.median(cpu) * 1e3


class _Timer:
    """Wall and thread CPU time since the last :meth:`lap` (or creation)."""

    def __init__(self) -> None:
        self._w, self._c = time.perf_counter(), time.thread_time()

    def lap(self) -> tuple[float, float]:
        w, c = time.perf_counter(), time.thread_time()
        out = (w - self._w, c - self._c)
        self._w, self._c = w, c
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", help="the mainnet snapshot (GOSSMAP_COMPRESSv1)")
    ap.add_argument("--records", type=int, default=1000, help="records appended per refresh")
    ap.add_argument("-n", type=int, default=15, help="runs per row")
    args = ap.parse_args()
    snapshot = _find_snapshot(args.path)
    if snapshot is None:
        print("mainnet snapshot not found (give --path or set BARQ_GRAPH)", file=sys.stderr)
        return 2
    base = load_compressed(snapshot)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "gossip_store"
        _write_store(base, store)
        size_mb = store.stat().st_size / 1e6
        full: list[tuple[float, float]] = []
        for _ in range(max(3, args.n // 5)):
            t = _Timer()
            load_gossip_store(store)
            full.append(t.lap())
        reader = GossipStoreReader(store)
        g = reader.graph()
        our = g.nodes[int(g.src[rng.randrange(g.num_edges)])]
        book = RouterBook(our_id=our, gossip=g, channels=local_channels(g, our))
        book.context(book.graph, KnowledgeSnapshot(taken_at=0.0))
        unchanged: list[tuple[float, float]] = []
        for _ in range(args.n * 10):
            t = _Timer()
            same = reader.graph()
            unchanged.append(t.lap())
            assert same is g
        delta: list[tuple[float, float]] = []
        routed: list[tuple[float, float]] = []
        for i in range(args.n):
            _append(g, store, args.records, rng, i + 1)
            t = _Timer()
            g = reader.graph()
            read = t.lap()
            book.set_gossip(g)
            book.context(book.graph, KnowledgeSnapshot(taken_at=0.0))
            rebuild = t.lap()
            assert not reader.last.full and reader.last.records > 0
            delta.append(read)
            routed.append((read[0] + rebuild[0], read[1] + rebuild[1]))
    rows = [
        ("unchanged (stat only)", *_ms(unchanged), "< 5"),
        (f"+{args.records} records", *_ms(delta), "< 50" if args.records <= 1000 else ""),
        (f"router +{args.records} records", *_ms(routed), ""),
        ("full load (for comparison)", *_ms(full), ""),
    ]
    print(
        f"gossip_store {size_mb:.1f} MB, {base.num_edges} half-channels, "
        f"{base.num_nodes} nodes; {args.n} runs per row"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'refresh':<30}{'p50 ms':>10}{'max ms':>10}{'cpu p50 ms':>12}{'target ms':>11}")
    for name, p50, mx, cpu, target in rows:
        print(f"{name:<30}{p50:>10.3f}{mx:>10.3f}{cpu:>12.3f}{target:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
