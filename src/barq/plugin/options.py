"""The plugin's options (``barq-*``): declared once, read once at ``init`` into a config.

Every numeric option is checked against :mod:`barq.limits`, so an option and
the matching ``barqpay`` parameter accept the same values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from barq.actors.runtime import check_strategy
from barq.errors import BarqError, InvalidParams
from barq.lab.bandit import AUTO
from barq.lab.experiments import Experiment, install, parse_experiments
from barq.limits import (
    ESTIMATOR_HALF_LIFE_S,
    MAXDELAY,
    MAXFEE_MSAT,
    MAXFEEPERCENT,
    MAXPARTS,
    RETRY_FOR_S,
    Range,
    check_int,
    check_percent_ppm,
)
from barq.model.payment import EngineConfig

__all__ = ["MULTI_OPTIONS", "OPTIONS", "PluginConfig", "config_from_init", "percent_to_ppm"]

DEFAULT_AUTO_STRATEGIES = ("adaptive", "mincostflow", "cheapflow", "probabilistic", "presplit")

#: options given any number of times (pyln ``multi``): their value is a list
MULTI_OPTIONS = frozenset({"barq-experiment"})

#: (option name, default, description, pyln type)
OPTIONS: tuple[tuple[str, Any, str, str], ...] = (
    (
        "barq-strategy",
        "adaptive",
        "Routing strategy used when barqpay gets no strategy (see barqstrategies); "
        "'auto' lets the lab's bandit choose per payment (see barq-auto-strategies)",
        "string",
    ),
    (
        "barq-experiment",
        None,
        "A live experiment, repeatable: NAME=STRATEGY[:key=value[,key=value]]:PERCENT "
        "(e.g. cheap=cheapflow:50); that share of barqpay calls without a strategy runs it "
        "(by payment hash); percents add up to 100 at most, the rest uses barq-strategy",
        "string",
    ),
    (
        "barq-auto-strategies",
        ",".join(DEFAULT_AUTO_STRATEGIES),
        "Comma-separated strategies strategy=auto chooses from; the first is its default "
        "until there is enough history",
        "string",
    ),
    (
        "barq-maxfee-msat",
        5000,
        "Fee budget floor in msat: the default maxfee is the larger of this and "
        "barq-maxfee-percent of the amount",
        "int",
    ),
    (
        "barq-maxfee-percent",
        "1.0",
        "Default fee budget as a percentage of the amount (decimal, e.g. 0.5)",
        "string",
    ),
    ("barq-retry-for", 60, "Default seconds to keep retrying a payment (retry_for)", "int"),
    ("barq-maxdelay", 2016, "Default maximum total CLTV delay of a route, in blocks", "int"),
    (
        "barq-maxparts",
        64,
        f"Default maximum number of parts in flight at once ({MAXPARTS.lo}..{MAXPARTS.hi})",
        "int",
    ),
    (
        "barq-db",
        "",
        "SQLite database for payment history and learnt channel liquidity "
        "(default: <lightning-dir>/barq.sqlite3; relative paths are inside the lightning-dir)",
        "string",
    ),
    (
        "barq-handle-pay",
        False,
        "Serve plain `pay` commands with Barq (through the rpc_command hook), like "
        "xpay-handle-pay (set xpay-handle-pay=false too)",
        "bool",
    ),
    (
        "barq-slow-mode",
        False,
        "Answer barqpay only once every part settled, not at the first preimage "
        "(like xpay-slow-mode)",
        "bool",
    ),
    (
        "barq-handle-keysend",
        False,
        "Serve `keysend` commands with barqkeysend (through the rpc_command hook); "
        "else keysend stays CLN's",
        "bool",
    ),
    (
        "barq-estimator-half-life",
        3600,
        "Seconds after which half of what was learnt about a channel's liquidity is forgotten",
        "int",
    ),
)


class PluginConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``init`` told us, read once and never changed.

    ``maxfee_ppm`` is ``barq-maxfee-percent`` in parts per million.
    """

    lightning_dir: str
    rpc_file: str
    network: str
    db_path: str
    handle_pay: bool = False
    handle_keysend: bool = False
    strategy: str = "adaptive"
    maxfee_msat: int = 5000
    maxfee_ppm: int = 10_000
    retry_for_s: int = 60
    maxdelay: int = 2016
    maxparts: int = 64
    estimator_half_life_s: int = 3600
    slow_mode: bool = False
    experiments: tuple[Experiment, ...] = ()
    auto_strategies: tuple[str, ...] = DEFAULT_AUTO_STRATEGIES
    configuration: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def rpc_path(self) -> Path:
        return Path(self.lightning_dir) / self.rpc_file

    def engine_config(self) -> EngineConfig:
        """The engine's settings derived from the plugin options."""
        return EngineConfig(
            default_strategy=self.auto_strategies[0] if self.strategy == AUTO else self.strategy,
            maxfee_base_msat=self.maxfee_msat,
            maxfee_ppm=self.maxfee_ppm,
            retry_for_s=float(self.retry_for_s),
            maxdelay=self.maxdelay,
            maxparts=self.maxparts,
            estimator_half_life_s=float(self.estimator_half_life_s),
            slow_mode=self.slow_mode,
        )


