"""Checks ``barq`` makes before any work: names, files, outputs, optional dependencies.

Numbers were checked while parsing (:mod:`barq.cli._args`); what is left needs
the file system, the strategy registry or the installed packages. Each check
raises :class:`~barq.errors.InvalidParams` (exit status 2) with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from barq import limits
from barq.bench.parallel import DASK_EXTRA
from barq.bench.plot import FORMATS, PLOT_EXTRA
from barq.bench.report import prepare_output
from barq.errors import BarqError, InvalidParams

__all__ = [
    "DASK_SCHEMES",
    "EXPORT_FORMATS",
    "check_bench",
    "check_graph",
    "check_sim",
    "check_strategies",
    "need_module",
]

#: schemes dask.distributed's communication layer accepts in a scheduler address
DASK_SCHEMES = ("tcp", "tls", "ucx", "inproc", "ws", "wss")
#: ``barq graph --export`` suffixes (networkx writers)
EXPORT_FORMATS = (".graphml", ".gexf", ".json")


def need_module(module: str, flag: str, install: str) -> None:
    """Refuse ``flag`` when ``module`` is not installed (without importing it).

    Raises:
        InvalidParams: ``"<flag> needs <module>: <install>"``.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise InvalidParams(f"{flag} needs {module}, which is not installed: {install}")


def check_strategies(strategies: Sequence[str]) -> None:
    """Every name is a registered strategy that loads.

    Raises:
        UnknownStrategy: one is not (the message lists what is available).
    """
    from barq.strategies import get_strategy

    for s in strategies:
        get_strategy(s)


def _input_file(path: Path | None) -> None:
    if path is None:
        return
    if not path.exists():
        raise InvalidParams(f"{path}: no such file")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InvalidParams(f"{path}: not a readable file")


def _output(path: Path | None, suffixes: Sequence[str] = ()) -> None:
    if path is None:
        return
    try:
        prepare_output(path, suffixes)
    except BarqError as exc:
        raise InvalidParams(exc.message) from None


def dask_address(address: str) -> str:
    """``scheme://host:port`` as dask.distributed takes it.

    Raises:
        InvalidParams: not of that form (scheme in :data:`DASK_SCHEMES`, port in range).
    """
    parts = urlsplit(address)
    try:
        port: int | str | None = parts.port
    except ValueError:  # not a number, or outside 0..65535
        port = address.rsplit(":", 1)[-1]
    if parts.scheme not in DASK_SCHEMES or not parts.hostname or parts.path not in ("", "/"):
        raise InvalidParams(
            f"--dask: expected a scheduler address like tcp://host:8786, got {address!r}"
        )
    if port is None:
        raise InvalidParams(f"--dask: the address {address!r} has no port (tcp://host:8786)")
    limits.check_int(limits.NETWORK_PORT.named("--dask port"), port)
    return address


def check_sim(args: argparse.Namespace) -> None:
    """``barq sim``'s files, strategy and outputs (see the module doc)."""
    _input_file(args.graph)
    if args.strategy:
        check_strategies([args.strategy])
    _output(args.json)


def check_bench(args: argparse.Namespace) -> None:
    """``barq bench``'s files, strategies, outputs and optional dependencies."""
    _input_file(args.graph)
    if args.dask is not None:
        dask_address(args.dask)
    _output(args.json)
    _output(args.records)
    for path in args.plot or ():
        _output(path, FORMATS)
    if args.plot:
        need_module("matplotlib", "--plot", PLOT_EXTRA)
    if args.dask is not None:
        need_module("distributed", "--dask", DASK_EXTRA)
    check_strategies(args.strategies)
    if getattr(args, "peer", None) and (args.warm or args.concurrency > 1):
        raise InvalidParams(
            f"--peer {args.peer} runs cold only (one payment per network): "
            "drop --warm and --concurrency"
        )


def check_graph(args: argparse.Namespace) -> None:
    """``barq graph``'s input file and export target."""
    _input_file(args.path)
    _output(args.export, EXPORT_FORMATS)
