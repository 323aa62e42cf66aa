"""``barq`` argument parsing and error reporting: every input, one line, exit 2, before work."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import barq.cli._commands as commands
from barq import limits
from barq.cli import amounts_sat, build_parser, main, names
from barq.errors import InvalidParams


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command gets as far as loading its graph (the first work)."""

    def refuse(path: Path | None) -> Any:
        raise AssertionError(f"work started (graph {path}) although the input is bad")

    monkeypatch.setattr(commands, "_load", refuse)


def test_amounts_accept_separators_and_exponents() -> None:
    assert amounts_sat("1000, 1e4,100_000") == (1000, 10_000, 100_000)
    for bad in ("", "1000,abc", "1.5", "0", "-3", "1e40"):
        with pytest.raises(InvalidParams, match="--amounts-sat"):
            amounts_sat(bad)
    assert names("a, b,,c") == ("a", "b", "c")
    with pytest.raises(InvalidParams):
        names(" , ")


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("sim", "bench", "graph", "strategies"):
        assert cmd in out


BAD_INPUT: list[tuple[list[str], str]] = [
    ([], "required"),
    (["fly"], "invalid choice"),
    (["bench", "--bogus"], "unrecognized arguments"),
    # sim
    (["sim", "--seed", "-1"], "--seed: must be between 0 and 4_294_967_295, got -1"),
    (["sim", "--seed", "4294967296"], "--seed: must be between 0 and 4_294_967_295"),
    (["sim", "--seed", "one"], "--seed: must be a whole number between 0 and"),
    (["sim", "--payments", "0"], "--payments: must be between 1 and 10000, got 0"),
    (["sim", "--payments", "20000"], "--payments: must be between 1 and 10000"),
    (["sim", "--amounts-sat", ","], "--amounts-sat: expected a comma-separated list"),
    (["sim", "--amounts-sat", "1.5"], "--amounts-sat: must be a whole number between 1 and"),
    (["sim", "--maxparts", "x"], "--maxparts: must be a whole number between 1 and 1000"),
    (["sim", "--maxparts", "0"], "--maxparts: must be between 1 and 1000, got 0"),
    (["sim", "--retry-for", "0"], "--retry-for: must be between 0.001 and"),
    (["sim", "--speed", "-1"], "--speed: must be between 0 and 1_000_000"),
    (["sim", "--speed", "inf"], "--speed: must be a number between 0 and"),
    (["sim", "--strategy", "nosuchthing"], "unknown strategy 'nosuchthing'"),
    (["sim", "--graph", "/nonexistent/g.gossip"], "/nonexistent/g.gossip: no such file"),
    (["sim", "--graph", "/"], "/: not a readable file"),
    (["sim", "--json", "/"], "/: is a directory"),
    # bench
    (["bench", "--payments", "0"], "--payments: must be between 1 and 1_000_000, got 0"),
    (["bench", "--seed", "-1"], "--seed: must be between 0 and 4_294_967_295, got -1"),
    (["bench", "--maxparts", "5000"], "--maxparts: must be between 1 and 1000, got 5000"),
    (["bench", "--retry-for", "-1"], "--retry-for: must be between 0.001 and 4_294_967_295 s"),
    (["bench", "--retry-for", "nan"], "--retry-for: must be a number between 0.001"),
    (["bench", "--amounts-sat", "1000,lots"], "--amounts-sat: must be a whole number"),
    (["bench", "--amounts-sat", "1000,0"], "--amounts-sat: must be between 1 and"),
    (["bench", "--strategies", " , "], "--strategies: expected a comma-separated list"),
    (["bench", "--strategies", "dijkstra,dijkstra"], "'dijkstra' is listed twice"),
    (["bench", "--strategies", "dijkstra,nosuchthing"], "unknown strategy 'nosuchthing'"),
    (["bench", "--concurrency", "-2"], "--concurrency: must be between 1 and 10000, got -2"),
    (["bench", "--peer", "pay"], "--peer: invalid choice: 'pay'"),
    (["bench", "--peer", "askrene", "--warm"], "--peer askrene runs cold only"),
    (["bench", "--peer", "askrene", "--concurrency", "2"], "drop --warm and --concurrency"),
    (["bench", "--session-timeout", "0"], "--session-timeout: must be between 1 and 604_800 s"),
    (["bench", "--jobs", "0"], "--jobs: must be between 1 and 1024, got 0"),
    (["bench", "--jobs", "2", "--dask", "tcp://h:1"], "not allowed with argument --jobs"),
    (["bench", "--dask", "scheduler"], "--dask: expected a scheduler address like tcp://"),
    (["bench", "--dask", "tcp://scheduler"], "--dask: the address 'tcp://scheduler' has no port"),
    (["bench", "--dask", "tcp://h:99999"], "--dask port: must be between 1 and 65535"),
    (["bench", "--dask", "tcp://h:0"], "--dask port: must be between 1 and 65535, got 0"),
    (["bench", "--plot", "fig.jpg"], "unknown output format '.jpg'; use .png, .svg, .pdf"),
    (["bench", "--json", "/"], "/: is a directory"),
    (["bench", "--records", "/"], "/: is a directory"),
    (["bench", "--graph", "/nonexistent/g.gossip"], "/nonexistent/g.gossip: no such file"),
    # graph
    (["graph"], "the following arguments are required: PATH"),
    (["graph", "/nonexistent/g.gossip"], "/nonexistent/g.gossip: no such file"),
    (["graph", "/", "--export", "g.txt"], "/: not a readable file"),
    # the lab (a store file)
    (["experiments", "s.db", "--since", "x"], "--since: expected UNIX seconds >= 0, got 'x'"),
    (["experiments", "s.db", "--until", "-1"], "--until: expected UNIX seconds >= 0"),
    (["experiments", "s.db", "--since", "5", "--until", "4"], "--until must be after --since"),
    (["experiments", "/nonexistent/s.db"], "/nonexistent/s.db: no such file"),
    (["replay", "s.db", "--model", "magic"], "unknown model 'magic'; models: recorded"),
    (["replay", "s.db", "--model", "constant:q=1"], "model constant has no parameter q"),
    (["replay", "s.db", "--graph", "/nonexistent/g"], "/nonexistent/g: no such file"),
    (["report", "s.db", "--output", "r.pdf"], "the report is written as .png or .svg"),
    (["report", "/nonexistent/s.db", "-o", "r.png"], "/nonexistent/s.db: no such file"),
]


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("argv", "message"), BAD_INPUT, ids=[" ".join(a) or "-" for a, _ in BAD_INPUT]
)
def test_bad_input_is_one_line_exit_2_before_any_work(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "usage:" not in err


def test_every_option_has_a_bad_input_case() -> None:
    """A new flag that takes a value must get a case in BAD_INPUT (issue 16 item 6)."""
    tested = {a for argv, _ in BAD_INPUT for a in argv if a.startswith("--")}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    untested = []
    for name, parser in sub.choices.items():
        for action in parser._actions:
            takes_value = action.nargs != 0 and not isinstance(action, argparse._HelpAction)
            flags = [o for o in action.option_strings if o.startswith("--")]
            if takes_value and flags and not set(flags) & tested:
                untested.append(f"{name} {flags[0]}")
    assert untested == []


def test_export_refuses_an_unknown_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = tmp_path / "g.json"
    g.write_text('{"channels": []}')
    assert exit_code(["graph", str(g), "--export", str(tmp_path / "g.txt")]) == 2
    assert "unknown output format '.txt'; use .graphml, .gexf, .json" in capsys.readouterr().err


def test_the_cli_refuses_with_the_plugins_words() -> None:
    """One definition: the CLI's message is limits' message under the flag's name."""
    with pytest.raises(InvalidParams) as plugin_side:
        limits.check_int(limits.MAXPARTS.named("--maxparts"), 5000)
    with pytest.raises(InvalidParams) as cli_side:
        build_parser().parse_args(["bench", "--maxparts", "5000"])
    assert cli_side.value.message == plugin_side.value.message
    assert cli_side.value.data == {"param": "--maxparts", "min": 1, "max": 1000}


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("matplotlib", ["bench", "--plot", "out/fig.png"], "pip install 'barq[plot]'"),
        ("distributed", ["bench", "--dask", "tcp://127.0.0.1:8786"], "pip install 'barq[dask]'"),
    ],
)
def test_a_missing_optional_dependency_is_named_before_the_run(
    module: str,
    argv: list[str],
    extra: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == module else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert f"needs {module}, which is not installed: {extra}" in err


def test_missing_graph_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert a.jobs is None and a.dask is None and not a.wide  # jobs None: all cores
    s = build_parser().parse_args(["sim", "--no-live"])
    assert s.live is False and s.payments == 8 and s.speed == 1.0
    assert build_parser().parse_args(["sim"]).live is None  # automatic
