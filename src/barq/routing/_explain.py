"""Why no route exists, in askrene's words (CLN v26.06 ``plugins/askrene/child/explain_failure.c``).

xpay answers a payment it could not route with askrene's sentence prefixed
"Failed: "; callers match those words. When a strategy finds nothing,
:func:`explain_no_route` tells the two cases whose answer does not depend on
liquidity at all (so retrying cannot help and the payment fails at once):

* every channel into the destination (or out of the source) is disabled:
  "We could not find a usable set of paths. All N channels to the
  destination are disabled." (askrene's ``check_capacity``);
* no path at all from source to destination, whatever the channels' state:
  "There is no connection between source and destination at all".
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from barq.graph import Graph

__all__ = ["NO_CONNECTION", "NO_USABLE_PATHS", "explain_no_route"]

#: askrene's prefix of every capacity explanation
NO_USABLE_PATHS = "We could not find a usable set of paths."
#: askrene's sentence when the graph has no path at all between the two nodes
NO_CONNECTION = "There is no connection between source and destination at all"


def _all_disabled(graph: Graph, node: int, *, into: bool, name: str) -> str | None:
    """askrene's "All N channels to the <name> are disabled." when that is the case."""
    touching = (graph.src == node) | (graph.dst == node)
    channels = {graph.scid[int(e)] for e in np.flatnonzero(touching)}
    if not channels:
        return None
    ends = graph.dst if into else graph.src
    rows = ends == node
    if not bool(np.any(rows)) or bool(np.any(graph.enabled & rows)):
        return None  # no gossip for that direction at all, or one enabled
    return f"{NO_USABLE_PATHS} All {len(channels)} channels to the {name} are disabled."


def explain_no_route(graph: Graph, source: int, destination: int) -> str | None:
    """askrene's sentence when no route can exist whatever the liquidity, else ``None``.

    Args:
        graph: the graph the payment was planned on (our channels' state overlaid:
            a channel we cannot use is disabled there).
        source, destination: node indexes in ``graph``.

    Returns:
        "We could not find a usable set of paths. All N channels to the source/
        destination are disabled." (source checked first, as askrene), "There is
        no connection between source and destination at all", or ``None`` when a
        path exists over channels that are not all disabled (liquidity, fees or
        limits are the reason: the strategy's own explanation stands).
    """
    for node, into, name in ((source, False, "source"), (destination, True, "destination")):
        said = _all_disabled(graph, node, into=into, name=name)
        if said is not None:
            return said
    n = graph.num_nodes
    m = csr_matrix((np.ones(graph.num_edges, dtype=np.int8), (graph.src, graph.dst)), shape=(n, n))
    reached = breadth_first_order(m, source, directed=True, return_predecessors=False)
    if destination not in set(reached.tolist()):
        return NO_CONNECTION
    return None
