"""``barq``: the command-line tool (simulator, strategy benchmark, graph inspection).

Subcommands::

    barq sim        a handful of payments through the real engine on a simulated
                    network, with live progress (the built-in network by default)
    barq bench      score strategies side by side on a graph (success over
                    feasible payments, attempts, rounds, fees vs an oracle, time)
    barq graph      load a graph file and print its counts and load time
    barq strategies list the routing strategies that are registered

Exit status: 0 when the command ran (``sim``/``bench`` even if payments
failed), 2 on bad arguments (unknown strategy, unreadable graph file...),
1 on any other error. Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from barq import __version__
from barq.errors import BarqError, GraphLoadError, InvalidParams
from barq.graph import Graph
from barq.model import NodeId

__all__ = ["DEFAULT_BENCH_AMOUNTS_SAT", "DEFAULT_BENCH_STRATEGIES", "build_parser", "main"]

DEFAULT_BENCH_STRATEGIES = (
    "mincostflow",
    "cheapflow",
    "probabilistic",
    "dijkstra",
    "presplit",
    "singlepath",
)
DEFAULT_BENCH_AMOUNTS_SAT = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
BUILTIN_SEED = 1  # the embedded default network is always builtin_network(1)


# -- argument types ----------------------------------------------------------------------


def _int_text(text: str, what: str) -> int:
    t = text.strip().replace("_", "")
    try:
        if any(c in t for c in ".eE"):
            f = float(t)
            if not f.is_integer():
                raise ValueError
            return int(f)
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a whole number") from None


def amounts_sat(text: str) -> tuple[int, ...]:
    """``"1000,1e4,100_000"`` -> ``(1000, 10000, 100000)``: positive whole satoshis."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list of amounts in sat")
    out = tuple(_int_text(p, "amount") for p in parts)
    bad = [a for a in out if a <= 0]
    if bad:
        raise argparse.ArgumentTypeError(f"amounts must be positive, got {bad[0]}")
    return out


