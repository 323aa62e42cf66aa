"""The ``barq`` subcommands: each checks its input, then works, then prints."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from barq.cli._checks import check_bench, check_graph, check_sim
from barq.cli._lab import LAB_COMMANDS
from barq.errors import BarqError
from barq.graph import Graph
from barq.model import NodeId

__all__ = ["BUILTIN_SEED", "COMMANDS", "default_jobs"]

BUILTIN_SEED = 1  # the embedded default network is always builtin_network(1)
#: without a terminal, a progress line on stderr this often (wall seconds)
HEARTBEAT_S = 30.0


def default_jobs() -> int:
    """All cores this process may use (``--jobs`` default)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _load(path: Path | None) -> tuple[Graph, dict[NodeId, bytes], str, float]:
    """``(graph, keys, label, load seconds)`` for ``--graph`` (or the built-in network)."""
    t0 = time.perf_counter()
    if path is None:
        from barq.graph.synthetic import builtin_network

        graph, keys = builtin_network(BUILTIN_SEED)
        label = "built-in network"
    else:
        from barq.graph import load_graph

        graph, keys, label = load_graph(path), {}, str(path)
    return graph, keys, label, time.perf_counter() - t0


# -- sim -------------------------------------------------------------------------------------


def cmd_sim(args: argparse.Namespace, console: Console) -> int:
    from barq.bench.meta import graph_info
    from barq.bench.sim import SimConfig, run_sim, sim_json
    from barq.bench.simview import LineDisplay, LiveDisplay, summary_table

    check_sim(args)
    defaults = SimConfig()
    cfg = SimConfig(
        payments=args.payments,
        seed=args.seed,
        strategy=args.strategy,
        amounts_msat=(
            tuple(a * 1000 for a in args.amounts_sat) if args.amounts_sat else defaults.amounts_msat
        ),
        maxparts=args.maxparts,
        retry_for_s=args.retry_for,
    )
    cfg.check()
    graph, keys, label, _ = _load(args.graph)
    live = console.is_terminal if args.live is None else args.live
    display = LiveDisplay(console, speed=args.speed) if live else LineDisplay(console)
    title = (
        f"barq sim on the {label} ({graph.num_nodes:,} nodes, "
        f"{graph.num_edges:,} half-channels), seed {args.seed}"
    )
    t0 = time.perf_counter()
    run = run_sim(graph, cfg, display, keys=keys, title=title)
    console.print(summary_table(run.payments))
    console.print(f"wall time {time.perf_counter() - t0:.2f} s", highlight=False)
    if args.json:
        from barq.bench.report import write_text

        write_text(sim_json(run, cfg, graph_info(graph, args.graph, label)), args.json)
        console.print(f"wrote {args.json}", highlight=False)
    return 0


# -- bench -----------------------------------------------------------------------------------


class _BenchProgress:
    """A rich progress bar with ETA on a terminal; elsewhere a line on stderr every 30 s."""

    def __init__(self, console: Console) -> None:
        self._bar: Progress | None = None
        if console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}  # phase -> when its first report came
        self._next = time.monotonic() + HEARTBEAT_S
        self.console = console

    def __enter__(self) -> _BenchProgress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def __call__(self, phase: str, done: int, total: int) -> None:
        what = "drawing feasible payments (amounts)" if phase == "draw" else "paying"
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(what, total=total)
            self._bar.update(self._tasks[phase], completed=done, total=total)
            return
        now = time.monotonic()
        start = self._started.setdefault(phase, now)
        if now >= self._next and 0 < done < total:
            self._next = now + HEARTBEAT_S
            spent = now - start
            eta = spent * (total - done) / done
            print(
                f"barq bench: {what} {done}/{total}, {spent:.0f} s, eta {eta:.0f} s",
                file=sys.stderr,
            )

    def crash(self, message: str) -> None:
        out = self._bar.console if self._bar is not None else self.console
        out.print(f"[red]engine error[/] in {message}", highlight=False)


def _caption(meta: dict[str, Any], mode: str) -> str:
    g, cfg, eng, code = meta["graph"], meta["config"], meta["engine"], meta["barq"]
    sha = g["sha256"] or g["content_sha256"]
    commit = (code["commit"] or "")[:10] + ("+dirty" if code["dirty"] else "")
    return (
        f"{g['file'] or g['source']} (sha256 {sha[:12]}, {g['nodes']:,} nodes, "
        f"{g['channels']:,} channels) · seed {cfg['seed']} · {cfg['payments']} payments per "
        f"amount, {mode} · maxparts {eng['maxparts']}, retry_for {eng['retry_for_s']:g} s · "
        f"barq {code['version']}{f' ({commit})' if commit else ''} · {meta['started_at'][:10]}"
    )


