"""JSON shapes: results, notifications and errors, as callers of ``pay``/``xpay`` read them.

A payment is shaped by :func:`payment_json` (``pay``'s fields plus Barq's,
every attempt with its route and failure). An error becomes
``(code, message, data)`` by :func:`rpc_error`: a :class:`BarqError` keeps
its CLN code and, when its ``data`` is a payment, gets it in
:func:`payment_json` shape; anything else is code 209.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from pyln.client import RpcException

from barq.errors import PAY_UNSPECIFIED_ERROR, BarqError, PartFailed, bounded
from barq.model import NodeId, Route, RouteFailure
from barq.model.payment import (
    PartEnded,
    PartStarted,
    PartState,
    PartView,
    PaymentView,
    PayOutcome,
)

__all__ = [
    "BarqRpcException",
    "failure_json",
    "part_end_json",
    "part_json",
    "part_start_json",
    "pay_result",
    "payment_json",
    "route_json",
    "route_result",
    "rpc_error",
    "unwrap_group",
    "view_from_data",
]


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


def pay_result(outcome: PayOutcome, *, parse_ms: float | None = None) -> dict[str, Any]:
    """``barqpay``'s result: the payment, with ``already_paid: true`` when nothing was sent.

    Answered at the first preimage (``barq-slow-mode`` off, as xpay), parts may still be
    settling: ``pending_parts`` counts them (their ``state`` is ``inflight``; they settle
    with the same preimage, and ``amount_sent_msat``/``fee_msat`` count them, as xpay's
    ``amount_sent_msat`` does). ``timings_ms``: where the call's time went (the engine's
    phases, plus ``parse`` of the parameters and ``answer``: shaping this result).
    """
    t0 = time.perf_counter()
    out = payment_json(outcome.view)
    if outcome.already_paid:
        out["already_paid"] = True
    pending = sum(1 for p in outcome.view.parts if p.state is PartState.INFLIGHT)
    out["pending_parts"] = pending
    out["answer_at"] = outcome.answer_at
    timings = dict(outcome.timings_ms)
    if parse_ms is not None:
        timings["parse"] = round(parse_ms, 3)
    timings["answer"] = round((time.perf_counter() - t0) * 1000.0, 3)
    out["timings_ms"] = timings
    return out


def route_result(
    destination: NodeId, amount_msat: int, strategy: str, routes: list[Route]
) -> dict[str, Any]:
    """``barqroute``'s result: the routes, their totals and joint probability."""
    prob = 1.0
    for r in routes:
        prob *= r.probability if r.probability is not None else 1.0
    return {
        "destination": destination,
        "amount_msat": amount_msat,
        "strategy": strategy,
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


# -- notifications -------------------------------------------------------------------------------


def part_start_json(ev: PartStarted) -> dict[str, Any]:
    """The ``barq_part_start`` notification's payload."""
    return {
        "payment_hash": ev.payment_hash,
        "groupid": ev.groupid,
        "partid": ev.partid,
        "amount_msat": ev.amount_msat,
        "path": ev.route.describe(),
        "route": route_json(ev.route),
    }


def part_end_json(ev: PartEnded, route: Route | None) -> dict[str, Any]:
    """The ``barq_part_end`` notification's payload (``route``: the part's, when known)."""
    out: dict[str, Any] = {
        "payment_hash": ev.payment_hash,
        "groupid": ev.groupid,
        "partid": ev.partid,
        "amount_msat": ev.amount_msat,
        "outcome": str(ev.state),
        "path": route.describe() if route is not None else None,
        "route": route_json(route) if route is not None else None,
    }
    if ev.failure is not None:
        out["failure"] = failure_json(ev.failure)
    if ev.reason:
        out["reason"] = ev.reason
    return out


# -- errors ----------------------------------------------------------------------------------------


class BarqRpcException(RpcException):  # type: ignore[misc]
    """An :class:`RpcException` that also carries JSON-RPC ``data``."""

    def __init__(self, message: str, code: int, data: dict[str, Any] | None = None) -> None:
        super().__init__(message, code)
        self.data = data


def view_from_data(data: Any) -> PaymentView | None:
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
    groups are looked into (:func:`unwrap_group`). Every message is
    :func:`~barq.errors.bounded`.
    """
    exc = unwrap_group(exc)
    if isinstance(exc, BarqRpcException):
        return exc.code, bounded(str(exc.message)), exc.data
    if isinstance(exc, BarqError):
        data: dict[str, Any] | None = dict(exc.data) if exc.data else None
        view = view_from_data(exc.data)
        if view is not None:
            extra = {k: v for k, v in exc.data.items() if k not in PaymentView.__struct_fields__}
            data = {**payment_json(view), **extra}
        elif isinstance(exc, PartFailed) and exc.failure is not None:
            data = {**(data or {}), "failure": failure_json(exc.failure)}
        return exc.code, exc.message, data
    if isinstance(exc, RpcException):
        return exc.code, bounded(str(exc.message)), None
    where = f" in {bounded(method, 80)}" if method else ""
    return (
        PAY_UNSPECIFIED_ERROR,
        bounded(f"internal error{where}: {type(exc).__name__}: {exc}"),
        {"exception": type(exc).__name__},
    )
