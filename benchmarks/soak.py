"""Soak benchmark: many payments in a row, memory and open descriptors at the start and the end.

Run::

    python benchmarks/soak.py [--sim N] [--regtest N] [--json OUT]
    nox -s soak -- --sim 1000 --regtest 200

Two runs (issue 17 item 7: "bound every in-memory cache and history"):

* **sim**: N payments one after the other through the engine (``open_runtime``)
  on the built-in simulated network, with a Barq database as its journal, as
  the plugin runs it; simulated time (trio's ``MockClock``). The figures are
  this process's. The simulated network keeps a record of every invoice and
  part it saw (like lightningd's own database), so some growth is the
  simulator's, not the engine's.
* **regtest**: N ``barqpay`` calls one after the other from a real lightningd
  (two nodes, one channel) to the other node; the figures are the Barq plugin
  process's (``/proc/<pid>``). Skipped with one line when lightningd/bitcoind
  are not found (binaries as ``benchmarks/regtest_bench.py`` finds them).

"start" is taken after a few warm-up payments (imports, caches and the graph
loaded), "end" after the last payment; both after a garbage collection in
the sim run. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARMUP = 20


def proc_figures(pid: int | str = "self") -> dict[str, int]:
    """RSS (KiB) and the number of open file descriptors of process ``pid``."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


# --------------------------------------------------------------------------- sim


def soak_sim(n: int) -> dict[str, Any]:
    """``n`` payments through the engine on the simulated network (see the module doc)."""
    import trio
    import trio.testing

    from barq.actors import open_runtime
    from barq.errors import BarqError
    from barq.graph.synthetic import builtin_network
    from barq.model.payment import EngineConfig, PayParams
    from barq.sim import SimulatedNetwork
    from barq.store import open_store

    graph, keys = builtin_network(1)
    cfg = EngineConfig(strategies_in_thread=False)
    out: dict[str, Any] = {"payments": n, "complete": 0, "failed": 0}

    async def main(db: Path) -> None:
        with open_store(db) as store:
            async with (
                SimulatedNetwork.open(graph, seed=1, keys=keys) as net,
                open_runtime(net.node(graph.nodes[0]), cfg, clock=net.now, journal=store) as rt,
            ):
                for i in range(n):
                    if i == min(WARMUP, n - 1):
                        gc.collect()
                        out["start"] = proc_figures()
                    payee = graph.nodes[1 + i % (graph.num_nodes - 1)]
                    amount = 1_000_000 * (1 + i % 20)
                    try:
                        await rt.pay(PayParams(invstring=net.create_invoice(payee, amount)))
                        out["complete"] += 1
                    except BarqError:
                        out["failed"] += 1
                gc.collect()
                out["end"] = proc_figures()
                out["in_memory_views"] = len(rt.status())
                out["stored_payments"] = len(store.get_payments())

    with tempfile.TemporaryDirectory(prefix="barq-soak-") as d:
        t0 = time.perf_counter()
        trio.run(main, Path(d) / "barq.sqlite3", clock=trio.testing.MockClock(autojump_threshold=0))
        out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


# --------------------------------------------------------------------------- regtest


def plugin_pid(lightningd_pid: int) -> int:
    """The Barq plugin: the child of ``lightningd_pid`` whose command line names barq-plugin."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == lightningd_pid and b"barq-plugin" in cmdline:
            return int(entry)
    raise RuntimeError(f"no barq-plugin child of lightningd {lightningd_pid}")


def soak_regtest(n: int, verbose: bool) -> dict[str, Any]:
    """``n`` barqpay calls in a row on a two-node regtest network (see the module doc)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from regtest_bench import MISSING, PLUGIN, Harness

    if MISSING:
        return {"skipped": f"{', '.join(MISSING)} not found on PATH (see BARQ_REGTEST_PATH)"}
    out: dict[str, Any] = {"payments": n, "complete": 0, "failed": 0}
    with tempfile.TemporaryDirectory(prefix="barq-soak-") as d:
        harness = Harness(Path(d), verbose)
        try:
            nf = harness.factory("soak")
            l1, l2 = nf.line_graph(
                2, opts=[{"plugin": PLUGIN}, {}], fundamount=10**7, wait_for_announce=True
            )
            pid = plugin_pid(l1.daemon.proc.pid)
            t0 = time.perf_counter()
            for i in range(n):
                if i == min(WARMUP, n - 1):
                    out["start"] = proc_figures(pid)
                amount = 1_000_000 * (1 + i % 20)
                bolt11 = l2.rpc.invoice(amount, f"soak{i}", "soak", exposeprivatechannels=[])
                try:
                    l1.rpc.call("barqpay", {"invstring": bolt11["bolt11"]})
                    out["complete"] += 1
                except Exception as exc:  # an RpcError: counted, the soak goes on
                    out["failed"] += 1
                    harness.log(f"payment {i} failed: {exc}")
            out["end"] = proc_figures(pid)
            out["payments_per_s"] = round(n / (time.perf_counter() - t0), 1)
            status = l1.rpc.call("barqstatus")
            out["barqstatus_payments"] = len(status["payments"])
        finally:
            harness.close()
    return out


# --------------------------------------------------------------------------- main


def render(name: str, r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{name}: skipped: {r['skipped']}"
    s, e = r.get("start", {}), r.get("end", {})
    return (
        f"{name}: {r['payments']} payments ({r['complete']} complete, {r['failed']} failed); "
        f"RSS {s.get('rss_kib', 0) / 1024:.1f} -> {e.get('rss_kib', 0) / 1024:.1f} MiB, "
        f"open fds {s.get('fds')} -> {e.get('fds')}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim", type=int, default=1000, help="simulated payments (0: skip)")
    ap.add_argument("--regtest", type=int, default=200, help="regtest payments (0: skip)")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the new database's warning is expected
    results: dict[str, Any] = {}
    if args.sim:
        results["sim"] = soak_sim(args.sim)
        print(render("sim (this process)", results["sim"]), flush=True)
    if args.regtest:
        results["regtest"] = soak_regtest(args.regtest, args.verbose)
        print(render("regtest (barq-plugin)", results["regtest"]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
