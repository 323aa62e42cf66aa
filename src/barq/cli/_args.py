"""The ``barq`` argument parser: every flag, its type and its allowed range.

Numbers are checked while they are parsed, by the ranges of :mod:`barq.limits`
(the plugin checks its parameters with the same ones): a value out of range
raises :class:`~barq.errors.InvalidParams` naming the flag and the range,
before any work. argparse's own complaints (unknown flag, missing value) are
one line too (:class:`OneLineParser`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from barq import __version__, limits
from barq.cli._lab import add_lab_parsers
from barq.errors import InvalidParams
from barq.limits import Range, check_float, check_int

__all__ = [
    "DEFAULT_BENCH_AMOUNTS_SAT",
    "DEFAULT_BENCH_STRATEGIES",
    "OneLineParser",
    "amounts_sat",
    "build_parser",
    "names",
]

DEFAULT_BENCH_STRATEGIES = (
    "adaptive",
    "mincostflow",
    "cheapflow",
    "probabilistic",
    "dijkstra",
    "presplit",
    "singlepath",
)
DEFAULT_BENCH_AMOUNTS_SAT = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types ----------------------------------------------------------------------


def _whole_text(text: str) -> int | str:
    """``"1_000"``/``"1e4"`` -> ``1000``/``10000``; anything else unchanged (for check_int)."""
    t = text.strip().replace("_", "")
    try:
        if any(c in t for c in ".eE"):
            f = float(t)
            return int(f) if f.is_integer() and abs(f) < 1e30 else text
        return int(t)
    except ValueError:
        return text


def whole(rng: Range) -> Callable[[str], int]:
    """An argparse type: a whole number inside ``rng`` (``InvalidParams`` otherwise)."""

    def parse(text: str) -> int:
        return check_int(rng, _whole_text(text))

    return parse


def number(rng: Range) -> Callable[[str], float]:
    """An argparse type: a finite number inside ``rng`` (``InvalidParams`` otherwise)."""

    def parse(text: str) -> float:
        try:
            value: float | str = float(text)
        except ValueError:
            value = text
        return check_float(rng, value)

    return parse


_AMOUNTS = limits.AMOUNT_SAT.named("--amounts-sat")


def amounts_sat(text: str) -> tuple[int, ...]:
    """``"1000,1e4,100_000"`` -> ``(1000, 10000, 100000)``: whole satoshis in range.

    Raises:
        InvalidParams: an empty list, or an item that is not a whole amount of sat
            inside :data:`barq.limits.AMOUNT_SAT`.
    """
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise InvalidParams(
            f"{_AMOUNTS.name}: expected a comma-separated list of amounts {_AMOUNTS.describe()}"
        )
    return tuple(check_int(_AMOUNTS, _whole_text(p)) for p in parts)


def names(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")`` (``BenchConfig.check`` refuses a name listed twice).

    Raises:
        InvalidParams: no name at all.
    """
    out = tuple(p.strip() for p in text.split(",") if p.strip())
    if not out:
        raise InvalidParams("--strategies: expected a comma-separated list of strategy names")
    return out


def _graph_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--graph",
        type=Path,
        metavar="PATH",
        help="graph file: GOSSMAP_COMPRESSv1, listchannels JSON[.gz] or "
        "gossip_store (default: the built-in 40-node network)",
    )


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--maxparts",
        type=whole(limits.MAXPARTS.named("--maxparts")),
        metavar="N",
        help=f"most parts per payment, {limits.MAXPARTS.describe()} (default: engine's, 64)",
    )
    p.add_argument(
        "--retry-for",
        type=number(limits.RETRY_FOR_S.named("--retry-for")),
        metavar="S",
        help="give up a payment after S simulated seconds (default: engine's, 60)",
    )


def _sim_parser(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    sim = sub.add_parser(
        "sim",
        help="pay a few invoices through the engine on a simulated network (live view)",
        description="Run a handful of payments through the real actor engine against a "
        "simulated network and show their parts live. Without --graph it uses the "
        "built-in 40-node network (no data file needed). What is simulated depends on "
        "the seed and the flags only: the live view replays it at --speed.",
    )
    _graph_option(sim)
    sim.add_argument(
        "--payments",
        type=whole(limits.CLI_SIM_PAYMENTS.named("--payments")),
        default=8,
        metavar="N",
        help="number of payments (default 8)",
    )
    sim.add_argument(
        "--seed",
        type=whole(limits.SEED.named("--seed")),
        default=1,
        metavar="K",
        help=f"seed of liquidity, payer and destinations, {limits.SEED.describe()} (default 1)",
    )
    sim.add_argument("--strategy", metavar="NAME", help="routing strategy (default: engine's)")
    sim.add_argument(
        "--amounts-sat",
        type=amounts_sat,
        metavar="LIST",
        help="comma-separated amounts in sat, used in turn "
        "(default: a mix from 2,000 to 3,000,000 sat)",
    )
    _engine_options(sim)
    sim.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the live table (default: when stdout is a terminal); --no-live prints one "
        "plain line per event",
    )
    sim.add_argument(
        "--speed",
        type=number(limits.CLI_SIM_SPEED.named("--speed")),
        default=1.0,
        metavar="S",
        help="live view: simulated seconds shown per wall second; 0 = no pause "
        "(default 1; long idle waits are always skipped)",
    )
    sim.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write what was simulated as JSON (the same bytes for the same seed and flags)",
    )


