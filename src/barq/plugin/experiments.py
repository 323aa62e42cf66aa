"""The strategy lab in the plugin: pick a ``barqpay``'s strategy, answer ``barqexperiments``.

Thin glue: the rules are in :mod:`barq.lab` (assignment, bandit, statistics); this module
only reads the store, asks the lab, records its answer and shapes the result.

A ``barqpay`` without an explicit ``strategy`` (or with ``strategy=auto``) is given to the
lab when experiments are configured or ``auto`` is asked for (or is the default): the
invoice is decoded for its payment hash, an earlier assignment of that hash is reused (a
retry stays in its experiment), else the lab decides; the assignment is stored before the
payment starts, and the result carries ``experiment`` and ``strategy_reason``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from barq.errors import InvalidParams, StoreError
from barq.lab.bandit import AUTO, choose_auto
from barq.lab.experiments import assign, bucket_of
from barq.lab.summary import BASELINE, experiments_report
from barq.model.payment import PaymentEvent, PayOutcome, PayParams
from barq.plugin.host import EngineHost
from barq.plugin.options import PluginConfig
from barq.plugin.results import pay_result
from barq.store._lab import (
    Assignment,
    aget_assignment,
    alab_payments,
    put_assignment,
)

__all__ = ["LabOutcome", "barqexperiments_params", "lab_pay", "lab_pay_result", "lab_report"]

OnEvent = Callable[[PaymentEvent], None]
#: how far back the bandit reads the node's history (its window per bucket is shorter)
AUTO_HISTORY_S = 30 * 86_400.0


class LabOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A payment's outcome and, when the lab chose its strategy, that choice."""

    outcome: PayOutcome
    assignment: Assignment | None = None


def _lab_active(cfg: PluginConfig, params: PayParams) -> bool:
    if params.strategy is not None:
        return params.strategy == AUTO
    return bool(cfg.experiments) or cfg.strategy == AUTO


async def _decide(host: EngineHost, cfg: PluginConfig, params: PayParams) -> Assignment:
    runtime = await host.ready_runtime()
    invoice = await runtime.decode_invoice(params.invstring)
    h = invoice.payment_hash
    store = host.store
    earlier = None if store is None else await aget_assignment(store, h)
    if earlier is not None:
        return earlier
    now = time.time()
    if params.strategy == AUTO or (params.strategy is None and not cfg.experiments):
        amount = params.partial_msat or params.amount_msat or invoice.amount_msat or 0
        since = now - AUTO_HISTORY_S
        history = [] if store is None else await alab_payments(store, since=since)
        pool = cfg.auto_strategies  # its first is auto's default until there is history
        choice = choose_auto(h, amount, history, pool, default=pool[0])
        return Assignment(
            payment_hash=h,
            strategy=choice.strategy,
            experiment=AUTO,
            reason=choice.reason,
            assigned_at=now,
        )
    e = assign(h, cfg.experiments)
    b = bucket_of(h)
    if e is None:
        strategy = cfg.engine_config().default_strategy
        reason = f"default strategy: bucket {b} is outside every experiment"
        return Assignment(
            payment_hash=h, strategy=strategy, experiment=BASELINE, reason=reason, assigned_at=now
        )
    reason = f"experiment {e.name} ({e.percent:g} % of payments): bucket {b} of the hash"
    return Assignment(
        payment_hash=h, strategy=e.key, experiment=e.name, reason=reason, assigned_at=now
    )


async def lab_pay(
    host: EngineHost, cfg: PluginConfig, params: PayParams, *, on_event: OnEvent | None = None
) -> LabOutcome:
    """``barqpay`` through the lab: choose (and record) the strategy when it is the lab's call.

    Raises:
        as :meth:`barq.plugin.host.EngineHost.pay`; InvalidInvoice when the invoice
        cannot be decoded.
    """
    if not _lab_active(cfg, params):
        return LabOutcome(outcome=await host.pay(params, on_event=on_event))
    assignment = await _decide(host, cfg, params)
    if host.store is not None:
        put_assignment(host.store, assignment)
    chosen = msgspec.structs.replace(params, strategy=assignment.strategy)
    outcome = await host.pay(chosen, on_event=on_event)
    return LabOutcome(outcome=outcome, assignment=assignment)


def lab_pay_result(lab: LabOutcome) -> dict[str, Any]:
    """``barqpay``'s result, plus ``experiment`` and ``strategy_reason`` when the lab chose."""
    out = pay_result(lab.outcome)
    if lab.assignment is not None:
        out["experiment"] = lab.assignment.experiment
        out["strategy_reason"] = lab.assignment.reason
    return out


def _time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParams(f"{name}: must be UNIX seconds, got {value!r}")
    try:
        t = float(value)
    except ValueError:
        raise InvalidParams(f"{name}: must be UNIX seconds, got {value!r}") from None
    if not 0 <= t < 1e11:
        raise InvalidParams(f"{name}: must be UNIX seconds >= 0, got {value!r}")
    return t


def barqexperiments_params(since: Any = None, until: Any = None) -> tuple[float | None, ...]:
    """``since``/``until`` (UNIX seconds, payments started in ``[since, until)``).

    Raises:
        InvalidParams: not a number of seconds, or ``until`` not after ``since``.
    """
    s, u = _time(since, "since"), _time(until, "until")
    if s is not None and u is not None and u <= s:
        raise InvalidParams(f"until ({u:g}) must be after since ({s:g})")
    return s, u


async def lab_report(
    host: EngineHost, cfg: PluginConfig, since: float | None, until: float | None
) -> dict[str, Any]:
    """``barqexperiments``: :func:`barq.lab.summary.experiments_report` of the live store.

    Raises:
        StoreError: the database is unavailable.
    """
    store = host.store
    if store is None:
        raise host.store_error or StoreError("barq database is not open yet")
    payments = await alab_payments(store, since=since, until=until)
    return experiments_report(
        payments, cfg.experiments, default_strategy=cfg.engine_config().default_strategy
    )
