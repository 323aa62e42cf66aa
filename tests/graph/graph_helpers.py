"""Helpers shared by the graph tests (imported as ``graph_helpers``)."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

SNAPSHOT_NAME = "gossip-store-2024-09-22.compressed"
GC_HEADER = b"GOSSMAP_COMPRESSv1\0"


def node_id(i: int) -> str:
    """A deterministic, valid-looking node id; ``node_id(i) < node_id(j)`` iff ``i < j``."""
    return "02" + f"{i:04x}" + hashlib.sha256(str(i).encode()).hexdigest()[:60]


def snapshot_path() -> Path | None:
    """``$BARQ_GRAPH`` (file or directory) or ``<repo>/../shared/data``; None when absent."""
    env = os.environ.get("BARQ_GRAPH")
    p = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if p.is_dir():
        p = p / SNAPSHOT_NAME
    return p if p.is_file() else None


def bigsize(v: int) -> bytes:
    """BOLT bigsize, written independently of the decoder under test."""
    if v < 0xFD:
        return bytes([v])
    if v < 0x10000:
        return b"\xfd" + v.to_bytes(2, "big")
    if v < 1 << 32:
        return b"\xfe" + v.to_bytes(4, "big")
    return b"\xff" + v.to_bytes(8, "big")


def _templated(values: Sequence[int]) -> bytes:
    template = sorted(set(values))
    pos = {v: i for i, v in enumerate(template)}
    return b"".join(
        [bigsize(len(template)), *map(bigsize, template), *(bigsize(pos[v]) for v in values)]
    )


def compress_body(
    node1: Sequence[int],
    node2: Sequence[int],
    *,
    disabled: Sequence[int] = (),
    capacity_sat: Sequence[int],
    htlc_min: Sequence[int],
    htlc_max: Sequence[int],
    base_fee: Sequence[int],
    ppm: Sequence[int],
    delay: Sequence[int],
) -> bytes:
    """An uncompressed GOSSMAP_COMPRESSv1 image, as gossmap-compress writes it.

    Per-direction sequences have ``2 * n`` entries (channel 0 dir 0, channel 0 dir 1...);
    ``disabled`` holds ``chan * 2 + dir`` values.
    """
    n = len(node1)
    parts = [
        GC_HEADER,
        bigsize(n),
        *map(bigsize, node1),
        *map(bigsize, node2),
        *map(bigsize, disabled),
        bigsize(2 * n),
        _templated(capacity_sat),
    ]
    for vals in (htlc_min, htlc_max, base_fee, ppm, delay):
        assert len(vals) == 2 * n
        parts.append(_templated(vals))
    return b"".join(parts)


def write_compressed(path: Path, body: bytes) -> Path:
    path.write_bytes(gzip.compress(body, mtime=0))
    return path
