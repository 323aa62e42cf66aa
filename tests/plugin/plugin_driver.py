"""Drive the Barq plugin exactly as lightningd does: JSON-RPC lines over its stdin/stdout.

:class:`PluginDriver` builds the plugin with :func:`barq.plugin.build_plugin`
on a pair of pipes, runs its read loop (``serve``) in a thread, and reads
everything it writes in another thread: responses (by id) and notifications
(``message``, ``progress``, ``log``, ``barq_part_start``...). Tests then send
``getmanifest``, ``init`` and commands, and wait for the answers.

Also here: :class:`FakeNode`, a scripted node, and :class:`FakeRuntime`, the
engine's real payment lifecycle around a scripted payment, to test the
plugin's mechanics (concurrency, error shapes, persistence, restart
reconciliation) without depending on the engine's routing behaviour.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec

from barq.actors.coordinator import PaymentCoordinator
from barq.actors.messages import ChannelKnowledge, DisabledChannel, DisabledNode
from barq.errors import BarqError, InvalidInvoice, PartFailed, StoppedRetrying
from barq.model import (
    Hop,
    Invoice,
    LocalChannel,
    NodeInfo,
    PartStatus,
    Route,
    RouteFailure,
    SendpayStatus,
)
from barq.model.payment import (
    EngineConfig,
    PartEnded,
    PartStarted,
    PartState,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
    PayOutcome,
    PayParams,
)
from barq.payment import PaymentJournal, Publish, Resume, fold
from barq.plugin import BarqPlugin, build_plugin

ME = "02" + "11" * 32
PEER = "03" + "22" * 32
PAYEE = "02" + "33" * 32


class RpcFailure(Exception):
    """The plugin answered a request with an error object."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error
        self.code: int = error["code"]
        self.message: str = error["message"]
        self.data: dict[str, Any] | None = error.get("data")


