"""Helpers shared by the CLI/benchmark tests (imported as ``bench_helpers``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from barq.graph import Graph


def listchannels(graph: Graph) -> list[dict[str, Any]]:
    """``graph``'s half-channels as lightningd's ``listchannels`` lists them."""
    return [
        {
            "source": graph.nodes[int(graph.src[e])],
            "destination": graph.nodes[int(graph.dst[e])],
            "short_channel_id": graph.scid[e],
            "direction": int(graph.direction[e]),
            "amount_msat": int(graph.capacity_msat[e]),
            "base_fee_millisatoshi": int(graph.fee_base_msat[e]),
            "fee_per_millionth": int(graph.fee_ppm[e]),
            "delay": int(graph.cltv_delta[e]),
            "htlc_minimum_msat": int(graph.htlc_min_msat[e]),
            "htlc_maximum_msat": int(graph.htlc_max_msat[e]),
            "active": bool(graph.enabled[e]),
            "public": True,
        }
        for e in range(graph.num_edges)
    ]


def write_listchannels(graph: Graph, path: Path) -> Path:
    """``graph`` as a ``listchannels`` JSON file (a graph file the loaders read back)."""
    path.write_text(json.dumps({"channels": listchannels(graph)}), encoding="utf-8")
    return path
