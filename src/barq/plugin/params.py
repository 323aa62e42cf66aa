"""Every command's parameters: type, form and range, one function per command.

Each function takes what lightningd passed (positional or keyword, any JSON
type) and returns clean values or raises :class:`barq.errors.InvalidParams`
(-32602) naming the parameter. Ranges are :mod:`barq.limits`'; amounts take
CLN's forms (``1000``, ``"1000msat"``, ``"1.5sat"``, ``"0.001btc"``). What
needs the invoice (amount rules, network, expiry) is the engine's to check.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from typing import Any

from barq.actors.runtime import check_strategy
from barq.errors import InvalidParams
from barq.limits import (
    AMOUNT_MSAT,
    MAXDELAY,
    MAXFEE_MSAT,
    MAXPARTS,
    RETRY_FOR_S,
    Range,
    check_float,
    check_int,
)
from barq.model import NodeId, is_node_id, parse_scid_dir
from barq.model.payment import PaymentStatus, PayParams

__all__ = [
    "barqlistpays_params",
    "barqpay_params",
    "barqroute_params",
    "barqstatus_params",
    "jsonable",
    "parse_exclude",
    "parse_msat",
]

_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_MSAT = re.compile(r"^(\d+)(msat)?$")
_SAT = re.compile(r"^(\d+)(?:\.(\d{3}))?sat$")
_BTC = re.compile(r"^(\d+)(?:\.(\d{1,11}))?btc$")


def jsonable(value: Any) -> Any:
    """``value`` if JSON can carry it, else its ``repr`` (for an error's ``data``)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _msat(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip().lower()
        if m := _MSAT.match(text):
            return int(m.group(1))
        if m := _SAT.match(text):
            return int(m.group(1)) * 1000 + int(m.group(2) or 0)
        if m := _BTC.match(text):
            return int(m.group(1)) * 100_000_000_000 + int((m.group(2) or "0").ljust(11, "0"))
    if hasattr(value, "millisatoshis"):  # pyln Millisatoshi
        return int(value.millisatoshis)
    return None


def parse_msat(value: Any, rng: Range) -> int:
    """An amount as CLN takes it, inside ``rng`` (whose name the errors carry).

    Raises:
        InvalidParams: not an amount (msat, or a sat/btc suffix), or outside ``rng``.
    """
    n = _msat(value)
    if n is None:
        raise InvalidParams(
            f"{rng.name}: not an amount: {value!r} (use msat, or a sat/btc suffix)",
            data={"param": rng.name, "value": jsonable(value)},
        )
    return check_int(rng, n)


def parse_exclude(value: Any) -> tuple[str, ...]:
    """``exclude`` as ``pay`` takes it: a list of ``scid/direction`` or node ids.

    A JSON string holding such a list is accepted too (some clients send one).

    Raises:
        InvalidParams: not a list, or an entry that is neither form (named by index).
    """
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidParams(f"exclude: not a JSON list: {value!r}") from None
        else:
            value = [text]
    if not isinstance(value, list | tuple):
        raise InvalidParams(
            f"exclude: must be a list of short_channel_id/direction or node ids, got {value!r}",
            data={"param": "exclude"},
        )
    return tuple(_exclude_entry(i, entry) for i, entry in enumerate(value))


def _exclude_entry(i: int, entry: Any) -> str:
    if isinstance(entry, str):
        e = entry.strip().lower()
        if is_node_id(e):
            return e
        with suppress(ValueError):
            scid, d = parse_scid_dir(e)
            return f"{scid}/{d}"
    raise InvalidParams(
        f"exclude[{i}]: {entry!r} is neither a short_channel_id/direction (like 103x1x0/1) "
        f"nor a node id (66 hex characters)",
        data={"param": "exclude", "index": i, "value": jsonable(entry)},
    )


def _strategy(strategy: Any) -> str | None:
    if strategy is None:
        return None
    if not isinstance(strategy, str) or not strategy:
        raise InvalidParams(f"strategy: must be a strategy name, got {strategy!r}")
    check_strategy(strategy)  # UnknownStrategy (-32602) lists what is available
    return strategy


def _node_id(value: Any, name: str) -> NodeId:
    if isinstance(value, str) and is_node_id(value.strip().lower()):
        return value.strip().lower()
    raise InvalidParams(
        f"{name}: not a node id (66 hex characters starting 02 or 03): {value!r}",
        data={"param": name},
    )


def _payment_hash(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and _HEX32.match(value.strip().lower()):
        return value.strip().lower()
    raise InvalidParams(
        f"payment_hash: not a payment hash (64 hex characters): {value!r}",
        data={"param": "payment_hash"},
    )


def barqpay_params(
    invstring: Any,
    amount_msat: Any = None,
    maxparts: Any = None,
    maxfee: Any = None,
    retry_for: Any = None,
    maxdelay: Any = None,
    exclude: Any = None,
    strategy: Any = None,
    label: Any = None,
) -> PayParams:
    """``barqpay``'s parameters (``None`` = engine default).

    Raises:
        InvalidParams: the first bad parameter, named in the message (and in
            ``data.param``).
        UnknownStrategy: ``strategy`` is not registered.
    """
    if not isinstance(invstring, str) or not invstring.strip():
        raise InvalidParams(
            f"invstring: must be a bolt11 invoice string, got {invstring!r}",
            data={"param": "invstring"},
        )
    inv = invstring.strip()
    if inv.lower().startswith("lightning:"):
        inv = inv[len("lightning:") :]
    if label is not None and not isinstance(label, str | int):
        raise InvalidParams(f"label: must be a string, got {label!r}", data={"param": "label"})
    return PayParams(
        invstring=inv,
        amount_msat=None if amount_msat is None else parse_msat(amount_msat, AMOUNT_MSAT),
        maxparts=None if maxparts is None else check_int(MAXPARTS, maxparts),
        maxfee_msat=None if maxfee is None else parse_msat(maxfee, MAXFEE_MSAT),
        retry_for_s=None if retry_for is None else check_float(RETRY_FOR_S, retry_for),
        maxdelay=None if maxdelay is None else check_int(MAXDELAY, maxdelay),
        exclude=parse_exclude(exclude),
        strategy=_strategy(strategy),
        label=None if label is None else str(label),
    )


def barqroute_params(
    destination: Any, amount_msat: Any, strategy: Any = None, maxparts: Any = None
) -> tuple[NodeId, int, str | None, int | None]:
    """``barqroute``'s parameters: ``(destination, amount_msat, strategy, maxparts)``.

    Raises:
        InvalidParams: the first bad parameter, named in the message.
        UnknownStrategy: ``strategy`` is not registered.
    """
    return (
        _node_id(destination, "destination"),
        parse_msat(amount_msat, AMOUNT_MSAT),
        _strategy(strategy),
        None if maxparts is None else check_int(MAXPARTS, maxparts),
    )


def barqstatus_params(payment_hash: Any = None) -> str | None:
    """``barqstatus``'s parameter: the payment hash to show (``None``: every payment).

    Raises:
        InvalidParams: not 64 hex characters.
    """
    return _payment_hash(payment_hash)


def barqlistpays_params(
    payment_hash: Any = None, status: Any = None
) -> tuple[str | None, str | None]:
    """``barqlistpays``'s parameters: ``(payment_hash, status)``, each ``None`` for any.

    Raises:
        InvalidParams: a bad hash, or a status other than pending, complete, failed.
    """
    if status is not None and status not in [str(s) for s in PaymentStatus]:
        raise InvalidParams(
            f"status: must be pending, complete or failed, got {status!r}",
            data={"param": "status"},
        )
    return _payment_hash(payment_hash), status
