"""The strategy lab on real lightningd: experiments, strategy=auto, the store's tools."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from regtest_env import MISSING, PLUGIN, SKIP_REASON

if MISSING:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from pyln.testing.utils import wait_for

from barq.lab.experiments import assign, parse_experiments
from barq.strategies import available_strategies

SPECS = ["cheap=cheapflow:50", "risky=mincostflow:riskfactor=2:50"]


def _invoice(node: Any, amount_msat: int, label: str) -> str:
    inv = node.rpc.invoice(amount_msat, label, f"barq lab {label}", exposeprivatechannels=[])
    return str(inv["bolt11"])


def _barq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "barq", *args], capture_output=True, text=True, timeout=120
    )


def test_experiments_auto_and_the_store_tools(node_factory: Any, tmp_path: Path) -> None:
    db = tmp_path / "l1-barq.sqlite3"
    opts = {"plugin": PLUGIN, "barq-experiment": SPECS, "barq-db": str(db)}
    l1, _l2, l3 = node_factory.line_graph(3, opts=[opts, {}, {}], wait_for_announce=True)
    wait_for(lambda: len(l1.rpc.listchannels()["channels"]) >= 4, timeout=120)
    exps = parse_experiments(SPECS)

    # two experiments at 50/50 over ten payments: each counted once, under its experiment
    results = [
        l1.rpc.call("barqpay", {"invstring": _invoice(l3, 20_000_000 + i, f"x{i}")})
        for i in range(10)
    ]
    for r in results:
        e = assign(r["payment_hash"], exps)
        assert e is not None
        assert r["status"] == "complete" and r["experiment"] == e.name and r["strategy"] == e.key
    rep = l1.rpc.call("barqexperiments")
    rows = {row["name"]: row for row in rep["experiments"]}
    want = Counter(r["experiment"] for r in results)
    assert {n: rows[n]["payments"] for n in ("cheap", "risky")} == dict(want)
    assert rows["default"]["payments"] == 0
    assert sum(row["payments"] for row in rows.values()) == 10
    assert all(rows[n]["succeeded"] == rows[n]["payments"] for n in ("cheap", "risky"))
    assert sum(b["payments"] for b in rep["buckets"]) == 10

    # strategy=auto pays and names a real strategy, with its reason
    auto = l1.rpc.call(
        "barqpay", {"invstring": _invoice(l3, 30_000_000, "auto"), "strategy": "auto"}
    )
    real = {s["name"] for s in available_strategies()}
    assert auto["status"] == "complete" and auto["strategy"] in real
    assert auto["experiment"] == "auto" and auto["strategy_reason"]

    # the tools read the live store (through a copy)
    out = _barq("experiments", str(db))
    assert out.returncode == 0, out.stderr
    assert "cheap" in out.stdout and "risky" in out.stdout and "auto" in out.stdout
    rp = _barq("replay", str(db))
    assert rp.returncode == 0 and "recorded" in rp.stdout, rp.stderr
    png = tmp_path / "report.png"
    rr = _barq("report", str(db), "-o", str(png))
    assert rr.returncode == 0, rr.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    # ... and never write it (checked once lightningd no longer does)
    l1.stop()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for args in (
        ["experiments", str(db)],
        ["replay", str(db)],
        ["report", str(db), "-o", str(png)],
    ):
        assert _barq(*args).returncode == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
