"""The command table: each command parses (``params``), asks the engine, shapes (``results``).

Every command that touches the engine is a *background* method: the handler
checks its parameters (errors are raised at once, -32602), submits a
coroutine to the engine thread and returns; a done-callback on its future
answers the request with ``set_result``/``set_exception`` exactly once
(:func:`_answer`). So ``barqstatus`` answers while payments run. pyln
serialises every write to stdout under its ``write_lock``, so answering (and
notifying) from the engine thread is safe.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import suppress
from functools import partial
from typing import Any

from pyln.client import Plugin
from pyln.client.plugin import Request, RequestState

from barq.actors.runtime import available_strategies
from barq.errors import BarqError, InvalidParams
from barq.model import Route
from barq.model.payment import (
    PartEnded,
    PartStarted,
    PartState,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
)
from barq.plugin.app import BarqPlugin, Check
from barq.plugin.experiments import barqexperiments_params, lab_pay, lab_pay_result, lab_report
from barq.plugin.host import EngineHost, NodeFactory, RuntimeFactory
from barq.plugin.options import MULTI_OPTIONS, OPTIONS, config_from_init
from barq.plugin.params import (
    barqkeysend_params,
    barqlistpays_params,
    barqpay_params,
    barqroute_params,
    barqstatus_params,
)
from barq.plugin.redirect import HOOKED, on_rpc_command
from barq.plugin.results import part_end_json, part_start_json, pay_result

__all__ = ["PART_END_TOPIC", "PART_START_TOPIC", "build_plugin"]

PART_START_TOPIC = "barq_part_start"
PART_END_TOPIC = "barq_part_end"

Shape = Callable[[Any], Any]


def _identity(x: Any) -> Any:
    return x


def _answer(request: Request, fut: Future[Any], shape: Shape) -> None:
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


def _submit(request: Request, shape: Shape, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    plugin: BarqPlugin = request.plugin
    fut = plugin.engine().submit(fn, *args)
    fut.add_done_callback(lambda f: _answer(request, f, shape))


# -- init / shutdown -------------------------------------------------------------------------------


def _init(
    options: dict[str, Any], configuration: dict[str, Any], plugin: Plugin, **kwargs: Any
) -> dict[str, Any] | None:
    bp: BarqPlugin = plugin
    try:
        cfg = config_from_init(options, configuration)
    except InvalidParams as exc:
        return {"disable": exc.message}
    bp.barq_config = cfg
    bp.host = EngineHost(
        cfg, node_factory=bp.node_factory, runtime_factory=bp.runtime_factory, log=bp.barq_log
    )
    bp.host.start()
    bp.barq_log(
        f"barq started: strategy={cfg.strategy} db={cfg.db_path} handle-pay={cfg.handle_pay}"
        + "".join(f" experiment {e.name}={e.key}:{e.percent:g}%" for e in cfg.experiments),
        "info",
    )
    return None


def _on_shutdown(plugin: Plugin, **kwargs: Any) -> None:
    plugin.close()
    raise SystemExit(0)


# -- barqpay ---------------------------------------------------------------------------------------


class _Progress:
    """The event sink of one barqpay: messages and progress to the caller, topics to all."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.routes: dict[tuple[int, int], Route] = {}
        self.total_msat = 0
        self.delivered_msat = 0

    def __call__(self, ev: PaymentEvent) -> None:
        request, plugin = self.request, self.request.plugin
        match ev:
            case PaymentStarted():
                self.total_msat = ev.amount_msat
                request.notify(
                    f"paying {ev.amount_msat} msat to {ev.destination} (strategy {ev.strategy})"
                )
            case PartStarted():
                self.routes[(ev.groupid, ev.partid)] = ev.route
                request.notify(
                    f"part {ev.partid}: sending {ev.amount_msat} msat over {ev.route.describe()}"
                )
                plugin.notify(PART_START_TOPIC, {PART_START_TOPIC: part_start_json(ev)})
            case PartEnded():
                self._part_ended(ev)
            case PaymentEnded():
                request.notify(f"payment {ev.status}" + (f": {ev.error}" if ev.error else ""))

    def _part_ended(self, ev: PartEnded) -> None:
        route = self.routes.pop((ev.groupid, ev.partid), None)
        why = ""
        if ev.failure is not None:
            f = ev.failure
            at = f.erring_channel or f.erring_node or f"hop {f.erring_index}"
            why = f": {f.failcodename} at {at}"
        elif ev.reason:
            why = f": {ev.reason}"
        ok = ev.state is PartState.SUCCEEDED
        self.request.notify(f"part {ev.partid}: {ev.state}{why}", level="info" if ok else "warn")
        if ok and self.total_msat > 0:
            self.delivered_msat = min(self.total_msat, self.delivered_msat + ev.amount_msat)
            self.request.progress(self.delivered_msat, self.total_msat)  # msat of the amount
        self.request.plugin.notify(PART_END_TOPIC, {PART_END_TOPIC: part_end_json(ev, route)})


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
    maxfeepercent: Any = None,
    exemptfee: Any = None,
    riskfactor: Any = None,
    description: Any = None,
    partial_msat: Any = None,
    quantity: Any = None,
    payer_note: Any = None,
) -> None:
    """Pay a bolt11 invoice, a BOLT 12 invoice (lni1...) or an offer (lno1...) with Barq's
    multi-part engine.

    An offer's invoice is fetched first (fetchinvoice with amount_msat for an
    amountless offer, quantity and payer_note), then paid; the result's bolt11
    is that invoice.

    Defaults (plugin options): maxfee is the larger of barq-maxfee-msat and
    barq-maxfee-percent of the amount, retry_for barq-retry-for seconds,
    maxdelay barq-maxdelay blocks, maxparts barq-maxparts, strategy
    barq-strategy. exclude is a list of short_channel_id/direction or node ids.
    pay's maxfeepercent/exemptfee (instead of maxfee), riskfactor (unused),
    description (checked against a description hash) and partial_msat are
    taken too. The result is pay's plus strategy, fee_msat and every attempt
    (route, amount, fee, outcome); progress is sent as notifications.
    """
    t0 = time.perf_counter()
    params = barqpay_params(
        invstring,
        amount_msat,
        maxparts,
        maxfee,
        retry_for,
        maxdelay,
        exclude,
        strategy,
        label,
        maxfeepercent,
        exemptfee,
        riskfactor,
        description,
        partial_msat,
        quantity,
        payer_note,
    )
    plugin: BarqPlugin = request.plugin
    host = plugin.engine()
    cfg = plugin.barq_config
    assert cfg is not None, "engine() answers only after init"
    sink = _Progress(request)
    parse_ms = (time.perf_counter() - t0) * 1000.0
    fut = host.submit(lambda: lab_pay(host, cfg, params, on_event=sink))
    fut.add_done_callback(lambda f: _answer(request, f, partial(_pay_answer, parse_ms=parse_ms)))


