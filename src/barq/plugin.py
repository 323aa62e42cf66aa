"""Barq's Core Lightning front end (pyln-client), the only plugin-facing module.

Shape
-----
pyln's :class:`~pyln.client.Plugin` owns the main thread: a blocking loop
reading JSON-RPC from lightningd on stdin. The payment engine
(:func:`barq.actors.runtime.open_runtime`) runs beside it in a trio event
loop on its own thread, reached through an anyio ``BlockingPortal``
(:class:`EngineHost`). ``init`` starts that thread and returns at once (it
never waits for lightningd, which could deadlock because we hook
``rpc_command``); the engine finishes starting in the background.

Every command that touches the engine is a *background* method: the handler
checks its parameters (type and range; errors are raised at once), submits
a coroutine to the portal and returns; a done-callback on the portal's
future answers the request with ``set_result``/``set_exception`` exactly
once. So ``barqstatus`` answers while payments run. pyln serialises every
write to stdout under its ``write_lock``, so answering (and notifying) from
the engine thread is safe.

Errors
------
A :class:`barq.errors.BarqError` becomes a JSON-RPC error with its ``code``
(CLN's ``pay`` codes: 205, 206, 207, 210, 203, 201, -32602...) and its
``data``; the ``data`` of a payment failure is the payment in
:func:`payment_json` shape (every attempt, with route and failure reason).
Anything else becomes code 209 with the exception's message, is logged
with its traceback, and the plugin stays up.

Persistence policy
------------------
The database (``barq-db``) is opened when the engine starts. If it cannot be
opened (locked, unreadable, corrupt, from a newer Barq), the plugin still
starts and ``barqstatus``, ``barqroute`` and ``barqstrategies`` work, but
``barqpay`` and ``barqlistpays`` refuse with the :class:`~barq.errors.StoreError`
(code -1, message naming the file): paying without the history would lose
the record of what was paid. ``barq-handle-pay`` then leaves ``pay`` to CLN.

Restart safety
--------------
On start the host reconciles with ``listsendpays``: groups with parts still
pending are shown by ``barqstatus``, awaited (``waitsendpay``) and recorded
when they resolve; payments the database knows as pending but which
finished meanwhile are recorded. ``barqpay`` for an invoice that already has
a complete payment returns that payment (``already_paid: true``) without
sending anything (a different amount is refused with 201); a second
``barqpay`` of an invoice being paid here waits for the first and returns its
result; parts still pending from before a restart are adopted by the engine
(same group, and new part ids for anything more: no part id is ever reused),
which sends only what is missing. The engine checks ``listsendpays`` by the
same rule (a complete part means paid), so the two agree.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, AsyncExitStack, suppress
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, TypeVar, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import msgspec
from pyln.client import Plugin, RpcException
from pyln.client.plugin import PluginLogHandler, Request, RequestState, hook_fallbacks

from barq.actors.messages import KnowledgeEntry
from barq.actors.supervisor import MAXPARTS_LIMIT
from barq.errors import (
    AlreadyPaid,
    BarqError,
    InvalidParams,
    NodeError,
    PartFailed,
    StoreError,
)
from barq.model import (
    Invoice,
    NodeId,
    PartStatus,
    Route,
    RouteFailure,
    SendpayStatus,
    is_node_id,
    parse_scid_dir,
)
from barq.model.payment import (
    EngineConfig,
    PartEnded,
    PartStarted,
    PartState,
    PartView,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
    PayParams,
)
from barq.node.base import NodeInterface
from barq.store import KnowledgeRecord, Store, open_store
from barq.strategies import available_strategies, get_strategy

__all__ = [
    "MAX_PARTS_LIMIT",
    "BarqPlugin",
    "BarqRpcException",
    "EngineHost",
    "PluginConfig",
    "RuntimeLike",
    "build_plugin",
    "config_from_init",
    "knowledge_entries",
    "knowledge_records",
    "main",
    "parse_exclude",
    "parse_msat",
    "parse_pay_params",
    "pay_redirect_params",
    "payment_json",
    "rpc_error",
    "unwrap_group",
]

log = logging.getLogger("barq.plugin")

T = TypeVar("T")

PAY_UNSPECIFIED_ERROR = 209
MAX_PARTS_LIMIT = MAXPARTS_LIMIT
"""``maxparts`` above this is refused as absurd (each part is an HTLC slot)."""

PART_START_TOPIC = "barq_part_start"
PART_END_TOPIC = "barq_part_end"

_HEX32 = re.compile(r"^[0-9a-f]{64}$")


# -- configuration -----------------------------------------------------------------------------

#: (option name, default, description, pyln type)
OPTIONS: tuple[tuple[str, Any, str, str], ...] = (
    (
        "barq-strategy",
        "mincostflow",
        "Routing strategy used when barqpay gets no strategy (see barqstrategies)",
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
    ("barq-maxparts", 64, "Default maximum number of parts in flight at once (1..1000)", "int"),
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
    strategy: str = "mincostflow"
    maxfee_msat: int = 5000
    maxfee_ppm: int = 10_000
    retry_for_s: int = 60
    maxdelay: int = 2016
    maxparts: int = 64
    estimator_half_life_s: int = 3600
    configuration: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def rpc_path(self) -> Path:
        return Path(self.lightning_dir) / self.rpc_file

    def engine_config(self) -> EngineConfig:
        """The engine's settings derived from the plugin options."""
        return EngineConfig(
            default_strategy=self.strategy,
            maxfee_base_msat=self.maxfee_msat,
            maxfee_ppm=self.maxfee_ppm,
            retry_for_s=float(self.retry_for_s),
            maxdelay=self.maxdelay,
            maxparts=self.maxparts,
            estimator_half_life_s=float(self.estimator_half_life_s),
        )


def _percent_to_ppm(text: Any, name: str) -> int:
    try:
        d = Decimal(str(text).strip().rstrip("%"))
    except InvalidOperation:
        raise InvalidParams(f"{name}: not a number: {text!r}") from None
    if not d.is_finite() or d < 0 or d > 100:
        raise InvalidParams(f"{name}: must be a percentage between 0 and 100, got {text!r}")
    return int(d * 10_000)


def config_from_init(options: dict[str, Any], configuration: dict[str, Any]) -> PluginConfig:
    """Read the ``barq-*`` options and lightningd's configuration into a :class:`PluginConfig`.

    Args:
        options: ``init``'s ``options`` (option name -> value; missing ones
            take their default).
        configuration: ``init``'s ``configuration`` (``lightning-dir``,
            ``rpc-file``, ``network``...).

    Raises:
        InvalidParams: an option value is out of range or unparsable, or the
            default strategy is not registered (the message names the option).
    """
    defaults = {name: default for name, default, _, _ in OPTIONS}
    opt = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    lightning_dir = str(configuration.get("lightning-dir") or ".")

    def int_opt(name: str, lo: int, hi: int) -> int:
        v = opt[name]
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise InvalidParams(f"option {name}: not an integer: {v!r}") from None
        if isinstance(v, bool) or not lo <= n <= hi:
            raise InvalidParams(f"option {name}: must be between {lo} and {hi}, got {v!r}")
        return n

    db = str(opt["barq-db"] or "barq.sqlite3")
    db_path = db if os.path.isabs(db) else os.path.join(lightning_dir, db)
    strategy = str(opt["barq-strategy"])
    try:
        get_strategy(strategy)
    except BarqError as exc:
        raise InvalidParams(f"option barq-strategy: {exc.message}") from exc
    handle = opt["barq-handle-pay"]
    if isinstance(handle, str):
        handle = handle.lower() in ("true", "1", "yes", "on")
    return PluginConfig(
        lightning_dir=lightning_dir,
        rpc_file=str(configuration.get("rpc-file") or "lightning-rpc"),
        network=str(configuration.get("network") or "bitcoin"),
        db_path=db_path,
        handle_pay=bool(handle),
        strategy=strategy,
        maxfee_msat=int_opt("barq-maxfee-msat", 0, 2**63 - 1),
        maxfee_ppm=_percent_to_ppm(opt["barq-maxfee-percent"], "option barq-maxfee-percent"),
        retry_for_s=int_opt("barq-retry-for", 1, 2**32 - 1),
        maxdelay=int_opt("barq-maxdelay", 1, 2**32 - 1),
        maxparts=int_opt("barq-maxparts", 1, MAX_PARTS_LIMIT),
        estimator_half_life_s=int_opt("barq-estimator-half-life", 1, 2**32 - 1),
        configuration=dict(configuration),
    )


