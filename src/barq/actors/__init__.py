"""The actor payment engine (anyio on trio): runtime, supervisors, shard workers, router, estimator.

One payment's data path, one module each::

    invoice ─▶ supervisor.py ─▶ shard.py ─▶ router.py ─▶ strategy ─▶ sendpay ─▶ estimator.py
               (one per payment) (one per part) (shared)   (barq.strategies)      (shared)

``messages.py`` holds every message that crosses an actor boundary;
``failures.py`` reads a part's failure (pure); ``runtime.py`` is the facade
the plugin and the CLI use (:func:`open_runtime`), and the only import they need.
"""

from barq.actors.messages import ChannelKnowledge, DisabledChannel, DisabledNode, KnowledgeEntry
from barq.actors.runtime import Runtime, open_runtime

__all__ = [
    "ChannelKnowledge",
    "DisabledChannel",
    "DisabledNode",
    "KnowledgeEntry",
    "Runtime",
    "open_runtime",
]
