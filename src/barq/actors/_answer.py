"""Answer a pay call at the first preimage, as xpay does (``barq-slow-mode`` waits for all).

A payee releases the preimage only once the parts it holds add up to the
amount, so the first part that succeeds decides the payment: the call is
answered then, with the parts still settling shown in flight (when none is,
the payment ends at once, and the call is answered with its end). The payment
itself runs on in the engine's task group (the store and ``barqstatus``
follow it to the end); so does the pay call's own task, which only records
how it ended. With ``slow_mode`` (xpay's ``xpay-slow-mode``) the call waits
for every part.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import msgspec

from barq.actors._timings import Timings, bound
from barq.errors import BarqError
from barq.model.payment import (
    PartEnded,
    PartState,
    PaymentEvent,
    PaymentStatus,
    PaymentView,
    PayOutcome,
)
from barq.payment import fold

__all__ = ["decided_view", "pay_answered"]

log = logging.getLogger(__name__)

OnEvent = Callable[[PaymentEvent], None]
Pay = Callable[[OnEvent], Awaitable[PayOutcome]]


def decided_view(view: PaymentView, at: float) -> PaymentView:
    """``view`` as answered at the first preimage: complete (the preimage proves payment),
    ``amount_sent_msat``/``fee_msat`` counting the parts in flight too (they settle with
    the same preimage; xpay's ``amount_sent_msat`` counts them likewise)."""
    flying = [p for p in view.parts if p.state is PartState.INFLIGHT]
    return msgspec.structs.replace(
        view,
        status=PaymentStatus.COMPLETE,
        completed_at=at,
        amount_sent_msat=view.amount_sent_msat + sum(p.amount_sent_msat for p in flying),
        fee_msat=view.fee_msat + sum(p.fee_msat for p in flying),
    )


async def pay_answered(
    pay: Pay,
    on_event: OnEvent | None,
    *,
    tg: anyio.abc.TaskGroup,
    slow_mode: bool,
    timings: Timings,
) -> PayOutcome:
    """Run ``pay`` and answer at its first preimage (at its end with ``slow_mode``).

    Args:
        pay: the call (given the event sink to use).
        on_event: the caller's event sink (sees every event, also after the answer).
        tg: the engine's task group (the call's task runs on in it after the answer).
        timings: the call's; ``answer_at`` is added (``preimage`` or ``end``).

    Returns:
        the outcome; at the first preimage its view is :func:`decided_view`'s.

    Raises:
        BarqError: as ``pay`` (``.data["timings_ms"]`` when ``.data`` is a dict).
    """
    if slow_mode:
        with bound(timings):
            try:
                outcome = await pay(_sink(on_event))
            except BarqError as exc:
                _time_error(exc, timings, "end")
                raise
        return _timed(outcome, timings, "end")
    decided = anyio.Event()
    state: dict[str, Any] = {}

    def watch(event: PaymentEvent) -> None:
        view = fold(state.get("view"), event)
        state["view"] = view
        succeeded = isinstance(event, PartEnded) and event.state is PartState.SUCCEEDED
        # with nothing else in flight the payment ends right after: answer with its end
        if succeeded and "early" not in state and view.inflight_msat > 0:
            state["early"] = decided_view(view, event.at)
            decided.set()
        if on_event is not None:
            on_event(event)

    async def run() -> None:
        try:
            with bound(timings):
                state["outcome"] = await pay(watch)
        except BarqError as exc:
            state["error"] = exc
        except Exception as exc:  # never take the engine's task group down
            log.exception("pay call crashed")
            state["error"] = BarqError(f"internal error while paying: {exc!r}")
        finally:
            decided.set()

    tg.start_soon(run, name="barq-pay-call")
    await decided.wait()
    if "outcome" in state:
        return _timed(state["outcome"], timings, "end")
    if "early" in state:
        return _timed(PayOutcome(view=state["early"]), timings, "preimage")
    err = state.get("error")
    if err is None:
        err = BarqError("the payment engine shut down during the payment")
    _time_error(err, timings, "end")
    raise err


def _sink(on_event: OnEvent | None) -> OnEvent:
    return on_event if on_event is not None else (lambda _e: None)


def _timed(outcome: PayOutcome, timings: Timings, at: str) -> PayOutcome:
    ms = timings.result()
    log.debug("payment %s answered at %s: timings_ms %s", outcome.view.payment_hash, at, ms)
    return msgspec.structs.replace(outcome, timings_ms=ms, answer_at=at)


def _time_error(err: BarqError, timings: Timings, at: str) -> None:
    ms = timings.result()
    log.debug("pay call failed (%s): timings_ms %s", err.message, ms)
    if isinstance(err.data, dict):
        err.data["timings_ms"] = ms