# -- parameter parsing (type and range only; the engine validates against the invoice) -----------

_MSAT = re.compile(r"^(\d+)(msat)?$")
_SAT = re.compile(r"^(\d+)(?:\.(\d{3}))?sat$")
_BTC = re.compile(r"^(\d+)(?:\.(\d{1,11}))?btc$")


def parse_msat(value: Any, name: str, *, allow_zero: bool = True) -> int:
    """An amount as CLN takes it: ``1000``, ``"1000msat"``, ``"1sat"``, ``"1.001sat"``, ``"1btc"``.

    Raises:
        InvalidParams: not an amount, negative, or zero when ``allow_zero`` is False.
    """
    n: int | None = None
    if isinstance(value, bool):
        n = None
    elif isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if m := _MSAT.match(text):
            n = int(m.group(1))
        elif m := _SAT.match(text):
            n = int(m.group(1)) * 1000 + int(m.group(2) or 0)
        elif m := _BTC.match(text):
            n = int(m.group(1)) * 100_000_000_000 + int((m.group(2) or "0").ljust(11, "0"))
    elif hasattr(value, "millisatoshis"):  # pyln Millisatoshi
        n = int(value.millisatoshis)
    if n is None:
        raise InvalidParams(
            f"{name}: not an amount: {value!r} (use msat, or a sat/btc suffix)",
            data={"param": name, "value": _jsonable(value)},
        )
    if n < 0 or (n == 0 and not allow_zero):
        raise InvalidParams(
            f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}",
            data={"param": name, "value": _jsonable(value)},
        )
    return n


def _parse_int(value: Any, name: str, lo: int, hi: int) -> int:
    n: int | None = None
    if isinstance(value, bool):
        n = None
    elif isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        n = int(value.strip())
    if n is None:
        raise InvalidParams(
            f"{name}: not an integer: {value!r}", data={"param": name, "value": _jsonable(value)}
        )
    if not lo <= n <= hi:
        raise InvalidParams(
            f"{name}: must be between {lo} and {hi}, got {n}",
            data={"param": name, "value": n, "min": lo, "max": hi},
        )
    return n


def _parse_seconds(value: Any, name: str) -> float:
    x: float | None = None
    if isinstance(value, bool):
        x = None
    elif isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        with suppress(ValueError):
            x = float(value.strip())
    if x is None or x != x or x in (float("inf"), float("-inf")):
        raise InvalidParams(
            f"{name}: not a number of seconds: {value!r}",
            data={"param": name, "value": _jsonable(value)},
        )
    if x <= 0:
        raise InvalidParams(
            f"{name}: must be > 0 seconds, got {value!r}", data={"param": name, "value": x}
        )
    return x


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
    out: list[str] = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            e = entry.strip().lower()
            if is_node_id(e):
                out.append(e)
                continue
            with suppress(ValueError):
                scid, d = parse_scid_dir(e)
                out.append(f"{scid}/{d}")
                continue
        raise InvalidParams(
            f"exclude[{i}]: {entry!r} is neither a short_channel_id/direction (like 103x1x0/1) "
            f"nor a node id (66 hex characters)",
            data={"param": "exclude", "index": i, "value": _jsonable(entry)},
        )
    return tuple(out)


def _check_strategy(strategy: Any) -> str | None:
    if strategy is None:
        return None
    if not isinstance(strategy, str) or not strategy:
        raise InvalidParams(f"strategy: must be a strategy name, got {strategy!r}")
    get_strategy(strategy)  # UnknownStrategy (-32602) lists what is available
    return strategy


