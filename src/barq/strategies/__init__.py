"""Routing strategies and their registry.

``get_strategy(name)`` is the only door the actors use. Built-ins are
registered below; third-party strategies are found through the
``barq.strategies`` entry-point group (the entry point names a class
implementing :class:`barq.strategies.base.Strategy` with a no-argument
constructor).
"""

from barq.strategies.base import (
    PathStrategy,
    RoutingContext,
    Strategy,
    build_route,
    success_probability,
)
from barq.strategies.registry import available_strategies, get_strategy, register_strategy

__all__ = [
    "PathStrategy",
    "RoutingContext",
    "Strategy",
    "available_strategies",
    "build_route",
    "get_strategy",
    "register_strategy",
    "success_probability",
]
