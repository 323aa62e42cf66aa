"""Shared fixtures of the CLI/benchmark tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench_helpers import write_listchannels

REPO = Path(__file__).resolve().parents[2]


def shared_graph_path() -> Path:
    """The mainnet snapshot: ``$BARQ_GRAPH`` or ``../shared/data/`` next to the repo."""
    env = os.environ.get("BARQ_GRAPH")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "gossip-store-2024-09-22.compressed"


@pytest.fixture
def mainnet_graph_path() -> Path:
    p = shared_graph_path()
    if not p.exists():
        pytest.skip(f"mainnet snapshot not found at {p} (set BARQ_GRAPH)")
    return p


@pytest.fixture
def engine() -> None:
    """Skip when the actor engine (barq.actors.runtime) is not importable."""
    pytest.importorskip("barq.actors.runtime", reason="the actor engine is not available")


@pytest.fixture
def small_graph_file(tmp_path: Path) -> Path:
    """The built-in network written as a listchannels file."""
    from barq.graph.synthetic import builtin_network

    return write_listchannels(builtin_network(1)[0], tmp_path / "builtin.json")
