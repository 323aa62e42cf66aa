"""Developer sessions. ``nox -l`` lists them; ``nox`` alone runs ``tests``.

Each session installs what it needs into its own virtualenv under ``.nox/``.
Without nox: ``python3 dev.py -s SESSION`` installs it into ``.nox/_dev`` first.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
SHARED_GRAPH = ROOT.parent / "shared" / "data" / "gossip-store-2024-09-22.compressed"


@nox.session
def tests(session: nox.Session) -> None:
    """Unit tests + simulated network (+ the regtest suite, which skips without binaries)."""
    session.install("-e", ".[test,regtest,plot,dask]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + format check."""
    session.install("ruff")
    paths = ("src", "tests", "benchmarks", "examples", "noxfile.py", "dev.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/barq."""
    session.install("-e", ".[test,regtest,plot,dask]", "mypy")
    session.run("mypy")


@nox.session
def regtest(session: nox.Session) -> None:
    """pyln-testing suite against real lightningd + bitcoind (skips when they are missing).

    Point it at binaries with PATH, or BARQ_LIGHTNINGD_DIR / BARQ_BITCOIND_DIR (see README).
    """
    session.install("-e", ".[test,regtest]")
    env = {"VALGRIND": "0", "TEST_NETWORK": "regtest", "SLOW_MACHINE": "1"}
    session.run("python", "-m", "pytest", "-v", "tests/regtest", *session.posargs, env=env)


@nox.session
def regtest_bench(session: nox.Session) -> None:
    """Alias of ``bench_regtest`` (its old name)."""
    bench_regtest(session)


@nox.session
def bench(session: nox.Session) -> None:
    """Strategy benchmark on the mainnet snapshot (skips with a reason if it is absent)."""
    session.install("-e", ".[plot]")
    graph = Path(os.environ.get("BARQ_GRAPH", SHARED_GRAPH))
    if not graph.exists():
        session.skip(f"mainnet snapshot not found at {graph} (set BARQ_GRAPH)")
    args = session.posargs or [
        "--strategies",
        "mincostflow,cheapflow,probabilistic,dijkstra,presplit,singlepath",
        "--amounts-sat",
        "1000,10000,100000,1000000,10000000",
        "--payments",
        "40",
        "--seed",
        "2",
        "--feasible-only",
        "--json",
        "bench-out/bench.json",
        "--plot",
        "bench-out/bench.png",
        "--plot",
        "bench-out/bench.pdf",
    ]
    session.run("python", "benchmarks/bench_graph.py", "--graph", str(graph))
    session.run("python", "benchmarks/bench_strategies.py", "--graph", str(graph))
    session.run("barq", "bench", "--graph", str(graph), *args)


@nox.session
def speedup(session: nox.Session) -> None:
    """The same bench in 1 process, in all cores and on a local dask cluster: times, equal results.

    ``nox -s speedup -- --payments 20`` changes the run (see benchmarks/bench_parallel.py).
    """
    session.install("-e", ".[dask]")
    graph = Path(os.environ.get("BARQ_GRAPH", SHARED_GRAPH))
    if not graph.exists():
        session.skip(f"mainnet snapshot not found at {graph} (set BARQ_GRAPH)")
    session.run("python", "benchmarks/bench_parallel.py", "--graph", str(graph), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Barq's main job on the embedded default: the simulator on the built-in network."""
    session.install("-e", ".")
    session.run("barq", "sim", *session.posargs)


@nox.session
def refresh(session: nox.Session) -> None:
    """What the per-payment graph refresh costs on the mainnet snapshot (issue 12 item 1).

    ``nox -s refresh -- --records 1000 -n 15`` (see benchmarks/bench_refresh.py).
    """
    session.install("-e", ".")
    graph = Path(os.environ.get("BARQ_GRAPH", SHARED_GRAPH))
    if not graph.exists():
        session.skip(f"mainnet snapshot not found at {graph} (set BARQ_GRAPH)")
    session.run("python", "benchmarks/bench_refresh.py", "--path", str(graph), *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Soak: 1,000 simulated and 200 regtest payments in a row; RSS and open fds at start/end."""
    session.install("-e", ".[test,regtest]")
    env = {"VALGRIND": "0", "TEST_NETWORK": "regtest", "SLOW_MACHINE": "1"}
    session.run("python", "benchmarks/soak.py", *session.posargs, env=env)


@nox.session
def bench_regtest(session: nox.Session) -> None:
    """pay, xpay, renepay and barqpay side by side on one regtest network (issue 13): one
    part, drained cheapest path, must split, 0.9x max flow; balances restored, 3 rounds."""
    session.install("-e", ".[test,regtest]")
    env = {"VALGRIND": "0", "TEST_NETWORK": "regtest", "SLOW_MACHINE": "1"}
    args = session.posargs or ["--rounds", "3"]
    session.run("python", "benchmarks/regtest_bench.py", *args, env=env)


@nox.session
def bench_askrene(session: nox.Session) -> None:
    """Barq's default against CLN's askrene (getroutes, xpay-style loop) on the mainnet snapshot.

    Needs lightningd, bitcoind and bitcoin-cli on BARQ_REGTEST_PATH or PATH (the askrene rows are
    skipped with one line otherwise); ``nox -s bench_askrene -- ARGS`` replaces the arguments.
    """
    session.install("-e", ".")
    graph = Path(os.environ.get("BARQ_GRAPH", SHARED_GRAPH))
    if not graph.exists():
        session.skip(f"mainnet snapshot not found at {graph} (set BARQ_GRAPH)")
    args = session.posargs or [
        "--strategies",
        "adaptive,mincostflow,cheapflow",
        "--amounts-sat",
        "10000,100000,1000000,10000000",
        "--payments",
        "40",
        "--seed",
        "1",
        "--feasible-only",
        "--jobs",
        "1",
        "--json",
        "bench-out/askrene.json",
    ]
    session.run("barq", "bench", "--graph", str(graph), "--peer", "askrene", *args)
