"""``barq experiments | replay | report``: the strategy lab on a store file, no node needed.

Each reads a private in-memory copy of the database (:func:`barq.store._lab.open_copy`,
through a read-only connection), so pointing them at a live node's ``barq.sqlite3`` is safe:
the file is never written, locked or migrated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from barq.cli._checks import need_module
from barq.errors import InvalidParams

__all__ = ["LAB_COMMANDS", "add_lab_parsers"]


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, metavar="STORE", help="Barq's database (barq.sqlite3)")


def _seconds(flag: str) -> Any:
    """An argparse type: UNIX seconds >= 0 (``InvalidParams`` naming ``flag`` otherwise)."""

    def parse(text: str) -> float:
        try:
            t = float(text)
        except ValueError:
            t = -1.0
        if not 0 <= t < 1e11:
            raise InvalidParams(f"{flag}: expected UNIX seconds >= 0, got {text!r}")
        return t

    return parse


def _need_file(path: Path | None) -> None:
    if path is not None and not path.is_file():
        raise InvalidParams(f"{path}: no such file")


def add_lab_parsers(sub: Any) -> None:
    """Add the three lab subcommands to ``barq``'s subparsers."""
    e = sub.add_parser(
        "experiments",
        help="the live experiments' figures from a store file (success with 95%% CI, fees)",
        description="Per experiment (barq-experiment, 'auto', 'default') and per amount "
        "bucket: payments, success rate with its Wilson 95%% interval, median/p90 fee ppm, "
        "median attempts and time to answer, and whether each differs significantly from "
        "'default'. Reads a copy of the file: safe on a live node's store.",
    )
    _store_arg(e)
    e.add_argument(
        "--since", type=_seconds("--since"), metavar="T", help="payments started at T or later"
    )
    e.add_argument(
        "--until", type=_seconds("--until"), metavar="T", help="payments started before T"
    )
    e.add_argument("--json", action="store_true", help="print barqexperiments' JSON instead")
    r = sub.add_parser(
        "replay",
        help="score probability models on the node's recorded attempts",
        description="For every part the node sent: the probability each model gave its route "
        "with the knowledge of that moment, against what happened. Prints log-loss, Brier "
        "score and a calibration table per model. Models: recorded (the strategy's own "
        "estimate), uniform[:half_life=S,capacity_sat=N] (the estimator's model), "
        "constant[:p=P].",
    )
    _store_arg(r)
    r.add_argument(
        "--model",
        action="append",
        metavar="SPEC",
        help="a model to score (repeatable; default: recorded, uniform:half_life=3600, "
        "uniform:half_life=0, constant:p=0.95)",
    )
    r.add_argument(
        "--graph",
        type=Path,
        metavar="PATH",
        help="a graph file for channel capacities (uniform model; else capacity_sat)",
    )
    r.add_argument("--json", action="store_true", help="print the scores as JSON")
    rep = sub.add_parser(
        "report",
        help="draw the payment history (PNG or SVG)",
        description="Success rate over time per strategy/experiment, fee ppm distribution, "
        "time-to-answer CDF, parts per payment, failures by hop distance and failure code.",
    )
    _store_arg(rep)
    rep.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help=".png/.svg")


def cmd_experiments(args: argparse.Namespace, console: Console) -> int:
    from barq.lab.summary import experiments_report, format_report
    from barq.store._lab import copy_payments

    if args.since is not None and args.until is not None and args.until <= args.since:
        raise InvalidParams("--until must be after --since")
    _need_file(args.store)
    report = experiments_report(copy_payments(args.store, since=args.since, until=args.until))
    if args.json:
        console.print_json(json.dumps(report))
    else:
        console.print(format_report(report), markup=False, end="", soft_wrap=True)
    return 0


def _capacities(graph_path: Path | None) -> dict[str, int] | None:
    if graph_path is None:
        return None
    from barq.graph import load_graph

    g = load_graph(graph_path)
    return {
        f"{g.scid[e]}/{int(g.direction[e])}": int(g.capacity_msat[e]) for e in range(len(g.scid))
    }


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    from barq.lab.replay import default_models, format_scores, parse_model, replay, score
    from barq.store._lab import copy_attempts

    names = [parse_model(s).name for s in args.model or ()]  # every spec checked first
    if len(set(names)) != len(names):
        raise InvalidParams(f"--model: a model is given twice ({', '.join(names)})")
    _need_file(args.graph)
    _need_file(args.store)
    caps = _capacities(args.graph)
    models = [parse_model(s, caps) for s in args.model] if args.model else default_models(caps)
    pairs = replay(copy_attempts(args.store), models)
    scores = {name: score(p) for name, p in pairs.items()}
    if args.json:
        console.print_json(json.dumps(scores))
    else:
        console.print(format_scores(scores), markup=False, end="", soft_wrap=True)
    return 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from barq.lab.report import FORMATS, PLOT_INSTALL, draw_report
    from barq.store._lab import open_copy, read_lab_attempts, read_lab_payments

    out: Path = args.output
    if out.suffix.lower() not in FORMATS:
        raise InvalidParams(f"-o {out}: the report is written as {' or '.join(FORMATS)}")
    need_module("matplotlib", "barq report", PLOT_INSTALL)
    _need_file(args.store)
    conn = open_copy(args.store)
    try:
        payments, attempts = read_lab_payments(conn), read_lab_attempts(conn)
    finally:
        conn.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    data = draw_report(payments, attempts, out, title=f"Barq payment history: {args.store.name}")
    console.print(f"wrote {out} ({data.payments} payments, {len(attempts)} parts)", markup=False)
    return 0


LAB_COMMANDS = {"experiments": cmd_experiments, "replay": cmd_replay, "report": cmd_report}
