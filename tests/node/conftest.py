"""Fixtures of the node tests."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# the engine's test helpers (StoreJournal...) for the tests that run it over lightningd's answers
_ACTORS = str(Path(__file__).resolve().parents[1] / "actors")
if _ACTORS not in sys.path:
    sys.path.append(_ACTORS)


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[Path]:
    """A socket path in tmp_path, or in a short temp dir when tmp_path is too long for AF_UNIX."""
    path = tmp_path / "lightning-rpc"
    if len(str(path)) < 100:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="barq-") as short:
        yield Path(short) / "lightning-rpc"
