"""Public test tools: a scripted node and part scripts (httpx ``MockTransport`` style).

:class:`ScriptedNode` implements :class:`barq.node.base.NodeInterface` over a
fixed graph; what happens to each part ``sendpay`` receives is decided by a
*handler* you give it, a function of the part (:class:`SentPart`) to a
script::

    def handler(part: SentPart) -> PartScript:
        if part.route.channels()[1] == "101x1x0/0":
            return fail_at(part.route, 1, FailCode.TEMPORARY_CHANNEL_FAILURE)
        return Succeed(after_s=0.5)

    node = ScriptedNode(graph=graph, our_id=graph.nodes[0], handler=handler)
    bolt11 = node.add_invoice(payee=graph.nodes[3], amount_msat=50_000_000)

At every ``sendpay`` it also checks the engine's money rules for payments
registered with :meth:`ScriptedNode.expect` and records any breach in
:attr:`ScriptedNode.violations` (tests assert it stays empty);
:class:`CheckedNode` does the same around any other node (the simulator):

1. parts in flight + delivered never exceed the invoice amount;
2. fees of parts in flight + succeeded never exceed ``maxfee_msat``;
3. each route's delay is at most ``maxdelay``; parts in flight + succeeded
   never exceed ``maxparts``;
4. no ``(groupid, partid)`` is reused for a different route.

Time is ``anyio.current_time()`` (fine under ``trio.testing.MockClock``).

For convenience this module also re-exports the other fakes and the seeded
graph builders: :class:`~barq.node.simulated.SimulatedNetwork` /
:class:`~barq.node.simulated.SimulatedNode` and
:func:`~barq.graph.synthetic.builtin_network`,
:func:`~barq.graph.synthetic.line_network`,
:func:`~barq.graph.synthetic.network_from_channels`.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import msgspec
import numpy as np

from barq.errors import (
    PAY_IN_PROGRESS,
    PAY_NO_SUCH_PAYMENT,
    PAY_RHASH_ALREADY_USED,
    InvalidInvoice,
    PartFailed,
    RpcError,
)
from barq.graph import Graph
from barq.graph.synthetic import (
    ChannelSpec,
    builtin_network,
    line_network,
    network_from_channels,
)
from barq.model import (
    ChannelUpdate,
    FailCode,
    Hop,
    Invoice,
    LocalChannel,
    NodeId,
    NodeInfo,
    PartStatus,
    Route,
    RouteFailure,
    RouteHintHop,
    SendpayStatus,
    failcode_name,
)
from barq.node.base import NodeInterface
from barq.node.simulated import SimulatedNetwork, SimulatedNode

__all__ = [
    "ChannelSpec",
    "CheckedNode",
    "Fail",
    "Handler",
    "Limits",
    "PartScript",
    "Refuse",
    "ScriptedNode",
    "SentPart",
    "SimulatedNetwork",
    "SimulatedNode",
    "Succeed",
    "builtin_network",
    "fail_at",
    "line_network",
    "local_channels",
    "money_rule_violations",
    "network_from_channels",
]


class SentPart(msgspec.Struct, frozen=True, kw_only=True):
    """One ``sendpay`` as the handler sees it (``seq`` counts sendpay calls from 0)."""

    payment_hash: str
    partid: int
    groupid: int
    route: Route
    total_msat: int
    payment_secret: str | None
    seq: int
    at: float


class Succeed(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The part succeeds ``after_s`` seconds after ``sendpay``."""

    after_s: float = 0.0


