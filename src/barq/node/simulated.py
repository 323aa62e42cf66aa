"""A simulated Lightning network and the payer nodes on it.

:class:`SimulatedNetwork` holds a channel graph, the hidden liquidity of every
channel, the invoices it issued and the HTLCs in flight; :class:`SimulatedNode`
is one payer on it and implements :class:`barq.node.base.NodeInterface` the
way lightningd answers (``sendpay``/``waitsendpay``/``listsendpays``/
``listpeerchannels``/``decode``/``getinfo``).

Model (what the payer can observe matches lightningd):

* **Liquidity** is per channel: side A (``node1``, the source of direction
  0) holds ``x`` msat, side B ``capacity - x``. By default ``x ~ U[0,
  capacity]`` drawn from ``numpy.random.default_rng(seed)``. An HTLC offered
  over a direction *locks* its amount on the sending side until it resolves;
  on success the amount moves to the other side, on failure it is unlocked.
* **Forwarding** node ``k`` (``hops[k-1].id``) asked to forward
  ``hops[k]`` checks, in this order: the channel exists and joins it to
  ``hops[k].id`` (else ``UNKNOWN_NEXT_PEER``), the direction is enabled
  (``CHANNEL_DISABLED``), the fee it keeps is at least ``base + ppm *
  amount // 1e6`` (``FEE_INSUFFICIENT``), the CLTV delta it keeps is at least
  its ``cltv_delta`` (``INCORRECT_CLTV_EXPIRY``), ``amount >= htlc_min``
  (``AMOUNT_BELOW_MINIMUM``), ``amount <= htlc_max`` and the available
  liquidity (``TEMPORARY_CHANNEL_FAILURE``). Failures with the UPDATE bit
  carry the channel's *current* policy as ``channel_update``. Policies
  changed with :meth:`SimulatedNetwork.set_policy` are enforced but not shown
  by :meth:`SimulatedNode.gossip_graph`.
* **Our first hop** is checked synchronously inside ``sendpay`` (channel
  ours, enabled, ``htlc_min``, spendable); a refusal raises
  :class:`~barq.errors.PartFailed` (204, ``erring_index`` 0) at once and the
  part is recorded as failed, as lightningd does.
* **The destination** fails a part with ``INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS``
  for an unknown hash, wrong/missing ``payment_secret``, expired or already
  paid invoice, final CLTV below ``min_final_cltv_expiry``, or ``total_msat``
  below the invoice amount or above twice it. Otherwise it holds the part
  (basic MPP) until the parts held sum to ``total_msat`` and then settles all
  of them; if that does not happen within ``mpp_timeout_s`` (60 s) of the
  first part, it fails every held part with ``MPP_TIMEOUT``.
* **Time**: each hop takes ``hop_latency_s`` (+ a seeded jitter) each way,
  slept with ``anyio.sleep``; under ``trio.testing.MockClock(autojump_threshold=0)``
  everything finishes instantly in wall time. Jitter is a hash of
  ``(seed, part, hop)``, so results do not depend on task scheduling order.
* **Failures reported** as lightningd does: ``erring_index`` is the index
  of the failing node (0 = us, ``len(route)`` = destination);
  ``erring_channel`` the channel it could not forward over (the last channel
  for the destination). ``waitsendpay`` raises ``PartFailed`` with code 203
  when the destination failed the part with a PERM code, else 204.

HTLCs run as tasks in the network's task group: use
``async with SimulatedNetwork.open(graph, ...) as net`` (or
``await tg.start(net.run)``), then ``net.node(node_id)``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec
import numpy as np
import numpy.typing as npt

from barq.errors import (
    PAY_DESTINATION_PERM_FAIL,
    PAY_IN_PROGRESS,
    PAY_NO_SUCH_PAYMENT,
    PAY_RHASH_ALREADY_USED,
    PAY_TRY_OTHER_ROUTE,
    InvalidParams,
    PartFailed,
    RpcConnectionError,
    RpcError,
)
from barq.graph import Graph
from barq.invoice import bolt11
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
    Scid,
    SendpayStatus,
    failcode_name,
    fee_msat,
)
from barq.model.failcodes import PERM

__all__ = [
    "FaultHook",
    "Overpayment",
    "PartInfo",
    "SimulatedNetwork",
    "SimulatedNode",
]

JSONRPC2_INVALID_PARAMS = -32602
INVOICE_FEATURES = "024100"  # var_onion_optin (8), payment_secret (14), basic_mpp (17 optional)


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What the fault hook is told about the part it may fail."""

    payer: NodeId
    payment_hash: str
    partid: int
    groupid: int
    route: Route
    total_msat: int


FaultHook = Callable[[int, Hop, PartInfo], RouteFailure | None]
"""``hook(node_index, hop_in, part)`` is called when node ``node_index`` (1 ..
``len(route)``) receives the HTLC over ``hop_in`` (``hop_in.id`` is that
node), before its own checks. Returning a :class:`RouteFailure` makes that
node fail the HTLC with it (``erring_index``/``erring_node`` are overwritten
with the node's; the other fields are kept)."""


class Overpayment(msgspec.Struct, frozen=True, kw_only=True):
    """A receiver settled more than the invoice asked for."""

    payment_hash: str
    invoice_msat: int
    total_msat: int
    received_msat: int


