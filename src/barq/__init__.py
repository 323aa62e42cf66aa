"""Barq: a multi-part payment plugin for Core Lightning with pluggable routing strategies.

The public surface is small (httpx-style): the engine facade
(:func:`barq.actors.runtime.open_runtime`), the node implementations
(:mod:`barq.node`), the strategy interface and registry
(:mod:`barq.strategies`), the graph loaders (:mod:`barq.graph`) and the error
tree (:mod:`barq.errors`). Everything else is internal and may move.
"""

__version__ = "0.1.0"
