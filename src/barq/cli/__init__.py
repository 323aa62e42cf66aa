"""``barq``: the command-line tool (simulator, strategy benchmark, graph inspection).

Subcommands::

    barq sim        a handful of payments through the real engine on a simulated
                    network, with live progress (the built-in network by default)
    barq bench      score strategies side by side on a graph (success over
                    feasible payments, attempts, rounds, fees vs an oracle, time)
    barq graph      load a graph file and print its counts (and export it)
    barq strategies list the routing strategies with their parameters
    barq experiments the live experiments' figures from a store file
    barq replay     score probability models on the node's recorded attempts
    barq report     draw the node's payment history (PNG/SVG)

Every input is checked before any work (numbers by the ranges of
:mod:`barq.limits`, which the plugin uses too; files, outputs, strategy names
and optional dependencies by :mod:`barq.cli._checks`).

Exit status: 0 when the command ran (``sim``/``bench`` even if payments
failed), 2 on bad input (one line on stderr naming the parameter and what is
allowed), 1 on any other error (one line, never a traceback), 130 on Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console

from barq.cli._args import (
    DEFAULT_BENCH_AMOUNTS_SAT,
    DEFAULT_BENCH_STRATEGIES,
    amounts_sat,
    build_parser,
    names,
    parse_args,
)
from barq.cli._commands import COMMANDS
from barq.errors import BarqError, GraphLoadError, InvalidParams

__all__ = [
    "DEFAULT_BENCH_AMOUNTS_SAT",
    "DEFAULT_BENCH_STRATEGIES",
    "amounts_sat",
    "build_parser",
    "main",
    "names",
]

#: width of tables written to a file or a pipe (the narrow bench table fits it)
PIPE_WIDTH = 100
#: ... and with ``barq bench --wide``
PIPE_WIDTH_WIDE = 200


def _command_of(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return next((a for a in args if a in COMMANDS), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``barq`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Exit status: 0 done, 2 bad input (argparse, a number out of range, unknown
    strategy, missing file or extra), 1 any other error (reported on one line),
    130 interrupted.
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    prog = f"barq {_command_of(argv)}".strip()
    try:
        args = parse_args(None if argv is None else list(argv))
    except InvalidParams as exc:
        err.print(f"{prog}: error: {exc.message}", markup=False)
        return 2
    console = Console(highlight=False)
    if not console.is_terminal:  # files and pipes: whole tables, no colour codes
        width = PIPE_WIDTH_WIDE if getattr(args, "wide", False) else PIPE_WIDTH
        console = Console(highlight=False, width=width, no_color=True)
    try:
        return COMMANDS[args.command](args, console)
    except (InvalidParams, GraphLoadError) as exc:
        err.print(f"{prog}: error: {exc.message}", markup=False)
        return 2
    except BarqError as exc:
        err.print(f"{prog}: error: {exc.message}", markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("barq: interrupted", markup=False)
        return 130
