"""``barq bench --peer askrene`` without a real lightningd: the skip line, the refusal, the rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bench_helpers import listchannels
from pyln.client import RpcError

import barq.bench.lightningd as lightningd
from barq.bench.askrene import channel_mismatches
from barq.cli import main
from barq.graph import Graph
from barq.graph.synthetic import builtin_network

ARGS = ["bench", "--peer", "askrene", "--strategies", "dijkstra", "--amounts-sat", "10000"]
ARGS += ["--payments", "2", "--jobs", "1"]


class FakeRpc:
    """listchannels from the graph (optionally spoilt); getroutes never finds a route."""

    def __init__(self, graph: Graph, spoil: bool) -> None:
        self.channels = listchannels(graph)
        if spoil:
            self.channels[3]["htlc_maximum_msat"] //= 1000
        self.calls: list[str] = []

    def listchannels(self) -> dict[str, Any]:
        return {"channels": self.channels}

    def getinfo(self) -> dict[str, Any]:
        return {"version": "fake"}

    def call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(method)
        if method == "getroutes":
            raise RpcError(method, payload, {"code": 205, "message": "no path found"})
        return {}


@pytest.fixture
def fake_node(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"spoil": False}

    @contextmanager
    def start(graph: Graph, binaries: Any, **kw: Any) -> Iterator[Any]:
        state["rpc"] = FakeRpc(graph, state["spoil"])
        yield lightningd.RegtestLightningd(state["rpc"], Path("/nowhere"))

    monkeypatch.setattr(lightningd, "find_binaries", lambda: {"lightningd": Path("/x")})
    monkeypatch.setattr(lightningd.RegtestLightningd, "start", start)
    return state


def test_skips_with_one_line_without_lightningd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BARQ_REGTEST_PATH", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "skipped" in line]
    assert skipped == [
        "--peer askrene skipped: lightningd not found on BARQ_REGTEST_PATH or PATH (build "
        "Core Lightning and bitcoind, then set BARQ_REGTEST_PATH)"
    ]
    table = [line.split() for line in out.splitlines()]
    assert any(r[:1] == ["dijkstra"] for r in table)
    assert not any(r[:1] == ["askrene"] for r in table)


def test_refuses_a_table_when_listchannels_is_not_the_graph(
    fake_node: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_node["spoil"] = True
    assert main(ARGS) == 1
    cap = capsys.readouterr()
    assert "differs from the graph in 1 half-channel(s)" in cap.err
    assert "no table printed" in cap.err and "ok/feas" not in cap.out
    assert "getroutes" not in fake_node["rpc"].calls


def test_askrene_rows_join_the_table(
    fake_node: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert "serves the same 172 half-channels as the graph" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("askrene")]
    assert rows and rows[0][2] == "0/2"  # getroutes never found a route: 0 of 2 feasible
    calls = fake_node["rpc"].calls
    assert calls.count("getroutes") == 2 and calls.count("askrene-create-layer") == 2
    assert calls.count("askrene-remove-layer") == 2


def test_channel_mismatches_finds_every_kind_of_difference() -> None:
    graph, _ = builtin_network(1)
    good = listchannels(graph)
    assert channel_mismatches(graph, good) == []
    swapped = [dict(c) for c in good]
    swapped[0]["fee_per_millionth"] += 1
    swapped[1]["htlc_maximum_msat"] //= 1000  # gossmap-compress's bug
    del swapped[2]
    swapped.append(dict(good[3], short_channel_id="999x9x9"))
    bad = channel_mismatches(graph, swapped)
    assert len(bad) == 4
    assert any("not in listchannels" in b for b in bad)
    assert any("999x9x9" in b and "not in the graph" in b for b in bad)


@pytest.mark.parametrize("field", ["source", "amount_msat", "active", "delay"])
def test_channel_mismatches_compares_each_field(field: str) -> None:
    graph, _ = builtin_network(1)
    chans = listchannels(graph)
    c = chans[5]
    c[field] = {
        "source": c["destination"],
        "amount_msat": c["amount_msat"] + 1000,
        "active": not c["active"],
        "delay": c["delay"] + 1,
    }[field]
    assert len(channel_mismatches(graph, chans)) == 1