def percent_to_ppm(text: Any, name: str) -> int:
    """A percentage (``"0.5"``, ``"1%"``) in parts per million (:data:`barq.limits.MAXFEEPERCENT`).

    Raises:
        InvalidParams: not a number, or outside 0..100 (the message names ``name``).
    """
    return check_percent_ppm(MAXFEEPERCENT.named(name), text)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes", "on")
    return bool(value)


def config_from_init(options: dict[str, Any], configuration: dict[str, Any]) -> PluginConfig:
    """Read the ``barq-*`` options and lightningd's configuration into a :class:`PluginConfig`.

    Args:
        options: ``init``'s ``options`` (option name -> value; missing ones
            take their default).
        configuration: ``init``'s ``configuration`` (``lightning-dir``,
            ``rpc-file``, ``network``...).

    Raises:
        InvalidParams: an option value is out of range or unparsable, the
            default strategy is not registered, or a ``barq-experiment`` is bad
            (:func:`barq.lab.experiments.parse_experiments`; the message names the option).
    """
    defaults = {name: default for name, default, _, _ in OPTIONS}
    opt = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    lightning_dir = str(configuration.get("lightning-dir") or ".")

    def int_opt(name: str, rng: Range) -> int:
        return check_int(rng.named(f"option {name}"), opt[name])

    db = str(opt["barq-db"] or "barq.sqlite3")
    db_path = db if os.path.isabs(db) else os.path.join(lightning_dir, db)
    strategy = str(opt["barq-strategy"])
    auto = _strategy_list(opt["barq-auto-strategies"])
    try:
        if strategy != AUTO:
            check_strategy(strategy)
    except BarqError as exc:
        raise InvalidParams(f"option barq-strategy: {exc.message}") from exc
    experiments = parse_experiments(_multi(opt.get("barq-experiment")))
    install(experiments)
    handle, slow = (_flag(opt[name]) for name in ("barq-handle-pay", "barq-slow-mode"))
    handle_keysend = _flag(opt["barq-handle-keysend"])
    return PluginConfig(
        lightning_dir=lightning_dir,
        rpc_file=str(configuration.get("rpc-file") or "lightning-rpc"),
        network=str(configuration.get("network") or "bitcoin"),
        db_path=db_path,
        handle_pay=handle,
        slow_mode=slow,
        handle_keysend=handle_keysend,
        strategy=strategy,
        maxfee_msat=int_opt("barq-maxfee-msat", MAXFEE_MSAT),
        maxfee_ppm=percent_to_ppm(opt["barq-maxfee-percent"], "option barq-maxfee-percent"),
        retry_for_s=int_opt("barq-retry-for", RETRY_FOR_S),
        maxdelay=int_opt("barq-maxdelay", MAXDELAY),
        maxparts=int_opt("barq-maxparts", MAXPARTS),
        estimator_half_life_s=int_opt("barq-estimator-half-life", ESTIMATOR_HALF_LIFE_S),
        experiments=experiments,
        auto_strategies=auto,
        configuration=dict(configuration),
    )


def _multi(value: Any) -> list[str]:
    """A ``multi`` option's value as a list of strings (absent: empty)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _strategy_list(value: Any) -> tuple[str, ...]:
    """``barq-auto-strategies``: registered strategy names, at least one.

    Raises:
        InvalidParams: empty, ``auto`` itself, or a name nobody registered.
    """
    names = tuple(dict.fromkeys(n.strip() for n in str(value).split(",") if n.strip()))
    if not names:
        raise InvalidParams("option barq-auto-strategies: expected at least one strategy name")
    for name in names:
        if name == AUTO:
            raise InvalidParams("option barq-auto-strategies: 'auto' cannot choose itself")
        try:
            check_strategy(name)
        except BarqError as exc:
            raise InvalidParams(f"option barq-auto-strategies: {exc.message}") from exc
    return names
