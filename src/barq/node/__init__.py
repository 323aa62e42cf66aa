"""Nodes Barq pays from: one async interface, a real and a simulated implementation.

Actors depend only on :class:`barq.node.base.NodeInterface`; the concrete node
(``barq.node.lightningd.LightningdNode`` or ``barq.sim.SimulatedNode``)
is passed in by the entry points (``barq.plugin``, ``barq.cli``).
"""

from barq.node.base import NodeInterface

__all__ = ["NodeInterface"]
