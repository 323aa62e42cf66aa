"""Every command's parameters: type, form and range, one function per command.

Each function takes what lightningd passed (positional or keyword, any JSON
type) and returns clean values or raises :class:`barq.errors.InvalidParams`
(-32602) naming the parameter. Ranges and string sizes are :mod:`barq.limits`';
amounts take CLN's forms (``1000``, ``"1000msat"``, ``"1.5sat"``, ``"0.001btc"``).
A refusal shows at most a short excerpt of the value (:func:`barq.errors.shown`),
whatever its size. What needs the invoice (amount rules, network, expiry) is
the engine's to check (:func:`barq.payment.validate`).

Each function has the same parameter names as its command, so the command
table can run it alone for lightningd's ``check``.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from typing import Any

import msgspec

from barq.actors.runtime import check_extratlvs, check_strategy
from barq.errors import InvalidParams, shown
from barq.limits import (
    AMOUNT_MSAT,
    DESCRIPTION,
    EXCLUDE_ENTRIES,
    EXEMPTFEE_MSAT,
    INVSTRING,
    LABEL,
    MAXDELAY,
    MAXFEE_MSAT,
    MAXFEEPERCENT,
    MAXPARTS,
    PARTIAL_MSAT,
    PAYER_NOTE,
    QUANTITY,
    RETRY_FOR_S,
    RISKFACTOR,
    STRATEGY,
    Range,
    check_float,
    check_int,
    check_percent_ppm,
    check_text,
)
from barq.model import NodeId, is_node_id, parse_scid_dir
from barq.model.payment import PaymentStatus, PayParams

__all__ = [
    "KeysendCall",
    "barqkeysend_params",
    "barqlistpays_params",
    "barqpay_params",
    "barqroute_params",
    "barqstatus_params",
    "canonical_invstring",
    "jsonable",
    "parse_exclude",
    "parse_msat",
]

_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_MSAT = re.compile(r"^(\d+)(msat)?$")
_SAT = re.compile(r"^(\d+)(?:\.(\d{3}))?sat$")
_BTC = re.compile(r"^(\d+)(?:\.(\d{1,11}))?btc$")


def jsonable(value: Any) -> Any:
    """``value`` for an error's ``data``: itself if JSON carries it in a few hundred bytes,
    else a short excerpt (:func:`barq.errors.shown`)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return shown(value)
    return value if len(text) <= 256 else shown(value)


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
            f"{rng.name}: not an amount: {shown(value)} (use msat, or a sat/btc suffix)",
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
        if len(text) > EXCLUDE_ENTRIES.hi * 80:
            raise InvalidParams(f"exclude: too long: {len(text)} characters")
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidParams(f"exclude: not a JSON list: {shown(value)}") from None
        else:
            value = [text]
    if not isinstance(value, list | tuple):
        raise InvalidParams(
            f"exclude: must be a list of short_channel_id/direction or node ids, "
            f"got {shown(value)}",
            data={"param": "exclude"},
        )
    if len(value) > EXCLUDE_ENTRIES.hi:
        raise InvalidParams(
            f"exclude: {len(value)} entries, at most {EXCLUDE_ENTRIES.hi}",
            data={"param": "exclude", "max": EXCLUDE_ENTRIES.hi},
        )
    return tuple(_exclude_entry(i, entry) for i, entry in enumerate(value))


def _exclude_entry(i: int, entry: Any) -> str:
    if isinstance(entry, str) and len(entry) <= 100:
        e = entry.strip().lower()
        if is_node_id(e):
            return e
        with suppress(ValueError):
            scid, d = parse_scid_dir(e)
            return f"{scid}/{d}"
    raise InvalidParams(
        f"exclude[{i}]: {shown(entry)} is neither a short_channel_id/direction (like 103x1x0/1) "
        f"nor a node id (66 hex characters)",
        data={"param": "exclude", "index": i, "value": jsonable(entry)},
    )


def _strategy(strategy: Any, *, auto_ok: bool = False) -> str | None:
    if strategy is None:
        return None
    name = check_text(STRATEGY, strategy)
    if not name:
        raise InvalidParams("strategy: must be a strategy name, got ''")
    if not (auto_ok and name == "auto"):  # barqpay: the lab's bandit (barq.lab.bandit)
        check_strategy(name)  # UnknownStrategy (-32602) lists what is available
    return name


def _node_id(value: Any, name: str) -> NodeId:
    if isinstance(value, str) and len(value) <= 80 and is_node_id(value.strip().lower()):
        return NodeId(value.strip().lower())
    raise InvalidParams(
        f"{name}: not a node id (66 hex characters starting 02 or 03): {shown(value)}",
        data={"param": name},
    )