def _pay_answer(lab: Any, *, parse_ms: float) -> dict[str, Any]:
    """``barqpay``'s result (:func:`lab_pay_result`) with ``timings_ms.parse``: the time
    its parameters took to check."""
    out = lab_pay_result(lab)
    out["timings_ms"]["parse"] = round(parse_ms, 3)
    return out


def barqkeysend(
    request: Request,
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
) -> None:
    """Send amount_msat to node destination without an invoice (keysend: a fresh preimage
    in the onion, final CLTV 42), routed, learnt and shown like barqpay's payments.

    extratlvs is {"type": "hex value"} with types >= 65536. Several parts only when the
    destination advertises basic_mpp. Refused (-32602, nothing sent): our own node id,
    amount 0 or out of range, a reserved TLV type; an unknown node is 205.
    """
    call = barqkeysend_params(
        destination,
        amount_msat,
        maxfee,
        retry_for,
        maxdelay,
        exclude,
        extratlvs,
        strategy,
        maxparts,
        label,
    )
    plugin: BarqPlugin = request.plugin
    host = plugin.engine()
    sink = _Progress(request)
    fut = host.submit(
        lambda: host.keysend(call.params, call.destination, call.extratlvs, on_event=sink)
    )
    fut.add_done_callback(lambda f: _answer(request, f, pay_result))


# -- barqstatus / barqlistpays / barqroute / barqstrategies ----------------------------------------