class Fail(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The part fails with ``failure`` ``after_s`` seconds after ``sendpay``."""

    failure: RouteFailure
    after_s: float = 0.0


class Refuse(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``sendpay`` itself refuses: :class:`~barq.errors.PartFailed` when ``failure`` is
    given (our first hop), else :class:`~barq.errors.RpcError` with ``rpc_code``."""

    message: str = "refused"
    rpc_code: int = 204
    failure: RouteFailure | None = None


PartScript = Succeed | Fail | Refuse
Handler = Callable[[SentPart], PartScript]


def fail_at(
    route: Route,
    index: int,
    code: int | FailCode,
    *,
    update: ChannelUpdate | None = None,
    after_s: float = 0.0,
    our_id: NodeId | None = None,
) -> Fail:
    """A :class:`Fail` as node ``index`` of ``route`` would report it (0 = us, len = payee).

    ``erring_channel`` is the channel leaving that node (the last one for the payee).
    """
    n = len(route.hops)
    index = min(max(index, 0), n)
    node = route.hops[index - 1].id if index > 0 else our_id
    hop = route.hops[index] if index < n else route.hops[-1]
    return Fail(
        after_s=after_s,
        failure=RouteFailure(
            failcode=int(code),
            erring_index=index,
            erring_node=node,
            erring_channel=hop.channel,
            erring_direction=hop.direction,
            channel_update=update,
            message=failcode_name(int(code)),
        ),
    )


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a payment must respect (what :meth:`ScriptedNode.expect` checks)."""

    maxfee_msat: int
    maxdelay: int
    maxparts: int


@dataclass(slots=True)
class _Part:
    sent: SentPart
    script: Succeed | Fail
    resolve_at: float
    preimage: str
    first_hop: str | None

    def status(self, now: float) -> SendpayStatus:
        if now < self.resolve_at:
            return SendpayStatus.PENDING
        return SendpayStatus.COMPLETE if isinstance(self.script, Succeed) else SendpayStatus.FAILED


@dataclass(slots=True)
class _Invoice:
    invoice: Invoice
    preimage: str


def local_channels(
    graph: Graph, our_id: NodeId, *, spendable_msat: int | Callable[[int], int] | None = None
) -> list[LocalChannel]:
    """Our channels as ``listpeerchannels`` would show them, from ``graph``'s rows leaving us.

    ``spendable_msat``: a fixed amount, a function of the capacity, or ``None``
    (all of the capacity).
    """
    i = graph.node_index.get(our_id)
    out: list[LocalChannel] = []
    if i is None:
        return out
    for e in np.flatnonzero(graph.src == i).tolist():
        cap = int(graph.capacity_msat[e])
        if spendable_msat is None:
            spend = cap
        elif callable(spendable_msat):
            spend = spendable_msat(cap)
        else:
            spend = spendable_msat
        out.append(
            LocalChannel(
                peer_id=graph.nodes[int(graph.dst[e])],
                scid=graph.scid[e],
                direction=int(graph.direction[e]),
                state="CHANNELD_NORMAL",
                peer_connected=bool(graph.enabled[e]),
                spendable_msat=min(spend, cap),
                receivable_msat=cap - min(spend, cap),
                capacity_msat=cap,
                htlc_min_msat=int(graph.htlc_min_msat[e]),
                htlc_max_msat=int(graph.htlc_max_msat[e]),
            )
        )
    return out


class ScriptedNode:
    """A :class:`~barq.node.base.NodeInterface` whose parts follow a handler's scripts.

    Args:
        graph: what :meth:`gossip_graph` returns.
        our_id: our node id (a node of ``graph`` normally).
        handler: part -> script; default: every part succeeds at once.
        channels: our channels; default :func:`local_channels` (all capacity
            spendable). Balances move like lightningd's: a part pending or
            succeeded holds its first-hop amount, a failed one gives it back.
        network, blockheight: for :meth:`get_info`.
        clock: UNIX-like seconds for invoices' ``created_at`` (default ``time.time``;
            give the runtime the same clock).

    Attributes:
        sent: every :class:`SentPart`, in ``sendpay`` order (refused ones included).
        violations: money-rule breaches found at ``sendpay`` (see the module doc).
        calls: how often each method was called.
    """

    def __init__(
        self,
        *,
        graph: Graph,
        our_id: NodeId,
        handler: Handler | None = None,
        channels: Sequence[LocalChannel] | None = None,
        network: str = "regtest",
        blockheight: int = 800_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.graph = graph
        self.our_id = our_id
        self.handler: Handler = handler or (lambda part: Succeed())
        self.network = network
        self.blockheight = blockheight
        self.clock = clock or time.time
        self.channels: list[LocalChannel] = list(
            local_channels(graph, our_id) if channels is None else channels
        )
        """Our channels before any part of this node was sent (edit to change balances)."""
        self.sent: list[SentPart] = []
        self.violations: list[str] = []
        self.calls: Counter[str] = Counter()
        self._parts: dict[str, dict[tuple[int, int], _Part]] = {}
        self._refused: dict[str, set[tuple[int, int]]] = {}
        self._invoices: dict[str, _Invoice] = {}
        self._by_hash: dict[str, _Invoice] = {}
        self._limits: dict[str, Limits] = {}
        self._preloaded: dict[str, list[PartStatus]] = {}

    # -- test setup -----------------------------------------------------------------------

    def add_invoice(
        self,
        *,
        payee: NodeId,
        amount_msat: int | None,
        expiry_s: int = 3600,
        min_final_cltv: int = 18,
        network: str | None = None,
        route_hints: Sequence[Sequence[RouteHintHop]] = (),
        created_at: int | None = None,
    ) -> str:
        """Register an invoice; returns its (fake) bolt11 string for :meth:`decode_invoice`."""
        k = len(self._invoices)
        preimage = hashlib.sha256(f"barq-scripted-{k}".encode()).hexdigest()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        bolt11 = f"lnscripted{k}x{payment_hash[:16]}"
        inv = Invoice(
            bolt11=bolt11,
            payee=payee,
            payment_hash=payment_hash,
            amount_msat=amount_msat,
            created_at=int(self.clock()) if created_at is None else created_at,
            expiry=expiry_s,
            min_final_cltv_expiry=min_final_cltv,
            network=network or self.network,
            payment_secret="55" * 32,
            route_hints=tuple(tuple(h) for h in route_hints),
        )
        rec = _Invoice(invoice=inv, preimage=preimage)
        self._invoices[bolt11] = rec
        self._by_hash[payment_hash] = rec
        return bolt11

    def invoice(self, bolt11: str) -> Invoice:
        return self._invoices[bolt11].invoice

    def expect(self, bolt11: str, limits: Limits) -> None:
        """Check the money rules for this invoice's parts at every ``sendpay``."""
        self._limits[self._invoices[bolt11].invoice.payment_hash] = limits

    def preload(self, parts: Sequence[PartStatus]) -> None:
        """Pretend earlier runs sent ``parts`` (shown by :meth:`listsendpays`; a ``pending``
        one resolves as the handler says when waited for)."""
        for p in parts:
            self._preloaded.setdefault(p.payment_hash, []).append(p)

    def set_spendable(self, scid: str, spendable_msat: int) -> None:
        self.channels = [
            msgspec.structs.replace(c, spendable_msat=spendable_msat) if c.scid == scid else c
            for c in self.channels
        ]

    def delivered_msat(self, payment_hash: str) -> int:
        now = anyio.current_time()
        return sum(
            p.sent.route.amount_msat
            for p in self._parts.get(payment_hash, {}).values()
            if p.status(now) is SendpayStatus.COMPLETE
        )

    # -- NodeInterface --------------------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        self.calls["get_info"] += 1
        return NodeInfo(id=self.our_id, network=self.network, blockheight=self.blockheight)

    async def decode_invoice(self, invstring: str) -> Invoice:
        self.calls["decode_invoice"] += 1
        rec = self._invoices.get(invstring)
        if rec is None:
            raise InvalidInvoice(f"scripted node: unknown invoice {invstring[:20]!r}")
        return rec.invoice

    async def list_peer_channels(self) -> list[LocalChannel]:
        """:attr:`channels` minus the first-hop amounts of parts pending or succeeded."""
        self.calls["list_peer_channels"] += 1
        now = anyio.current_time()
        used: Counter[str] = Counter()
        for parts in self._parts.values():
            for p in parts.values():
                if p.first_hop is not None and p.status(now) is not SendpayStatus.FAILED:
                    used[p.first_hop] += p.sent.route.sent_msat
        return [
            msgspec.structs.replace(c, spendable_msat=max(c.spendable_msat - used[c.scid], 0))
            if c.scid is not None and c.scid in used
            else c
            for c in self.channels
        ]

    async def gossip_graph(self) -> Graph:
        self.calls["gossip_graph"] += 1
        return self.graph

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
        self.calls["sendpay"] += 1
        await anyio.lowlevel.checkpoint()
        now = anyio.current_time()
        parts = self._parts.setdefault(payment_hash, {})
        key = (groupid, partid)
        sent = SentPart(
            payment_hash=payment_hash,
            partid=partid,
            groupid=groupid,
            route=route,
            total_msat=total_msat,
            payment_secret=payment_secret,
            seq=len(self.sent),
            at=now,
        )
        self._check(sent, parts, now)
        self.sent.append(sent)
        old = parts.get(key)
        if old is not None and old.status(now) is SendpayStatus.PENDING:
            raise RpcError(
                f"part {partid} of group {groupid} already in flight",
                method="sendpay",
                rpc_code=PAY_IN_PROGRESS,
            )
        if any(p.status(now) is SendpayStatus.COMPLETE for p in parts.values()):
            self._refused.setdefault(payment_hash, set()).add(key)
            raise RpcError("already succeeded", method="sendpay", rpc_code=PAY_RHASH_ALREADY_USED)
        script = self.handler(sent)
        if isinstance(script, Refuse):
            self._refused.setdefault(payment_hash, set()).add(key)
            if script.failure is not None:
                raise PartFailed(script.message, failure=script.failure, method="sendpay")
            raise RpcError(script.message, method="sendpay", rpc_code=script.rpc_code)
        rec = self._by_hash.get(payment_hash)
        preimage = rec.preimage if rec is not None else "00" * 32
        first = route.hops[0].channel if route.hops else None
        parts[key] = _Part(
            sent=sent,
            script=script,
            resolve_at=now + script.after_s,
            preimage=preimage,
            first_hop=first,
        )
        return self._status(parts[key], now)

    async def waitsendpay(
        self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
    ) -> PartStatus:
        self.calls["waitsendpay"] += 1
        part = self._parts.get(payment_hash, {}).get((groupid, partid))
        if part is None:
            pre = self._adopt_preloaded(payment_hash, partid, groupid)
            if pre is None:
                raise RpcError(
                    f"never attempted part {partid} of group {groupid}",
                    method="waitsendpay",
                    rpc_code=PAY_NO_SUCH_PAYMENT,
                )
            part = pre
        now = anyio.current_time()
        wait = part.resolve_at - now
        if timeout_s is not None and wait > timeout_s:
            await anyio.sleep(timeout_s)
            raise RpcError(
                "Timed out while waiting", method="waitsendpay", rpc_code=PAY_IN_PROGRESS
            )
        if wait > 0:
            await anyio.sleep_until(part.resolve_at)
        else:
            await anyio.lowlevel.checkpoint()
        if isinstance(part.script, Fail):
            raise PartFailed(
                f"part {partid} failed: {part.script.failure.failcodename}",
                failure=part.script.failure,
            )
        return self._status(part, anyio.current_time())

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        self.calls["listsendpays"] += 1
        now = anyio.current_time()
        hashes = (
            [payment_hash]
            if payment_hash is not None
            else sorted(set(self._parts) | set(self._preloaded))
        )
        out: list[PartStatus] = []
        for h in hashes:
            seen = set(self._parts.get(h, {}))
            out.extend(p for p in self._preloaded.get(h, []) if (p.groupid, p.partid) not in seen)
            out.extend(self._status(p, now) for p in self._parts.get(h, {}).values())
            for g, pid in sorted(self._refused.get(h, set()) - seen):
                out.append(
                    PartStatus(
                        payment_hash=h,
                        partid=pid,
                        groupid=g,
                        status=SendpayStatus.FAILED,
                        amount_msat=0,
                        amount_sent_msat=0,
                    )
                )
        return out

    # -- internals ------------------------------------------------------------------------

    def _status(self, part: _Part, now: float) -> PartStatus:
        r = part.sent.route
        st = part.status(now)
        return PartStatus(
            payment_hash=part.sent.payment_hash,
            partid=part.sent.partid,
            groupid=part.sent.groupid,
            status=st,
            amount_msat=r.amount_msat,
            amount_sent_msat=r.sent_msat,
            destination=r.destination,
            payment_preimage=part.preimage if st is SendpayStatus.COMPLETE else None,
        )

    def _adopt_preloaded(self, payment_hash: str, partid: int, groupid: int) -> _Part | None:
        for p in self._preloaded.get(payment_hash, []):
            if p.partid == partid and p.groupid == groupid:
                hop_id = p.destination or self.our_id
                route = Route(
                    hops=(
                        Hop(
                            id=hop_id,
                            channel="0x0x0",
                            direction=0,
                            amount_msat=p.amount_msat,
                            delay=0,
                        ),
                    )
                )
                sent = SentPart(
                    payment_hash=payment_hash,
                    partid=partid,
                    groupid=groupid,
                    route=route,
                    total_msat=p.amount_msat,
                    payment_secret=None,
                    seq=-1,
                    at=anyio.current_time(),
                )
                script = self.handler(sent)
                if isinstance(script, Refuse):
                    script = Succeed()
                rec = self._by_hash.get(payment_hash)
                part = _Part(
                    sent=sent,
                    script=script,
                    resolve_at=anyio.current_time() + script.after_s,
                    preimage=rec.preimage if rec else "00" * 32,
                    first_hop=None,
                )
                self._parts.setdefault(payment_hash, {})[(groupid, partid)] = part
                return part
        return None

    def _check(self, new: SentPart, parts: dict[tuple[int, int], _Part], now: float) -> None:
        """The money rules of the module docstring, for the payment ``new`` belongs to."""
        h = new.payment_hash
        old = parts.get((new.groupid, new.partid))
        if old is not None and old.sent.route != new.route:
            self.violations.append(
                f"{h[:8]}: (groupid {new.groupid}, partid {new.partid}) reused for another route"
            )
        if (new.groupid, new.partid) in self._refused.get(h, set()):
            self.violations.append(
                f"{h[:8]}: (groupid {new.groupid}, partid {new.partid}) reused after a refusal"
            )
        rec = self._by_hash.get(h)
        limits = self._limits.get(h)
        if rec is None or limits is None:
            return
        seen = set(parts)
        live = [self._status(p, now) for p in parts.values()]
        live += [p for p in self._preloaded.get(h, []) if (p.groupid, p.partid) not in seen]
        self.violations.extend(
            money_rule_violations(
                live,
                new.route,
                total_msat=new.total_msat,
                amount_msat=rec.invoice.amount_msat or new.total_msat,
                limits=limits,
            )
        )


