"""The ``rpc_command`` hook: the ``pay`` redirect, and ``listpays`` while Barq pays.

``pay`` (with ``barq-handle-pay``, as ``xpay-handle-pay`` does): a ``pay``
call Barq can serve is replaced by a ``barqpay`` call with the same id and
``pay``'s parameters by name (``barqpay`` takes every one of them:
``maxfeepercent``/``exemptfee``, ``riskfactor``, ``description``,
``partial_msat``...); BOLT 12 invoices and offers too. ``localinvreqid``,
parameters that are not a list or an object, no bolt11 string at all, or the
engine or its database unavailable: the call continues to CLN's ``pay``,
whose own answer is then the right one.

``keysend`` (with ``barq-handle-keysend`` as well): replaced by
``barqkeysend`` unless it uses ``maxfeepercent``/``exemptfee``/``routehints``.

``listpays``: while Barq pays a hash, a ``listpays`` about it is answered by
Barq ("pending" instead of "failed" between attempts:
:mod:`barq.plugin.listpays`); anything else continues to lightningd.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from pyln.client.plugin import Request

from barq.errors import shown

if TYPE_CHECKING:
    from barq.plugin.app import BarqPlugin

__all__ = [
    "HOOKED",
    "KEYSEND_POSITIONAL",
    "PAY_POSITIONAL",
    "NotRedirectable",
    "keysend_redirect_params",
    "on_rpc_command",
    "pay_redirect_params",
]

#: the commands the hook is registered for (lightningd calls it for no other)
HOOKED = ("pay", "listpays", "keysend")

#: ``keysend``'s positional parameter order (CLN v26.06, ``plugins/keysend.c``).
KEYSEND_POSITIONAL = (
    "destination",
    "amount_msat",
    "label",
    "maxfeepercent",
    "retry_for",
    "maxdelay",
    "exemptfee",
    "extratlvs",
    "routehints",
    "maxfee",
)

#: ``keysend`` parameters ``barqkeysend`` does not take: such a call stays CLN's
_KEYSEND_ONLY = ("maxfeepercent", "exemptfee", "routehints", "dev_use_shadow")

#: ``pay``'s positional parameter order (CLN v26.06, ``plugins/pay.c``).
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
    "partial_msat",
)


class NotRedirectable(Exception):
    """``pay`` parameters Barq does not serve; the hook lets CLN's pay run."""


def _by_name(params: Any, method: str, positional: tuple[str, ...]) -> dict[str, Any]:
    """``method``'s parameters by name (positional ones in ``positional`` order), nulls dropped."""
    if isinstance(params, list):
        if len(params) > len(positional):
            raise NotRedirectable(
                f"{len(params)} positional parameters, {method} has {len(positional)}"
            )
        named = dict(zip(positional, params, strict=False))
    elif isinstance(params, dict):
        named = dict(params)
    else:
        raise NotRedirectable("parameters are neither a list nor an object")
    return {k: v for k, v in named.items() if v is not None}


def pay_redirect_params(params: Any) -> dict[str, Any]:
    """``barqpay``'s parameters (by name) for a ``pay`` call.

    Every ``pay`` parameter keeps its name, except ``bolt11`` (``invstring``).
    Anything else is passed on too: ``barqpay`` refuses what it does not know
    with -32602 ("unknown parameter: x"), as ``pay`` does.

    Raises:
        NotRedirectable: bolt12, ``localinvreqid``, no bolt11 string, more
            positional parameters than ``pay`` has, or parameters that are
            neither a list nor an object.
    """
    named = _by_name(params, "pay", PAY_POSITIONAL)
    bolt11 = named.pop("bolt11", None)
    if not isinstance(bolt11, str):
        raise NotRedirectable(f"bolt11 is not a string: {shown(bolt11)}")
    if "localinvreqid" in named:
        raise NotRedirectable("localinvreqid (bolt12) stays with pay")
    return {"invstring": bolt11, **named}


_CONTINUE = {"result": "continue"}


def keysend_redirect_params(params: Any) -> dict[str, Any]:
    """``barqkeysend``'s parameters (by name) for a ``keysend`` call.

    Raises:
        NotRedirectable: parameters ``barqkeysend`` does not take (``maxfeepercent``,
            ``exemptfee``, ``routehints``), too many positional ones, or neither a
            list nor an object.
    """
    named = _by_name(params, "keysend", KEYSEND_POSITIONAL)
    kept = sorted(k for k in _KEYSEND_ONLY if k in named)
    if kept:
        raise NotRedirectable(f"keysend's {', '.join(kept)} stay with keysend")
    return named


def _answer(request: Request, result: dict[str, Any]) -> None:
    with suppress(ValueError):  # already answered (the plugin is stopping)
        request.set_result(result)


def on_rpc_command(rpc_command: dict[str, Any], request: Request, **kwargs: Any) -> None:
    """The ``rpc_command`` hook (background): ``pay`` -> ``barqpay``; ``listpays`` while
    Barq pays; anything else continues."""
    plugin: BarqPlugin = request.plugin
    cfg, h = plugin.barq_config, plugin.host
    method = rpc_command.get("method")
    if h is None or cfg is None or h.engine_error is not None:
        _answer(request, _CONTINUE)
    elif method == "pay" and cfg.handle_pay and h.store_error is None:
        _redirect_pay(plugin, rpc_command, request)
    elif method == "keysend" and cfg.handle_keysend and h.store_error is None:
        _redirect(plugin, rpc_command, request, "barqkeysend", keysend_redirect_params)
    elif method == "listpays":
        _listpays(plugin, rpc_command, request)
    else:
        _answer(request, _CONTINUE)


def _redirect_pay(plugin: BarqPlugin, rpc_command: dict[str, Any], request: Request) -> None:
    _redirect(plugin, rpc_command, request, "barqpay", pay_redirect_params)


def _redirect(
    plugin: BarqPlugin,
    rpc_command: dict[str, Any],
    request: Request,
    to: str,
    translate: Callable[[Any], dict[str, Any]],
) -> None:
    method = rpc_command.get("method")
    try:
        params = translate(rpc_command.get("params"))
    except NotRedirectable as exc:
        plugin.barq_log(f"not redirecting {method} to {to}: {exc}", "info")
        _answer(request, _CONTINUE)
        return
    plugin.barq_log(f"redirecting {method} to {to}", "debug")
    replace = {"jsonrpc": "2.0", "id": rpc_command.get("id"), "method": to}
    _answer(request, {"replace": {**replace, "params": params}})


def _listpays(plugin: BarqPlugin, rpc_command: dict[str, Any], request: Request) -> None:
    """Answered in the engine thread (it knows what Barq pays); continue on any doubt."""
    host = plugin.engine()

    def done(f: Future[dict[str, Any] | None]) -> None:
        if f.cancelled() or f.exception() is not None or f.result() is None:
            if not f.cancelled() and f.exception() is not None:
                plugin.barq_log(f"listpays left to lightningd: {f.exception()}", "unusual")
            _answer(request, _CONTINUE)
            return
        _answer(request, {"return": {"result": f.result()}})

    try:
        fut = host.submit(host.listpays_while_paying, rpc_command.get("params"))
    except Exception:
        _answer(request, _CONTINUE)
        return
    fut.add_done_callback(done)