def parse_pay_params(
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
    """Type- and range-check ``barqpay``'s parameters (``None`` = engine default).

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
        amount_msat=None
        if amount_msat is None
        else parse_msat(amount_msat, "amount_msat", allow_zero=False),
        maxparts=None if maxparts is None else _parse_int(maxparts, "maxparts", 1, MAX_PARTS_LIMIT),
        maxfee_msat=None if maxfee is None else parse_msat(maxfee, "maxfee"),
        retry_for_s=None if retry_for is None else _parse_seconds(retry_for, "retry_for"),
        maxdelay=None if maxdelay is None else _parse_int(maxdelay, "maxdelay", 1, 2**32 - 1),
        exclude=parse_exclude(exclude),
        strategy=_check_strategy(strategy),
        label=None if label is None else str(label),
    )


def _parse_node_id(value: Any, name: str) -> NodeId:
    if isinstance(value, str) and is_node_id(value.strip().lower()):
        return value.strip().lower()
    raise InvalidParams(
        f"{name}: not a node id (66 hex characters starting 02 or 03): {value!r}",
        data={"param": name},
    )


def _parse_hash(value: Any, name: str) -> str:
    if isinstance(value, str) and _HEX32.match(value.strip().lower()):
        return value.strip().lower()
    raise InvalidParams(
        f"{name}: not a payment hash (64 hex characters): {value!r}", data={"param": name}
    )


class _NotRedirectable(Exception):
    """``pay`` parameters Barq does not serve; the hook lets CLN's pay run."""


#: ``pay``'s positional parameter order (CLN v24+).
PAY_POSITIONAL = (
    "bolt11",
    "amount_msat",
    "label",
    "riskfactor",
    "maxfeepercent",
    "retry_for",
    "maxdelay",
    "exemptfee",
    "localinvreqid",
    "exclude",
    "maxfee",
    "description",
)


def pay_redirect_params(params: Any) -> tuple[dict[str, Any], Decimal | None, int | None]:
    """Map ``pay``'s parameters onto ``barqpay``'s.

    Returns:
        ``(barqpay params, maxfeepercent or None, exemptfee msat or None)``; when
        either of the last two is set, ``maxfee`` must still be computed from
        the invoice amount (as xpay does).

    Raises:
        _NotRedirectable: something Barq does not do (bolt12, ``localinvreqid``,
            ``partial_msat``, both ``maxfee`` and ``maxfeepercent``...).
    """
    if isinstance(params, list):
        if len(params) > len(PAY_POSITIONAL):
            raise _NotRedirectable("too many positional parameters")
        named = {k: v for k, v in zip(PAY_POSITIONAL, params, strict=False) if v is not None}
    elif isinstance(params, dict):
        named = {k: v for k, v in params.items() if v is not None}
    else:
        raise _NotRedirectable("parameters are neither a list nor an object")
    bolt11 = named.pop("bolt11", None)
    if not isinstance(bolt11, str) or bolt11.lower().startswith("lni"):
        raise _NotRedirectable("no bolt11 string (bolt12 invoices stay with pay)")
    out: dict[str, Any] = {"invstring": bolt11}
    for key in ("amount_msat", "label", "retry_for", "maxdelay", "exclude", "maxfee"):
        if key in named:
            out[key] = named.pop(key)
    named.pop("riskfactor", None)  # a tuning knob of pay's own router: meaningless here
    named.pop("description", None)  # only checked against a description hash by pay
    percent = named.pop("maxfeepercent", None)
    exempt = named.pop("exemptfee", None)
    if named:
        raise _NotRedirectable(f"unsupported pay parameters: {', '.join(sorted(named))}")
    if (percent is not None or exempt is not None) and "maxfee" in out:
        raise _NotRedirectable("maxfee together with maxfeepercent/exemptfee")
    pct: Decimal | None = None
    if percent is not None:
        try:
            pct = Decimal(str(percent))
        except InvalidOperation:
            raise _NotRedirectable(f"maxfeepercent {percent!r} is not a number") from None
    ex: int | None = None
    if exempt is not None:
        try:
            ex = parse_msat(exempt, "exemptfee")
        except InvalidParams as exc:
            raise _NotRedirectable(str(exc)) from None
    return out, pct, ex


# -- JSON shapes -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def route_json(route: Route) -> list[dict[str, Any]]:
    """A route as ``sendpay`` hops (without the legacy ``style``)."""
    return [
        {
            "id": h.id,
            "channel": h.channel,
            "direction": h.direction,
            "amount_msat": h.amount_msat,
            "delay": h.delay,
        }
        for h in route.hops
    ]


def failure_json(f: RouteFailure) -> dict[str, Any]:
    out: dict[str, Any] = {
        "failcode": f.failcode,
        "failcodename": f.failcodename,
        "erring_index": f.erring_index,
    }
    if f.erring_node is not None:
        out["erring_node"] = f.erring_node
    if f.erring_channel is not None:
        out["erring_channel"] = f.erring_channel
        if f.erring_direction is not None:
            out["erring_direction"] = f.erring_direction
    if f.message:
        out["message"] = f.message
    return out


def part_json(p: PartView, *, now: float | None = None) -> dict[str, Any]:
    """One attempt: amounts, fee, route, outcome, timing and (if it failed) why."""
    end = p.finished_at if p.finished_at is not None else (now if now is not None else time.time())
    out: dict[str, Any] = {
        "partid": p.partid,
        "groupid": p.groupid,
        "amount_msat": p.amount_msat,
        "amount_sent_msat": p.amount_sent_msat,
        "fee_msat": p.fee_msat,
        "state": str(p.state),
        "path": p.route.describe(),
        "route": route_json(p.route),
        "started_at": p.started_at,
        "elapsed_s": round(max(0.0, end - p.started_at), 6),
    }
    if p.route.probability is not None:
        out["probability"] = round(p.route.probability, 6)
    if p.finished_at is not None:
        out["finished_at"] = p.finished_at
    if p.failure is not None:
        out["failure"] = failure_json(p.failure)
    if p.reason:
        out["reason"] = p.reason
    return out


def payment_json(v: PaymentView, *, now: float | None = None) -> dict[str, Any]:
    """A payment in ``pay``'s result shape plus Barq's details.

    ``pay`` fields: ``payment_preimage`` (when complete), ``payment_hash``,
    ``destination``, ``amount_msat``, ``amount_sent_msat``, ``parts`` (number
    of attempts, as xpay counts them), ``created_at``, ``status``. Barq adds
    ``strategy``, ``groupid``, ``fee_msat``, ``delivered_msat``,
    ``inflight_msat``, ``maxfee_msat``, ``compute_s``, ``elapsed_s``,
    ``completed_at``, ``bolt11``/``label`` when known, ``error``/``error_code``
    when failed, and ``attempts``: every part with its route, amount, fee,
    state and failure.
    """
    now_ = now if now is not None else time.time()
    end = v.completed_at if v.completed_at is not None else now_
    out: dict[str, Any] = {}
    if v.payment_preimage:
        out["payment_preimage"] = v.payment_preimage
    out.update(
        {
            "payment_hash": v.payment_hash,
            "destination": v.destination,
            "amount_msat": v.amount_msat,
            "amount_sent_msat": v.amount_sent_msat,
            "parts": len(v.parts) if v.parts else v.attempts,
            "created_at": v.created_at,
            "status": str(v.status),
            "strategy": v.strategy,
            "groupid": v.groupid,
            "fee_msat": v.fee_msat,
            "delivered_msat": v.delivered_msat,
            "inflight_msat": v.inflight_msat,
            "maxfee_msat": v.maxfee_msat,
            "compute_s": round(v.compute_s, 6),
            "elapsed_s": round(max(0.0, end - v.created_at), 6),
        }
    )
    if v.completed_at is not None:
        out["completed_at"] = v.completed_at
    if v.bolt11:
        out["bolt11"] = v.bolt11
    if v.label:
        out["label"] = v.label
    if v.error:
        out["error"] = v.error
    if v.error_code is not None:
        out["error_code"] = v.error_code
    out["attempts"] = [part_json(p, now=now_) for p in v.parts]
    return out


def _view_from_data(data: Any) -> PaymentView | None:
    """The payment in an engine error's ``data`` (builtins of a view, ``attempts`` a list)."""
    if isinstance(data, PaymentView):
        return data
    if isinstance(data, dict) and "payment_hash" in data and "status" in data:
        d = {k: v for k, v in data.items() if k in PaymentView.__struct_fields__}
        if isinstance(d.get("attempts"), list):
            d["attempts"] = len(d["attempts"])
        try:
            return msgspec.convert(d, PaymentView)
        except msgspec.ValidationError:
            return None
    return None


# -- errors ----------------------------------------------------------------------------------------


class BarqRpcException(RpcException):  # type: ignore[misc]
    """An :class:`RpcException` that also carries JSON-RPC ``data``."""

    def __init__(self, message: str, code: int, data: dict[str, Any] | None = None) -> None:
        super().__init__(message, code)
        self.data = data


def unwrap_group(exc: BaseException) -> BaseException:
    """The error inside (nested) exception groups: the first BarqError, else the first leaf."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop(0)
        if isinstance(e, BaseExceptionGroup):
            stack = list(e.exceptions) + stack
        else:
            leaves.append(e)
    return next((e for e in leaves if isinstance(e, BarqError)), leaves[0] if leaves else exc)


def rpc_error(exc: BaseException, *, method: str = "") -> tuple[int, str, dict[str, Any] | None]:
    """``(code, message, data)`` of the JSON-RPC error for ``exc``.

    A :class:`BarqError` keeps its code and message; its ``data`` is turned
    into :func:`payment_json` shape when it is a payment. Anything else is an
    internal error: code 209 with the exception's type and message. Exception
    groups are looked into (:func:`unwrap_group`).
    """
    exc = unwrap_group(exc)
    if isinstance(exc, BarqRpcException):
        return exc.code, exc.message, exc.data
    if isinstance(exc, BarqError):
        data: dict[str, Any] | None = dict(exc.data) if exc.data else None
        view = _view_from_data(exc.data)
        if view is not None:
            extra = {k: v for k, v in exc.data.items() if k not in PaymentView.__struct_fields__}
            data = {**payment_json(view), **extra}
        elif isinstance(exc, PartFailed) and exc.failure is not None:
            data = {**(data or {}), "failure": failure_json(exc.failure)}
        return exc.code, exc.message, data
    if isinstance(exc, RpcException):
        return exc.code, exc.message, None
    where = f" in {method}" if method else ""
    return (
        PAY_UNSPECIFIED_ERROR,
        f"internal error{where}: {type(exc).__name__}: {exc}",
        {"exception": type(exc).__name__},
    )


class _BarqRequest(Request):  # type: ignore[misc]
    """pyln's Request, answering errors with ``data`` and Barq's code mapping."""

    state: RequestState
    termination_tb: str | None

    def set_exception(self, exc: Exception | RpcException) -> None:
        if self.state != RequestState.PENDING:
            raise ValueError(
                f"Cannot set the exception of a request that is not pending, current state is "
                f"{self.state}. Request previously terminated at\n{self.termination_tb}"
            )
        self.exc = exc
        code, message, data = rpc_error(exc, method=self.method)
        if code == PAY_UNSPECIFIED_ERROR and not isinstance(exc, BarqError | RpcException):
            tb = "".join(traceback.format_exception(exc))
            self.plugin.log(f"unexpected error in {self.method}: {tb}", level="error")
        error: dict[str, Any] = {"code": code, "message": message}
        if data:
            error["data"] = data
        self._write_result({"jsonrpc": "2.0", "id": self.id, "error": error})
        self.state = RequestState.FAILED
        self.termination_tb = "".join(traceback.extract_stack().format()[:-1])


# -- the engine host -------------------------------------------------------------------------------


class RuntimeLike(Protocol):
    """What the plugin uses of :class:`barq.actors.runtime.Runtime`."""

    async def pay(
        self,
        params: PayParams,
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
        invoice: Invoice | None = None,
        sendpays: Sequence[PartStatus] | None = None,
    ) -> PaymentView: ...

    async def route(
        self,
        destination: NodeId,
        amount_msat: int,
        *,
        strategy: str | None = None,
        maxparts: int | None = None,
        maxfee_msat: int | None = None,
        final_cltv: int = 18,
    ) -> list[Route]: ...

    def status(self, payment_hash: str | None = None) -> list[PaymentView]: ...

    async def export_knowledge(self) -> list[KnowledgeEntry]: ...


RuntimeFactory = Callable[..., AbstractAsyncContextManager[RuntimeLike]]
NodeFactory = Callable[[dict[str, Any]], NodeInterface]


def _default_node_factory(configuration: dict[str, Any]) -> NodeInterface:
    from barq.node.lightningd import LightningdNode

    ldir = str(configuration.get("lightning-dir") or ".")
    rpc = Path(ldir) / str(configuration.get("rpc-file") or "lightning-rpc")
    return LightningdNode(rpc, lightning_dir=ldir)


def _default_runtime_factory(
    node: NodeInterface, config: EngineConfig, *, knowledge: list[KnowledgeEntry] | None = None
) -> AbstractAsyncContextManager[RuntimeLike]:
    from barq.actors import runtime

    return cast(
        AbstractAsyncContextManager[RuntimeLike],
        runtime.open_runtime(node, config, knowledge=knowledge),
    )


@dataclass
class PayOutcome:
    """What :meth:`EngineHost.pay` produced: the payment, and how it was obtained."""

    view: PaymentView
    already_paid: bool = False  # an earlier payment of this invoice, nothing sent now
    joined: bool = False  # another barqpay of this invoice was running; its result


@dataclass
class _Flight:
    """One invoice being handled right now (joiners wait on ``done``)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: PayOutcome | None = None
    error: BaseException | None = None


_KIND_OF_TAG = {
    "ChannelKnowledge": "channel",
    "DisabledChannel": "disabled_channel",
    "DisabledNode": "disabled_node",
}
_TAG_OF_KIND = {v: k for k, v in _KIND_OF_TAG.items()}


def knowledge_records(entries: Iterable[KnowledgeEntry]) -> list[KnowledgeRecord]:
    """The estimator's export (:data:`barq.actors.messages.KnowledgeEntry`) as store rows."""
    out: list[KnowledgeRecord] = []
    for e in entries:
        d: dict[str, Any] = msgspec.to_builtins(e)
        kind = _KIND_OF_TAG.get(str(d.pop("type", type(e).__name__)))
        if kind is None:
            continue
        key = d.pop("node_id") if kind == "disabled_node" else d.pop("scid_dir")
        out.append(msgspec.convert({"kind": kind, "key": key, **d}, KnowledgeRecord))
    return out


def knowledge_entries(
    records: Iterable[KnowledgeRecord], log: Callable[[str, str], None] | None = None
) -> list[KnowledgeEntry]:
    """Store rows back into estimator entries; a row that does not fit is skipped (logged)."""
    out: list[KnowledgeEntry] = []
    for r in records:
        tag = _TAG_OF_KIND.get(r.kind)
        d: dict[str, Any] = {"type": tag}
        if r.kind == "channel":
            d.update(
                scid_dir=r.key,
                lo_msat=r.lo_msat,
                hi_msat=r.hi_msat,
                updated_at=r.updated_at,
                capacity_msat=r.capacity_msat,
            )
        elif r.kind == "disabled_channel":
            d.update(scid_dir=r.key, until=r.until, reason=r.reason)
        else:
            d.update(node_id=r.key, until=r.until, reason=r.reason)
        try:
            out.append(msgspec.convert(d, KnowledgeEntry))
        except msgspec.ValidationError as exc:
            if log is not None:
                log(f"skipping stored knowledge {r.kind} {r.key}: {exc}", "warn")
    return out


def view_from_sendpays(
    parts: list[PartStatus], base: PaymentView | None = None, *, strategy: str = ""
) -> PaymentView:
    """A payment view of one ``(payment_hash, groupid)`` as ``listsendpays`` shows it.

    Routes, strategy and failure details come from ``base`` (Barq's own
    record) when it has the part; parts it lacks get an empty route.
    """
    assert parts, "view_from_sendpays needs at least one part"
    old = {p.partid: p for p in base.parts} if base is not None else {}
    states = {
        SendpayStatus.COMPLETE: PartState.SUCCEEDED,
        SendpayStatus.FAILED: PartState.FAILED,
        SendpayStatus.PENDING: PartState.INFLIGHT,
    }
    views: list[PartView] = []
    for p in sorted(parts, key=lambda p: p.partid):
        prev = old.get(p.partid)
        state = states[p.status]
        views.append(
            PartView(
                partid=p.partid,
                groupid=p.groupid,
                amount_msat=p.amount_msat,
                amount_sent_msat=p.amount_sent_msat,
                fee_msat=p.amount_sent_msat - p.amount_msat,
                route=prev.route if prev is not None else Route(hops=()),
                state=state,
                started_at=prev.started_at if prev is not None else float(p.created_at),
                finished_at=(
                    None
                    if state is PartState.INFLIGHT
                    else (
                        prev.finished_at
                        if prev is not None and prev.finished_at is not None
                        else float(p.completed_at or p.created_at)
                    )
                ),
                failure=prev.failure if prev is not None and state is PartState.FAILED else None,
                reason=prev.reason if prev is not None and state is PartState.FAILED else None,
            )
        )
    done = [p for p in parts if p.status is SendpayStatus.COMPLETE]
    pending = [p for p in parts if p.status is SendpayStatus.PENDING]
    status = (
        PaymentStatus.COMPLETE
        if done
        else PaymentStatus.PENDING
        if pending
        else PaymentStatus.FAILED
    )
    first = parts[0]
    delivered = sum(p.amount_msat for p in done)
    sent = sum(p.amount_sent_msat for p in done)
    amount = (
        base.amount_msat
        if base is not None
        else (delivered or sum(p.amount_msat for p in pending) or max(p.amount_msat for p in parts))
    )
    completed = [float(p.completed_at) for p in parts if p.completed_at]
    return PaymentView(
        payment_hash=first.payment_hash,
        destination=(base.destination if base is not None else first.destination or ""),
        amount_msat=amount,
        status=status,
        strategy=base.strategy if base is not None else strategy,
        created_at=base.created_at if base is not None else float(min(p.created_at for p in parts)),
        groupid=first.groupid,
        bolt11=(base.bolt11 if base is not None and base.bolt11 else first.bolt11),
        label=(base.label if base is not None and base.label else first.label),
        completed_at=(
            None
            if status is PaymentStatus.PENDING
            else (
                base.completed_at
                if base is not None and base.completed_at
                else (max(completed) if completed else None)
            )
        ),
        payment_preimage=next((p.payment_preimage for p in done if p.payment_preimage), None),
        amount_sent_msat=sent,
        delivered_msat=delivered,
        inflight_msat=sum(p.amount_msat for p in pending),
        fee_msat=sent - delivered,
        attempts=len(parts),
        maxfee_msat=base.maxfee_msat if base is not None else 0,
        compute_s=base.compute_s if base is not None else 0.0,
        parts=views,
        error=(base.error if base is not None and status is PaymentStatus.FAILED else None),
        error_code=(
            base.error_code if base is not None and status is PaymentStatus.FAILED else None
        ),
    )


def _group(parts: Iterable[PartStatus]) -> dict[tuple[str, int], list[PartStatus]]:
    groups: dict[tuple[str, int], list[PartStatus]] = defaultdict(list)
    for p in parts:
        groups[(p.payment_hash, p.groupid)].append(p)
    return groups


class EngineHost:
    """The engine's thread: a trio loop behind a ``BlockingPortal``, plus the store.

    All methods named ``a*`` / coroutines run in the engine thread (submit
    them with :meth:`submit`); :meth:`start`, :meth:`submit` and
    :meth:`close` are called from the plugin's main thread.

    Args:
        config: the plugin configuration.
        node_factory: builds the node from ``init``'s configuration (called
            in the engine thread).
        runtime_factory: ``open_runtime``-like async context manager factory.
        log: ``(message, level)`` sink (the plugin's log).
    """

    def __init__(
        self,
        config: PluginConfig,
        *,
        node_factory: NodeFactory,
        runtime_factory: RuntimeFactory,
        log: Callable[[str, str], None],
    ) -> None:
        self.config = config
        self._node_factory = node_factory
        self._runtime_factory = runtime_factory
        self._log = log
        self._portal_cm: Any = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._main_future: Future[None] | None = None
        self._futures: set[Future[Any]] = set()
        self.node: NodeInterface | None = None
        self.runtime: RuntimeLike | None = None
        self.store: Store | None = None
        self.store_error: StoreError | None = None
        self.engine_error: BaseException | None = None
        self.state = "stopped"
        self._ready: anyio.Event | None = None
        self._stop: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._flights: dict[str, _Flight] = {}
        self._recovering: dict[tuple[str, int], PaymentView] = {}
        self._bases: dict[tuple[str, int], PaymentView] = {}  # DB records of recovered groups
        self._reconciled: anyio.Event | None = None

    # -- main-thread side -------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread and schedule the engine's start-up; returns at once."""
        self._portal_cm = anyio.from_thread.start_blocking_portal(
            backend="trio", name="barq-engine"
        )
        self._portal = self._portal_cm.__enter__()
        self.state = "starting"
        self._portal.call(self._make_events)  # before any command can wait on them
        self._main_future = self._portal.start_task_soon(self._main, name="barq-engine-main")

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in the engine thread; its future (cancel it to cancel the task).

        Raises:
            BarqError: the engine thread is not running (not initialised or shut down).
        """
        portal = self._portal
        if portal is None:
            raise BarqError("barq engine is not running (plugin not initialised or shut down)")
        try:
            fut = portal.start_task_soon(fn, *args)
        except RuntimeError as exc:
            raise BarqError(f"barq engine is not running: {exc}") from exc
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        return fut

    def close(self, timeout_s: float = 10.0) -> None:
        """Cancel what runs, stop the engine (saving knowledge) and close the store. Idempotent."""
        portal, cm = self._portal, self._portal_cm
        if portal is None or cm is None:
            return
        self._portal = None
        self.state = "stopping"
        for fut in list(self._futures):
            fut.cancel()
        with suppress(Exception):
            portal.call(self._shutdown, timeout_s)
        with suppress(Exception):
            portal.call(portal.stop, True)
        with suppress(Exception):
            cm.__exit__(None, None, None)
        if self.store is not None:
            self.store.close()
        self.state = "stopped"

    # -- engine-thread side -------------------------------------------------------------------

    async def _shutdown(self, timeout_s: float) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._stopped is not None:
            with anyio.move_on_after(timeout_s):
                await self._stopped.wait()

    def _make_events(self) -> None:
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._reconciled = anyio.Event()

    async def _main(self) -> None:
        assert self._ready is not None and self._stop is not None
        assert self._stopped is not None and self._reconciled is not None
        try:
            async with AsyncExitStack() as stack:
                try:
                    node = self._node_factory(self.config.configuration)
                    aclose = getattr(node, "aclose", None)
                    if aclose is not None:
                        stack.push_async_callback(aclose)
                    self.node = node
                    knowledge = await self._open_store()
                    runtime = await stack.enter_async_context(
                        self._runtime_factory(
                            node, self.config.engine_config(), knowledge=knowledge
                        )
                    )
                except Exception as exc:
                    err = unwrap_group(exc)
                    self.engine_error = err
                    self.state = "failed"
                    self._log(f"barq engine failed to start: {err}", "error")
                    return
                self.runtime = runtime
                self.state = "running"
                self._ready.set()
                self._log("barq engine running", "info")
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._reconcile)
                    await self._stop.wait()
                    await self._save_knowledge()
                    tg.cancel_scope.cancel()
        finally:
            self._ready.set()
            self._reconciled.set()
            self._stopped.set()
            self._tg = None

    async def _open_store(self) -> list[KnowledgeEntry] | None:
        try:
            self.store = await anyio.to_thread.run_sync(
                lambda: open_store(self.config.db_path, on_error=lambda m: self._log(m, "error"))
            )
            rows = await self.store.aget_knowledge()
        except StoreError as exc:
            self.store_error = exc
            self._log(
                f"{exc.message}; barqpay and barqlistpays are refused until it is fixed", "error"
            )
            return None
        return list(knowledge_entries(rows, self._log)) if rows else None

    async def ready_runtime(self) -> RuntimeLike:
        """The runtime once started.

        Raises:
            BarqError: the engine failed to start (its error, e.g. lightningd unreachable).
        """
        assert self._ready is not None
        await self._ready.wait()
        if self.runtime is None:
            err = self.engine_error
            if isinstance(err, BarqError):
                raise err
            raise BarqError(f"barq engine failed to start: {err}")
        return self.runtime

    def _require_store(self) -> Store:
        if self.store is None:
            if self.store_error is not None:
                raise self.store_error
            raise StoreError("barq database is not open", data={"path": self.config.db_path})
        return self.store

    def _merge_routes(self, view: PaymentView) -> PaymentView:
        """Parts the engine adopted after a restart (route unknown to it) get the route
        and start time recorded before the restart (mutates and returns ``view``)."""
        base = self._bases.get((view.payment_hash, view.groupid))
        if base is not None:
            known = {p.partid: p for p in base.parts}
            for part in view.parts:
                old = known.get(part.partid)
                if not part.route.hops and old is not None and old.route.hops:
                    part.route = old.route
                    part.started_at = old.started_at
        return view

    def _put(self, view: PaymentView) -> None:
        self._merge_routes(view)
        if self.store is not None and not self.store.closed:
            try:
                self.store.put_payment(view)
            except StoreError as exc:
                self._log(f"cannot record payment {view.payment_hash}: {exc}", "error")

    async def _save_knowledge(self) -> None:
        if self.runtime is None or self.store is None or self.store.closed:
            return
        try:
            rows = await self.runtime.export_knowledge()
            self.store.put_knowledge(knowledge_records(rows))
        except Exception as exc:
            self._log(f"cannot save channel knowledge: {exc}", "error")

    # -- reconciliation ---------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        assert self.node is not None and self._reconciled is not None
        try:
            sendpays = await self.node.listsendpays()
            known: dict[tuple[str, int], PaymentView] = {}
            if self.store is not None:
                known = {(v.payment_hash, v.groupid): v for v in await self.store.aget_payments()}
            recovered = finished = 0
            for key, parts in _group(sendpays).items():
                base = known.get(key)
                if any(p.status is SendpayStatus.PENDING for p in parts):
                    view = view_from_sendpays(parts, base, strategy="recovered")
                    self._recovering[key] = view
                    if base is not None:
                        self._bases[key] = base
                    assert self._tg is not None
                    self._tg.start_soon(self._await_recovered, key, parts, base)
                    recovered += 1
                elif base is not None and base.status is PaymentStatus.PENDING:
                    self._put(view_from_sendpays(parts, base))
                    finished += 1
            if recovered or finished:
                self._log(
                    f"restart: awaiting {recovered} payment(s) still in flight, recorded "
                    f"{finished} that finished while barq was down",
                    "info",
                )
        except Exception as exc:
            self._log(f"restart reconciliation with listsendpays failed: {exc}", "error")
        finally:
            self._reconciled.set()

    async def _await_recovered(
        self, key: tuple[str, int], parts: list[PartStatus], base: PaymentView | None
    ) -> None:
        assert self.node is not None
        node = self.node
        h, groupid = key
        resolved: dict[int, PartStatus] = {p.partid: p for p in parts}
        self._put(self._recovering[key])

        async def wait_part(p: PartStatus) -> None:
            try:
                resolved[p.partid] = await node.waitsendpay(h, partid=p.partid, groupid=groupid)
            except PartFailed:
                resolved[p.partid] = msgspec.structs.replace(
                    p, status=SendpayStatus.FAILED, completed_at=int(time.time())
                )
            except NodeError as exc:
                self._log(f"restart: waiting for part {h}/{groupid}/{p.partid}: {exc}", "error")
                return
            self._recovering[key] = view_from_sendpays(
                list(resolved.values()), base, strategy="recovered"
            )

        try:
            async with anyio.create_task_group() as tg:
                for p in parts:
                    if p.status is SendpayStatus.PENDING:
                        tg.start_soon(wait_part, p)
            view = self._recovering[key]
            if not self._engine_has(key):  # else the barqpay that adopted them records it
                self._put(view)
            self._log(
                f"restart: payment {h} (group {groupid}) that was in flight ended {view.status}",
                "info",
            )
        finally:
            self._recovering.pop(key, None)

    def _engine_has(self, key: tuple[str, int]) -> bool:
        """Whether a payment of the engine covers group ``key`` (it adopted those parts)."""
        if self.runtime is None:
            return False
        try:
            return any(v.groupid == key[1] for v in self.runtime.status(key[0]))
        except Exception:
            return False

    # -- commands ---------------------------------------------------------------------------------

    async def pay(
        self, params: PayParams, *, on_event: Callable[[PaymentEvent], None] | None = None
    ) -> PayOutcome:
        """Pay ``params.invstring`` once, whatever happened before.

        Order: wait for the engine; refuse without a database; decode the
        invoice; join a payment of the same invoice running here; return an
        earlier complete payment (201 if the amount differs); else run the
        engine, which adopts parts still pending from before a restart
        (``listsendpays``: same group, new part ids) and sends only the rest.

        Raises:
            BarqError: any engine error (its code is the JSON-RPC code).
        """
        runtime = await self.ready_runtime()
        self._require_store()
        assert self.node is not None and self._reconciled is not None
        inv = await self.node.decode_invoice(params.invstring)
        h = inv.payment_hash
        flight = self._flights.get(h)
        if flight is not None:
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.outcome is not None
            return PayOutcome(
                view=flight.outcome.view, already_paid=flight.outcome.already_paid, joined=True
            )
        flight = self._flights[h] = _Flight()
        try:
            flight.outcome = await self._pay_once(runtime, inv, params, on_event)
            return flight.outcome
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            flight.done.set()
            del self._flights[h]

    async def _pay_once(
        self,
        runtime: RuntimeLike,
        inv: Invoice,
        params: PayParams,
        on_event: Callable[[PaymentEvent], None] | None,
    ) -> PayOutcome:
        assert self.node is not None and self._reconciled is not None
        h = inv.payment_hash
        await self._reconciled.wait()
        sendpays = await self.node.listsendpays(h)
        earlier = await self._earlier_payment(inv, params, sendpays)
        if earlier is not None:
            return PayOutcome(view=earlier, already_paid=True)

        def record(event: PaymentEvent) -> None:
            try:
                views = runtime.status(h)
                if views:
                    self._put(max(views, key=lambda v: (v.groupid, v.created_at)))
            except Exception as exc:
                self._log(f"cannot record event of {h}: {exc}", "error")
            if on_event is not None:
                try:
                    on_event(event)
                except Exception as exc:
                    self._log(f"progress notification for {h} failed: {exc}", "error")

        try:
            # the engine takes the invoice and listsendpays as read here (no second
            # decode/listsendpays); this flight keeps other barqpays of the hash out
            view = await runtime.pay(params, on_event=record, invoice=inv, sendpays=sendpays)
        except BarqError as exc:
            failed = _view_from_data(exc.data)
            if failed is not None and (failed.payment_hash, failed.groupid) in self._bases:
                exc.data["parts"] = msgspec.to_builtins(self._merge_routes(failed).parts)
            self._record_final(runtime, h, failed)
            await self._save_knowledge()
            raise
        self._record_final(runtime, h, view)
        await self._save_knowledge()
        return PayOutcome(view=self._merge_routes(view))

    def _record_final(self, runtime: RuntimeLike, h: str, view: PaymentView | None) -> None:
        try:
            views = runtime.status(h)
        except Exception:
            views = []
        if views:
            view = max(views, key=lambda v: (v.groupid, v.created_at))
        if view is not None:
            self._put(view)

    async def _earlier_payment(
        self, inv: Invoice, params: PayParams, sendpays: list[PartStatus]
    ) -> PaymentView | None:
        """An earlier complete payment of this invoice (in its ``listsendpays``), with its record.

        The engine applies the same rule (a complete part means paid); this
        answer is richer: routes and strategy from the database.

        Raises:
            AlreadyPaid: it was paid with a different amount than asked now.
        """
        assert self.node is not None
        h = inv.payment_hash
        groups = _group(sendpays)
        complete = [
            k for k, ps in groups.items() if any(p.status is SendpayStatus.COMPLETE for p in ps)
        ]
        if not complete:
            return None
        key = complete[-1]
        base = None
        if self.store is not None:
            base = next((v for v in await self.store.aget_payments(h) if v.groupid == key[1]), None)
        view = view_from_sendpays(groups[key], base)
        wanted = params.amount_msat if params.amount_msat is not None else inv.amount_msat
        if wanted is not None and wanted != view.delivered_msat:
            raise AlreadyPaid(
                f"invoice {h} was already paid with {view.delivered_msat} msat; "
                f"refusing to pay it again with {wanted} msat",
                data=payment_json(view),
            )
        if base is None or base.status is not PaymentStatus.COMPLETE:
            self._put(view)
        return view

    async def status(self, payment_hash: str | None = None) -> dict[str, Any]:
        """``barqstatus``: payments in flight and recent ones, plus engine and store health."""
        payments: list[PaymentView] = []
        if self.runtime is not None:
            payments = list(self.runtime.status(payment_hash))
        seen = {(v.payment_hash, v.groupid) for v in payments}
        for key, v in list(self._recovering.items()):
            if key not in seen and payment_hash in (None, key[0]):
                payments.append(v)
        now = time.time()
        out: dict[str, Any] = {
            "payments": [payment_json(v, now=now) for v in payments],
            "engine": {"state": self.state},
            "store": {
                "path": self.config.db_path,
                "state": "open" if self.store is not None else "unavailable",
            },
        }
        if self.engine_error is not None:
            out["engine"]["error"] = str(self.engine_error)
        if self.store_error is not None:
            out["store"]["error"] = self.store_error.message
        elif self.store is not None and self.store.last_error:
            out["store"]["last_write_error"] = self.store.last_error
        return out

    async def listpays(self, payment_hash: str | None, status: str | None) -> dict[str, Any]:
        """``barqlistpays``: the payment history from the database."""
        if self._ready is not None:
            await self._ready.wait()
        store = self._require_store()
        views = await store.aget_payments(payment_hash, status)
        now = time.time()
        return {"pays": [payment_json(v, now=now) for v in views]}

    async def route(
        self,
        destination: NodeId,
        amount_msat: int,
        strategy: str | None,
        maxparts: int | None,
        maxfee_msat: int | None,
    ) -> dict[str, Any]:
        """``barqroute``: the routes the strategy would use now, without paying."""
        runtime = await self.ready_runtime()
        routes = await runtime.route(
            destination, amount_msat, strategy=strategy, maxparts=maxparts, maxfee_msat=maxfee_msat
        )
        prob = 1.0
        for r in routes:
            prob *= r.probability if r.probability is not None else 1.0
        return {
            "destination": destination,
            "amount_msat": amount_msat,
            "strategy": strategy or self.config.strategy,
            "amount_sent_msat": sum(r.sent_msat for r in routes),
            "fee_msat": sum(r.fee_msat for r in routes),
            "probability": round(prob, 6),
            "routes": [
                {
                    "amount_msat": r.amount_msat,
                    "amount_sent_msat": r.sent_msat,
                    "fee_msat": r.fee_msat,
                    "delay": r.delay,
                    "probability": (None if r.probability is None else round(r.probability, 6)),
                    "path": r.describe(),
                    "hops": route_json(r),
                }
                for r in routes
            ],
        }

    async def redirect_maxfee(
        self, invstring: str, amount: Any, percent: Decimal | None, exempt: int | None
    ) -> int:
        """xpay's conversion of ``pay``'s maxfeepercent/exemptfee into an absolute maxfee."""
        await self.ready_runtime()
        assert self.node is not None
        if amount is not None:
            amount_msat = parse_msat(amount, "amount_msat")
        else:
            inv = await self.node.decode_invoice(invstring)
            if inv.amount_msat is None:
                raise InvalidParams("amount_msat required")
            amount_msat = inv.amount_msat
        ppm = int((percent if percent is not None else Decimal("0.5")) * 10_000)
        fee = amount_msat * ppm // 1_000_000
        return max(fee, exempt if exempt is not None else 5000)


# -- the plugin ------------------------------------------------------------------------------------


class BarqPlugin(Plugin):  # type: ignore[misc]
    """pyln's Plugin with Barq's error shape, injectable streams and a clean shutdown."""

    def __init__(self, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
        root = logging.getLogger()
        before = set(root.handlers)
        # the real streams, taken before pyln redirects sys.stdout into log notifications
        real_in, real_out = stdin or sys.stdin, stdout or sys.stdout
        super().__init__(stdin=stdin, stdout=stdout, dynamic=True)
        # pyln ignores the streams it is given (it only sets them when *not* given)
        self.stdin: TextIO = cast(TextIO, real_in)
        self.stdout: TextIO = cast(TextIO, real_out)
        self._log_handlers = [
            h for h in root.handlers if h not in before and isinstance(h, PluginLogHandler)
        ]
        self.host: EngineHost | None = None
        self.barq_config: PluginConfig | None = None

    def _parse_request(self, jsrequest: dict[str, Any]) -> Request:
        return _BarqRequest(
            plugin=self,
            req_id=jsrequest.get("id"),
            method=str(jsrequest["method"]),
            params=jsrequest["params"],
            origin=jsrequest.get("origin"),
            background=False,
        )

    def _bind_pos(self, func: Callable[..., Any], params: list[Any], request: Request) -> Any:
        try:
            return super()._bind_pos(func, params, request)
        except TypeError as exc:
            raise InvalidParams(f"{request.method}: {exc}") from None

    def _bind_kwargs(
        self, func: Callable[..., Any], params: dict[str, Any], request: Request
    ) -> Any:
        try:
            return super()._bind_kwargs(func, params, request)
        except TypeError as exc:
            raise InvalidParams(f"{request.method}: {exc}") from None

    def _dispatch_request(self, request: Request) -> None:
        """pyln's dispatch, without a traceback in the log for Barq's own (expected) errors.

        (``request`` is injected as the handlers' *first* parameter: pyln
        inserts it at its index among positional params, so a later position
        would swallow a user argument when fewer are given.)
        """
        method = self.methods.get(request.method)
        if method is None:
            request.set_exception(InvalidParams(f"unknown method {request.method}"))
            return
        request.background = method.background
        try:
            result = self._exec_func(method.func, request)
            if not method.background:
                request.set_result(result)
        except Exception as exc:
            fallback = hook_fallbacks.get(request.method)
            if fallback is not None:  # a hook must never answer with an error
                self.log(
                    f"hook {request.method} failed, answering {fallback}: {exc}", level="error"
                )
                request.set_result(fallback)
            else:
                request.set_exception(exc)

    def serve(self) -> None:
        """Read and dispatch requests until stdin closes (or ``shutdown``), then stop the engine."""
        try:
            partial = b""
            for line in self.stdin.buffer:
                partial += line
                msgs = partial.split(b"\n\n")
                if len(msgs) < 2:
                    continue
                partial = self._multi_dispatch(msgs)
        except SystemExit:
            pass
        finally:
            self.close()

    def run(self) -> None:
        if os.environ.get("LIGHTNINGD_PLUGIN", None) != "1":
            self.print_usage()
            return
        self.serve()

    def close(self) -> None:
        """Stop the engine thread and detach pyln's log handler. Idempotent."""
        if self.host is not None:
            self.host.close()
        root = logging.getLogger()
        for h in self._log_handlers:
            root.removeHandler(h)
        self._log_handlers = []


def build_plugin(
    *,
    node_factory: NodeFactory | None = None,
    runtime_factory: RuntimeFactory | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> BarqPlugin:
    """The Barq plugin, with every method, option, hook and notification registered.

    Args:
        node_factory: builds the node from ``init``'s ``configuration``
            (default: :class:`barq.node.lightningd.LightningdNode` on
            ``<lightning-dir>/<rpc-file>``); tests pass a simulated node.
        runtime_factory: the engine (default :func:`barq.actors.runtime.open_runtime`).
        stdin, stdout: the JSON-RPC streams (default: the process's).
    """
    plugin = BarqPlugin(stdin=stdin, stdout=stdout)
    nodes = node_factory or _default_node_factory
    runtimes = runtime_factory or _default_runtime_factory

    for name, default, description, opt_type in OPTIONS:
        plugin.add_option(name, default, description, opt_type=opt_type)
    plugin.add_notification_topic(PART_START_TOPIC)
    plugin.add_notification_topic(PART_END_TOPIC)

    def logger(message: str, level: str) -> None:
        with suppress(Exception):
            plugin.log(message, level=level)

    def host() -> EngineHost:
        if plugin.host is None:
            raise BarqError("barq is not initialised yet")
        return plugin.host

    def answer(request: Request, fut: Future[Any], shape: Callable[[Any], Any]) -> None:
        """The one place a background request is completed."""
        if request.state != RequestState.PENDING:
            return
        try:
            if fut.cancelled():
                request.set_exception(BarqError(f"{request.method} cancelled: barq is stopping"))
                return
            exc = fut.exception()
            if exc is not None:
                request.set_exception(exc)
                return
            result = shape(fut.result())
        except Exception as exc:
            with suppress(ValueError):
                request.set_exception(exc)
            return
        with suppress(ValueError):
            request.set_result(result)

    def submit(
        request: Request, shape: Callable[[Any], Any], fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        fut = host().submit(fn, *args)
        fut.add_done_callback(lambda f: answer(request, f, shape))

    def identity(x: Any) -> Any:
        return x

    # -- init / shutdown ---------------------------------------------------------------------

    def init(
        options: dict[str, Any], configuration: dict[str, Any], plugin: Plugin, **kwargs: Any
    ) -> dict[str, Any] | None:
        try:
            cfg = config_from_init(options, configuration)
        except InvalidParams as exc:
            return {"disable": exc.message}
        bp = cast(BarqPlugin, plugin)
        bp.barq_config = cfg
        bp.host = EngineHost(cfg, node_factory=nodes, runtime_factory=runtimes, log=logger)
        bp.host.start()
        logger(
            f"barq started: strategy={cfg.strategy} db={cfg.db_path} handle-pay={cfg.handle_pay}",
            "info",
        )
        return None

    plugin.child_init = init

    def on_shutdown(**kwargs: Any) -> None:
        plugin.close()
        raise SystemExit(0)

    plugin.add_subscription("shutdown", on_shutdown)

    # -- barqpay -------------------------------------------------------------------------------

    def progress(request: Request) -> Callable[[PaymentEvent], None]:
        """The event sink of one barqpay: messages and progress to the caller, topics to all."""
        routes: dict[tuple[int, int], Route] = {}
        total = [0, 0]  # amount to deliver, delivered so far

        def on_event(ev: PaymentEvent) -> None:
            match ev:
                case PaymentStarted():
                    total[0] = ev.amount_msat
                    request.notify(
                        f"paying {ev.amount_msat} msat to {ev.destination} (strategy {ev.strategy})"
                    )
                case PartStarted():
                    routes[(ev.groupid, ev.partid)] = ev.route
                    request.notify(
                        f"part {ev.partid}: sending {ev.amount_msat} msat over "
                        f"{ev.route.describe()}"
                    )
                    plugin.notify(
                        PART_START_TOPIC,
                        {
                            PART_START_TOPIC: {
                                "payment_hash": ev.payment_hash,
                                "groupid": ev.groupid,
                                "partid": ev.partid,
                                "amount_msat": ev.amount_msat,
                                "path": ev.route.describe(),
                                "route": route_json(ev.route),
                            }
                        },
                    )
                case PartEnded():
                    route = routes.pop((ev.groupid, ev.partid), None)
                    why = ""
                    if ev.failure is not None:
                        f = ev.failure
                        at = f.erring_channel or f.erring_node or f"hop {f.erring_index}"
                        why = f": {f.failcodename} at {at}"
                    elif ev.reason:
                        why = f": {ev.reason}"
                    request.notify(
                        f"part {ev.partid}: {ev.state}{why}",
                        level="info" if ev.state is PartState.SUCCEEDED else "warn",
                    )
                    if ev.state is PartState.SUCCEEDED and total[0] > 0:
                        total[1] = min(total[0], total[1] + ev.amount_msat)
                        request.progress(total[1], total[0])  # msat delivered of the amount
                    payload: dict[str, Any] = {
                        "payment_hash": ev.payment_hash,
                        "groupid": ev.groupid,
                        "partid": ev.partid,
                        "amount_msat": ev.amount_msat,
                        "outcome": str(ev.state),
                        "path": route.describe() if route is not None else None,
                        "route": route_json(route) if route is not None else None,
                    }
                    if ev.failure is not None:
                        payload["failure"] = failure_json(ev.failure)
                    if ev.reason:
                        payload["reason"] = ev.reason
                    plugin.notify(PART_END_TOPIC, {PART_END_TOPIC: payload})
                case PaymentEnded():
                    request.notify(f"payment {ev.status}" + (f": {ev.error}" if ev.error else ""))

        return on_event

    def pay_shape(outcome: PayOutcome) -> dict[str, Any]:
        out = payment_json(outcome.view)
        if outcome.already_paid:
            out["already_paid"] = True
        return out

    def barqpay(
        request: Request,
        invstring: Any,
        amount_msat: Any = None,
        maxparts: Any = None,
        maxfee: Any = None,
        retry_for: Any = None,
        maxdelay: Any = None,
        exclude: Any = None,
        strategy: Any = None,
        label: Any = None,
    ) -> None:
        """Pay a bolt11 invoice with Barq's multi-part engine.

        Defaults (plugin options): maxfee is the larger of barq-maxfee-msat and
        barq-maxfee-percent of the amount, retry_for barq-retry-for seconds,
        maxdelay barq-maxdelay blocks, maxparts barq-maxparts, strategy
        barq-strategy. exclude is a list of short_channel_id/direction or node ids.
        The result is pay's plus strategy, fee_msat and every attempt (route,
        amount, fee, outcome); progress is sent as notifications.
        """
        params = parse_pay_params(
            invstring, amount_msat, maxparts, maxfee, retry_for, maxdelay, exclude, strategy, label
        )
        h = host()
        fut = h.submit(lambda: h.pay(params, on_event=progress(request)))
        fut.add_done_callback(lambda f: answer(request, f, pay_shape))

    plugin.add_method("barqpay", barqpay, background=True, description=barqpay.__doc__)

    # -- barqstatus / barqlistpays / barqroute / barqstrategies ----------------------------------

    def barqstatus(request: Request, payment_hash: Any = None) -> None:
        """Payments in flight and recent ones: every part's amount, route, state and elapsed
        time, the payment's totals, and the engine's and database's health."""
        ph = None if payment_hash is None else _parse_hash(payment_hash, "payment_hash")
        submit(request, identity, host().status, ph)

    plugin.add_method("barqstatus", barqstatus, background=True, description=barqstatus.__doc__)

    def barqlistpays(request: Request, payment_hash: Any = None, status: Any = None) -> None:
        """Payment history from Barq's database, oldest first (filter by payment_hash and
        by status: pending, complete or failed)."""
        ph = None if payment_hash is None else _parse_hash(payment_hash, "payment_hash")
        if status is not None and status not in [str(s) for s in PaymentStatus]:
            raise InvalidParams(
                f"status: must be pending, complete or failed, got {status!r}",
                data={"param": "status"},
            )
        submit(request, identity, host().listpays, ph, status)

    plugin.add_method(
        "barqlistpays", barqlistpays, background=True, description=barqlistpays.__doc__
    )

    def barqroute(
        request: Request,
        destination: Any,
        amount_msat: Any,
        strategy: Any = None,
        maxparts: Any = None,
    ) -> None:
        """The routes Barq would use now to send amount_msat to destination (nothing is paid)."""
        dest = _parse_node_id(destination, "destination")
        amount = parse_msat(amount_msat, "amount_msat", allow_zero=False)
        strat = _check_strategy(strategy)
        parts = None if maxparts is None else _parse_int(maxparts, "maxparts", 1, MAX_PARTS_LIMIT)
        submit(request, identity, host().route, dest, amount, strat, parts, None)

    plugin.add_method("barqroute", barqroute, background=True, description=barqroute.__doc__)

    def barqstrategies() -> dict[str, Any]:
        """The registered routing strategies (built-in and entry points), one line each."""
        return {"strategies": available_strategies()}

    plugin.add_method("barqstrategies", barqstrategies, description=barqstrategies.__doc__)

    # -- pay takeover ------------------------------------------------------------------------------

    def on_rpc_command(rpc_command: dict[str, Any], request: Request, **kwargs: Any) -> None:
        cont = {"result": "continue"}
        cfg, h = plugin.barq_config, plugin.host
        if (
            cfg is None
            or not cfg.handle_pay
            or h is None
            or rpc_command.get("method") != "pay"
            or h.store_error is not None
            or h.engine_error is not None
        ):
            request.set_result(cont)
            return
        try:
            params, percent, exempt = pay_redirect_params(rpc_command.get("params"))
        except _NotRedirectable as exc:
            logger(f"not redirecting pay to barqpay: {exc}", "info")
            request.set_result(cont)
            return

        def replace(p: dict[str, Any]) -> dict[str, Any]:
            logger("redirecting pay to barqpay", "debug")
            return {
                "replace": {
                    "jsonrpc": "2.0",
                    "id": rpc_command.get("id"),
                    "method": "barqpay",
                    "params": p,
                }
            }

        if percent is None and exempt is None:
            request.set_result(replace(params))
            return

        def finish(f: Future[int]) -> None:
            if f.cancelled() or f.exception() is not None:
                logger(f"not redirecting pay: cannot compute maxfee: {f.exception()}", "info")
                with suppress(ValueError):
                    request.set_result(cont)
                return
            with suppress(ValueError):
                request.set_result(replace({**params, "maxfee": f.result()}))

        h.submit(
            h.redirect_maxfee, params["invstring"], params.get("amount_msat"), percent, exempt
        ).add_done_callback(finish)

    plugin.add_hook("rpc_command", on_rpc_command, background=True, filters=["pay"])
    return plugin


def main() -> None:
    """``barq-plugin``: run as a Core Lightning plugin (prints usage outside lightningd)."""
    plugin = build_plugin()
    plugin.run()
