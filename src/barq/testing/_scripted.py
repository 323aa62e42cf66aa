"""The scripted node: a NodeInterface whose parts do what a handler says (``MockTransport`` style).

What happens to each part beyond our first hop is the handler's script;
what a real node would refuse anyway is refused by the same rules as the
simulated network's (:mod:`barq.sim.rules`): a malformed route (-32602),
``sendpay``'s refusals (201 already paid, 200 in flight or another group
pending, 203 another ``total_msat`` in flight), our first hop (unknown
channel, disabled, below ``htlc_min``, above what is spendable: 204 at
once), and, for the invoices it issued, the payee's checks (secret, expiry,
final CLTV, ``total_msat`` against the amount): a part the payee would
refuse fails at the payee with ``INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS``
when its script says it succeeds. Parts are not held until their MPP set is
complete: a part succeeds or fails when its script says.
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
    JSONRPC2_INVALID_PARAMS,
    PAY_IN_PROGRESS,
    PAY_NO_SUCH_PAYMENT,
    PAY_RHASH_ALREADY_USED,
    InvalidInvoice,
    PartFailed,
    RpcError,
)
from barq.graph import Graph
from barq.model import (
    FailCode,
    Hop,
    Invoice,
    LocalChannel,
    NodeId,
    NodeInfo,
    PartId,
    PartStatus,
    PaymentHash,
    Route,
    RouteFailure,
    RouteHintHop,
    Scid,
    SendpayStatus,
)
from barq.sim import rules
from barq.testing._checks import Limits, SentPart, money_rule_violations, reuse_violation
from barq.testing._scripts import Fail, Handler, Refuse, Succeed

__all__ = ["ScriptedNode", "local_channels"]


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
        self._parts: dict[PaymentHash, dict[tuple[int, PartId], _Part]] = {}
        self._refused: dict[PaymentHash, set[tuple[int, PartId]]] = {}
        self._invoices: dict[str, _Invoice] = {}
        self._by_hash: dict[str, _Invoice] = {}
        self._limits: dict[str, Limits] = {}
        self._preloaded: dict[PaymentHash, list[PartStatus]] = {}

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
        payment_hash = PaymentHash(hashlib.sha256(bytes.fromhex(preimage)).hexdigest())
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
        """Pretend earlier runs sent ``parts`` (shown by :meth:`listsendpays`).

        A ``pending`` one resolves as the handler says once waited for; from then
        on ``sendpay``'s rules count it, with the invoice's amount as its ``total_msat``.
        """
        for p in parts:
            self._preloaded.setdefault(p.payment_hash, []).append(p)

    def set_spendable(self, scid: str, spendable_msat: int) -> None:
        self.channels = [
            msgspec.structs.replace(c, spendable_msat=spendable_msat) if c.scid == scid else c
            for c in self.channels
        ]

    def delivered_msat(self, payment_hash: PaymentHash) -> int:
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
        used = self._used(anyio.current_time())
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
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        total_msat: int,
        payment_secret: str | None,
        bolt11: str | None = None,
        label: str | None = None,
    ) -> PartStatus:
        """Send one part: the node's rules first (module doc), then the handler's script.

        Raises:
            barq.errors.PartFailed: our first hop refused it, or the script is a
                :class:`Refuse` with a failure.
            barq.errors.RpcError: the route is malformed (-32602), ``sendpay``'s
                rules refuse it (201/200/203), or the script is a plain :class:`Refuse`.
        """
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
        bad = rules.route_error(route)
        if bad is not None:
            raise RpcError(bad, method="sendpay", rpc_code=JSONRPC2_INVALID_PARAMS)
        refusal = rules.sendpay_refusal(
            (self._earlier(p, now) for p in parts.values()),
            payment_hash=payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total_msat,
        )
        if refusal is not None:
            if refusal.rpc_code == PAY_RHASH_ALREADY_USED:
                self._refused.setdefault(payment_hash, set()).add(key)
            raise refusal
        local = self._first_hop_failure(route.hops[0], now)
        if local is not None:
            self._refused.setdefault(payment_hash, set()).add(key)
            raise PartFailed(
                f"failed: {local.failcodename} ({local.message})", failure=local, method="sendpay"
            )
        script = self.handler(sent)
        if isinstance(script, Refuse):
            self._refused.setdefault(payment_hash, set()).add(key)
            if script.failure is not None:
                raise PartFailed(script.message, failure=script.failure, method="sendpay")
            raise RpcError(script.message, method="sendpay", rpc_code=script.rpc_code)
        if isinstance(script, Succeed):
            refused = self._payee_failure(sent)
            if refused is not None:
                script = Fail(failure=refused, after_s=script.after_s)
        rec = self._by_hash.get(payment_hash)
        preimage = rec.preimage if rec is not None else "00" * 32
        parts[key] = _Part(
            sent=sent,
            script=script,
            resolve_at=now + script.after_s,
            preimage=preimage,
            first_hop=route.hops[0].channel,
        )
        return self._status(parts[key], now)

    async def waitsendpay(
        self,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        timeout_s: float | None = None,
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
            # anyio sleeps for ``resolve_at - now``: the clock may wake a rounding error
            # short of ``resolve_at``. The part resolves when it is reported, so that
            # ``listsendpays`` and the money checks of a ``sendpay`` made right after
            # this answer see it resolved, as lightningd would.
            part.resolve_at = min(part.resolve_at, anyio.current_time())
        else:
            await anyio.lowlevel.checkpoint()
        if isinstance(part.script, Fail):
            raise PartFailed(
                f"part {partid} failed: {part.script.failure.failcodename}",
                failure=part.script.failure,
            )
        return self._status(part, anyio.current_time())

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
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

    def _adopt_preloaded(
        self, payment_hash: PaymentHash, partid: PartId, groupid: int
    ) -> _Part | None:
        for p in self._preloaded.get(payment_hash, []):
            if p.partid == partid and p.groupid == groupid:
                hop_id = p.destination or self.our_id
                route = Route(
                    hops=(
                        Hop(
                            id=hop_id,
                            channel=Scid("0x0x0"),
                            direction=0,
                            amount_msat=p.amount_msat,
                            delay=0,
                        ),
                    )
                )
                rec = self._by_hash.get(payment_hash)
                # The total it was sent with: an earlier run paid the invoice's amount.
                total = (rec.invoice.amount_msat if rec is not None else None) or p.amount_msat
                sent = SentPart(
                    payment_hash=payment_hash,
                    partid=partid,
                    groupid=groupid,
                    route=route,
                    total_msat=total,
                    payment_secret=None,
                    seq=-1,
                    at=anyio.current_time(),
                )
                script = self.handler(sent)
                if isinstance(script, Refuse):
                    script = Succeed()
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

    def _used(self, now: float) -> Counter[str]:
        """First-hop msat held per channel by our parts pending or succeeded."""
        used: Counter[str] = Counter()
        for parts in self._parts.values():
            for p in parts.values():
                if p.first_hop is not None and p.status(now) is not SendpayStatus.FAILED:
                    used[p.first_hop] += p.sent.route.sent_msat
        return used

    @staticmethod
    def _earlier(p: _Part, now: float) -> rules.Earlier:
        return rules.Earlier(
            status=p.status(now),
            groupid=p.sent.groupid,
            partid=p.sent.partid,
            total_msat=p.sent.total_msat,
            amount_msat=p.sent.route.amount_msat,
        )

    def _first_hop_failure(self, hop: Hop, now: float) -> RouteFailure | None:
        """:func:`barq.sim.rules.first_hop_refusal` over :attr:`channels` and our parts."""
        chan = next((c for c in self.channels if c.scid == hop.channel), None)
        own = None
        if chan is not None and chan.peer_id == hop.id:
            own = rules.OwnChannel(
                enabled=chan.peer_connected,
                htlc_min_msat=chan.htlc_min_msat,
                available_msat=chan.spendable_msat - self._used(now)[hop.channel],
            )
        r = rules.first_hop_refusal(hop, own)
        if r is None:
            return None
        return RouteFailure(
            failcode=int(r.code),
            erring_index=0,
            erring_node=self.our_id,
            erring_channel=hop.channel,
            erring_direction=hop.direction,
            message=r.message,
        )

    def _payee_failure(self, sent: SentPart) -> RouteFailure | None:
        """:func:`barq.sim.rules.payee_refusal` for an invoice this node issued.

        ``paid`` is False: a part that succeeded already made ``sendpay`` refuse (201).
        """
        rec = self._by_hash.get(sent.payment_hash)
        if rec is None:
            return None  # not our invoice: the handler alone decides
        inv = rec.invoice
        last = sent.route.hops[-1]
        terms = rules.InvoiceTerms(
            payment_secret=inv.payment_secret,
            amount_msat=inv.amount_msat,
            min_final_cltv=inv.min_final_cltv_expiry,
            created_at=inv.created_at,
            expiry_s=inv.expiry,
        )
        why = rules.payee_refusal(
            terms if last.id == inv.payee else None,
            paid=False,
            payment_secret=sent.payment_secret,
            final_delay=last.delay,
            total_msat=sent.total_msat,
            now=self.clock(),
        )
        if why is None:
            return None
        return RouteFailure(
            failcode=int(FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
            erring_index=len(sent.route.hops),
            erring_node=last.id,
            erring_channel=last.channel,
            erring_direction=last.direction,
            message=why,
        )

    def _check(self, new: SentPart, parts: dict[tuple[int, PartId], _Part], now: float) -> None:
        """The money rules (:mod:`barq.testing`) for the payment ``new`` belongs to."""
        h = new.payment_hash
        old = parts.get((new.groupid, new.partid))
        reused = reuse_violation(
            h, new.groupid, new.partid, old.sent.route if old is not None else None, new.route
        )
        if reused is not None:
            self.violations.append(reused)
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
