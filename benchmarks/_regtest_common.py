"""Shared pieces of the regtest benchmark (``regtest_bench.py``): the environment, the topology,
the methods, the records and the table."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

# --------------------------------------------------------------------------- environment

# the regtest suite's environment (PATH, pyln-testing's variables, RUST): one definition
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "regtest"))
from regtest_env import MISSING as MISSING  # re-exported for regtest_bench and soak
from regtest_env import PLUGIN as PLUGIN

# --------------------------------------------------------------------------- topology

NODES: tuple[str, ...] = ("P", "A", "B", "C", "D", "E", "Z")
PAYER, PAYEE = "P", "Z"
#: forwarding fees per node: (fee-base msat, fee-per-satoshi ppm)
NODE_FEES: dict[str, tuple[int, int]] = {
    "A": (0, 10),
    "B": (500, 300),
    "C": (1000, 2000),
    "D": (100, 100),
    "E": (200, 200),
}
#: (funder, fundee, capacity sat, push sat) in opening order
CHANNELS: tuple[tuple[str, str, int, int], ...] = (
    ("P", "A", 3_000_000, 150_000),
    ("P", "B", 3_000_000, 150_000),
    ("P", "C", 3_000_000, 150_000),
    ("A", "Z", 1_000_000, 950_000),
    ("A", "D", 2_000_000, 100_000),
    ("D", "Z", 1_500_000, 900_000),
    ("B", "Z", 1_000_000, 700_000),
    ("B", "E", 1_200_000, 60_000),
    ("E", "Z", 1_200_000, 60_000),
    ("C", "Z", 1_000_000, 50_000),
    ("D", "E", 1_000_000, 500_000),
)
UTXO_SAT = 3_300_000  # one wallet output per channel, each big enough for any channel
#: the scenarios of issue 13 (sat): one part over the cheapest 2-hop path (under its ~29k),
#: the cheapest path drained (250k), a payment that must split (1.5M over 2+ paths) and a tight
#: one at 0.9x the maximum flow (~2.93M)
SCENARIOS_SAT = {"one-part": 20_000, "drained": 250_000, "split": 1_500_000, "tight": 2_640_000}
DEFAULT_SIZES_SAT = tuple(SCENARIOS_SAT.values())
#: the methods compared by default: CLN's three and barqpay with its default strategy
DEFAULT_METHODS = ("pay", "xpay", "renepay", "barq")
COLD_SETTLE_S = 2.0  # --cold: pause after the payer's restart, so timings measure paying
BARQ_STRATEGIES = (
    "dijkstra",
    "probabilistic",
    "mincostflow",
    "cheapflow",
    "singlepath",
    "presplit",
)


class Method(msgspec.Struct, frozen=True, kw_only=True):
    """One way of paying: an RPC command on the payer plus the payer's lightningd options."""

    name: str
    command: str
    strategy: str | None = None
    payer_opts: dict[str, Any] = {}


def all_methods(plugin: str = PLUGIN) -> list[Method]:
    """Every method in table order: CLN's three, then barqpay with each built-in strategy."""
    out = [
        Method(
            name="pay",
            command="pay",
            payer_opts={"xpay-handle-pay": "false", "allow-deprecated-apis": "true"},
        ),
        Method(name="xpay", command="xpay"),
        Method(name="renepay", command="renepay", payer_opts={"allow-deprecated-apis": "true"}),
    ]
    out.append(Method(name="barq", command="barqpay", payer_opts={"plugin": plugin}))
    out += [
        Method(name=f"barq:{s}", command="barqpay", strategy=s, payer_opts={"plugin": plugin})
        for s in BARQ_STRATEGIES
    ]
    return out


class PaymentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One measured payment."""

    method: str
    round: int
    amount_msat: int
    ok: bool
    wall_s: float
    parts: int  # successful sendpay parts
    attempts: int  # all sendpay parts (listsendpays)
    fee_msat: int | None  # amount sent - amount delivered, successful payments only
    error: str | None = None
    restored: bool = True
    timings_ms: dict[str, float] | None = None  # barqpay's phases (its result's timings_ms)
    rounds: int | None = None  # rounds of sends (the payer's log, ``_regtest_log``)
    first_send_ms: float | None = None  # from the call to lightningd starting the first part


class MethodSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the table."""

    method: str
    ok: int
    total: int
    median_s: float | None
    p90_s: float | None
    median_ok_s: float | None
    parts_per_ok: float | None
    attempts_per_payment: float | None
    fee_sum_msat: int
    fee_median_msat: float | None
    build_s: float
    max_drift_msat: int
    unavailable: str | None = None
    rounds_per_payment: float | None = None
    first_send_ms_median: float | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """What ``--json`` writes."""

    lightningd: str
    bitcoind: str
    sizes_sat: list[int]
    rounds: int
    retry_for: int
    cold: bool
    summaries: list[MethodSummary]
    payments: list[PaymentRecord]


# --------------------------------------------------------------------------- helpers


def p90(values: Sequence[float]) -> float:
    """Nearest-rank 90th percentile of a non-empty sequence."""
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def maxfee_msat(amount_msat: int) -> int:
    """The fee budget given to every method: 0.5% + 5 sat (legacy ``pay``'s default)."""
    return amount_msat // 200 + 5_000


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def quiet_node(node: Any) -> None:
    """Before start: log to the node's log file only, and do not save plugin I/O.

    pyln-testing also logs to stdout (which would flood the table) and records every plugin
    JSON message (``dev-save-plugin-io``), a cost that is not part of any payment method.
    """
    node.daemon.opts["log-file"] = str(Path(node.daemon.lightning_dir) / "log")
    # (and the caller starts it with stderr_redir=True: plugins' stderr goes to errlog)
    node.daemon.opts.pop("dev-save-plugin-io", None)