def _open_peer(peer: str | None, graph: Graph, console: Console, stack: ExitStack) -> Any:
    """The RPC of the regtest lightningd serving ``--peer askrene`` (started on ``stack``).

    ``None`` when no peer was asked for, or (one line printed) when lightningd
    is not built.

    Raises:
        BarqError: the node's ``listchannels`` is not the graph, half-channel by
            half-channel (no table is printed then), or the node did not start.
    """
    if peer is None:
        return None
    from barq.bench.askrene import channel_mismatches
    from barq.bench.lightningd import RegtestLightningd, find_binaries

    found = find_binaries()
    if isinstance(found, str):
        console.print(f"--peer {peer} skipped: {found}", highlight=False, soft_wrap=True)
        return None
    t0 = time.perf_counter()
    node = stack.enter_context(RegtestLightningd.start(graph, found))
    channels = node.rpc.listchannels()["channels"]
    bad = channel_mismatches(graph, channels)
    if bad:
        stack.close()
        raise BarqError(
            f"--peer {peer}: lightningd's listchannels differs from the graph in "
            f"{len(bad)} half-channel(s) (first: {bad[0]}); no table printed"
        )
    console.print(
        f"--peer {peer}: lightningd {node.rpc.getinfo()['version']} serves the same "
        f"{len(channels):,} half-channels as the graph (started in "
        f"{time.perf_counter() - t0:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    return node.rpc


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from barq.bench.meta import graph_info, run_metadata
    from barq.bench.metrics import summarize
    from barq.bench.report import bench_json, bench_table, best_strategy, write_json, write_records
    from barq.bench.runner import BenchConfig, Session, bench_engine_config, run_bench

    cfg = BenchConfig(
        strategies=tuple(args.strategies),
        amounts_msat=tuple(a * 1000 for a in args.amounts_sat),
        payments=args.payments,
        seed=args.seed,
        maxparts=args.maxparts,
        warm=args.warm,
        concurrency=args.concurrency,
        retry_for_s=args.retry_for,
        feasible_only=args.feasible_only,
        session_timeout_s=args.session_timeout,
    )
    cfg.check()
    check_bench(args)
    jobs = 1 if args.dask else (args.jobs or default_jobs())
    started = dt.datetime.now(dt.UTC)
    graph, keys, label, load_s = _load(args.graph)
    console.print(
        f"graph: {label}: {graph.num_nodes:,} nodes, {graph.num_edges:,} "
        f"half-channels (loaded in {load_s:.2f} s)",
        highlight=False,
        soft_wrap=True,
    )
    crashes: list[str] = []
    sessions: list[Session] = []
    peers = ExitStack()
    rpc = _open_peer(args.peer, graph, console, peers)
    t0 = time.perf_counter()
    with peers, _BenchProgress(console) as progress:

        def on_crash(message: str) -> None:
            crashes.append(message)
            progress.crash(message)

        records = run_bench(
            graph,
            cfg,
            keys=keys,
            progress=progress,
            on_crash=on_crash,
            jobs=jobs,
            dask=args.dask,
            sessions_out=sessions,
        )
        if rpc is not None:
            from barq.bench.askrene import run_askrene_peer

            records += run_askrene_peer(graph, sessions, cfg, rpc)
    wall = time.perf_counter() - t0
    rows = summarize(records)
    mode = ("warm" if cfg.warm else "cold") + (
        f", concurrency {cfg.concurrency}" if cfg.concurrency > 1 else ""
    )
    if cfg.feasible_only:
        mode += ", feasible only"
    title = f"barq bench: {label}, {cfg.payments} payments per amount, seed {cfg.seed}, {mode}"
    console.print(bench_table(rows, title=title, wide=args.wide))
    best = best_strategy(rows)
    if best is not None:
        console.print(
            f"best strategy: {best} (mean success over feasible payments; "
            "ties: rounds, fee ratio, attempts)",
            highlight=False,
        )
    where = f"dask {args.dask}" if args.dask else f"{jobs} process{'es' if jobs > 1 else ''}"
    console.print(f"{len(records)} payments in {wall:.1f} s wall time ({where})", highlight=False)
    if crashes:
        console.print(
            f"[red]{len(crashes)} session(s) crashed inside the engine[/]; their "
            "payments count as failed"
        )
    if not (args.json or args.plot or args.records):
        return 0
    meta = run_metadata(
        graph=graph_info(graph, args.graph, label),
        config=msgspec.to_builtins(cfg),
        engine=msgspec.to_builtins(bench_engine_config(cfg, "")) | {"default_strategy": None},
        strategies=cfg.strategies,
        execution={"jobs": jobs, "dask": args.dask},
        started_at=started,
        wall_s=wall,
        argv=sys.argv,
    )
    if args.json:
        write_json(bench_json(rows, meta), args.json)
        console.print(f"wrote {args.json}", highlight=False)
    if args.plot:
        from barq.bench.plot import write_figure

        write_figure(rows, records, args.plot, caption=_caption(meta, mode))
        console.print(f"wrote {', '.join(map(str, args.plot))}", highlight=False)
    if args.records:
        write_records(records, args.records)
        console.print(f"wrote {args.records}", highlight=False)
    return 0


# -- graph, strategies -----------------------------------------------------------------------


def _export(graph: Graph, path: Path) -> None:
    """Write :meth:`Graph.to_networkx` with flat edge attributes (format from the suffix)."""
    import json

    import networkx as nx

    g = graph.to_networkx()
    for _, _, data in g.edges(data=True):
        half = data.pop("half")
        for k, v in msgspec.to_builtins(half).items():
            data[k] = v if isinstance(v, str | int | float | bool) else json.dumps(v)
    suffix = path.suffix.lower()
    if suffix == ".graphml":
        nx.write_graphml(g, path)
    elif suffix == ".gexf":
        nx.write_gexf(g, path)
    else:
        path.write_text(json.dumps(nx.node_link_data(g, edges="links")), encoding="utf-8")


def cmd_graph(args: argparse.Namespace, console: Console) -> int:
    from barq.graph import summarize

    check_graph(args)
    graph, _, label, load_s = _load(args.path)
    s = summarize(graph)
    t = Table(title=f"{label}", header_style="bold", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")

    def med(x: float | None, unit: str = "", scale: float = 1.0) -> str:
        return "-" if x is None else f"{x / scale:,.0f}{unit}"

    for k, v in (
        ("nodes", f"{s.nodes:,}"),
        ("nodes with an enabled direction", f"{s.nodes_with_enabled:,}"),
        ("channels", f"{s.channels:,}"),
        ("half-channels", f"{s.half_channels:,}"),
        ("enabled half-channels", f"{s.enabled_half_channels:,}"),
        ("channels with both directions enabled", f"{s.both_enabled:,}"),
        ("largest strongly connected component", f"{s.largest_scc:,} nodes"),
        ("median base fee", med(s.median_fee_base_msat, " msat")),
        ("median fee rate", med(s.median_fee_ppm, " ppm")),
        ("median cltv delta", med(s.median_cltv_delta, " blocks")),
        ("median capacity", med(s.median_capacity_msat, " sat", 1000.0)),
        ("load time", f"{load_s:.3f} s"),
    ):
        t.add_row(k, v)
    console.print(t)
    if args.export:
        _export(graph, args.export)
        console.print(f"wrote {args.export}", highlight=False)
    return 0


def _params_text(params: Any) -> str:
    if not params:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in dict(params).items())


def cmd_strategies(args: argparse.Namespace, console: Console) -> int:
    from barq.strategies import available_strategies

    t = Table(
        title="routing strategies",
        header_style="bold",
        caption="parameters: name=default (barq bench --json records them)",
    )
    for c in ("name", "splits", "description", "parameters", "origin"):
        t.add_column(c, overflow="fold")
    entry: Any
    for entry in available_strategies():
        t.add_row(
            str(entry["name"]),
            "yes" if entry["splits"] else "no",
            str(entry["description"]),
            _params_text(entry.get("parameters", {})),
            str(entry["origin"]),
        )
    console.print(t)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "sim": cmd_sim,
    "bench": cmd_bench,
    "graph": cmd_graph,
    "strategies": cmd_strategies,
    **LAB_COMMANDS,
}