@dataclass(slots=True)
class _InvoiceRecord:
    payee: NodeId
    payment_hash: str
    preimage: str
    payment_secret: str
    amount_msat: int | None
    min_final_cltv: int
    created_at: int
    expiry_s: int
    bolt11: str
    paid: bool = False
    received_msat: int = 0
    parts_settled: int = 0


@dataclass(slots=True)
class _MppSet:
    total_msat: int
    deadline: float
    event: anyio.Event
    sum_msat: int = 0
    count: int = 0
    outcome: Literal["pending", "settled", "timeout"] = "pending"


@dataclass(slots=True)
class _Part:
    id: int
    info: PartInfo
    payment_secret: str | None
    bolt11: str | None
    label: str | None
    created_at: int
    attempt: int
    done: anyio.Event
    status: SendpayStatus = SendpayStatus.PENDING
    rows: list[int] = field(default_factory=list)
    completed_at: int | None = None
    preimage: str | None = None
    failure: RouteFailure | None = None

    def view(self) -> PartStatus:
        r = self.info.route
        return PartStatus(
            payment_hash=self.info.payment_hash,
            partid=self.info.partid,
            groupid=self.info.groupid,
            status=self.status,
            amount_msat=r.amount_msat,
            amount_sent_msat=r.sent_msat,
            destination=r.destination,
            created_at=self.created_at,
            completed_at=self.completed_at,
            payment_preimage=self.preimage,
            bolt11=self.bolt11,
            label=self.label,
            id=self.id,
        )


def _rpc(message: str, code: int, method: str = "sendpay") -> RpcError:
    return RpcError(message, method=method, rpc_code=code)