# --------------------------------------------------------------------------- table


def summarize(
    method: str,
    records: list[PaymentRecord],
    build_s: float,
    drift: int,
    unavailable: str | None = None,
) -> MethodSummary:
    walls = [r.wall_s for r in records]
    oks = [r for r in records if r.ok]
    fees = [r.fee_msat for r in oks if r.fee_msat is not None]
    rounds = [r.rounds for r in records if r.rounds is not None]
    firsts = [r.first_send_ms for r in records if r.first_send_ms is not None]
    return MethodSummary(
        method=method,
        ok=len(oks),
        total=len(records),
        median_s=statistics.median(walls) if walls else None,
        p90_s=p90(walls) if walls else None,
        median_ok_s=statistics.median([r.wall_s for r in oks]) if oks else None,
        parts_per_ok=statistics.fmean([r.parts for r in oks]) if oks else None,
        attempts_per_payment=statistics.fmean([r.attempts for r in records]) if records else None,
        fee_sum_msat=sum(fees),
        fee_median_msat=statistics.median(fees) if fees else None,
        build_s=round(build_s, 1),
        max_drift_msat=drift,
        unavailable=unavailable,
        rounds_per_payment=statistics.fmean(rounds) if rounds else None,
        first_send_ms_median=statistics.median(firsts) if firsts else None,
    )


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(
    summaries: list[MethodSummary], records: list[PaymentRecord], sizes_sat: list[int]
) -> str:
    head = (
        f"{'method':<20} {'ok':>7} {'med s':>7} {'p90 s':>7} {'med ok s':>8} "
        f"{'parts':>6} {'attempts':>8} {'rounds':>6} {'1st send ms':>11} "
        f"{'fee sum sat':>12} {'fee med msat':>12}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        if s.unavailable is not None and s.total == 0:
            lines.append(f"{s.method:<20} unavailable (see below)")
            continue
        lines.append(
            f"{s.method:<20} {f'{s.ok}/{s.total}':>7} {_f(s.median_s, '.3f'):>7} "
            f"{_f(s.p90_s, '.3f'):>7} {_f(s.median_ok_s, '.3f'):>8} "
            f"{_f(s.parts_per_ok, '.2f'):>6} {_f(s.attempts_per_payment, '.2f'):>8} "
            f"{_f(s.rounds_per_payment, '.2f'):>6} {_f(s.first_send_ms_median, '.1f'):>11} "
            f"{s.fee_sum_msat / 1000:>12.3f} {_f(s.fee_median_msat, '.0f'):>12}"
        )
    # per size: ok count and median wall time
    lines.append("")
    cols = "".join(f"{f'{sz:,} sat':>20}" for sz in sizes_sat)
    lines.append(f"{'per size (ok, med s, rounds)':<28}{cols}")
    for s in summaries:
        if s.total == 0:
            continue
        cells = []
        for sz in sizes_sat:
            rs = [r for r in records if r.method == s.method and r.amount_msat == sz * 1000]
            ok = sum(r.ok for r in rs)
            med = statistics.median([r.wall_s for r in rs]) if rs else None
            rounds = [r.rounds for r in rs if r.rounds is not None]
            mean_rounds = statistics.fmean(rounds) if rounds else None
            cell = f"{ok}/{len(rs)} {_f(med, '.2f')}s {_f(mean_rounds, '.1f')}r"
            cells.append(f"{cell:>20}")
        lines.append(f"{s.method:<28}" + "".join(cells))
    lines += _timing_lines(summaries, records)
    errs = [r for r in records if r.error]
    if errs:
        lines.append("")
        lines.append("failures:")
        seen: set[tuple[str, str]] = set()
        for r in errs:
            key = (r.method, r.error or "")
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"  {r.method} {r.amount_msat // 1000:,} sat: {r.error}")
    for reason in dict.fromkeys(s.unavailable for s in summaries if s.unavailable is not None):
        names = ", ".join(s.method for s in summaries if s.unavailable == reason)
        lines.append("")
        lines.append(f"problem ({names}): {reason}")
    for r in records:
        if r.ok and not r.restored:
            lines.append(
                f"warning: balances not restored after {r.method} "
                f"{r.amount_msat // 1000:,} sat (round {r.round}): later payments of "
                "this method saw a different state"
            )
    lines.append("")
    lines.append(
        "network build s / largest balance drift after restoring, sat: "
        + ", ".join(
            f"{s.method} {s.build_s:.0f}/{s.max_drift_msat / 1000:.0f}"
            for s in summaries
            if s.total
        )
    )
    return "\n".join(lines)


def _timing_lines(summaries: list[MethodSummary], records: list[PaymentRecord]) -> list[str]:
    """barqpay's phases (its ``timings_ms``), median ms per method, when it reported them."""
    out: list[str] = []
    for s in summaries:
        rows = [r.timings_ms for r in records if r.method == s.method and r.timings_ms]
        if not rows:
            continue
        names = sorted({k for t in rows for k in t}, key=lambda k: (k == "total", k))
        cells = ", ".join(
            f"{k} {statistics.median([t[k] for t in rows if k in t]):.1f}" for k in names
        )
        out += ["", f"{s.method} timings_ms (median over {len(rows)} payments): {cells}"]
    return out
