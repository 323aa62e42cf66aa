"""The ``rpc_command`` hook: the ``pay`` redirect, and ``listpays`` while Barq pays.

``pay`` (with ``barq-handle-pay``, as ``xpay-handle-pay`` does): a ``pay``
call Barq can serve is replaced by a ``barqpay`` call with the same id and
``pay``'s parameters by name (``barqpay`` takes every one of them:
``maxfeepercent``/``exemptfee``, ``riskfactor``, ``description``,
``partial_msat``...). A bolt12 invoice, ``localinvreqid``, parameters that
are not a list or an object, no bolt11 string at all, or the engine or its
database unavailable: the call continues to CLN's ``pay``, whose own answer
is then the right one.

``listpays``: while Barq pays a hash, a ``listpays`` about it is answered by
Barq ("pending" instead of "failed" between attempts:
:mod:`barq.plugin.listpays`); anything else continues to lightningd.
"""

from __future__ import annotations

from concurrent.futures import Future
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from pyln.client.plugin import Request

from barq.errors import shown

if TYPE_CHECKING:
    from barq.plugin.app import BarqPlugin

__all__ = [
    "HOOKED",
    "PAY_POSITIONAL",
    "NotRedirectable",
    "on_rpc_command",
    "pay_redirect_params",
]

#: the commands the hook is registered for (lightningd calls it for no other)
HOOKED = ("pay", "listpays")

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
    if isinstance(params, list):
        if len(params) > len(PAY_POSITIONAL):
            raise NotRedirectable(f"{len(params)} positional parameters, pay has 13")
        named = dict(zip(PAY_POSITIONAL, params, strict=False))
    elif isinstance(params, dict):
        named = dict(params)
    else:
        raise NotRedirectable("parameters are neither a list nor an object")
    named = {k: v for k, v in named.items() if v is not None}
    bolt11 = named.pop("bolt11", None)
    if not isinstance(bolt11, str):
        raise NotRedirectable(f"bolt11 is not a string: {shown(bolt11)}")
    bare = bolt11.strip()[:16].lower().removeprefix("lightning:")
    if bare.startswith(("lni", "lno")):
        raise NotRedirectable("a bolt12 invoice or offer stays with pay")
    if "localinvreqid" in named:
        raise NotRedirectable("localinvreqid (bolt12) stays with pay")
    return {"invstring": bolt11, **named}


_CONTINUE = {"result": "continue"}


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
    elif method == "listpays":
        _listpays(plugin, rpc_command, request)
    else:
        _answer(request, _CONTINUE)


def _redirect_pay(plugin: BarqPlugin, rpc_command: dict[str, Any], request: Request) -> None:
    try:
        params = pay_redirect_params(rpc_command.get("params"))
    except NotRedirectable as exc:
        plugin.barq_log(f"not redirecting pay to barqpay: {exc}", "info")
        _answer(request, _CONTINUE)
        return
    plugin.barq_log("redirecting pay to barqpay", "debug")
    replace = {"jsonrpc": "2.0", "id": rpc_command.get("id"), "method": "barqpay"}
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
