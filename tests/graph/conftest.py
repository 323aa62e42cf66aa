"""Fixtures of the graph tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from graph_helpers import SNAPSHOT_NAME, snapshot_path


@pytest.fixture(scope="session")
def snapshot() -> Path:
    """The mainnet GOSSMAP_COMPRESSv1 snapshot, or skip."""
    p = snapshot_path()
    if p is None:
        pytest.skip(f"mainnet snapshot {SNAPSHOT_NAME} not found (../shared/data or $BARQ_GRAPH)")
    return p
