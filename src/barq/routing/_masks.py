"""Which half-channels a request may use: its ends, the common masks, the CLTV room."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from barq.errors import InvalidParams, RouteNotFound
from barq.graph import Graph
from barq.model import RouteInput
from barq.routing._context import RoutingContext

__all__ = ["allowed_edges", "delay_allowed", "endpoints"]

B = npt.NDArray[np.bool_]


def endpoints(request: RouteInput, graph: Graph) -> tuple[int, int]:
    """Node indexes of ``request.source`` and ``request.destination``.

    Raises:
        InvalidParams: non-positive amount or ``maxparts``.
        RouteNotFound: an end is not in the graph, they are the same node, or
            the destination is excluded.
    """
    if request.amount_msat <= 0:
        raise InvalidParams(f"amount must be positive, got {request.amount_msat} msat")
    if request.maxparts < 1:
        raise InvalidParams(f"maxparts must be at least 1, got {request.maxparts}")
    if request.destination in request.exclude_nodes:
        raise RouteNotFound(
            f"destination {request.destination} is excluded",
            data={"destination": request.destination},
        )
    s = graph.node_index.get(request.source)
    if s is None:
        raise RouteNotFound(
            f"source {request.source} has no channel in the graph", data={"source": request.source}
        )
    t = graph.node_index.get(request.destination)
    if t is None:
        raise RouteNotFound(
            f"destination {request.destination} is not in the graph",
            data={"destination": request.destination},
        )
    if s == t:
        raise RouteNotFound(
            "source and destination are the same node", data={"destination": request.destination}
        )
    return s, t


def allowed_edges(
    request: RouteInput,
    ctx: RoutingContext,
    amount_msat: int | None,
) -> B:
    """Half-channels that may carry ``amount_msat`` for this request.

    An edge is allowed when ``ctx.usable`` and ``graph.enabled``, it is not in
    ``request.exclude_channels``, neither end is in ``request.exclude_nodes``
    (the source is never excluded: it is us), and, when ``amount_msat`` is
    given, ``htlc_min <= amount <= htlc_max`` and ``amount <= ctx.max_msat``.
    CLTV limits are separate (:func:`delay_allowed`).
    """
    g = ctx.graph
    mask: B = ctx.usable & g.enabled
    if request.exclude_channels:
        mask = mask.copy()
        for sd in request.exclude_channels:
            e = g.edge_by_scid_dir(sd)
            if e is not None:
                mask[e] = False
    if request.exclude_nodes:
        idx = [
            g.node_index[n]
            for n in request.exclude_nodes
            if n in g.node_index and n != request.source
        ]
        if idx:
            bad = np.asarray(idx, dtype=np.int32)
            mask = mask & ~(np.isin(g.src, bad) | np.isin(g.dst, bad))
    if amount_msat is not None:
        mask = (
            mask
            & (g.htlc_min_msat <= amount_msat)
            & (g.htlc_max_msat >= amount_msat)
            & (ctx.max_msat >= amount_msat)
        )
    return mask


def delay_allowed(request: RouteInput, graph: Graph, source: int) -> B:
    """Edges whose CLTV delta alone does not break ``maxdelay`` (source edges: always)."""
    room = request.maxdelay - request.final_cltv
    out: B = (graph.cltv_delta <= room) | (graph.src == source)
    if room < 0:
        out[:] = False
    return out
