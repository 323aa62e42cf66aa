"""Where one pay call's wall time goes (``timings_ms`` in its result, and the debug log).

A :class:`Timings` is bound to the call's task tree through a context
variable (tasks inherit their spawner's context): the payment's supervisor and
shard workers add to it without knowing it, through the node and journal
wrappers here, and the supervisor marks its own phases with :func:`phase`.
The router and the estimator are long-lived actors shared by every payment:
what they do for a payment is timed at the asking end (``graph_refresh``,
``plan``).

Phases (milliseconds, summed over calls; absent when not reached):

==================  =============================================================
``decode``          ``decode`` of the invoice by the node
``node_queries``    ``listsendpays`` / ``getinfo`` / ``listpeerchannels`` asked
                    on the payment's path
``graph_refresh``   opening the payment at the router (our channels, gossip)
``plan``            asking the router for routes (``plan_compute`` of it in the
                    strategy)
``first_sendpay``   from the call's start to the first ``sendpay`` accepted
``sendpay``         every ``sendpay`` call
``waits``           ``waitsendpay`` calls (overlapping parts overlap here)
``store``           journal writes (one per event)
``store_read``      reading the payment's earlier records (only when the node
                    has parts of the hash)
``total``           the call, start to answer (``answer_at`` says what decided it)
==================  =============================================================
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from barq.model import Invoice, LocalChannel, NodeInfo, PartStatus, PaymentHash, Route
from barq.model.payment import PaymentEvent, PaymentView
from barq.node.base import NodeInterface
from barq.payment import PaymentJournal

__all__ = ["TimedJournal", "TimedNode", "Timings", "bound", "current", "phase"]

log = logging.getLogger(__name__)


class Timings:
    """One pay call's phases (see the module table); ``perf_counter`` based."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.ms: dict[str, float] = {}
        self.sendpays = 0

    def add(self, name: str, seconds: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + seconds * 1000.0

    def mark(self, name: str) -> None:
        """Record now, since the call started, as ``name`` (once)."""
        if name not in self.ms:
            self.ms[name] = (time.perf_counter() - self.t0) * 1000.0

    def result(self) -> dict[str, float]:
        """The phases in milliseconds, rounded to microseconds, with ``total`` (now)."""
        out = {k: round(v, 3) for k, v in self.ms.items()}
        out["total"] = round((time.perf_counter() - self.t0) * 1000.0, 3)
        return out


_CURRENT: contextvars.ContextVar[Timings | None] = contextvars.ContextVar(
    "barq_timings", default=None
)


def current() -> Timings | None:
    """The timings of the pay call this task works for (``None``: none)."""
    return _CURRENT.get()


@contextmanager
def bound(timings: Timings) -> Iterator[Timings]:
    """Bind ``timings`` to this task (and the tasks it spawns) for the block."""
    token = _CURRENT.set(timings)
    try:
        yield timings
    finally:
        _CURRENT.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the block's wall time to phase ``name`` of the current call (if any)."""
    t = _CURRENT.get()
    if t is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        t.add(name, time.perf_counter() - t0)


class TimedNode:
    """A :class:`~barq.node.base.NodeInterface` that times calls into the current call's
    phases (``decode``, ``node_queries``, ``sendpay``/``first_sendpay``, ``waits``)."""

    def __init__(self, node: NodeInterface) -> None:
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    async def get_info(self) -> NodeInfo:
        with phase("node_queries"):
            return await self._node.get_info()

    async def decode_invoice(self, invstring: str) -> Invoice:
        with phase("decode"):
            return await self._node.decode_invoice(invstring)

    async def list_peer_channels(self) -> list[LocalChannel]:
        with phase("node_queries"):
            return await self._node.list_peer_channels()

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
        with phase("node_queries"):
            return await self._node.listsendpays(payment_hash)

    async def sendpay(self, route: Route, payment_hash: PaymentHash, **kw: Any) -> PartStatus:
        with phase("sendpay"):
            out = await self._node.sendpay(route, payment_hash, **kw)
        t = _CURRENT.get()
        if t is not None:
            t.mark("first_sendpay")
        return out

    async def waitsendpay(self, payment_hash: PaymentHash, **kw: Any) -> PartStatus:
        with phase("waits"):
            return await self._node.waitsendpay(payment_hash, **kw)


class TimedJournal:
    """A :class:`~barq.payment.PaymentJournal` whose writes count as phase ``store``."""

    def __init__(self, journal: PaymentJournal) -> None:
        self._journal = journal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)

    def record(self, event: PaymentEvent) -> None:
        with phase("store"):
            self._journal.record(event)

    def put_payment(self, view: PaymentView) -> None:
        with phase("store"):
            self._journal.put_payment(view)

    def put_history(self, views: Sequence[PaymentView]) -> None:
        with phase("store"):
            self._journal.put_history(views)

    async def aget_payments(self, *args: Any, **kw: Any) -> list[PaymentView]:
        with phase("store_read"):
            return await self._journal.aget_payments(*args, **kw)
