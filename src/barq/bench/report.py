"""Output of ``barq bench``: the table (100 columns or ``--wide``), the JSON, the records."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from rich import box
from rich.table import Table

from barq.bench.metrics import BenchRow, PaymentRecord
from barq.errors import BarqError, InvalidParams

__all__ = [
    "bench_json",
    "bench_table",
    "best_strategy",
    "prepare_output",
    "rows_to_json",
    "write_json",
    "write_records",
    "write_text",
]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ratio(x: float | None) -> str:
    """A ratio in at most 6 characters: ``1.00``, ``45.7``, ``4,567``, ``4.6e5``."""
    if x is None:
        return "-"
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    if x < 10_000:
        return f"{x:,.0f}"
    mantissa, exp = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exp)}"


def _count(x: float | None) -> str:
    """A median count: ``1.0``, ``16.5``, ``229``, ``1,234``."""
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _ms(x: float | None) -> str:
    """Milliseconds in at most 6 characters (``0.9``, ``4500.8``, ``45,008``)."""
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 10_000 else f"{x:,.0f}"


Column = tuple[str, Callable[[BenchRow], str]]

#: the 100-column table: (header, cell) in print order; units in the headers
NARROW: tuple[Column, ...] = (
    ("amount\nsat", lambda r: f"{r.amount_sat:,}"),
    ("ok/\nfeas", lambda r: f"{r.succeeded_feasible}/{r.feasible}"),
    ("ok/feas\n%", lambda r: _pct(r.success_rate_feasible)),
    ("att\np50", lambda r: _count(r.attempts_p50)),
    ("rnd\np50", lambda r: _count(r.rounds_p50)),
    ("fee÷orc\np50", lambda r: _ratio(r.fee_ratio_p50)),
    ("fee÷orc\ntotal", lambda r: _ratio(r.fee_ratio_total)),
    ("sim s\np50", lambda r: _num(r.sim_time_s_p50, "{:.2f}")),
    ("cpu ms\np50", lambda r: _ms(r.compute_ms_p50)),
)

#: ``--wide``: every field of a row
WIDE: tuple[Column, ...] = (
    NARROW[0],
    ("pay-\nments", lambda r: str(r.payments)),
    ("feas-\nible", lambda r: str(r.feasible)),
    ("ok", lambda r: str(r.succeeded)),
    ("ok\n%", lambda r: _pct(r.success_rate)),
    *NARROW[1:4],
    ("att\np90", lambda r: _count(r.attempts_p90)),
    NARROW[4],
    ("rnd\nmax", lambda r: _num(r.rounds_max)),
    ("fee msat\np50", lambda r: _num(r.fee_msat_p50, "{:,.0f}")),
    *NARROW[5:],
    ("cpu ms\np95", lambda r: _ms(r.compute_ms_p95)),
)

LEGEND = (
    "ok/feas: succeeded over feasible payments (the oracle can pay them); att: attempts "
    "(parts sent), rnd: rounds of sequential attempts, fee÷orc: fee over the oracle's "
    "minimum fee (median; total: sum over sum), sim s: simulated time (all of these over "
    "succeeded payments); cpu ms: time in strategies per payment"
)


def bench_table(rows: Sequence[BenchRow], *, title: str | None = None, wide: bool = False) -> Table:
    """The bench table: one line per (strategy, amount), amounts grouped together.

    The default fits 100 columns without cutting a cell (for strategy names up
    to 20 characters and amounts up to 10 BTC); ``wide`` shows every field of
    :class:`BenchRow`. The columns and their order are fixed; no colour.
    """
    columns = WIDE if wide else NARROW
    t = Table(
        title=title,
        caption=LEGEND,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_lines=False,
        padding=0,
        pad_edge=False,
    )
    t.add_column("strategy", no_wrap=True)
    for header, _ in columns:
        t.add_column(header, justify="right", no_wrap=True)
    order = {name: i for i, name in enumerate(dict.fromkeys(r.strategy for r in rows))}
    last_amount: int | None = None
    for r in sorted(rows, key=lambda r: (r.amount_sat, order[r.strategy])):
        if last_amount is not None and r.amount_sat != last_amount:
            t.add_section()
        last_amount = r.amount_sat
        t.add_row(r.strategy, *(cell(r) for _, cell in columns))
    return t


def rows_to_json(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts (snake_case fields; non-finite floats become ``None``)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        d = msgspec.to_builtins(r)
        out.append(
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()
            }
        )
    return out


def prepare_output(path: Path, suffixes: Sequence[str] = ()) -> None:
    """Make ``path`` writable before a run: its directory is created, its suffix allowed.

    Args:
        path: the output file (it need not exist).
        suffixes: allowed suffixes (``".png"``...); empty: any.

    Raises:
        InvalidParams: a suffix outside ``suffixes``, or ``path`` is a directory.
        BarqError: the directory cannot be created or written to.
    """
    if suffixes and path.suffix.lower() not in suffixes:
        raise InvalidParams(
            f"{path}: unknown output format {path.suffix or '(no suffix)'!r}; "
            f"use {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise InvalidParams(f"{path}: is a directory, expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BarqError(f"cannot create directory {path.parent}: {exc.strerror or exc}") from exc
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BarqError(f"cannot write {path}: permission denied")


def bench_json(rows: Sequence[BenchRow], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The document of ``barq bench --json``: ``{"meta": ..., "rows": [...]}``.

    ``meta`` is :func:`barq.bench.meta.run_metadata`; rows are :func:`rows_to_json`.
    """
    return {"meta": dict(meta), "rows": rows_to_json(rows)}


def write_json(doc: Any, path: Path) -> None:
    """Write ``doc`` to ``path`` as indented JSON (parent directories are created).

    Raises:
        BarqError: the file cannot be written.
    """
    write_text(json.dumps(doc, indent=2) + "\n", path)


def write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` (UTF-8; parent directories are created).

    Raises:
        BarqError: the file cannot be written.
    """
    prepare_output(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BarqError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_records(records: Sequence[PaymentRecord], path: Path) -> None:
    """Write one JSON object per payment record (JSON lines; parent directories are created).

    Raises:
        BarqError: the file cannot be written.
    """
    prepare_output(path)
    enc = msgspec.json.Encoder()
    try:
        with path.open("wb") as f:
            for r in records:
                f.write(enc.encode(r) + b"\n")
    except OSError as exc:
        raise BarqError(f"cannot write {path}: {exc.strerror or exc}") from exc


def best_strategy(rows: Sequence[BenchRow]) -> str | None:
    """The strategy with the highest mean success over feasible payments (over amounts).

    Ties go to the fewer median rounds (latency), then the lower total fee
    ratio, then the fewer median attempts (each averaged over amounts), then
    the name: the order of the goals (success, rounds, fees).
    ``None`` when no row has a feasible payment.
    """
    scores: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in rows:
        if r.success_rate_feasible is None:
            continue
        scores.setdefault(r.strategy, []).append(
            (
                -r.success_rate_feasible,
                r.rounds_p50 if r.rounds_p50 is not None else 0.0,
                r.fee_ratio_total if r.fee_ratio_total is not None else 0.0,
                r.attempts_p50 if r.attempts_p50 is not None else 0.0,
            )
        )
    if not scores:
        return None

    def key(name: str) -> tuple[float, ...]:
        xs = scores[name]
        return tuple(round(sum(x[k] for x in xs) / len(xs), 9) for k in range(4))

    return min(sorted(scores), key=key)
