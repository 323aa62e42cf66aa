"""Shared test data: the BOLT 4 vectors (``vectors/``, from lightning/bolts) and the
JSON captured from lightningd (``fixtures/``), turned into Barq objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from barq.model import Hop, Route
from barq.onion import (
    BlindedEdge,
    BlindedFinal,
    BlindedHop,
    BlindedPath,
    BlindedPayinfo,
    blinded_edge,
    build_onion,
)
from barq.onion.route import OnionPlan

HERE = Path(__file__).parent


def load_json(name: str) -> Any:
    """A file of ``vectors/`` (BOLT 4 test vectors) or ``fixtures/`` (captured from lightningd)."""
    for folder in ("vectors", "fixtures"):
        path = HERE / folder / name
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


def blinded_vector() -> dict[str, Any]:
    """``generate`` of ``bolt04/blinded-payment-onion-test.json``."""
    out: dict[str, Any] = load_json("blinded-payment-onion-test.json")["generate"]
    return out


def vector_edge(htlc_max_msat: int = 10**9) -> BlindedEdge:
    """The vector's blinded route (Bob -> Carol -> Dave -> Eve) as path 0's edge.

    The vector gives no HTLC limits: 1 msat .. ``htlc_max_msat``.
    """
    vec = blinded_vector()
    br = vec["blinded_route"]
    path = BlindedPath(
        first_node_id=br["first_node_id"],
        first_path_key=bytes.fromhex(br["first_path_key"]),
        hops=tuple(
            BlindedHop(
                blinded_node_id=h["blinded_node_id"],
                encrypted_recipient_data=bytes.fromhex(h["encrypted_data"]),
            )
            for h in br["hops"]
        ),
    )
    pi = vec["blinded_payinfo"]
    payinfo = BlindedPayinfo(
        fee_base_msat=pi["fee_base_msat"],
        fee_proportional_millionths=pi["fee_proportional_millionths"],
        cltv_expiry_delta=pi["cltv_expiry_delta"],
        htlc_minimum_msat=1,
        htlc_maximum_msat=htlc_max_msat,
    )
    return blinded_edge(0, path, payinfo)


def vector_route(edge: BlindedEdge) -> Route:
    """Sender -> Alice -> Bob (introduction) -> the blinded edge, as the vector pays it:
    Alice forwards 110125 msat over 0x0x10 with CLTV 749150 and charges nothing."""
    alice = blinded_vector()["full_route"]["hops"][0]["pubkey"]
    return Route(
        hops=(
            Hop(id=alice, channel="1x1x1", direction=0, amount_msat=110125, delay=150),
            Hop(id=edge.source, channel="0x0x10", direction=0, amount_msat=110125, delay=150),
            edge.hop(100000),
        )
    )


def vector_plan() -> tuple[BlindedEdge, Route, OnionPlan]:
    """The vector's payment built by :func:`build_onion` (no payer: the onion starts
    at Alice), with its ``total_amount_msat`` 150000 and block height 749000."""
    edge = vector_edge()
    route = vector_route(edge)
    final = BlindedFinal(edge=edge, total_msat=150000)
    return edge, route, build_onion(route, final, blockheight=blinded_vector()["final_cltv"])