def barqstatus(request: Request, payment_hash: Any = None) -> None:
    """Payments in flight and recent ones: every part's amount, route, state and elapsed
    time, the payment's totals, and the engine's and database's health."""
    h = barqstatus_params(payment_hash)
    _submit(request, _identity, request.plugin.engine().status, h)


def barqlistpays(request: Request, payment_hash: Any = None, status: Any = None) -> None:
    """Payment history from Barq's database, oldest first (filter by payment_hash and
    by status: pending, complete or failed)."""
    h, st = barqlistpays_params(payment_hash, status)
    _submit(request, _identity, request.plugin.engine().listpays, h, st)


def barqroute(
    request: Request, destination: Any, amount_msat: Any, strategy: Any = None, maxparts: Any = None
) -> None:
    """The routes Barq would use now to send amount_msat to destination (nothing is paid)."""
    dest, amount, strat, parts = barqroute_params(destination, amount_msat, strategy, maxparts)
    _submit(request, _identity, request.plugin.engine().route, dest, amount, strat, parts, None)


def barqexperiments(request: Request, since: Any = None, until: Any = None) -> None:
    """The live experiments (barq-experiment, strategy=auto) from Barq's database: per
    experiment and per amount bucket, payments, success rate with its Wilson 95 % interval,
    median/p90 fee ppm, median attempts, median/p90 time to answer, and whether each
    differs significantly from the default (since/until: UNIX seconds)."""
    s, u = barqexperiments_params(since, until)
    plugin: BarqPlugin = request.plugin
    _submit(request, _identity, lab_report, plugin.engine(), plugin.barq_config, s, u)


def barqstrategies() -> dict[str, Any]:
    """The registered routing strategies (built-in and entry points), one line each."""
    return {"strategies": available_strategies()}


def _no_params() -> None:
    """``barqstrategies`` takes no parameter (pyln's binding refuses any)."""


#: (name, handler, parameter check, background): the whole command table. The check has
#: the handler's parameter names (without ``request``); lightningd's ``check`` runs it alone.
COMMANDS: tuple[tuple[str, Callable[..., Any], Check, bool], ...] = (
    ("barqpay", barqpay, barqpay_params, True),
    ("barqkeysend", barqkeysend, barqkeysend_params, True),
    ("barqstatus", barqstatus, barqstatus_params, True),
    ("barqlistpays", barqlistpays, barqlistpays_params, True),
    ("barqroute", barqroute, barqroute_params, True),
    ("barqstrategies", barqstrategies, _no_params, False),
    ("barqexperiments", barqexperiments, barqexperiments_params, True),
)


def build_plugin(
    *,
    node_factory: NodeFactory | None = None,
    runtime_factory: RuntimeFactory | None = None,
    stdin: Any = None,
    stdout: Any = None,
) -> BarqPlugin:
    """The Barq plugin, with every method, option, hook and notification registered.

    Args:
        node_factory: builds the node from ``init``'s ``configuration``
            (default: :class:`barq.node.lightningd.LightningdNode` on
            ``<lightning-dir>/<rpc-file>``); tests pass a simulated node.
        runtime_factory: the engine (default :func:`barq.actors.runtime.open_runtime`).
        stdin, stdout: the JSON-RPC streams (default: the process's).
    """
    factories: dict[str, Any] = {}
    if node_factory is not None:
        factories["node_factory"] = node_factory
    if runtime_factory is not None:
        factories["runtime_factory"] = runtime_factory
    plugin = BarqPlugin(stdin=stdin, stdout=stdout, **factories)
    for name, default, description, opt_type in OPTIONS:
        plugin.add_option(
            name, default, description, opt_type=opt_type, multi=name in MULTI_OPTIONS
        )
    plugin.add_notification_topic(PART_START_TOPIC)
    plugin.add_notification_topic(PART_END_TOPIC)
    plugin.child_init = _init
    plugin.add_subscription("shutdown", _on_shutdown)
    for name, handler, check, background in COMMANDS:
        plugin.add_method(name, handler, background=background, description=handler.__doc__)
        plugin.checks[name] = check
    plugin.add_hook("rpc_command", on_rpc_command, background=True, filters=list(HOOKED))
    return plugin