def names(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")`` (no empty names)."""
    out = tuple(p.strip() for p in text.split(",") if p.strip())
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list of strategy names")
    return out


def positive_int(text: str) -> int:
    v = _int_text(text, "value")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The ``barq`` argument parser (subcommands ``sim``, ``bench``, ``graph``, ``strategies``)."""
    p = argparse.ArgumentParser(
        prog="barq",
        description="Barq: multi-part payments for Core Lightning with pluggable routing "
        "strategies. Offline tools: simulator, strategy benchmark, graph inspection.",
    )
    p.add_argument("--version", action="version", version=f"barq {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sim = sub.add_parser(
        "sim",
        help="pay a few invoices through the engine on a simulated network (live view)",
        description="Run a handful of payments through the real actor engine against a "
        "simulated network and show their parts live. Without --graph it uses the "
        "built-in 40-node network (no data file needed).",
    )
    sim.add_argument(
        "--graph",
        type=Path,
        metavar="PATH",
        help="graph file: GOSSMAP_COMPRESSv1, listchannels JSON[.gz] or "
        "gossip_store (default: the built-in network)",
    )
    sim.add_argument(
        "--payments",
        type=positive_int,
        default=8,
        metavar="N",
        help="number of payments (default 8)",
    )
    sim.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="K",
        help="seed of liquidity, payer and destinations (default 1)",
    )
    sim.add_argument("--strategy", metavar="NAME", help="routing strategy (default: engine's)")
    sim.add_argument(
        "--amounts-sat",
        type=amounts_sat,
        metavar="LIST",
        help="comma-separated amounts in sat, used in turn "
        "(default: a mix from 2,000 to 3,000,000 sat)",
    )
    sim.add_argument(
        "--maxparts",
        type=positive_int,
        metavar="N",
        help="most parts per payment (default: engine's)",
    )
    sim.add_argument(
        "--no-live",
        action="store_true",
        help="plain line output (automatic when stdout is not a terminal)",
    )
    sim.add_argument(
        "--speed",
        type=non_negative_float,
        default=1.0,
        metavar="S",
        help="with the live view, simulated seconds per real second; 0 = as fast "
        "as possible (default 1; long idle waits are always skipped)",
    )

    b = sub.add_parser(
        "bench",
        help="score routing strategies side by side on a graph",
        description="For each amount, draw N (source, destination) pairs from the largest "
        "strongly connected component, give every payment fresh hidden liquidity, "
        "pay with each strategy through the real engine on the simulated network, "
        "and compare against an oracle that sees the true liquidity.",
    )
    b.add_argument(
        "--graph", type=Path, metavar="PATH", help="graph file (default: the built-in network)"
    )
    b.add_argument(
        "--strategies",
        type=names,
        default=DEFAULT_BENCH_STRATEGIES,
        metavar="LIST",
        help=f"comma-separated strategies (default {','.join(DEFAULT_BENCH_STRATEGIES)})",
    )
    b.add_argument(
        "--amounts-sat",
        type=amounts_sat,
        default=DEFAULT_BENCH_AMOUNTS_SAT,
        metavar="LIST",
        help="comma-separated amounts in sat (default 1000,...,10000000)",
    )
    b.add_argument(
        "--payments",
        type=positive_int,
        default=20,
        metavar="N",
        help="payments per amount (default 20)",
    )
    b.add_argument("--seed", type=int, default=1, metavar="K", help="seed (default 1)")
    b.add_argument(
        "--maxparts",
        type=positive_int,
        metavar="N",
        help="most parts per payment (default: engine's)",
    )
    b.add_argument(
        "--retry-for",
        type=non_negative_float,
        metavar="S",
        help="give up a payment after S simulated seconds (default: engine's)",
    )
    b.add_argument("--json", type=Path, metavar="OUT", help="write the rows as JSON")
    b.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="write a PNG of success over feasible vs amount",
    )
    b.add_argument(
        "--records",
        type=Path,
        metavar="OUT.jsonl",
        help="write one JSON line per payment (source, destination, oracle, outcome, error)",
    )
    b.add_argument(
        "--warm",
        action="store_true",
        help="keep one payer, runtime and network per amount (the estimator learns "
        "across payments) instead of a cold one per payment",
    )
    b.add_argument(
        "--feasible-only",
        action="store_true",
        help="redraw each payment until the oracle says the amount can flow "
        "(many random mainnet pairs cannot move 0.1 BTC at all)",
    )
    b.add_argument(
        "--session-timeout",
        type=non_negative_float,
        default=300.0,
        metavar="S",
        help="give up a session (one network, one strategy) after S wall seconds; "
        "its payments count as failed (default 300)",
    )
    b.add_argument(
        "--concurrency",
        type=positive_int,
        default=1,
        metavar="C",
        help="pay C payments at once from one payer in one runtime (default 1)",
    )

    g = sub.add_parser(
        "graph",
        help="load a graph file and print its counts",
        description="Load any graph source and print node/channel counts, the "
        "largest strongly connected component, medians and the "
        "load time.",
    )
    g.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="GOSSMAP_COMPRESSv1, listchannels JSON[.gz] or gossip_store file",
    )

    sub.add_parser(
        "strategies",
        help="list the registered routing strategies",
        description="Built-in strategies and those installed through the "
        "'barq.strategies' entry point group.",
    )
    return p


# -- helpers -----------------------------------------------------------------------------


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


def _check_strategies(strategies: Sequence[str]) -> None:
    from barq.strategies import get_strategy

    for s in strategies:
        get_strategy(s)  # raises UnknownStrategy (lists what is available)


# -- subcommands -------------------------------------------------------------------------


def cmd_sim(args: argparse.Namespace, console: Console) -> int:
    from barq.bench.sim import LineDisplay, LiveDisplay, SimConfig, run_sim, summary_table

    if args.strategy:
        _check_strategies([args.strategy])
    graph, keys, label, _ = _load(args.graph)
    defaults = SimConfig()
    cfg = SimConfig(
        payments=args.payments,
        seed=args.seed,
        strategy=args.strategy,
        amounts_msat=(
            tuple(a * 1000 for a in args.amounts_sat) if args.amounts_sat else defaults.amounts_msat
        ),
        maxparts=args.maxparts,
    )
    live = not args.no_live and console.is_terminal
    display = LiveDisplay(console) if live else LineDisplay(console)
    title = (
        f"barq sim on the {label} ({graph.num_nodes:,} nodes, "
        f"{graph.num_edges:,} half-channels), seed {args.seed}"
    )
    t0 = time.perf_counter()
    payments = run_sim(
        graph, cfg, display, keys=keys, speed=args.speed if live else 0.0, title=title
    )
    console.print(summary_table(payments))
    console.print(f"wall time {time.perf_counter() - t0:.2f} s", highlight=False)
    return 0


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from barq.bench.metrics import summarize
    from barq.bench.report import (
        bench_table,
        best_strategy,
        write_json,
        write_plot,
        write_records,
    )
    from barq.bench.runner import BenchConfig, run_bench

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
    _check_strategies(cfg.strategies)
    graph, keys, label, load_s = _load(args.graph)
    console.print(
        f"graph: {label}: {graph.num_nodes:,} nodes, {graph.num_edges:,} "
        f"half-channels (loaded in {load_s:.2f} s)",
        highlight=False,
    )
    total = cfg.payments * len(cfg.amounts_msat) * len(cfg.strategies)
    crashes: list[str] = []
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    ) as prog:
        task = prog.add_task("", total=total)

        def progress(done: int, desc: str) -> None:
            prog.update(task, completed=done, description=desc)

        def on_crash(where: str, exc: BaseException) -> None:
            crashes.append(f"{where}: {type(exc).__name__}: {exc}")
            prog.console.print(f"[red]engine error[/] in {where}: {type(exc).__name__}: {exc}")

        records = run_bench(graph, cfg, keys=keys, progress=progress, on_crash=on_crash)
    wall = time.perf_counter() - t0
    rows = summarize(records)
    mode = ("warm" if cfg.warm else "cold") + (
        f", concurrency {cfg.concurrency}" if cfg.concurrency > 1 else ""
    )
    if cfg.feasible_only:
        mode += ", feasible payments only"
    console.print(
        bench_table(
            rows,
            title=f"barq bench: {label}, {cfg.payments} payments per "
            f"amount, seed {cfg.seed}, {mode}",
        )
    )
    best = best_strategy(rows)
    if best is not None:
        console.print(
            f"best strategy: [bold]{best}[/] (mean success over feasible payments; "
            "ties: rounds, fee ratio, attempts)",
            highlight=False,
        )
    console.print(f"{len(records)} payments in {wall:.1f} s wall time", highlight=False)
    if crashes:
        console.print(
            f"[red]{len(crashes)} session(s) crashed inside the engine[/]; their "
            "payments count as failed"
        )
    if args.json:
        write_json(rows, args.json)
        console.print(f"wrote {args.json}", highlight=False)
    if args.plot:
        write_plot(rows, args.plot, title=f"barq bench: {label}")
        console.print(f"wrote {args.plot}", highlight=False)
    if args.records:
        write_records(records, args.records)
        console.print(f"wrote {args.records}", highlight=False)
    return 0


def cmd_graph(args: argparse.Namespace, console: Console) -> int:
    from barq.graph import summarize

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
    return 0


def cmd_strategies(args: argparse.Namespace, console: Console) -> int:
    from barq.strategies import available_strategies

    t = Table(title="routing strategies", header_style="bold")
    for c in ("name", "splits", "origin", "description"):
        t.add_column(c)
    for row in available_strategies():
        t.add_row(
            str(row["name"]),
            "yes" if row["splits"] else "no",
            str(row["origin"]),
            str(row["description"]),
        )
    console.print(t)
    return 0


_COMMANDS = {"sim": cmd_sim, "bench": cmd_bench, "graph": cmd_graph, "strategies": cmd_strategies}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``barq`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Exit status: 0 done, 2 bad arguments (argparse, unknown strategy, bad
    graph file), 1 any other error (reported on one line).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    if not console.is_terminal:  # files and pipes get whole tables, not 80 columns
        console = Console(highlight=False, width=max(console.width, 160))
    err = Console(stderr=True, highlight=False)
    try:
        return _COMMANDS[args.command](args, console)
    except (InvalidParams, GraphLoadError) as exc:
        err.print(f"barq {args.command}: error: {exc.message}", markup=False)
        return 2
    except BarqError as exc:
        err.print(f"barq {args.command}: error: {exc.message}", markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("barq: interrupted", markup=False)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
