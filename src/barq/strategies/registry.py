"""Strategy registry: built-ins by name plus the ``barq.strategies`` entry points."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import msgspec

from barq.errors import UnknownStrategy
from barq.routing import Strategy

__all__ = [
    "BUILTIN",
    "DEFAULT_STRATEGY",
    "available_strategies",
    "get_strategy",
    "register_strategy",
    "strategy_parameters",
]

EP_GROUP = "barq.strategies"

#: name -> "module:Class" of the built-in strategies (imported lazily).
BUILTIN: dict[str, str] = {
    "direct": "barq.strategies.direct:DirectStrategy",
    "dijkstra": "barq.strategies.dijkstra:DijkstraStrategy",
    "probabilistic": "barq.strategies.probabilistic:ProbabilisticStrategy",
    "mincostflow": "barq.strategies.mincostflow:MinCostFlowStrategy",
    "cheapflow": "barq.strategies.cheapflow:CheapFlowStrategy",
    "adaptive": "barq.strategies.adaptive:AdaptiveStrategy",
    "singlepath": "barq.strategies.singlepath:SinglePathStrategy",
    "presplit": "barq.strategies.presplit:PresplitStrategy",
}

#: the strategy a payment gets when it names none (``EngineConfig.default_strategy``,
#: the ``barq-strategy`` option's default); ``mincostflow`` and ``cheapflow`` stay selectable
DEFAULT_STRATEGY = "adaptive"

_registered: dict[str, Callable[[], Strategy]] = {}


def register_strategy(name: str, factory: Callable[[], Strategy]) -> None:
    """Register ``factory`` (usually the class) under ``name`` for this process.

    ``factory()`` must build the strategy with its default parameters; the
    built-in classes also accept ``params=`` (their own params Struct) for others.
    """
    _registered[name] = factory


def _load(target: str) -> Callable[[], Strategy]:
    mod, _, attr = target.partition(":")
    obj: Callable[[], Strategy] = getattr(importlib.import_module(mod), attr)
    return obj


def _factories() -> dict[str, tuple[str, Callable[[], Strategy] | str]]:
    """name -> (origin, factory or "module:attr" still to import)."""
    out: dict[str, tuple[str, Callable[[], Strategy] | str]] = {
        n: ("builtin", t) for n, t in BUILTIN.items()
    }
    for ep in entry_points(group=EP_GROUP):
        out.setdefault(ep.name, (f"entry point {ep.value}", ep.value))
    for n, f in _registered.items():
        out[n] = ("registered", f)
    return out


def get_strategy(name: str) -> Strategy:
    """A fresh instance of the strategy registered as ``name``.

    Raises:
        UnknownStrategy: nothing is registered under ``name`` (or it failed to load).
    """
    found = _factories().get(name)
    if found is None:
        raise UnknownStrategy(
            f"unknown strategy {name!r}; available: {', '.join(sorted(_factories()))}",
            data={"strategy": name, "available": sorted(_factories())},
        )
    origin, f = found
    try:
        factory = _load(f) if isinstance(f, str) else f
        return factory()
    except Exception as exc:  # a broken third-party plugin must not take us down
        raise UnknownStrategy(f"strategy {name!r} ({origin}) failed to load: {exc}") from exc


def strategy_parameters(strategy: Strategy) -> dict[str, Any]:
    """``strategy.params`` as ``{field: value}`` (JSON types; ``{}`` when it has none)."""
    params = getattr(strategy, "params", None)
    if not isinstance(params, msgspec.Struct):
        return {}
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(params))
    return out


def available_strategies() -> list[dict[str, Any]]:
    """``[{name, description, splits, origin, parameters}]`` for every registered strategy.

    ``parameters`` maps each of the strategy's tunable numbers to its default
    (:func:`strategy_parameters`); a strategy that fails to load is listed with
    the reason as its description and no parameters.
    """
    rows: list[dict[str, Any]] = []
    for name, (origin, _) in sorted(_factories().items()):
        try:
            s = get_strategy(name)
        except UnknownStrategy as exc:
            rows.append(
                {
                    "name": name,
                    "description": f"(failed to load: {exc})",
                    "splits": False,
                    "origin": origin,
                    "parameters": {},
                }
            )
            continue
        rows.append(
            {
                "name": name,
                "description": s.description,
                "splits": s.splits,
                "origin": origin,
                "parameters": strategy_parameters(s),
            }
        )
    return rows
