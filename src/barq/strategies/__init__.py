"""Routing strategies and their registry.

``get_strategy(name)`` is the only door the actors use. Built-ins are
registered in :mod:`barq.strategies.registry`; third-party strategies are
found through the ``barq.strategies`` entry-point group (the entry point
names a class implementing :class:`barq.routing.Strategy` that can be built
with no arguments). Each strategy lives in one file and imports only the
public toolkit :mod:`barq.routing`, :mod:`barq.model` and :mod:`barq.errors`
(and, to reuse one, a sibling strategy).
"""

from barq.routing import Strategy
from barq.strategies.registry import (
    DEFAULT_STRATEGY,
    available_strategies,
    get_strategy,
    register_strategy,
    strategy_parameters,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "Strategy",
    "available_strategies",
    "get_strategy",
    "register_strategy",
    "strategy_parameters",
]
