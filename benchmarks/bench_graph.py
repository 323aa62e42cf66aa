"""Benchmark the graph loaders on the mainnet snapshot (a script, not a test).

    python benchmarks/bench_graph.py [--path SNAPSHOT] [-n 7] [--no-store] [--no-pyln]

Each variant runs in a fresh subprocess so its resident-memory figures are its
own: ``rss`` is VmRSS with the loaded graph alive minus VmRSS before the first
load (after imports), ``peak`` the VmHWM increase over the same baseline.
Targets: ``load_compressed`` p50 <= 1 s and <= 250 MB resident.

Variants:

* ``compressed``: ``load_compressed(path, node_map=None)`` (synthetic ids);
* ``compressed+map``: with the real node ids of the sibling ``-node-map.xz``;
* ``gossip_store``: the same graph written as a gossip_store (59k channel
  announcements + amounts, one update per enabled direction, 44 MB), read by
  ``load_gossip_store``;
* ``pyln Gossmap``: that store read by ``pyln.client.gossmap.Gossmap`` alone
  (no conversion to a Graph), for the comparison the loader's docstring cites.

Snapshot: ``--path``, else ``$BARQ_GRAPH``, else ``<repo>/../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SNAPSHOT_NAME = "gossip-store-2024-09-22.compressed"


def _status(field: str) -> float:
    """A /proc/self/status field in MB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _find_snapshot(arg: str | None) -> Path | None:
    env = arg or os.environ.get("BARQ_GRAPH")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if p.is_dir():
        p = p / SNAPSHOT_NAME
    return p if p.is_file() else None


def _write_store(snapshot: Path, out: Path) -> None:
    """The snapshot (real ids) as a gossip_store, one update per enabled direction."""
    from barq.graph import load_compressed
    from barq.graph.store_writer import GossipStoreWriter

    g = load_compressed(snapshot)
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


def _worker(variant: str, path: str, runs: int) -> dict[str, Any]:
    """Runs in the subprocess: load ``runs`` times, report times, memory and counts."""
    import gc

    from barq.graph import load_compressed, load_gossip_store, summarize

    def load() -> Any:
        if variant == "compressed":
            return load_compressed(path, node_map=None)
        if variant == "compressed+map":
            return load_compressed(path)
        if variant == "gossip_store":
            return load_gossip_store(path)
        from pyln.client.gossmap import Gossmap

        return Gossmap(path)

    gc.collect()
    rss0 = _status("VmRSS")
    hwm0 = _status("VmHWM")
    times = []
    t = time.perf_counter()
    g = load()
    times.append(time.perf_counter() - t)
    gc.collect()
    rss = _status("VmRSS") - rss0
    peak = _status("VmHWM") - max(hwm0, rss0)
    for _ in range(runs - 1):
        del g
        gc.collect()
        t = time.perf_counter()
        g = load()
        times.append(time.perf_counter() - t)
    out: dict[str, Any] = {"variant": variant, "times": times, "rss_mb": rss, "peak_mb": peak}
    if variant != "pyln Gossmap":
        s = summarize(g)
        out.update(
            nodes=s.nodes,
            half_channels=s.half_channels,
            channels=s.channels,
            nodes_with_enabled=s.nodes_with_enabled,
            both_enabled=s.both_enabled,
            largest_scc=s.largest_scc,
            median_base=s.median_fee_base_msat,
            median_ppm=s.median_fee_ppm,
            median_cltv=s.median_cltv_delta,
            median_cap_sat=(s.median_capacity_msat or 0) / 1000,
        )
    else:
        out.update(channels=len(g.channels), nodes=len(g.nodes))
    return out


def _run(variant: str, path: Path, runs: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", variant, "--path", str(path), "-n", str(runs)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", help="GOSSMAP_COMPRESSv1 snapshot (default: shared data)")
    ap.add_argument("-n", type=int, default=7, help="loads per variant (default 7)")
    ap.add_argument("--no-store", action="store_true", help="skip the gossip_store variants")
    ap.add_argument("--no-pyln", action="store_true", help="skip pyln's Gossmap")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.path, args.n)))
        return 0
    snap = _find_snapshot(args.path)
    if snap is None:
        print(
            f"snapshot {SNAPSHOT_NAME} not found (--path, $BARQ_GRAPH or ../shared/data)",
            file=sys.stderr,
        )
        return 2
    results = [_run("compressed", snap, args.n), _run("compressed+map", snap, args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_store:
            store = Path(tmp) / "gossip_store"
            _write_store(snap, store)
            print(f"gossip_store written: {store.stat().st_size / 1e6:.1f} MB")
            results.append(_run("gossip_store", store, max(3, args.n // 2)))
            if not args.no_pyln:
                results.append(_run("pyln Gossmap", store, 1))

    print(f"\nsnapshot: {snap}")
    hdr = (
        f"{'variant':<16}{'runs':>5}{'p50 s':>8}{'min s':>8}{'max s':>8}{'rss MB':>8}{'peak MB':>9}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        t = r["times"]
        print(
            f"{r['variant']:<16}{len(t):>5}{statistics.median(t):>8.3f}{min(t):>8.3f}"
            f"{max(t):>8.3f}{r['rss_mb']:>8.1f}{r['peak_mb']:>9.1f}"
        )
    print("\ncounts (enabled half-channels):")
    cols = {
        "nodes": "nodes",
        "half_channels": "halves",
        "channels": "chans",
        "nodes_with_enabled": "nodes_en",
        "both_enabled": "both_en",
        "largest_scc": "scc",
        "median_base": "med_base",
        "median_ppm": "med_ppm",
        "median_cltv": "med_cltv",
        "median_cap_sat": "med_cap_sat",
    }
    print(f"{'variant':<16}" + "".join(f"{c:>12}" for c in cols.values()))
    for r in results:
        cells = (r.get(k, "-") for k in cols)
        print(
            f"{r['variant']:<16}"
            + "".join(f"{c:>12.10g}" if isinstance(c, float) else f"{c!s:>12}" for c in cells)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