def money_rule_violations(
    parts: Sequence[PartStatus], new: Route, *, total_msat: int, amount_msat: int, limits: Limits
) -> list[str]:
    """The money rules (module docstring) for sending ``new`` while ``parts`` exist (pure).

    ``parts`` are the payment's parts as ``listsendpays`` shows them; pending
    and complete ones count.
    """
    live = [p for p in parts if p.status is not SendpayStatus.FAILED]
    out: list[str] = []
    h = parts[0].payment_hash[:8] if parts else "payment"
    total = sum(p.amount_msat for p in live) + new.amount_msat
    if total > amount_msat:
        out.append(f"{h}: in flight + delivered {total} > amount {amount_msat}")
    fees = sum(p.amount_sent_msat - p.amount_msat for p in live) + new.fee_msat
    if fees > limits.maxfee_msat:
        out.append(f"{h}: fees {fees} > maxfee {limits.maxfee_msat}")
    if new.delay > limits.maxdelay:
        out.append(f"{h}: delay {new.delay} > maxdelay {limits.maxdelay}")
    if len(live) + 1 > limits.maxparts:
        out.append(f"{h}: {len(live) + 1} parts > maxparts {limits.maxparts}")
    if total_msat != amount_msat:
        out.append(f"{h}: total_msat {total_msat} != amount {amount_msat}")
    return out


