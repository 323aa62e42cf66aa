"""The ``pay`` redirect: with ``barq-handle-pay``, lightningd's ``pay`` becomes ``barqpay``.

Through the ``rpc_command`` hook (as ``xpay-handle-pay`` does): a ``pay``
call Barq can serve is replaced by a ``barqpay`` call with the same id;
anything else (bolt12, ``localinvreqid``, ``partial_msat``, the engine or its
database unavailable...) continues to CLN's ``pay``. ``maxfeepercent`` and
``exemptfee`` become an absolute ``maxfee`` the way xpay computes it.
"""

from __future__ import annotations

from concurrent.futures import Future
from contextlib import suppress
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pyln.client.plugin import Request

from barq.errors import InvalidParams
from barq.limits import MAXFEE_MSAT
from barq.plugin.params import parse_msat

if TYPE_CHECKING:
    from barq.plugin.app import BarqPlugin

__all__ = [
    "PAY_POSITIONAL",
    "NotRedirectable",
    "on_rpc_command",
    "pay_redirect_params",
    "xpay_maxfee",
]

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

#: ``pay``'s defaults for the fee budget (xpay: 0.5 %, at least 5,000 msat exempt)
DEFAULT_MAXFEE_PERCENT = Decimal("0.5")
DEFAULT_EXEMPTFEE_MSAT = 5000


class NotRedirectable(Exception):
    """``pay`` parameters Barq does not serve; the hook lets CLN's pay run."""


def pay_redirect_params(params: Any) -> tuple[dict[str, Any], Decimal | None, int | None]:
    """Map ``pay``'s parameters onto ``barqpay``'s.

    Returns:
        ``(barqpay params, maxfeepercent or None, exemptfee msat or None)``; when
        either of the last two is set, ``maxfee`` must still be computed from
        the invoice amount (:func:`xpay_maxfee`).

    Raises:
        NotRedirectable: something Barq does not do (bolt12, ``localinvreqid``,
            ``partial_msat``, both ``maxfee`` and ``maxfeepercent``...).
    """
    if isinstance(params, list):
        if len(params) > len(PAY_POSITIONAL):
            raise NotRedirectable("too many positional parameters")
        named = {k: v for k, v in zip(PAY_POSITIONAL, params, strict=False) if v is not None}
    elif isinstance(params, dict):
        named = {k: v for k, v in params.items() if v is not None}
    else:
        raise NotRedirectable("parameters are neither a list nor an object")
    bolt11 = named.pop("bolt11", None)
    if not isinstance(bolt11, str) or bolt11.lower().startswith("lni"):
        raise NotRedirectable("no bolt11 string (bolt12 invoices stay with pay)")
    out: dict[str, Any] = {"invstring": bolt11}
    for key in ("amount_msat", "label", "retry_for", "maxdelay", "exclude", "maxfee"):
        if key in named:
            out[key] = named.pop(key)
    named.pop("riskfactor", None)  # a tuning knob of pay's own router: meaningless here
    named.pop("description", None)  # only checked against a description hash by pay
    percent = named.pop("maxfeepercent", None)
    exempt = named.pop("exemptfee", None)
    if named:
        raise NotRedirectable(f"unsupported pay parameters: {', '.join(sorted(named))}")
    if (percent is not None or exempt is not None) and "maxfee" in out:
        raise NotRedirectable("maxfee together with maxfeepercent/exemptfee")
    pct: Decimal | None = None
    if percent is not None:
        try:
            pct = Decimal(str(percent))
        except InvalidOperation:
            raise NotRedirectable(f"maxfeepercent {percent!r} is not a number") from None
    ex: int | None = None
    if exempt is not None:
        try:
            ex = parse_msat(exempt, MAXFEE_MSAT.named("exemptfee"))
        except InvalidParams as exc:
            raise NotRedirectable(str(exc)) from None
    return out, pct, ex


def xpay_maxfee(amount_msat: int, percent: Decimal | None, exempt: int | None) -> int:
    """xpay's conversion of ``pay``'s ``maxfeepercent``/``exemptfee`` into an absolute maxfee."""
    ppm = int((percent if percent is not None else DEFAULT_MAXFEE_PERCENT) * 10_000)
    fee = amount_msat * ppm // 1_000_000
    return max(fee, exempt if exempt is not None else DEFAULT_EXEMPTFEE_MSAT)


_CONTINUE = {"result": "continue"}


def on_rpc_command(rpc_command: dict[str, Any], request: Request, **kwargs: Any) -> None:
    """The ``rpc_command`` hook (background): replace a servable ``pay``, else continue."""
    plugin: BarqPlugin = request.plugin
    cfg, h = plugin.barq_config, plugin.host
    if (
        cfg is None
        or not cfg.handle_pay
        or h is None
        or rpc_command.get("method") != "pay"
        or h.store_error is not None
        or h.engine_error is not None
    ):
        request.set_result(_CONTINUE)
        return
    try:
        params, percent, exempt = pay_redirect_params(rpc_command.get("params"))
    except NotRedirectable as exc:
        plugin.barq_log(f"not redirecting pay to barqpay: {exc}", "info")
        request.set_result(_CONTINUE)
        return

    def replace(p: dict[str, Any]) -> dict[str, Any]:
        plugin.barq_log("redirecting pay to barqpay", "debug")
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
            plugin.barq_log(f"not redirecting pay: cannot compute maxfee: {f.exception()}", "info")
            with suppress(ValueError):
                request.set_result(_CONTINUE)
            return
        with suppress(ValueError):
            request.set_result(replace({**params, "maxfee": f.result()}))

    h.submit(
        h.redirect_maxfee, params["invstring"], params.get("amount_msat"), percent, exempt
    ).add_done_callback(finish)
