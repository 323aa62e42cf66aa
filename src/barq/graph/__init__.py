"""The channel graph and the sources it is built from.

Sources (all give a :class:`Graph`):

* ``load_gossip_store(path)`` — lightningd's ``gossip_store`` file;
* ``load_compressed(path)`` — ``GOSSMAP_COMPRESSv1`` snapshots (benchmarks);
* ``load_listchannels(path_or_obj)`` — a ``listchannels`` JSON dump (optionally gzipped);
* ``load_graph(path)`` — any of the above, by sniffing the file;
* ``overlay_local_channels`` / ``overlay_route_hints`` — our own channels and
  an invoice's private last hops on top of a graph.
"""

from barq.graph._graph import Graph

__all__ = ["Graph"]