def _bench_parser(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    b = sub.add_parser(
        "bench",
        help="score routing strategies side by side on a graph",
        description="For each amount, draw N (source, destination) pairs from the largest "
        "strongly connected component, give every payment fresh hidden liquidity, "
        "pay with each strategy through the real engine on the simulated network, "
        "and compare against an oracle that sees the true liquidity.",
    )
    _graph_option(b)
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
        type=whole(limits.CLI_PAYMENTS.named("--payments")),
        default=20,
        metavar="N",
        help="payments per amount (default 20)",
    )
    b.add_argument(
        "--seed",
        type=whole(limits.SEED.named("--seed")),
        default=1,
        metavar="K",
        help=f"seed, {limits.SEED.describe()} (default 1)",
    )
    _engine_options(b)
    b.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write the rows and everything needed to reproduce the run as JSON",
    )
    b.add_argument(
        "--plot",
        type=Path,
        action="append",
        metavar="OUT",
        help="write the figure (success, fee ratio, attempts, compute time, fee CDF); "
        "the suffix picks the format: .png, .svg or .pdf (repeat for several)",
    )
    b.add_argument(
        "--records",
        type=Path,
        metavar="OUT.jsonl",
        help="write one JSON line per payment (source, destination, oracle, outcome, error)",
    )
    b.add_argument(
        "--wide",
        action="store_true",
        help="every column (about 150 characters wide) instead of the 100-column table",
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
        type=number(limits.CLI_SESSION_TIMEOUT_S.named("--session-timeout")),
        default=300.0,
        metavar="S",
        help="give up a session (one network, one strategy) after S wall seconds; "
        "its payments count as failed (default 300)",
    )
    b.add_argument(
        "--peer",
        choices=("askrene",),
        help="also pay every payment with CLN's askrene (getroutes in an xpay-style loop) "
        "on a local regtest lightningd loaded with the same graph (needs lightningd, "
        "bitcoind and bitcoin-cli on BARQ_REGTEST_PATH or PATH; cold runs only)",
    )
    b.add_argument(
        "--concurrency",
        type=whole(limits.CLI_CONCURRENCY.named("--concurrency")),
        default=1,
        metavar="C",
        help="pay C payments at once from one payer in one runtime (default 1)",
    )
    where = b.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs",
        type=whole(limits.CLI_JOBS.named("--jobs")),
        metavar="N",
        help="worker processes (default: all cores); the results do not depend on it",
    )
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the sessions on a dask.distributed cluster, e.g. tcp://scheduler:8786 "
        "(needs barq[dask] here and barq on the workers)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``barq`` argument parser (subcommands ``sim``, ``bench``, ``graph``, ``strategies``)."""
    p = OneLineParser(
        prog="barq",
        description="Barq: multi-part payments for Core Lightning with pluggable routing "
        "strategies. Offline tools: simulator, strategy benchmark, graph inspection.",
    )
    p.add_argument("--version", action="version", version=f"barq {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _sim_parser(sub)
    _bench_parser(sub)
    g = sub.add_parser(
        "graph",
        help="load a graph file and print its counts",
        description="Load any graph source and print node/channel counts, the largest "
        "strongly connected component, medians and the load time.",
    )
    g.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="GOSSMAP_COMPRESSv1, listchannels JSON[.gz] or gossip_store file",
    )
    g.add_argument(
        "--export",
        type=Path,
        metavar="OUT",
        help="also write the enabled half-channels for other tools (networkx): "
        ".graphml, .gexf or .json (node-link)",
    )
    sub.add_parser(
        "strategies",
        help="list the routing strategies with their parameters",
        description="Built-in strategies and those installed through the "
        "'barq.strategies' entry point group, one line each with their parameters.",
    )
    add_lab_parsers(sub)
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """``build_parser().parse_args(argv)`` (default ``sys.argv[1:]``).

    Raises:
        InvalidParams: a number outside its range (from the argument types).
        SystemExit: argparse's own errors (one line, status 2), ``--help``, ``--version``.
    """
    return build_parser().parse_args(sys.argv[1:] if argv is None else argv)
