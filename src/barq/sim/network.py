"""The simulated network: its parts put together, its lifetime, and the handles tests use."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal, Unpack

import anyio
import anyio.abc
import numpy as np
import numpy.typing as npt

from barq.errors import InvalidParams, RpcConnectionError
from barq.graph import Graph
from barq.invoice import bolt11
from barq.model import ChannelUpdate, Invoice, NodeId, PaymentHash, Scid
from barq.sim.channels import Channels, PolicyChange
from barq.sim.clock import SimClock
from barq.sim.forwarding import Forwarding
from barq.sim.invoices import InvoiceOptions, Invoices
from barq.sim.node import SimulatedNode
from barq.sim.parts import FaultHook, Part
from barq.sim.receiver import MppReceiver, Overpayment

__all__ = ["SimulatedNetwork"]


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

    Raises:
        barq.errors.InvalidParams: unknown network or liquidity model.

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
        if epoch_s is None:
            epoch_s = int(time.time())
        self.graph = graph
        self.seed = seed
        self.network = network
        self.blockheight = blockheight
        self.counters: Counter[str] = Counter()
        self._clock = SimClock(
            epoch_s=epoch_s,
            seed=seed,
            hop_latency_s=hop_latency_s,
            latency_jitter_s=latency_jitter_s,
        )
        self._channels = Channels(graph, seed=seed, liquidity=liquidity, epoch_s=epoch_s)
        self._invoices = Invoices(
            graph, seed=seed, network=network, keys=keys or {}, now=self._clock.now
        )
        self._receiver = MppReceiver(
            self._invoices, mpp_timeout_s=mpp_timeout_s, now=self._clock.now
        )
        self._forwarding = Forwarding(self._channels, self._clock, self._receiver, self.counters)
        self._nodes: dict[NodeId, SimulatedNode] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._gossip: Graph | None = None

    # -- settings that may change while running -------------------------------------------

    @property
    def epoch_s(self) -> int:
        return self._clock.epoch_s

    @property
    def hop_latency_s(self) -> float:
        return self._clock.hop_latency_s

    @hop_latency_s.setter
    def hop_latency_s(self, value: float) -> None:
        self._clock.hop_latency_s = value

    @property
    def latency_jitter_s(self) -> float:
        return self._clock.latency_jitter_s

    @latency_jitter_s.setter
    def latency_jitter_s(self, value: float) -> None:
        self._clock.latency_jitter_s = value

    @property
    def mpp_timeout_s(self) -> float:
        return self._receiver.mpp_timeout_s

    @mpp_timeout_s.setter
    def mpp_timeout_s(self, value: float) -> None:
        self._receiver.mpp_timeout_s = value

    @property
    def fault_hook(self) -> FaultHook | None:
        """See :data:`barq.sim.FaultHook`; ``None`` (default) injects nothing."""
        return self._forwarding.fault_hook

    @fault_hook.setter
    def fault_hook(self, hook: FaultHook | None) -> None:
        self._forwarding.fault_hook = hook

    @property
    def overpayments(self) -> list[Overpayment]:
        """Every MPP set a receiver settled above its invoice's amount (should stay empty)."""
        return self._receiver.overpayments

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
        self._clock.start()

    def now(self) -> float:
        """Simulated UNIX time: ``epoch_s`` plus the clock time elapsed since opening."""
        return self._clock.now()

    def _check_running(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RpcConnectionError(
                "simulated network is not running: use "
                "`async with SimulatedNetwork.open(...)` or `net.run`"
            )
        return self._tg

    def _start(self, part: Part) -> None:
        """Carry ``part`` (first hop locked) in the network's task group."""
        self._check_running().start_soon(self._forwarding.carry, part)

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

    # -- hidden liquidity and policies (see barq.sim.channels) ------------------------------

    def balance_of(self, scid: Scid, direction: int) -> int:
        """Settled msat on the sending side of ``scid/direction`` (HTLCs in flight included)."""
        return self._channels.balance_of(scid, direction)

    def liquidity_of(self, scid: Scid, direction: int) -> int:
        """What ``scid/direction`` can forward now: its side's balance minus HTLCs locked on it."""
        return self._channels.liquidity_of(scid, direction)

    def locked_msat(self, scid: Scid, direction: int) -> int:
        """HTLCs in flight over ``scid/direction``."""
        return self._channels.locked_msat(scid, direction)

    def set_balance(self, scid: Scid, direction: int, msat: int) -> None:
        """Give the sending side of ``scid/direction`` ``msat`` (the other side the rest).

        Raises:
            barq.errors.InvalidParams: unknown channel, bad direction, or
                ``msat`` outside ``[0, capacity]``.
        """
        self._channels.set_balance(scid, direction, msat)

    def true_liquidity_msat(self) -> npt.NDArray[np.int64]:
        """Per graph row: what that half-channel can forward now (oracle for benchmarks)."""
        return self._channels.true_liquidity_msat()

    def set_max_htlcs(self, scid: Scid, direction: int, n: int) -> None:
        """``scid/direction`` takes at most ``n`` HTLCs at once; one more is refused with
        ``temporary_channel_failure`` (the receiving node's ``max-concurrent-htlcs``).

        Raises:
            barq.errors.InvalidParams: no such half-channel, or ``n`` < 1.
        """
        self._channels.set_max_htlcs(scid, direction, n)

    def htlcs_of(self, scid: Scid, direction: int) -> int:
        """HTLCs in flight over ``scid/direction`` now."""
        return self._channels.htlcs[self._channels.row(scid, direction)]

    def set_policy(self, scid: Scid, direction: int, **change: Unpack[PolicyChange]) -> None:
        """Change what ``scid/direction`` enforces, without telling gossip.

        Keywords: ``fee_base_msat``, ``fee_ppm``, ``cltv_delta``, ``htlc_min_msat``,
        ``htlc_max_msat``, ``enabled`` (a keyword left out keeps its value).

        Raises:
            barq.errors.InvalidParams: no such half-channel.
        """
        self._channels.set_policy(scid, direction, **change)

    def channel_update(self, e: int) -> ChannelUpdate:
        """The current policy of graph row ``e`` as a ``channel_update``."""
        return self._channels.channel_update(e)

    # -- invoices and payees (see barq.sim.invoices, barq.sim.receiver) ---------------------

    def create_invoice(
        self, payee: NodeId, amount_msat: int | None, **options: Unpack[InvoiceOptions]
    ) -> str:
        """Issue a bolt11 invoice of ``payee`` and remember its preimage.

        Signed with the payee's key when known, else with the simulator's key
        plus an ``n`` field (accepted by :meth:`SimulatedNode.decode_invoice`).
        Options (:class:`~barq.sim.invoices.InvoiceOptions`): ``expiry_s`` (3600),
        ``description``, ``route_hints`` (default: one single-hop hint per
        private channel into the payee), ``min_final_cltv`` (18).

        Raises:
            barq.errors.InvalidParams: unknown payee or non-positive amount.
        """
        return self._invoices.create(payee, amount_msat, **options)

    def decode(self, invstring: str) -> Invoice:
        """Decode (and check) a bolt11 string, trusting this simulator's signing key."""
        return self._invoices.decode(invstring)

    def preimage_of(self, payment_hash: PaymentHash) -> str | None:
        """The preimage of an invoice this network issued (``None`` if unknown)."""
        r = self._invoices.get(payment_hash)
        return None if r is None else r.preimage

    def received_msat(self, payment_hash: PaymentHash) -> int:
        """What the payee of ``payment_hash`` has settled so far (0 if unknown)."""
        r = self._invoices.get(payment_hash)
        return 0 if r is None else r.received_msat

    def is_paid(self, payment_hash: PaymentHash) -> bool:
        """The payee of ``payment_hash`` settled a complete MPP set."""
        r = self._invoices.get(payment_hash)
        return r is not None and r.paid