class CheckedNode:
    """Wraps any :class:`~barq.node.base.NodeInterface` and checks the money rules at each
    ``sendpay`` (against the inner node's ``listsendpays``) for payments registered with
    :meth:`expect`; breaches land in :attr:`violations`. Everything else is delegated.
    """

    def __init__(self, inner: NodeInterface) -> None:
        self.inner = inner
        self.violations: list[str] = []
        self.sent: list[SentPart] = []
        self._limits: dict[str, tuple[int, Limits]] = {}
        self._routes: dict[tuple[str, int, int], Route] = {}

    def expect(self, payment_hash: str, amount_msat: int, limits: Limits) -> None:
        self._limits[payment_hash] = (amount_msat, limits)

    async def get_info(self) -> NodeInfo:
        return await self.inner.get_info()

    async def decode_invoice(self, invstring: str) -> Invoice:
        return await self.inner.decode_invoice(invstring)

    async def list_peer_channels(self) -> list[LocalChannel]:
        return await self.inner.list_peer_channels()

    async def gossip_graph(self) -> Graph:
        return await self.inner.gossip_graph()

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
        key = (payment_hash, groupid, partid)
        old = self._routes.get(key)
        if old is not None and old != route:
            self.violations.append(
                f"{payment_hash[:8]}: (groupid {groupid}, partid {partid}) reused for another route"
            )
        self._routes[key] = route
        expected = self._limits.get(payment_hash)
        if expected is not None:
            parts = await self.inner.listsendpays(payment_hash)
            self.violations.extend(
                money_rule_violations(
                    parts, route, total_msat=total_msat, amount_msat=expected[0], limits=expected[1]
                )
            )
        self.sent.append(
            SentPart(
                payment_hash=payment_hash,
                partid=partid,
                groupid=groupid,
                route=route,
                total_msat=total_msat,
                payment_secret=payment_secret,
                seq=len(self.sent),
                at=anyio.current_time(),
            )
        )
        return await self.inner.sendpay(
            route,
            payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total_msat,
            payment_secret=payment_secret,
            bolt11=bolt11,
            label=label,
        )

    async def waitsendpay(
        self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
    ) -> PartStatus:
        return await self.inner.waitsendpay(
            payment_hash, partid=partid, groupid=groupid, timeout_s=timeout_s
        )

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        return await self.inner.listsendpays(payment_hash)