class SimulatedNetwork:
    """A Lightning network with hidden balances, invoices and HTLCs in flight.

    Args:
        graph: the channel graph (builtin, mainnet snapshot, listchannels...).
            Rows marked ``private`` exist in the network but not in gossip.
        seed: seeds the balances, preimages and latency jitter.
        keys: node id -> 32-byte private key, for nodes whose invoices must
            be signed by themselves (others get a simulator-signed invoice
            with an ``n`` field that only this network's nodes accept).
        network: chain name for invoices and ``getinfo`` (``regtest``...).
        liquidity: ``"uniform"`` (side A ~ U[0, capacity]) or ``"half"``.
        hop_latency_s: one-way latency per hop; ``latency_jitter_s`` is
            added times a uniform [0, 1) hash of (seed, part, hop, way).
        mpp_timeout_s: how long a receiver holds an incomplete MPP set.
        blockheight: reported by ``getinfo``.
        epoch_s: UNIX time at which the network opens (``None``: now);
            simulated time runs from there.

    Invariants: for every channel ``0 <= side A <= capacity``; the sum of
    HTLCs locked on a direction never exceeds its side's balance.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        seed: int = 0,
        keys: Mapping[NodeId, bytes] | None = None,
        network: str = "regtest",
        liquidity: Literal["uniform", "half"] = "uniform",
        hop_latency_s: float = 0.05,
        latency_jitter_s: float = 0.02,
        mpp_timeout_s: float = 60.0,
        blockheight: int = 800_000,
        epoch_s: int | None = None,
    ) -> None:
        if network not in bolt11.CURRENCY_OF_NETWORK:
            raise InvalidParams(f"simulated network: unknown network {network!r}")
        self.graph = graph
        self.seed = seed
        self.network = network
        self.hop_latency_s = hop_latency_s
        self.latency_jitter_s = latency_jitter_s
        self.mpp_timeout_s = mpp_timeout_s
        self.blockheight = blockheight
        if epoch_s is None:
            epoch_s = int(time.time())
        self.epoch_s = epoch_s
        self.fault_hook: FaultHook | None = None
        self.overpayments: list[Overpayment] = []
        self.counters: Counter[str] = Counter()
        self._keys: dict[NodeId, bytes] = dict(keys or {})
        self._sim_key = hashlib.sha256(f"barq-sim-signer-{seed}".encode()).digest()
        self._trusted = frozenset({bolt11.pubkey_of(self._sim_key)})

        n = graph.num_edges
        # Python lists for the per-HTLC scalar reads (faster than numpy scalars).
        self._src: list[int] = graph.src.tolist()
        self._dst: list[int] = graph.dst.tolist()
        self._dir: list[int] = graph.direction.tolist()
        self._fee_base: list[int] = graph.fee_base_msat.tolist()
        self._fee_ppm: list[int] = graph.fee_ppm.tolist()
        self._cltv: list[int] = graph.cltv_delta.tolist()
        self._htlc_min: list[int] = graph.htlc_min_msat.tolist()
        self._htlc_max: list[int] = graph.htlc_max_msat.tolist()
        self._enabled: list[bool] = graph.enabled.tolist()
        self._update_ts: dict[int, int] = {}

        chan_index: dict[Scid, int] = {}
        chan_of_row = np.empty(n, dtype=np.int64)
        for e, s in enumerate(graph.scid):
            c = chan_index.get(s)
            if c is None:
                c = chan_index[s] = len(chan_index)
            chan_of_row[e] = c
        nchan = len(chan_index)
        self._chan_index = chan_index
        self._chan_of_row_np = chan_of_row
        self._chan_of_row: list[int] = chan_of_row.tolist()
        cap = np.zeros(nchan, dtype=np.int64)
        np.maximum.at(cap, chan_of_row, graph.capacity_msat)
        rows = np.full((nchan, 2), -1, dtype=np.int64)
        rows[chan_of_row, graph.direction.astype(np.int64)] = np.arange(n, dtype=np.int64)
        self._chan_rows: list[list[int]] = rows.tolist()
        self._cap: list[int] = cap.tolist()
        if liquidity == "uniform":
            side_a = np.random.default_rng(seed).integers(0, cap, endpoint=True, dtype=np.int64)
        elif liquidity == "half":
            side_a = cap // 2
        else:
            raise InvalidParams(f"simulated network: unknown liquidity model {liquidity!r}")
        self._side_a: list[int] = side_a.tolist()
        self._locked: list[int] = [0] * n

        self._invoices: dict[str, _InvoiceRecord] = {}
        self._decoded: dict[str, Invoice] = {}
        self._invoice_count = 0
        self._mpp: dict[str, _MppSet] = {}
        self._nodes: dict[NodeId, SimulatedNode] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._t0: float | None = None
        self._gossip: Graph | None = None

    # -- lifetime -----------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(cls, graph: Graph, **kwargs: Any) -> AsyncIterator[SimulatedNetwork]:
        """Create a network and run its HTLC task group for the ``async with`` block.

        Keyword arguments are those of the constructor. On exit, HTLCs still
        in flight are cancelled. An exception of the block propagates as itself.
        """
        net = cls(graph, **kwargs)
        body_error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                net._attach(tg)
                try:
                    yield net
                except BaseException as e:
                    body_error = e
                    raise
                finally:
                    net._tg = None
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # An error of the ``async with`` body comes out alone, not wrapped in a group.
            if body_error is not None and group.exceptions == (body_error,):
                raise body_error from None
            raise

    async def run(
        self,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the network's task group until cancelled (``await tg.start(net.run)``)."""
        async with anyio.create_task_group() as tg:
            self._attach(tg)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    def _attach(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self._t0 = anyio.current_time()

    def now(self) -> float:
        """Simulated UNIX time: ``epoch_s`` plus the clock time elapsed since opening."""
        if self._t0 is None:
            return float(self.epoch_s)
        return self.epoch_s + (anyio.current_time() - self._t0)

    # -- nodes --------------------------------------------------------------------------

    def node(self, node_id: NodeId) -> SimulatedNode:
        """The payer interface of ``node_id`` (one object per node).

        Raises:
            barq.errors.InvalidParams: ``node_id`` is not in the graph.
        """
        n = self._nodes.get(node_id)
        if n is None:
            if node_id not in self.graph.node_index:
                raise InvalidParams(f"simulated network: unknown node {node_id}")
            n = self._nodes[node_id] = SimulatedNode(self, node_id)
        return n

    def gossip_graph(self) -> Graph:
        """The public graph as gossip shows it: the original graph without private rows."""
        if self._gossip is None:
            g = self.graph
            if not bool(g.private.any()):
                self._gossip = g
            else:
                keep = np.flatnonzero(~g.private)
                self._gossip = Graph(
                    nodes=g.nodes,
                    scid=[g.scid[int(e)] for e in keep],
                    direction=g.direction[keep],
                    src=g.src[keep],
                    dst=g.dst[keep],
                    capacity_msat=g.capacity_msat[keep],
                    fee_base_msat=g.fee_base_msat[keep],
                    fee_ppm=g.fee_ppm[keep],
                    cltv_delta=g.cltv_delta[keep],
                    htlc_min_msat=g.htlc_min_msat[keep],
                    htlc_max_msat=g.htlc_max_msat[keep],
                    enabled=g.enabled[keep],
                    private=g.private[keep],
                )
        return self._gossip

    # -- liquidity ----------------------------------------------------------------------

    def _chan(self, scid: Scid) -> int:
        c = self._chan_index.get(scid)
        if c is None:
            raise InvalidParams(f"simulated network: unknown channel {scid}")
        return c

    @staticmethod
    def _check_dir(direction: int) -> None:
        if direction not in (0, 1):
            raise InvalidParams(f"simulated network: direction must be 0 or 1, got {direction}")

    def _side(self, c: int, direction: int) -> int:
        a = self._side_a[c]
        return a if direction == 0 else self._cap[c] - a

    def _available(self, e: int) -> int:
        return self._side(self._chan_of_row[e], self._dir[e]) - self._locked[e]

    def balance_of(self, scid: Scid, direction: int) -> int:
        """Settled msat on the sending side of ``scid/direction`` (HTLCs in flight included)."""
        self._check_dir(direction)
        return self._side(self._chan(scid), direction)

    def liquidity_of(self, scid: Scid, direction: int) -> int:
        """What ``scid/direction`` can forward now: its side's balance minus HTLCs locked on it."""
        self._check_dir(direction)
        c = self._chan(scid)
        e = self._chan_rows[c][direction]
        return self._side(c, direction) - (self._locked[e] if e >= 0 else 0)

    def locked_msat(self, scid: Scid, direction: int) -> int:
        """HTLCs in flight over ``scid/direction``."""
        self._check_dir(direction)
        e = self._chan_rows[self._chan(scid)][direction]
        return self._locked[e] if e >= 0 else 0

    def set_balance(self, scid: Scid, direction: int, msat: int) -> None:
        """Give the sending side of ``scid/direction`` ``msat`` (the other side the rest).

        Raises:
            barq.errors.InvalidParams: unknown channel, bad direction, or
                ``msat`` outside ``[0, capacity]``.
        """
        self._check_dir(direction)
        c = self._chan(scid)
        cap = self._cap[c]
        if not 0 <= msat <= cap:
            raise InvalidParams(
                f"simulated network: balance {msat} msat outside [0, {cap}] for {scid}"
            )
        self._side_a[c] = msat if direction == 0 else cap - msat

    def true_liquidity_msat(self) -> npt.NDArray[np.int64]:
        """Per graph row: what that half-channel can forward now (oracle for benchmarks)."""
        c = self._chan_of_row_np
        a = np.asarray(self._side_a, dtype=np.int64)[c]
        cap = np.asarray(self._cap, dtype=np.int64)[c]
        side = np.where(self.graph.direction == 0, a, cap - a)
        return np.asarray(side - np.asarray(self._locked, dtype=np.int64), dtype=np.int64)

    # -- policies -----------------------------------------------------------------------

    def _row(self, scid: Scid, direction: int) -> int:
        self._check_dir(direction)
        e = self._chan_rows[self._chan(scid)][direction]
        if e < 0:
            raise InvalidParams(f"simulated network: no half-channel {scid}/{direction}")
        return e

    def set_policy(
        self,
        scid: Scid,
        direction: int,
        *,
        fee_base_msat: int | None = None,
        fee_ppm: int | None = None,
        cltv_delta: int | None = None,
        htlc_min_msat: int | None = None,
        htlc_max_msat: int | None = None,
        enabled: bool | None = None,
    ) -> None:
        """Change what ``scid/direction`` enforces, without telling gossip.

        Raises:
            barq.errors.InvalidParams: no such half-channel.
        """
        e = self._row(scid, direction)
        if fee_base_msat is not None:
            self._fee_base[e] = fee_base_msat
        if fee_ppm is not None:
            self._fee_ppm[e] = fee_ppm
        if cltv_delta is not None:
            self._cltv[e] = cltv_delta
        if htlc_min_msat is not None:
            self._htlc_min[e] = htlc_min_msat
        if htlc_max_msat is not None:
            self._htlc_max[e] = htlc_max_msat
        if enabled is not None:
            self._enabled[e] = enabled
        self._update_ts[e] = self._update_ts.get(e, self.epoch_s) + 1

    def channel_update(self, e: int) -> ChannelUpdate:
        """The current policy of row ``e`` as a ``channel_update``."""
        return ChannelUpdate(
            scid=self.graph.scid[e],
            direction=self._dir[e],
            fee_base_msat=self._fee_base[e],
            fee_ppm=self._fee_ppm[e],
            cltv_delta=self._cltv[e],
            htlc_min_msat=self._htlc_min[e],
            htlc_max_msat=self._htlc_max[e],
            disabled=not self._enabled[e],
            timestamp=self._update_ts.get(e, self.epoch_s),
        )

    # -- invoices -----------------------------------------------------------------------

    def create_invoice(
        self,
        payee: NodeId,
        amount_msat: int | None,
        *,
        expiry_s: int = 3600,
        description: str = "barq simulated payment",
        route_hints: Sequence[Sequence[RouteHintHop]] | None = None,
        min_final_cltv: int = 18,
    ) -> str:
        """Issue a bolt11 invoice of ``payee`` and remember its preimage.

        Signed with the payee's key when known, else with the simulator's key
        plus an ``n`` field (accepted by :meth:`SimulatedNode.decode_invoice`).
        ``route_hints=None`` adds one single-hop hint per private channel into
        the payee.

        Raises:
            barq.errors.InvalidParams: unknown payee or non-positive amount.
        """
        if payee not in self.graph.node_index:
            raise InvalidParams(f"simulated network: unknown payee {payee}")
        if amount_msat is not None and amount_msat <= 0:
            raise InvalidParams(
                f"simulated network: invoice amount must be positive: {amount_msat}"
            )
        k = self._invoice_count
        self._invoice_count += 1
        preimage = hashlib.sha256(f"barq-sim-preimage-{self.seed}-{k}".encode()).digest()
        payment_hash = hashlib.sha256(preimage).hexdigest()
        secret = hashlib.sha256(f"barq-sim-secret-{self.seed}-{k}".encode()).hexdigest()
        hints = (
            self._auto_hints(payee) if route_hints is None else tuple(tuple(h) for h in route_hints)
        )
        created_at = int(self.now())
        key = self._keys.get(payee)
        fields = bolt11.InvoiceFields(
            network=self.network,
            payment_hash=payment_hash,
            created_at=created_at,
            amount_msat=amount_msat,
            payment_secret=secret,
            description=description,
            expiry=expiry_s,
            min_final_cltv_expiry=min_final_cltv,
            payee=None if key is not None else payee,
            route_hints=hints,
            features=INVOICE_FEATURES,
        )
        if key is not None:
            text = bolt11.encode(fields, key)
        else:
            text = bolt11.encode(fields, self._sim_key, signer_is_payee=False)
        self._invoices[payment_hash] = _InvoiceRecord(
            payee=payee,
            payment_hash=payment_hash,
            preimage=preimage.hex(),
            payment_secret=secret,
            amount_msat=amount_msat,
            min_final_cltv=min_final_cltv,
            created_at=created_at,
            expiry_s=expiry_s,
            bolt11=text,
        )
        return text

    def _auto_hints(self, payee: NodeId) -> tuple[tuple[RouteHintHop, ...], ...]:
        g = self.graph
        if not bool(g.private.any()):
            return ()
        p = g.node_index[payee]
        hints = []
        for e in np.flatnonzero(g.private & (g.dst == p)).tolist():
            hints.append(
                (
                    RouteHintHop(
                        node_id=g.nodes[self._src[e]],
                        scid=g.scid[e],
                        fee_base_msat=int(g.fee_base_msat[e]),
                        fee_ppm=int(g.fee_ppm[e]),
                        cltv_delta=int(g.cltv_delta[e]),
                    ),
                )
            )
        return tuple(hints)

    def decode(self, invstring: str) -> Invoice:
        """Decode (and check) a bolt11 string, trusting this simulator's signing key."""
        inv = self._decoded.get(invstring)
        if inv is None:
            inv = bolt11.decode(invstring, trusted_signers=self._trusted)
            if len(self._decoded) < 100_000:
                self._decoded[invstring] = inv
        return inv

    def preimage_of(self, payment_hash: str) -> str | None:
        """The preimage of an invoice this network issued (``None`` if unknown)."""
        r = self._invoices.get(payment_hash)
        return None if r is None else r.preimage

    def received_msat(self, payment_hash: str) -> int:
        """What the payee of ``payment_hash`` has settled so far (0 if unknown)."""
        r = self._invoices.get(payment_hash)
        return 0 if r is None else r.received_msat

    def is_paid(self, payment_hash: str) -> bool:
        r = self._invoices.get(payment_hash)
        return r is not None and r.paid

    # -- HTLCs --------------------------------------------------------------------------

    def _latency(self, part: _Part, hop: int, back: bool) -> float:
        if self.latency_jitter_s <= 0:
            return self.hop_latency_s
        i = part.info
        key = (
            f"{self.seed}|{i.payment_hash}|{i.partid}|{i.groupid}|{part.attempt}|{hop}|{int(back)}"
        )
        h = hashlib.blake2b(key.encode(), digest_size=8).digest()
        return self.hop_latency_s + self.latency_jitter_s * (int.from_bytes(h, "big") / 2**64)

    def _out_row(self, node: int, scid: Scid) -> int | None:
        c = self._chan_index.get(scid)
        if c is None:
            return None
        for e in self._chan_rows[c]:
            if e >= 0 and self._src[e] == node:
                return e
        return None

    def _fail(
        self,
        code: FailCode,
        index: int,
        node: NodeId,
        scid: Scid,
        direction: int,
        e: int | None,
        message: str,
    ) -> RouteFailure:
        upd = self.channel_update(e) if (e is not None and code.has_update) else None
        return RouteFailure(
            failcode=int(code),
            erring_index=index,
            erring_node=node,
            erring_channel=scid,
            erring_direction=direction,
            channel_update=upd,
            message=message,
        )

    def _check_first_hop(
        self, payer: int, payer_id: NodeId, route: Route
    ) -> tuple[int | None, RouteFailure | None]:
        hop = route.hops[0]
        e = self._out_row(payer, hop.channel)
        if e is None or self.graph.nodes[self._dst[e]] != hop.id:
            return None, self._fail(
                FailCode.UNKNOWN_NEXT_PEER,
                0,
                payer_id,
                hop.channel,
                hop.direction,
                None,
                "First peer not ready",
            )
        d = self._dir[e]
        if not self._enabled[e]:
            return None, self._fail(
                FailCode.CHANNEL_DISABLED, 0, payer_id, hop.channel, d, e, "channel disabled"
            )
        if hop.amount_msat < self._htlc_min[e]:
            return None, self._fail(
                FailCode.AMOUNT_BELOW_MINIMUM,
                0,
                payer_id,
                hop.channel,
                d,
                e,
                f"below htlc_minimum {self._htlc_min[e]}msat",
            )
        if hop.amount_msat > self._available(e):
            return None, self._fail(
                FailCode.TEMPORARY_CHANNEL_FAILURE,
                0,
                payer_id,
                hop.channel,
                d,
                e,
                "Capacity exceeded",
            )
        return e, None

    def _check_forward(self, k: int, hops: Sequence[Hop]) -> tuple[int | None, RouteFailure | None]:
        """Node ``k`` (``hops[k-1].id``) forwards ``hops[k]``: its row or the failure."""
        node_id = hops[k - 1].id
        node = self.graph.node_index[node_id]
        hin, hop = hops[k - 1], hops[k]
        e = self._out_row(node, hop.channel)
        if e is None or self.graph.nodes[self._dst[e]] != hop.id:
            return None, self._fail(
                FailCode.UNKNOWN_NEXT_PEER,
                k,
                node_id,
                hop.channel,
                hop.direction,
                None,
                "unknown next peer",
            )
        d = self._dir[e]
        if not self._enabled[e]:
            return None, self._fail(
                FailCode.CHANNEL_DISABLED, k, node_id, hop.channel, d, e, "channel disabled"
            )
        need = fee_msat(hop.amount_msat, self._fee_base[e], self._fee_ppm[e])
        if hin.amount_msat - hop.amount_msat < need:
            return None, self._fail(
                FailCode.FEE_INSUFFICIENT,
                k,
                node_id,
                hop.channel,
                d,
                e,
                f"fee {hin.amount_msat - hop.amount_msat} < {need}msat",
            )
        if hin.delay - hop.delay < self._cltv[e]:
            return None, self._fail(
                FailCode.INCORRECT_CLTV_EXPIRY,
                k,
                node_id,
                hop.channel,
                d,
                e,
                f"cltv delta {hin.delay - hop.delay} < {self._cltv[e]}",
            )
        if hop.amount_msat < self._htlc_min[e]:
            return None, self._fail(
                FailCode.AMOUNT_BELOW_MINIMUM,
                k,
                node_id,
                hop.channel,
                d,
                e,
                f"below htlc_minimum {self._htlc_min[e]}msat",
            )
        if hop.amount_msat > self._htlc_max[e]:
            return None, self._fail(
                FailCode.TEMPORARY_CHANNEL_FAILURE,
                k,
                node_id,
                hop.channel,
                d,
                e,
                f"above htlc_maximum {self._htlc_max[e]}msat",
            )
        if hop.amount_msat > self._available(e):
            return None, self._fail(
                FailCode.TEMPORARY_CHANNEL_FAILURE,
                k,
                node_id,
                hop.channel,
                d,
                e,
                "insufficient liquidity",
            )
        return e, None

    def _lock(self, e: int, amount: int) -> None:
        self._locked[e] += amount

    def _unlock(self, e: int, amount: int) -> None:
        self._locked[e] -= amount

    def _settle(self, e: int, amount: int) -> None:
        self._locked[e] -= amount
        c = self._chan_of_row[e]
        if self._dir[e] == 0:
            self._side_a[c] -= amount
        else:
            self._side_a[c] += amount

    def _check_running(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RpcConnectionError(
                "simulated network is not running: use "
                "`async with SimulatedNetwork.open(...)` or `net.run`"
            )
        return self._tg

    def _start(self, part: _Part) -> None:
        self._check_running().start_soon(self._journey, part)

    async def _journey(self, part: _Part) -> None:
        hops = part.info.route.hops
        n = len(hops)
        failure: RouteFailure | None = None
        preimage: str | None = None
        k = 1
        while True:
            await anyio.sleep(self._latency(part, k - 1, False))
            hook = self.fault_hook
            if hook is not None:
                f = hook(k, hops[k - 1], part.info)
                if f is not None:
                    failure = msgspec.structs.replace(f, erring_index=k, erring_node=hops[k - 1].id)
                    break
            if k == n:
                preimage, failure = await self._receive(part)
                break
            e, failure = self._check_forward(k, hops)
            if e is None:
                break
            self._lock(e, hops[k].amount_msat)
            part.rows.append(e)
            k += 1
        # The result travels back hop by hop, releasing or settling each HTLC.
        for j in range(len(part.rows) - 1, -1, -1):
            await anyio.sleep(self._latency(part, j, True))
            if failure is None:
                self._settle(part.rows[j], hops[j].amount_msat)
            else:
                self._unlock(part.rows[j], hops[j].amount_msat)
        part.completed_at = int(self.now())
        if failure is None:
            part.status = SendpayStatus.COMPLETE
            part.preimage = preimage
            self.counters["parts_succeeded"] += 1
        else:
            part.status = SendpayStatus.FAILED
            part.failure = failure
            self.counters["parts_failed"] += 1
            self.counters[failure.failcodename] += 1
        part.done.set()

    async def _receive(self, part: _Part) -> tuple[str | None, RouteFailure | None]:
        info = part.info
        hops = info.route.hops
        n = len(hops)
        dest = hops[-1].id
        d = self._dir[part.rows[-1]]

        def fail(code: FailCode, msg: str) -> tuple[None, RouteFailure]:
            return None, RouteFailure(
                failcode=int(code),
                erring_index=n,
                erring_node=dest,
                erring_channel=hops[-1].channel,
                erring_direction=d,
                message=msg,
            )

        unknown = FailCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
        inv = self._invoices.get(info.payment_hash)
        if inv is None or inv.payee != dest:
            return fail(unknown, "unknown payment hash")
        if inv.paid:
            return fail(unknown, "invoice already paid")
        if part.payment_secret != inv.payment_secret:
            return fail(unknown, "wrong or missing payment_secret")
        if self.now() > inv.created_at + inv.expiry_s:
            return fail(unknown, "invoice expired")
        if hops[-1].delay < inv.min_final_cltv:
            return fail(unknown, f"final cltv {hops[-1].delay} < {inv.min_final_cltv}")
        if inv.amount_msat is not None and not (
            inv.amount_msat <= info.total_msat <= 2 * inv.amount_msat
        ):
            return fail(
                unknown,
                f"total_msat {info.total_msat} does not match invoice amount {inv.amount_msat}",
            )
        s = self._mpp.get(info.payment_hash)
        if s is None:
            s = self._mpp[info.payment_hash] = _MppSet(
                total_msat=info.total_msat,
                deadline=anyio.current_time() + self.mpp_timeout_s,
                event=anyio.Event(),
            )
        elif s.total_msat != info.total_msat:
            return fail(
                unknown,
                f"total_msat {info.total_msat} differs from the other parts' {s.total_msat}",
            )
        s.sum_msat += hops[-1].amount_msat
        s.count += 1
        if s.sum_msat >= s.total_msat:
            s.outcome = "settled"
            del self._mpp[info.payment_hash]
            inv.paid = True
            inv.received_msat += s.sum_msat
            inv.parts_settled += s.count
            if inv.amount_msat is not None and s.sum_msat > inv.amount_msat:
                self.overpayments.append(
                    Overpayment(
                        payment_hash=inv.payment_hash,
                        invoice_msat=inv.amount_msat,
                        total_msat=s.total_msat,
                        received_msat=s.sum_msat,
                    )
                )
            s.event.set()
        else:
            with anyio.move_on_after(s.deadline - anyio.current_time()):
                await s.event.wait()
            if s.outcome == "pending":
                s.outcome = "timeout"
                if self._mpp.get(info.payment_hash) is s:
                    del self._mpp[info.payment_hash]
                s.event.set()
        if s.outcome == "settled":
            return inv.preimage, None
        return fail(FailCode.MPP_TIMEOUT, "MPP timeout")


class SimulatedNode:
    """One payer on a :class:`SimulatedNetwork` (``net.node(node_id)``); a NodeInterface.

    It sees what lightningd would: the gossip graph (not the hidden balances,
    not later policy changes), its own channels' exact balances, and the
    results of its own parts.
    """

    def __init__(self, net: SimulatedNetwork, node_id: NodeId) -> None:
        self.net = net
        self.id = node_id
        self._index = net.graph.node_index[node_id]
        self._parts: dict[tuple[str, int, int], _Part] = {}
        self._by_hash: dict[str, list[tuple[str, int, int]]] = {}
        self._attempts: Counter[tuple[str, int, int]] = Counter()
        self._next_id = 1

    # -- NodeInterface ------------------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        return NodeInfo(
            id=self.id,
            network=self.net.network,
            blockheight=self.net.blockheight,
            alias=f"sim-{self._index}",
        )

    async def decode_invoice(self, invstring: str) -> Invoice:
        return self.net.decode(invstring)

    async def gossip_graph(self) -> Graph:
        return self.net.gossip_graph()

    async def list_peer_channels(self) -> list[LocalChannel]:
        """Our channels; ``spendable_msat`` is our side minus our HTLCs in flight, exactly.

        A channel whose direction *from* us is missing from the graph cannot
        be used by ``sendpay`` here and shows ``spendable_msat`` 0.
        """
        net = self.net
        g = net.graph
        me = self._index
        chans: dict[int, None] = {}
        for e in np.flatnonzero((g.src == me) | (g.dst == me)).tolist():
            chans.setdefault(net._chan_of_row[e], None)
        out: list[LocalChannel] = []
        for c in chans:
            rows = [e for e in net._chan_rows[c] if e >= 0]
            e_out = next((e for e in rows if net._src[e] == me), None)
            e_in = next((e for e in rows if net._dst[e] == me), None)
            if e_out is not None:
                d = net._dir[e_out]
                peer = net._dst[e_out]
            elif e_in is not None:
                d = 1 - net._dir[e_in]
                peer = net._src[e_in]
            else:  # pragma: no cover - every channel found has a row touching us
                continue
            # Without our direction in the graph sendpay cannot use the channel: show 0.
            spendable = net._side(c, d) - net._locked[e_out] if e_out is not None else 0
            receivable = net._side(c, 1 - d) - (net._locked[e_in] if e_in is not None else 0)
            any_row = rows[0]
            out.append(
                LocalChannel(
                    peer_id=g.nodes[peer],
                    scid=g.scid[any_row],
                    direction=d,
                    state="CHANNELD_NORMAL",
                    peer_connected=net._enabled[e_out] if e_out is not None else True,
                    spendable_msat=spendable,
                    receivable_msat=receivable,
                    capacity_msat=net._cap[c],
                    private=bool(g.private[any_row]),
                    htlc_min_msat=net._htlc_min[e_out] if e_out is not None else 0,
                    htlc_max_msat=net._htlc_max[e_out] if e_out is not None else None,
                    max_accepted_htlcs=483,
                )
            )
        return out

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
        """Send one part; returns it ``pending`` (see :class:`NodeInterface`).

        Raises:
            barq.errors.PartFailed: our first hop refused it (204, erring_index 0).
            barq.errors.RpcError: -32602 empty/malformed route; 201 payment
                already succeeded; 200 this part is in flight, or another
                groupid is; 203 a pending part has another ``total_msat``.
            barq.errors.RpcConnectionError: the network is not running.
        """
        net = self.net
        if not route.hops:
            raise _rpc("sendpay: Empty route", JSONRPC2_INVALID_PARAMS)
        for h in route.hops:
            if h.amount_msat <= 0 or h.delay < 0:
                raise _rpc(f"sendpay: bad hop {h}", JSONRPC2_INVALID_PARAMS)
            if h.id not in net.graph.node_index:
                raise _rpc(f"sendpay: unknown node {h.id} in route", JSONRPC2_INVALID_PARAMS)
        key = (payment_hash, partid, groupid)
        others = [self._parts[k] for k in self._by_hash.get(payment_hash, [])]
        for p in others:
            if p.status == SendpayStatus.COMPLETE:
                raise _rpc(
                    f"Already succeeded with amount {p.info.route.amount_msat}msat "
                    f"(payment {payment_hash})",
                    PAY_RHASH_ALREADY_USED,
                )
        for p in others:
            if p.status != SendpayStatus.PENDING:
                continue
            if p.info.groupid != groupid:
                raise _rpc(
                    f"Payment with groupid={p.info.groupid} still in progress, cannot "
                    "retry before that completes.",
                    PAY_IN_PROGRESS,
                )
            if p.info.partid == partid:
                raise _rpc(
                    f"Payment part {partid} of group {groupid} already in flight", PAY_IN_PROGRESS
                )
            if p.info.total_msat != total_msat:
                raise _rpc(
                    f"Already have parallel payment in progress with total {p.info.total_msat}msat",
                    PAY_DESTINATION_PERM_FAIL,
                )
        net._check_running()
        attempt = self._attempts[key]
        self._attempts[key] += 1
        part = _Part(
            id=self._next_id,
            info=PartInfo(
                payer=self.id,
                payment_hash=payment_hash,
                partid=partid,
                groupid=groupid,
                route=route,
                total_msat=total_msat,
            ),
            payment_secret=payment_secret,
            bolt11=bolt11,
            label=label,
            created_at=int(net.now()),
            attempt=attempt,
            done=anyio.Event(),
        )
        self._next_id += 1
        if key not in self._parts:
            self._by_hash.setdefault(payment_hash, []).append(key)
        self._parts[key] = part  # a failed part with the same key is replaced, as in CLN
        net.counters["parts_sent"] += 1
        e, failure = net._check_first_hop(self._index, self.id, route)
        if e is None:
            if failure is None:  # pragma: no cover - _check_first_hop returns one of them
                failure = RouteFailure(
                    failcode=int(FailCode.TEMPORARY_CHANNEL_FAILURE),
                    erring_index=0,
                    erring_node=self.id,
                )
            part.status = SendpayStatus.FAILED
            part.failure = failure
            part.completed_at = part.created_at
            part.done.set()
            net.counters["parts_failed"] += 1
            net.counters[failure.failcodename] += 1
            raise self._part_failed(part, failure, method="sendpay")
        net._lock(e, route.hops[0].amount_msat)
        part.rows.append(e)
        net._start(part)
        return part.view()

    async def waitsendpay(
        self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
    ) -> PartStatus:
        """Wait for a part (see :class:`NodeInterface`).

        Raises:
            barq.errors.PartFailed: the part failed (203 destination PERM failure, else 204).
            barq.errors.RpcError: 208 never sent; 200 still pending after ``timeout_s``.
        """
        part = self._parts.get((payment_hash, partid, groupid))
        if part is None:
            raise _rpc(
                f"Never attempted payment part {partid} of group {groupid} for {payment_hash}",
                PAY_NO_SUCH_PAYMENT,
                "waitsendpay",
            )
        if timeout_s is None:
            await part.done.wait()
        else:
            with anyio.move_on_after(timeout_s):
                await part.done.wait()
        if part.status == SendpayStatus.PENDING:
            raise _rpc("Timed out while waiting", PAY_IN_PROGRESS, "waitsendpay")
        if part.status == SendpayStatus.COMPLETE or part.failure is None:
            return part.view()
        raise self._part_failed(part, part.failure, method="waitsendpay")

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        if payment_hash is None:
            parts = list(self._parts.values())
        else:
            parts = [self._parts[k] for k in self._by_hash.get(payment_hash, [])]
        return [p.view() for p in sorted(parts, key=lambda p: p.id)]

    # -- helpers ------------------------------------------------------------------------

    def _part_failed(self, part: _Part, f: RouteFailure, *, method: str) -> PartFailed:
        n = len(part.info.route.hops)
        code = (
            PAY_DESTINATION_PERM_FAIL
            if f.erring_index == n and f.failcode & PERM
            else PAY_TRY_OTHER_ROUTE
        )
        origin = "reply from remote" if f.erring_index > 0 else (f.message or "local failure")
        data: dict[str, Any] = {
            "id": part.id,
            "payment_hash": part.info.payment_hash,
            "partid": part.info.partid,
            "groupid": part.info.groupid,
            "destination": part.info.route.destination,
            "amount_msat": part.info.route.amount_msat,
            "amount_sent_msat": part.info.route.sent_msat,
            "created_at": part.created_at,
            "status": "failed",
            "erring_index": f.erring_index,
            "failcode": f.failcode,
            "failcodename": failcode_name(f.failcode),
            "erring_node": f.erring_node,
            "erring_channel": f.erring_channel,
            "erring_direction": f.erring_direction,
        }
        return PartFailed(
            f"failed: {failcode_name(f.failcode)} ({origin})",
            failure=f,
            method=method,
            rpc_code=code,
            rpc_data=data,
        )
