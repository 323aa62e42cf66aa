"""The channel graph and the sources it is built from.

Sources (all give a :class:`Graph`):

* ``load_gossip_store(path)`` — lightningd's ``gossip_store`` file;
* ``load_compressed(path)`` — ``GOSSMAP_COMPRESSv1`` snapshots (benchmarks);
* ``load_listchannels(path_or_obj)`` — a ``listchannels`` JSON dump (optionally gzipped);
* ``load_graph(path)`` — any of the above, by sniffing the file;
* ``overlay_local_channels`` / ``overlay_route_hints`` — our own channels and
  an invoice's private last hops on top of a graph;
* ``largest_scc`` / ``summarize`` — whole-graph counts (benchmarks, tests).
"""

from barq.graph._graph import Graph
from barq.graph.analysis import GraphSummary, largest_scc, summarize
from barq.graph.compressed import load_compressed, read_node_map, synthetic_node_id
from barq.graph.gossip_store import load_gossip_store
from barq.graph.listchannels import load_listchannels
from barq.graph.load import load_graph, sniff_format
from barq.graph.overlay import (
    DEFAULT_HINT_CAPACITY_MSAT,
    hint_capacity_msat,
    local_edges,
    overlay_local_channels,
    overlay_route_hints,
)

__all__ = [
    "DEFAULT_HINT_CAPACITY_MSAT",
    "Graph",
    "GraphSummary",
    "hint_capacity_msat",
    "largest_scc",
    "load_compressed",
    "load_gossip_store",
    "load_graph",
    "load_listchannels",
    "local_edges",
    "overlay_local_channels",
    "overlay_route_hints",
    "read_node_map",
    "sniff_format",
    "summarize",
    "synthetic_node_id",
]
