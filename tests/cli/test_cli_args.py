"""``barq`` argument parsing and error reporting (no engine needed)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from barq.cli import amounts_sat, build_parser, main, names


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors
        return int(exc.code or 0)


def test_amounts_accept_separators_and_exponents() -> None:
    assert amounts_sat("1000, 1e4,100_000") == (1000, 10_000, 100_000)
    for bad in ("", "1000,abc", "1.5", "0", "-3"):
        with pytest.raises(argparse.ArgumentTypeError):
            amounts_sat(bad)
    assert names("a, b,,c") == ("a", "b", "c")
    with pytest.raises(argparse.ArgumentTypeError):
        names(" , ")


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("sim", "bench", "graph", "strategies"):
        assert cmd in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["fly"], "invalid choice"),
        (["bench", "--payments", "0"], "--payments: must be at least 1"),
        (["bench", "--amounts-sat", "1000,lots"], "not a whole number"),
        (["bench", "--concurrency", "-2"], "--concurrency"),
        (["sim", "--speed", "-1"], "--speed"),
        (["sim", "--maxparts", "x"], "--maxparts"),
        (["graph"], "PATH"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_strategy_is_a_bad_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["bench", "--strategies", "dijkstra,nosuchthing", "--payments", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'nosuchthing'" in err and "dijkstra" in err
    assert exit_code(["sim", "--strategy", "nosuchthing"]) == 2
    assert "nosuchthing" in capsys.readouterr().err


def test_bench_rejects_a_strategy_listed_twice(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["bench", "--strategies", "dijkstra,dijkstra"]) == 2
    assert "twice" in capsys.readouterr().err


def test_missing_graph_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.gossip"
    assert exit_code(["graph", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x1f\x8bnot really gzip")
    assert exit_code(["bench", "--graph", str(junk), "--strategies", "dijkstra"]) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and "Traceback" not in err


def test_graph_prints_counts_of_the_mainnet_snapshot(
    mainnet_graph_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", str(mainnet_graph_path)]) == 0
    out = capsys.readouterr().out
    assert "59,428" in out  # channels in the 2024-09-22 snapshot
    assert "load time" in out


def test_strategies_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for s in ("dijkstra", "presplit", "singlepath"):
        assert s in out


def test_python_dash_m_barq_works() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "barq", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("barq ")


def test_parser_defaults() -> None:
    a = build_parser().parse_args(["bench"])
    assert a.payments == 20 and a.concurrency == 1 and not a.warm and a.graph is None
    assert a.amounts_sat == (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
    s = build_parser().parse_args(["sim", "--no-live"])
    assert s.no_live and s.payments == 8 and s.speed == 1.0
