"""A simulated network living in its own trio thread, as lightningd lives in its own process.

The plugin's engine runs in the plugin's trio thread; the network must
outlive plugin restarts (parts in flight survive them, like HTLCs survive a
plugin restart in lightningd). So the network runs behind its own
``BlockingPortal`` and the plugin gets a :class:`PortalNode`: a
``NodeInterface`` whose every call hops into the network's loop (through a
worker thread, so the plugin's loop never blocks).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

from barq.graph import Graph
from barq.graph.synthetic import builtin_network
from barq.model import Invoice, LocalChannel, NodeId, NodeInfo, PartStatus, Route
from barq.sim import SimulatedNetwork, SimulatedNode

T = TypeVar("T")


class PortalNode:
    """``NodeInterface`` of a :class:`SimulatedNode` that lives behind ``portal``."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, node: SimulatedNode) -> None:
        self._portal = portal
        self.node = node
        self.calls: list[str] = []

    async def _hop(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(fn.__name__)
        call = functools.partial(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(
            lambda: self._portal.call(call), abandon_on_cancel=True
        )

    async def get_info(self) -> NodeInfo:
        info: NodeInfo = await self._hop(self.node.get_info)
        return info

    async def decode_invoice(self, invstring: str) -> Invoice:
        inv: Invoice = await self._hop(self.node.decode_invoice, invstring)
        return inv

    async def list_peer_channels(self) -> list[LocalChannel]:
        chans: list[LocalChannel] = await self._hop(self.node.list_peer_channels)
        return chans

    async def gossip_graph(self) -> Graph:
        g: Graph = await self._hop(self.node.gossip_graph)
        return g

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
        p: PartStatus = await self._hop(
            self.node.sendpay,
            route,
            payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total_msat,
            payment_secret=payment_secret,
            bolt11=bolt11,
            label=label,
        )
        return p

    async def waitsendpay(
        self, payment_hash: str, *, partid: int, groupid: int, timeout_s: float | None = None
    ) -> PartStatus:
        p: PartStatus = await self._hop(
            self.node.waitsendpay, payment_hash, partid=partid, groupid=groupid, timeout_s=timeout_s
        )
        return p

    async def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        ps: list[PartStatus] = await self._hop(self.node.listsendpays, payment_hash)
        return ps


class SimWorld:
    """``builtin_network(seed)`` running in a trio thread; payer = ``graph.nodes[payer]``."""

    def __init__(
        self,
        *,
        seed: int = 7,
        n_nodes: int = 40,
        payer: int = 0,
        hop_latency_s: float = 0.003,
        network: str = "regtest",
        **net_kwargs: Any,
    ) -> None:
        self.graph, self.keys = builtin_network(seed, n_nodes)
        self._stack = ExitStack()
        self.portal = self._stack.enter_context(
            anyio.from_thread.start_blocking_portal(backend="trio", name="sim-network")
        )
        self.net = SimulatedNetwork(
            self.graph,
            seed=seed,
            keys=self.keys,
            network=network,
            hop_latency_s=hop_latency_s,
            latency_jitter_s=0.001,
            **net_kwargs,
        )
        self._run = self.portal.start_task(self.net.run)[0]
        self.payer: NodeId = self.graph.nodes[payer]
        self.nodes: list[PortalNode] = []

    def node_factory(self, configuration: dict[str, Any]) -> PortalNode:
        n = PortalNode(self.portal, self.net.node(self.payer))
        self.nodes.append(n)
        return n

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the network's loop (for its sync methods that read the clock)."""

        async def run() -> T:
            return fn(*args, **kwargs)

        return self.portal.call(run)

    def invoice(self, payee: NodeId | int, amount_msat: int | None, **kw: Any) -> str:
        pid = self.graph.nodes[payee] if isinstance(payee, int) else payee
        return self.call(self.net.create_invoice, pid, amount_msat, **kw)

    def listsendpays(self, payment_hash: str | None = None) -> list[PartStatus]:
        node = self.net.node(self.payer)
        return self.portal.call(node.listsendpays, payment_hash)

    def close(self) -> None:
        self._run.cancel()
        self._stack.close()