class PluginDriver:
    """The plugin on pipes, plus a reader collecting what it writes."""

    def __init__(self, **build_kwargs: Any) -> None:
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        self._to_plugin = os.fdopen(w_in, "wb", buffering=0)
        self._plugin_stdin = os.fdopen(r_in, "r", encoding="utf-8")
        self._plugin_stdout = os.fdopen(w_out, "w", encoding="utf-8")
        self._from_plugin_fd = r_out
        self.plugin: BarqPlugin = build_plugin(
            stdin=self._plugin_stdin, stdout=self._plugin_stdout, **build_kwargs
        )
        self._cond = threading.Condition()
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, name="driver-reader", daemon=True)
        self._reader.start()
        self._server = threading.Thread(target=self.plugin.serve, name="plugin-serve", daemon=True)
        self._server.start()
        self._closed = False

    # -- wire ----------------------------------------------------------------------------------

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_plugin_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            *msgs, buf = buf.split(b"\n\n")
            with self._cond:
                for raw in msgs:
                    if not raw.strip():
                        continue
                    msg = json.loads(raw)
                    if "id" in msg and ("result" in msg or "error" in msg):
                        self.responses[msg["id"]] = msg
                    else:
                        self.notifications.append(msg)
                self._cond.notify_all()
        os.close(self._from_plugin_fd)

    def send(self, method: str, params: Any = None, *, req_id: Any = None) -> Any:
        """Write one request; returns its id (ids are strings, as lightningd's are)."""
        rid = req_id if req_id is not None else f"cli:{method}#{next(self._ids)}"
        msg = {
            "jsonrpc": "2.0",
            "id": rid,
            "method": method,
            "params": {} if params is None else params,
        }
        self._to_plugin.write(json.dumps(msg).encode() + b"\n\n")
        return rid

    def notify_plugin(self, method: str, params: dict[str, Any]) -> None:
        """Write one notification (no id) to the plugin."""
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        self._to_plugin.write(json.dumps(msg).encode() + b"\n\n")

    def wait(self, rid: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The response to ``rid`` (the whole JSON-RPC object)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no response to {rid} in {timeout} s")
                self._cond.wait(left)
            return self.responses[rid]

    def answered(self, rid: Any) -> bool:
        with self._cond:
            return rid in self.responses

    def call(self, method: str, params: Any = None, *, timeout: float = 15.0) -> Any:
        """Send, wait, return ``result``; raise :class:`RpcFailure` on an error answer."""
        resp = self.wait(self.send(method, params), timeout)
        if "error" in resp:
            raise RpcFailure(resp["error"])
        return resp["result"]

    def error(self, method: str, params: Any = None, *, timeout: float = 15.0) -> RpcFailure:
        """Send and expect an error answer."""
        resp = self.wait(self.send(method, params), timeout)
        assert "error" in resp, f"expected an error from {method}, got {resp['result']}"
        return RpcFailure(resp["error"])

    def notes(self, method: str | None = None, *, req_id: Any = None) -> list[dict[str, Any]]:
        """Notifications received so far (of ``method``; for ``req_id`` for messages)."""
        with self._cond:
            out = [n for n in self.notifications if method is None or n["method"] == method]
        if req_id is not None:
            out = [n for n in out if n["params"].get("id") == req_id]
        return out

    def wait_for(self, pred: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout} s: {what}")
            time.sleep(0.01)

    # -- lightningd's handshake --------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("getmanifest", {"allow-deprecated-apis": False})
        return result

    def init(
        self,
        lightning_dir: Path,
        options: dict[str, Any] | None = None,
        *,
        network: str = "regtest",
    ) -> Any:
        self.manifest()
        return self.call(
            "init",
            {
                "options": options or {},
                "configuration": {
                    "lightning-dir": str(lightning_dir),
                    "rpc-file": "lightning-rpc",
                    "startup": True,
                    "network": network,
                    "feature_set": {"init": "", "node": "", "channel": "", "invoice": ""},
                },
            },
        )

    def wait_engine(self, timeout: float = 30.0) -> dict[str, Any]:
        """Poll ``barqstatus`` until the engine is no longer starting."""
        deadline = time.monotonic() + timeout
        while True:
            st: dict[str, Any] = self.call("barqstatus")
            if st["engine"]["state"] != "starting":
                return st
            if time.monotonic() > deadline:
                raise TimeoutError("engine still starting")
            time.sleep(0.02)

    def close(self, timeout: float = 20.0) -> None:
        """Close the plugin's stdin (what lightningd does on exit) and wait for it to stop."""
        if self._closed:
            return
        self._closed = True
        self._to_plugin.close()
        self._server.join(timeout)
        assert not self._server.is_alive(), "plugin did not stop after stdin closed"
        self._plugin_stdout.close()
        self._reader.join(timeout)
        self._plugin_stdin.close()

    def __enter__(self) -> PluginDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- scripted node and engine --------------------------------------------------------------------


def make_invoice(
    payment_hash: str,
    *,
    amount_msat: int | None = 100_000,
    payee: str = PAYEE,
    created_at: int | None = None,
    expiry: int = 3600,
    network: str = "regtest",
) -> Invoice:
    return Invoice(
        bolt11=f"lnbcrt{payment_hash[:8]}",
        payee=payee,
        payment_hash=payment_hash,
        amount_msat=amount_msat,
        created_at=created_at or int(time.time()),
        expiry=expiry,
        min_final_cltv_expiry=18,
        network=network,
        payment_secret="ab" * 32,
    )


def route_to(amount_msat: int, *, fee_msat: int = 1) -> Route:
    return Route(
        hops=(
            Hop(
                id=PEER,
                channel="100x1x0",
                direction=0,
                amount_msat=amount_msat + fee_msat,
                delay=24,
            ),
            Hop(id=PAYEE, channel="200x1x0", direction=1, amount_msat=amount_msat, delay=18),
        ),
        probability=0.5,
    )


class FakeNode:
    """A NodeInterface with invoices and sendpays set by the test.

    ``hold`` is a set of ``(payment_hash, partid)`` whose ``waitsendpay``
    blocks while they are in it; ``outcome`` decides how a waited part ends.
    """

    def __init__(self) -> None:
        self.invoices: dict[str, Invoice] = {}
        self.sendpays: list[PartStatus] = []
        self.hold: set[tuple[str, int]] = set()
        self.fail: set[tuple[str, int]] = set()
        self.calls: list[str] = []
        self.closed = False

    def add_invoice(self, inv: Invoice) -> str:
        self.invoices[inv.bolt11] = inv
        return inv.bolt11

    async def get_info(self) -> NodeInfo:
        return NodeInfo(id=ME, network="regtest", blockheight=100)

    async def decode_invoice(self, invstring: str) -> Invoice:
        self.calls.append("decode")
        try:
            return self.invoices[invstring]
        except KeyError:
            raise InvalidInvoice(f"invalid bolt11: {invstring[:20]}") from None

    async def list_peer_channels(self) -> list[LocalChannel]:
        return []

    async def gossip_graph(self) -> Any:
        raise NotImplementedError

    async def sendpay(
        self,
        route: Route,
        payment_hash: str,
        *,
        partid: int,
        groupid: int,
        total_msat: int,
        payment_secret: str | None,
        bolt11: str | None = None,
        label: str | None = None,
    ) -> PartStatus:
        raise NotImplementedError

    async def waitsendpay(
        self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
    ) -> PartStatus:
        self.calls.append(f"waitsendpay {partid}")
        while (payment_hash, partid) in self.hold:  # noqa: ASYNC110 - set from the test thread
            await anyio.sleep(0.01)
        for i, p in enumerate(self.sendpays):
            if (p.payment_hash, p.partid, p.groupid) == (payment_hash, partid, groupid):
                if (payment_hash, partid) in self.fail:
                    self.sendpays[i] = PartStatus(
                        payment_hash=p.payment_hash,
                        partid=p.partid,
                        groupid=p.groupid,
                        status=SendpayStatus.FAILED,
                        amount_msat=p.amount_msat,
                        amount_sent_msat=p.amount_sent_msat,
                        destination=p.destination,
                        created_at=p.created_at,
                        completed_at=int(time.time()),
                    )
                    raise PartFailed(
                        "failed", failure=RouteFailure(failcode=0x1007, erring_index=1)
                    )
                done = PartStatus(
                    payment_hash=p.payment_hash,
                    partid=p.partid,
                    groupid=p.groupid,
                    status=SendpayStatus.COMPLETE,
                    amount_msat=p.amount_msat,
                    amount_sent_msat=p.amount_sent_msat,
                    destination=p.destination,
                    created_at=p.created_at,
                    completed_at=int(time.time()),
                    payment_preimage="77" * 32,
                )
                self.sendpays[i] = done
                return done
        raise PartFailed("no such part", failure=RouteFailure(failcode=0x400F, erring_index=2))

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        self.calls.append("listsendpays")
        return [p for p in self.sendpays if payment_hash in (None, p.payment_hash)]

    async def aclose(self) -> None:
        self.closed = True


class FakeRuntime:
    """The real payment lifecycle around a scripted payment: the plugin's engine in tests.

    Joining, "already paid", adopting parts after a restart, the restart
    reconciliation and the recording are the engine's own
    (:class:`barq.actors.coordinator.PaymentCoordinator`); only running one
    payment is scripted (:meth:`_play`). ``script[invstring]`` is a list of part
    outcomes (``"ok"``/``"fail"``), an exception to raise before the payment
    starts, or ``"hold"`` (wait until the test sets ``released``). Adopted
    parts are awaited on the node first; successful parts are added to the
    node's sendpays as complete, failed ones as failed.
    """

    def __init__(
        self,
        node: FakeNode,
        config: EngineConfig,
        knowledge: list[Any] | None,
        journal: PaymentJournal | None,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        self.node = node
        self.config = config
        self.knowledge_in = knowledge
        self.script: dict[str, Any] = {}
        self.released = threading.Event()
        self.pay_calls = 0  # payments run (not joined, not found already paid)
        self.executed: list[dict[str, Any]] = []  # what each run was handed
        self.payments = PaymentCoordinator(
            node=node, execute=self._play, tg=tg, clock=time.time, journal=journal
        )
        self.knowledge_out: list[Any] = [
            ChannelKnowledge(
                scid_dir="100x1x0/0",
                lo_msat=5,
                hi_msat=10**9,
                updated_at=1_700_000_000.0,
                capacity_msat=2 * 10**9,
            ),
            DisabledChannel(scid_dir="200x1x0/1", until=1_800_000_000.0, reason="perm"),
            DisabledNode(node_id=PEER, until=1_800_000_001.0),
        ]

    async def pay_outcome(
        self, params: PayParams, *, on_event: Callable[[PaymentEvent], None] | None = None
    ) -> PayOutcome:
        return await self.payments.pay(params, on_event=on_event)

    async def decode_invoice(self, invstring: str) -> Invoice:
        return await self.payments.decode(invstring)

    def status(self, payment_hash: str | None = None) -> list[PaymentView]:
        return self.payments.status(payment_hash)

    async def astatus(self, payment_hash: str | None = None) -> list[PaymentView]:
        return await self.payments.astatus(payment_hash)

    async def route(
        self,
        destination: str,
        amount_msat: int,
        *,
        strategy: str | None = None,
        maxparts: int | None = None,
        maxfee_msat: int | None = None,
        final_cltv: int = 18,
    ) -> list[Route]:
        if destination != PAYEE:
            raise BarqError("no route", data={})
        return [route_to(amount_msat)]

    async def export_knowledge(self) -> list[Any]:
        return list(self.knowledge_out)

    async def _play(
        self,
        params: PayParams,
        invoice: Invoice,
        resume: Resume,
        publish: Publish,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        self.pay_calls += 1
        self.executed.append({"invoice": invoice, "resume": resume})
        plan = self.script.get(params.invstring, ["ok"])
        if isinstance(plan, BaseException):
            raise plan
        task_status.started()
        view: list[PaymentView] = []

        def emit(ev: PaymentEvent) -> None:
            view[:] = [fold(view[0] if view else None, ev)]
            publish(ev)

        h, groupid = invoice.payment_hash, resume.groupid
        amount = params.amount_msat or invoice.amount_msat or 0
        emit(
            PaymentStarted(
                payment_hash=h,
                destination=invoice.payee,
                amount_msat=amount,
                strategy=params.strategy or self.config.default_strategy,
                at=time.time(),
                groupid=groupid,
                bolt11=params.invstring,
                label=params.label,
                maxfee_msat=params.maxfee_msat or 5000,
            )
        )
        for adopted in resume.adopted:
            emit(adopted)
        if await self._await_adopted(resume, emit):
            emit(
                PaymentEnded(
                    payment_hash=h, groupid=groupid, status=PaymentStatus.COMPLETE, at=time.time()
                )
            )
            return
        if plan == "hold":
            while not self.released.is_set():  # noqa: ASYNC110 - a threading.Event
                await anyio.sleep(0.01)
            plan = ["ok"]
        partid = resume.next_partid
        for outcome in plan:
            if await self._send(invoice, groupid, partid, amount, outcome == "ok", emit):
                emit(
                    PaymentEnded(
                        payment_hash=h,
                        status=PaymentStatus.COMPLETE,
                        at=time.time(),
                        groupid=groupid,
                    )
                )
                return
            partid += 1
        error = f"gave up after {len(plan)} attempts"
        emit(
            PaymentEnded(
                payment_hash=h,
                status=PaymentStatus.FAILED,
                at=time.time(),
                error=error,
                error_code=210,
                groupid=groupid,
            )
        )
        raise StoppedRetrying(error, data=msgspec.to_builtins(view[0]))

    async def _await_adopted(self, resume: Resume, emit: Callable[[PaymentEvent], None]) -> bool:
        """Wait for the adopted parts; whether one succeeded."""
        paid = False
        for a in resume.adopted:
            try:
                st = await self.node.waitsendpay(a.payment_hash, partid=a.partid, groupid=a.groupid)
            except PartFailed as exc:
                state, failure, preimage = PartState.FAILED, exc.failure, None
            else:
                state, failure, preimage = PartState.SUCCEEDED, None, st.payment_preimage
                paid = True
            emit(
                PartEnded(
                    payment_hash=a.payment_hash,
                    partid=a.partid,
                    groupid=a.groupid,
                    amount_msat=a.amount_msat,
                    state=state,
                    at=time.time(),
                    failure=failure,
                    preimage=preimage,
                )
            )
        return paid

    async def _send(
        self,
        invoice: Invoice,
        groupid: int,
        partid: int,
        amount: int,
        ok: bool,
        emit: Callable[[PaymentEvent], None],
    ) -> bool:
        """One scripted part; whether it succeeded."""
        h, route, now = invoice.payment_hash, route_to(amount), time.time()
        emit(
            PartStarted(
                payment_hash=h,
                partid=partid,
                groupid=groupid,
                amount_msat=amount,
                route=route,
                at=now,
            )
        )
        await anyio.sleep(0.005)
        self.node.sendpays.append(
            PartStatus(
                payment_hash=h,
                partid=partid,
                groupid=groupid,
                status=SendpayStatus.COMPLETE if ok else SendpayStatus.FAILED,
                amount_msat=amount,
                amount_sent_msat=route.sent_msat,
                destination=invoice.payee,
                created_at=int(now),
                completed_at=int(time.time()),
                payment_preimage="77" * 32 if ok else None,
            )
        )
        failure = None
        if not ok:
            failure = RouteFailure(
                failcode=0x1007,
                erring_index=1,
                erring_node=PEER,
                erring_channel="200x1x0",
                erring_direction=1,
            )
        emit(
            PartEnded(
                payment_hash=h,
                partid=partid,
                groupid=groupid,
                amount_msat=amount,
                state=PartState.SUCCEEDED if ok else PartState.FAILED,
                at=time.time(),
                failure=failure,
                reason=None if ok else "WIRE_TEMPORARY_CHANNEL_FAILURE at 200x1x0/1",
                preimage="77" * 32 if ok else None,
            )
        )
        return ok


class FakeWorld:
    """One FakeNode shared by successive plugin instances (restarts), with their runtimes."""

    def __init__(self) -> None:
        self.node = FakeNode()
        self.runtimes: list[FakeRuntime] = []
        self.fail_start: BaseException | None = None

    def node_factory(self, configuration: dict[str, Any]) -> FakeNode:
        return self.node

    @property
    def runtime(self) -> FakeRuntime:
        return self.runtimes[-1]

    def runtime_factory(
        self,
        node: FakeNode,
        config: EngineConfig,
        *,
        knowledge: list[Any] | None = None,
        journal: PaymentJournal | None = None,
    ) -> Any:
        world = self

        @asynccontextmanager
        async def cm() -> AsyncIterator[FakeRuntime]:
            if world.fail_start is not None:
                raise world.fail_start
            async with anyio.create_task_group() as tg:
                rt = FakeRuntime(node, config, knowledge, journal, tg)
                world.runtimes.append(rt)
                rt.payments.start()
                try:
                    yield rt
                finally:
                    tg.cancel_scope.cancel()

        return cm()

    def driver(self) -> PluginDriver:
        return PluginDriver(node_factory=self.node_factory, runtime_factory=self.runtime_factory)
