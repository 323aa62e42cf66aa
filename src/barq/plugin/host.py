"""The engine's thread and its lifecycle.

pyln's plugin (:class:`barq.plugin.app.BarqPlugin`) owns the main thread: a
blocking loop reading JSON-RPC from lightningd on stdin. The payment engine
(:func:`barq.actors.runtime.open_runtime`) runs beside it in a trio event loop
on its own thread, reached through an anyio ``BlockingPortal``
(:class:`EngineHost`). ``init`` starts that thread and returns at once (it
never waits for lightningd, which could deadlock because we hook
``rpc_command``); the engine finishes starting in the background.

Persistence policy: the database (``barq-db``) is opened when the engine
starts and handed to the engine as its journal (it records every payment as
it happens, and reconciles with ``listsendpays`` after a restart). If it
cannot be opened (locked, unreadable, corrupt, from a newer Barq), the plugin
still starts and ``barqstatus``, ``barqroute`` and ``barqstrategies`` work,
but ``barqpay`` and ``barqlistpays`` refuse with the
:class:`~barq.errors.StoreError` (code -1, message naming the file): paying
without the history would lose the record of what was paid.
``barq-handle-pay`` then leaves ``pay`` to CLN.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, AsyncExitStack, suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
import msgspec

from barq.actors.messages import KnowledgeEntry
from barq.errors import BarqError, StoreError
from barq.model import Invoice, NodeId, PaymentHash, Route
from barq.model.payment import (
    EngineConfig,
    PaymentEvent,
    PaymentStatus,
    PaymentView,
    PayOutcome,
    PayParams,
)
from barq.node.base import NodeInterface
from barq.payment import PaymentJournal
from barq.plugin.listpays import concerns, listpays_query, listpays_result
from barq.plugin.options import PluginConfig
from barq.plugin.results import payment_json, route_result, unwrap_group
from barq.store import KnowledgeRecord, Store, open_store

__all__ = [
    "EngineHost",
    "NodeFactory",
    "RuntimeFactory",
    "RuntimeLike",
    "default_node_factory",
    "default_runtime_factory",
    "knowledge_entries",
    "knowledge_records",
]

T = TypeVar("T")


class RuntimeLike(Protocol):
    """What the plugin uses of :class:`barq.actors.runtime.Runtime`."""

    async def pay_outcome(
        self, params: PayParams, *, on_event: Callable[[PaymentEvent], None] | None = None
    ) -> PayOutcome: ...

    async def decode_invoice(self, invstring: str) -> Invoice: ...

    async def keysend(
        self,
        params: PayParams,
        destination: str,
        extratlvs: Mapping[str, str] | None = None,
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
    ) -> PayOutcome: ...

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

    def status(self, payment_hash: PaymentHash | None = None) -> list[PaymentView]: ...

    async def astatus(self, payment_hash: PaymentHash | None = None) -> list[PaymentView]: ...

    async def export_knowledge(self) -> list[KnowledgeEntry]: ...


class RuntimeFactory(Protocol):
    """``open_runtime``-like: starts the engine on ``node`` for an ``async with``."""

    def __call__(
        self,
        node: NodeInterface,
        config: EngineConfig,
        *,
        knowledge: list[KnowledgeEntry] | None = None,
        journal: PaymentJournal | None = None,
    ) -> AbstractAsyncContextManager[RuntimeLike]: ...


NodeFactory = Callable[[dict[str, Any]], NodeInterface]


def default_node_factory(configuration: dict[str, Any]) -> NodeInterface:
    """:class:`barq.node.lightningd.LightningdNode` on ``<lightning-dir>/<rpc-file>``."""
    from barq.node.lightningd import LightningdNode

    ldir = str(configuration.get("lightning-dir") or ".")
    rpc = Path(ldir) / str(configuration.get("rpc-file") or "lightning-rpc")
    return LightningdNode(rpc, lightning_dir=ldir)


def default_runtime_factory(
    node: NodeInterface,
    config: EngineConfig,
    *,
    knowledge: list[KnowledgeEntry] | None = None,
    journal: PaymentJournal | None = None,
) -> AbstractAsyncContextManager[RuntimeLike]:
    """:func:`barq.actors.runtime.open_runtime`."""
    from barq.actors import runtime

    return cast(
        AbstractAsyncContextManager[RuntimeLike],
        runtime.open_runtime(node, config, knowledge=knowledge, journal=journal),
    )


# -- knowledge: the estimator's export <-> store rows ----------------------------------------------

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
        d: dict[str, Any] = {"type": _TAG_OF_KIND.get(r.kind)}
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


# -- the engine host -------------------------------------------------------------------------------


class EngineHost:
    """The engine's thread: a trio loop behind a ``BlockingPortal``, plus the store.

    Coroutine methods run in the engine thread (submit them with
    :meth:`submit`); :meth:`start`, :meth:`submit` and :meth:`close` are
    called from the plugin's main thread. Every payment rule is the engine's:
    the host only asks it.

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
        self.runtime: RuntimeLike | None = None
        self.node: NodeInterface | None = None
        self.store: Store | None = None
        self.store_error: StoreError | None = None
        self.engine_error: BaseException | None = None
        self.state = "stopped"
        self._ready: anyio.Event | None = None
        self._stop: anyio.Event | None = None
        self._stopped: anyio.Event | None = None

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

    async def _main(self) -> None:
        assert self._ready is not None and self._stop is not None and self._stopped is not None
        try:
            async with AsyncExitStack() as stack:
                try:
                    node = self.node = self._node_factory(self.config.configuration)
                    aclose = getattr(node, "aclose", None)
                    if aclose is not None:
                        stack.push_async_callback(aclose)
                    knowledge = await self._open_store()
                    runtime = await stack.enter_async_context(
                        self._runtime_factory(
                            node,
                            self.config.engine_config(),
                            knowledge=knowledge,
                            journal=self.store,
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
                await self._stop.wait()
                await self._save_knowledge()
        finally:
            self._ready.set()
            self._stopped.set()

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

    async def _save_knowledge(self) -> None:
        if self.runtime is None or self.store is None or self.store.closed:
            return
        try:
            rows = await self.runtime.export_knowledge()
            self.store.put_knowledge(knowledge_records(rows))
        except Exception as exc:
            self._log(f"cannot save channel knowledge: {exc}", "error")

    # -- commands ---------------------------------------------------------------------------------

    async def pay(
        self, params: PayParams, *, on_event: Callable[[PaymentEvent], None] | None = None
    ) -> PayOutcome:
        """``barqpay``: the engine pays (or joins, or finds it paid); knowledge is saved after.

        Raises:
            StoreError: the database is unavailable (nothing is paid without history).
            BarqError: any engine error (its code is the JSON-RPC code).
        """
        runtime = await self.ready_runtime()
        self._require_store()
        try:
            outcome = await runtime.pay_outcome(params, on_event=on_event)
        except BarqError:
            await self._save_knowledge()
            raise
        if not (outcome.already_paid or outcome.joined):
            await self._save_knowledge()
        return outcome

    async def keysend(
        self,
        params: PayParams,
        destination: str,
        extratlvs: Mapping[str, str],
        *,
        on_event: Callable[[PaymentEvent], None] | None = None,
    ) -> PayOutcome:
        """``barqkeysend``: as :meth:`pay`, for a keysend (``params.invstring`` empty).

        Raises:
            StoreError: the database is unavailable.
            BarqError: any engine error (its code is the JSON-RPC code).
        """
        runtime = await self.ready_runtime()
        self._require_store()
        try:
            return await runtime.keysend(params, destination, extratlvs, on_event=on_event)
        finally:
            await self._save_knowledge()

    async def status(self, payment_hash: PaymentHash | None = None) -> dict[str, Any]:
        """``barqstatus``: payments in flight and recent ones, plus engine and store health."""
        payments = [] if self.runtime is None else await self.runtime.astatus(payment_hash)
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
        elif self.store is not None:
            out["store"].update(self.store.health())
        return out

    async def listpays(
        self, payment_hash: PaymentHash | None, status: str | None
    ) -> dict[str, Any]:
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
        return route_result(destination, amount_msat, strategy or self.config.strategy, routes)

    async def listpays_while_paying(self, params: Any) -> dict[str, Any] | None:
        """``listpays``'s answer when it concerns a payment Barq runs, else ``None``
        (lightningd answers it). See :mod:`barq.plugin.listpays`.

        Raises:
            BarqError: ``listsendpays`` failed (the hook then lets lightningd answer).
        """
        call = getattr(self.node, "call", None)
        if self.runtime is None or call is None:
            return None
        paying = [v for v in self.runtime.status() if v.status is PaymentStatus.PENDING]
        query = listpays_query(params) if paying else None
        if query is None or not concerns(query, paying):
            return None
        answer = await call("listsendpays", query.sendpays_params())
        sendpays = answer.get("payments", []) if isinstance(answer, dict) else []
        return listpays_result(sendpays, query, {v.payment_hash for v in paying})
