"""Live experiments: the ``barq-experiment`` spec, its checks, and the assignment of a payment.

A spec is ``NAME=STRATEGY[:key=value[,key=value]]:PERCENT``, e.g. ``cheap=cheapflow:50`` or
``risky=mincostflow:riskfactor=2,penalty_ppm=500:25``. The keys are the fields of the
strategy's typed parameter Struct (``strategy.params``, see
:func:`barq.strategies.strategy_parameters`), so only real keys with values of the right type
are accepted. Every check runs when the plugin starts (:func:`parse_experiments`).

A payment hash falls in one of :data:`BUCKETS` buckets (:func:`bucket_of`: the first 8 bytes
of ``sha256(hash || "barq-experiment")``); experiments take consecutive ranges of buckets in
the order given, the rest is the default. The same hash always lands in the same experiment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from barq.errors import InvalidParams, UnknownStrategy
from barq.routing import Strategy
from barq.strategies import get_strategy, register_strategy, strategy_parameters

__all__ = [
    "BUCKETS",
    "RESERVED",
    "Experiment",
    "assign",
    "bucket_of",
    "install",
    "parse_experiment",
    "parse_experiments",
    "strategy_with",
]

#: assignment resolution: a percent is ``BUCKETS / 100`` buckets (two decimals of a percent)
BUCKETS = 10_000
_SALT = b"barq-experiment"
#: experiment names the lab uses itself
RESERVED = {
    "default": "the payments outside every experiment",
    "auto": "payments whose strategy the bandit chose",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")


class Experiment(msgspec.Struct, frozen=True, kw_only=True):
    """One checked ``barq-experiment``.

    Attributes:
        name: the experiment's name (letters, digits, ``_.-``; at most 32).
        strategy: the registered strategy it runs.
        parameters: the overrides of the strategy's ``params`` (field -> value, typed).
        percent: its share of the payments without an explicit strategy (0 < p <= 100).
        key: the strategy name the engine runs it under: ``strategy`` itself without
            overrides, else ``strategy:key=value,...`` (registered by :func:`install`).
    """

    name: str
    strategy: str
    parameters: dict[str, Any]
    percent: float
    key: str

    @property
    def buckets(self) -> int:
        """How many of the :data:`BUCKETS` buckets it takes."""
        return round(self.percent * BUCKETS / 100)


def _bad(spec: str, why: str) -> InvalidParams:
    return InvalidParams(
        f"option barq-experiment={spec!r}: {why} "
        "(expected NAME=STRATEGY[:key=value[,key=value]]:PERCENT)"
    )


def _value(text: str) -> Any:
    """``"2"`` -> 2, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"1/2/3"`` -> [1, 2, 3], else text."""
    t = text.strip()
    if "/" in t:
        return [_value(x) for x in t.split("/")]
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def _overrides(spec: str, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            raise _bad(spec, f"parameter {item!r} is not key=value")
        if key in out:
            raise _bad(spec, f"parameter {key!r} given twice")
        out[key] = _value(value)
    return out


def strategy_with(name: str, overrides: dict[str, Any]) -> Callable[[], Strategy]:
    """A factory of strategy ``name`` with its ``params`` Struct changed by ``overrides``.

    Raises:
        UnknownStrategy: no strategy is registered as ``name``.
        InvalidParams: a key the strategy's params Struct has not, a value of the wrong
            type for it, or a strategy that takes no parameters (the message lists the
            real keys).
    """
    base = get_strategy(name)
    if not overrides:
        return lambda: get_strategy(name)
    params = getattr(base, "params", None)
    fields = strategy_parameters(base)
    if not isinstance(params, msgspec.Struct) or not fields:
        raise InvalidParams(f"strategy {name!r} takes no parameters, got {sorted(overrides)}")
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise InvalidParams(
            f"strategy {name!r} has no parameter {', '.join(unknown)}; "
            f"its parameters: {', '.join(sorted(fields))}"
        )
    try:
        new = msgspec.convert({**fields, **overrides}, type(params))
    except msgspec.ValidationError as exc:
        raise InvalidParams(f"strategy {name!r}: bad parameter value: {exc}") from exc
    cls = type(base)
    try:
        cls(params=new)  # type: ignore[call-arg]
    except TypeError as exc:
        raise InvalidParams(f"strategy {name!r} cannot be built with parameters: {exc}") from exc
    return lambda: cls(params=new)  # type: ignore[call-arg]


def _key(strategy: str, overrides: dict[str, Any]) -> str:
    if not overrides:
        return strategy
    shown = ",".join(f"{k}={overrides[k]}" for k in sorted(overrides))
    return f"{strategy}:{shown}"


def parse_experiment(spec: str) -> Experiment:
    """One ``NAME=STRATEGY[:key=value[,key=value]]:PERCENT``, checked against the registry.

    Raises:
        InvalidParams: malformed spec, bad name, unknown strategy, unknown parameter or
            wrong value type, percent not in (0, 100]. The message quotes the spec.
    """
    name, eq, rest = spec.strip().partition("=")
    if not eq or not rest:
        raise _bad(spec, "no '=' after the experiment's name")
    if not _NAME.match(name):
        raise _bad(spec, f"bad experiment name {name!r} (letters, digits, _ . -; at most 32)")
    body, colon, pct_text = rest.rpartition(":")
    if not colon or not body:
        raise _bad(spec, "no ':PERCENT' at the end")
    try:
        percent = float(pct_text.strip().removesuffix("%"))
    except ValueError:
        raise _bad(spec, f"percent {pct_text!r} is not a number") from None
    if not 0 < percent <= 100:
        raise _bad(spec, f"percent must be > 0 and <= 100, got {pct_text}")
    strategy, _, params_text = body.partition(":")
    strategy = strategy.strip()
    if strategy == "auto":
        raise _bad(spec, "an experiment runs one strategy, not 'auto'")
    overrides = _overrides(spec, params_text) if params_text else {}
    try:
        strategy_with(strategy, overrides)
    except (UnknownStrategy, InvalidParams) as exc:
        raise _bad(spec, exc.message) from exc
    return Experiment(
        name=name,
        strategy=strategy,
        parameters=overrides,
        percent=percent,
        key=_key(strategy, overrides),
    )


def parse_experiments(specs: Sequence[str]) -> tuple[Experiment, ...]:
    """Every ``barq-experiment`` option, checked together.

    Raises:
        InvalidParams: a bad spec (:func:`parse_experiment`), a name used twice, the name
            ``default`` (the rest of the payments), or percents adding up to more than 100.
    """
    out: list[Experiment] = []
    for spec in specs:
        e = parse_experiment(spec)
        if e.name in RESERVED:
            raise _bad(spec, f"{e.name!r} is reserved ({RESERVED[e.name]})")
        if any(o.name == e.name for o in out):
            raise _bad(spec, f"experiment name {e.name!r} is used twice")
        out.append(e)
    total = sum(e.buckets for e in out)
    if total > BUCKETS:
        shown = " + ".join(f"{e.percent:g}" for e in out)
        raise InvalidParams(
            f"option barq-experiment: percents add up to {shown} = "
            f"{total * 100 / BUCKETS:g} %, more than 100"
        )
    return tuple(out)


def install(experiments: Sequence[Experiment]) -> None:
    """Register each experiment with parameters under its :attr:`Experiment.key`.

    Raises:
        InvalidParams, UnknownStrategy: as :func:`strategy_with` (already checked by
            :func:`parse_experiment`, unless the registry changed since).
    """
    for e in experiments:
        if e.parameters:
            register_strategy(e.key, strategy_with(e.strategy, e.parameters))


def bucket_of(payment_hash: str) -> int:
    """The payment hash's bucket in ``0 .. BUCKETS - 1`` (deterministic).

    ``int(sha256(bytes(hash) || b"barq-experiment")[:8]) % BUCKETS``; a hash that is not
    hex is taken as text.
    """
    try:
        raw = bytes.fromhex(payment_hash)
    except ValueError:
        raw = payment_hash.encode()
    digest = hashlib.sha256(raw + _SALT).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(payment_hash: str, experiments: Sequence[Experiment]) -> Experiment | None:
    """The experiment ``payment_hash`` belongs to, or ``None`` (the default strategy)."""
    b = bucket_of(payment_hash)
    start = 0
    for e in experiments:
        start += e.buckets
        if b < start:
            return e
    return None