def _payment_hash(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 80 and _HEX32.match(value.strip().lower()):
        return value.strip().lower()
    raise InvalidParams(
        f"payment_hash: not a payment hash (64 hex characters): {shown(value)}",
        data={"param": "payment_hash"},
    )


def canonical_invstring(invstring: Any) -> str:
    """An invoice string as CLN reads it: trimmed, without a ``lightning:`` prefix (any
    case), lower case (bech32 is case-insensitive; the bolt11 recorded by ``sendpay``
    is this one).

    Raises:
        InvalidParams: not a non-empty ASCII string of at most
            :data:`barq.limits.INVSTRING` characters.
    """
    text = check_text(INVSTRING, invstring).strip().lower()
    text = text.removeprefix("lightning:")
    if not text:
        raise InvalidParams(
            "invstring: must be a bolt11 invoice string, got ''", data={"param": "invstring"}
        )
    return text


def _opt(value: Any, parse: Any, *args: Any) -> Any:
    return None if value is None else parse(*args, value)


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
    maxfeepercent: Any = None,
    exemptfee: Any = None,
    riskfactor: Any = None,
    description: Any = None,
    partial_msat: Any = None,
    quantity: Any = None,
    payer_note: Any = None,
) -> PayParams:
    """``barqpay``'s parameters (``None`` = engine default), ``pay``'s included.

    ``maxfeepercent``/``exemptfee`` (pay's fee budget), ``riskfactor``
    (accepted, unused), ``description`` (checked against a description hash)
    and ``partial_msat`` are ``pay``'s, so a redirected ``pay`` keeps them.

    Raises:
        InvalidParams: the first bad parameter, named in the message (and in
            ``data.param``).
        UnknownStrategy: ``strategy`` is not registered.
    """
    inv = canonical_invstring(invstring)
    _opt(riskfactor, check_float, RISKFACTOR)
    return PayParams(
        invstring=inv,
        amount_msat=_opt(amount_msat, parse_msat_in, AMOUNT_MSAT),
        maxparts=_opt(maxparts, check_int, MAXPARTS),
        maxfee_msat=_opt(maxfee, parse_msat_in, MAXFEE_MSAT),
        retry_for_s=_opt(retry_for, check_float, RETRY_FOR_S),
        maxdelay=_opt(maxdelay, check_int, MAXDELAY),
        exclude=parse_exclude(exclude),
        strategy=_strategy(strategy, auto_ok=True),
        label=_opt(label, check_text, LABEL),
        maxfee_ppm=_opt(maxfeepercent, check_percent_ppm, MAXFEEPERCENT),
        exemptfee_msat=_opt(exemptfee, parse_msat_in, EXEMPTFEE_MSAT),
        partial_msat=_opt(partial_msat, parse_msat_in, PARTIAL_MSAT),
        description=_opt(description, check_text, DESCRIPTION),
        quantity=_opt(quantity, check_int, QUANTITY),
        payer_note=_opt(payer_note, check_text, PAYER_NOTE),
    )


class KeysendCall(msgspec.Struct, frozen=True, kw_only=True):
    """One ``barqkeysend`` call, type-checked: the payment's parameters (``invstring``
    empty), the destination and the custom records (``type -> hex``, already checked)."""

    params: PayParams
    destination: NodeId
    extratlvs: dict[str, str]


def barqkeysend_params(
    destination: Any,
    amount_msat: Any,
    maxfee: Any = None,
    retry_for: Any = None,
    maxdelay: Any = None,
    exclude: Any = None,
    extratlvs: Any = None,
    strategy: Any = None,
    maxparts: Any = None,
    label: Any = None,
) -> KeysendCall:
    """``barqkeysend``'s parameters (``None`` = engine default).

    Raises:
        InvalidParams: the first bad parameter: ``destination`` not a node id,
            ``amount_msat`` outside :data:`barq.limits.AMOUNT_MSAT` (0 included),
            ``extratlvs`` not an object of ``type: hex`` with types >= 65536 (not
            the keysend preimage's), or any other as for ``barqpay``.
    """
    node = _node_id(destination, "destination")
    if amount_msat is None:
        raise InvalidParams("amount_msat parameter required", data={"param": "amount_msat"})
    tlvs: dict[str, str] = {}
    if extratlvs is not None:
        if not isinstance(extratlvs, dict):
            raise InvalidParams(
                'extratlvs: must be an object {"type": "hex value"}', data={"param": "extratlvs"}
            )
        tlvs = {str(k): v for k, v in extratlvs.items()}
        check_extratlvs(tlvs)
    params = PayParams(
        invstring="",
        amount_msat=parse_msat(amount_msat, AMOUNT_MSAT),
        maxparts=_opt(maxparts, check_int, MAXPARTS),
        maxfee_msat=_opt(maxfee, parse_msat_in, MAXFEE_MSAT),
        retry_for_s=_opt(retry_for, check_float, RETRY_FOR_S),
        maxdelay=_opt(maxdelay, check_int, MAXDELAY),
        exclude=parse_exclude(exclude),
        strategy=_strategy(strategy),
        label=_opt(label, check_text, LABEL),
    )
    return KeysendCall(params=params, destination=node, extratlvs=tlvs)


def parse_msat_in(rng: Range, value: Any) -> int:
    """:func:`parse_msat` with the range first (for :func:`_opt`)."""
    return parse_msat(value, rng)


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
            f"status: must be pending, complete or failed, got {shown(status)}",
            data={"param": "status"},
        )
    return _payment_hash(payment_hash), status
