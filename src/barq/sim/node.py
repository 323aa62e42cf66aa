"""One payer on the simulated network, answering as lightningd does (a NodeInterface)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from barq.errors import (
    JSONRPC2_INVALID_PARAMS,
    PAY_DESTINATION_PERM_FAIL,
    PAY_IN_PROGRESS,
    PAY_NO_SUCH_PAYMENT,
    PAY_TRY_OTHER_ROUTE,
    InvalidInvoice,
    PartFailed,
    RpcError,
)
from barq.graph import Graph
from barq.model import (
    FailCode,
    Invoice,
    LocalChannel,
    NodeId,
    NodeInfo,
    PartId,
    PartStatus,
    PaymentHash,
    Route,
    RouteFailure,
    SendpayStatus,
    failcode_name,
)
from barq.model.failcodes import PERM
from barq.node.base import CreatedOnion
from barq.sim import onion, rules
from barq.sim.invoices import INVOICE_FEATURES
from barq.sim.parts import Part, PartInfo

if TYPE_CHECKING:
    from barq.sim.network import SimulatedNetwork

__all__ = ["SimulatedNode"]


def _rpc(message: str, code: int, method: str = "sendpay") -> RpcError:
    return RpcError(message, method=method, rpc_code=code)


class SimulatedNode:
    """One payer on a :class:`~barq.sim.SimulatedNetwork` (``net.node(node_id)``); a NodeInterface.

    It sees what lightningd would: the gossip graph (not the hidden balances,
    not later policy changes), its own channels' exact balances, and the
    results of its own parts.
    """

    def __init__(self, net: SimulatedNetwork, node_id: NodeId) -> None:
        self.net = net
        self.id = node_id
        self._index = net.graph.node_index[node_id]
        self._parts: dict[tuple[str, int, int], Part] = {}
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

        A channel whose direction *from* us is missing from the graph cannot be
        used by ``sendpay`` here and shows ``spendable_msat`` 0.
        """
        return self.net._channels.local_channels(self._index)

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
        """Send one part; returns it ``pending`` (see :class:`NodeInterface`).

        The route and the earlier parts of the hash are checked by
        :func:`~barq.sim.rules.route_error` and
        :func:`~barq.sim.rules.sendpay_refusal`, our first hop by
        :func:`~barq.sim.rules.first_hop_refusal`.

        Raises:
            barq.errors.PartFailed: our first hop refused it (204, erring_index 0).
            barq.errors.RpcError: -32602 empty/malformed route; 201 payment
                already succeeded; 200 this part is in flight, or another
                groupid is; 203 a pending part has another ``total_msat``.
            barq.errors.RpcConnectionError: the network is not running.
        """
        net = self.net
        bad = rules.route_error(route, known=net.graph.node_index.__contains__)
        if bad is not None:
            raise _rpc(bad, JSONRPC2_INVALID_PARAMS)
        key = (payment_hash, partid, groupid)
        refusal = rules.sendpay_refusal(
            (self._parts[k].earlier() for k in self._by_hash.get(payment_hash, [])),
            payment_hash=payment_hash,
            partid=partid,
            groupid=groupid,
            total_msat=total_msat,
        )
        if refusal is not None:
            raise refusal
        net._check_running()
        attempt = self._attempts[key]
        self._attempts[key] += 1
        part = Part(
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
        e, failure = net._forwarding.first_hop(self._index, self.id, route)
        if e is None:
            if failure is None:  # pragma: no cover - first_hop returns one of them
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
        net._channels.lock(e, route.hops[0].amount_msat)
        part.rows.append(e)
        net._start(part)
        return part.view()

    async def waitsendpay(
        self,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        timeout_s: float | None = None,
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

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
        if payment_hash is None:
            parts = list(self._parts.values())
        else:
            parts = [self._parts[k] for k in self._by_hash.get(payment_hash, [])]
        return [p.view() for p in sorted(parts, key=lambda p: p.id)]

    # -- OnionNodeInterface (see barq.sim.onion for what is modelled) -------------------

    async def create_onion(self, hops: Sequence[Mapping[str, str]], assocdata: str) -> CreatedOnion:
        """The hops packed in the clear, and stand-in secrets (no Sphinx here)."""
        packed = [dict(h) for h in hops]
        return CreatedOnion(onion=onion.pack_onion(packed), shared_secrets=onion.secrets_of(packed))

    async def inject_payment_onion(self, params: Mapping[str, Any], *, route: Route) -> PartStatus:
        """Forward the part along ``route`` (``sendpay`` + ``waitsendpay``); see
        :mod:`barq.sim.onion`.

        Raises:
            barq.errors.PartFailed: the part failed (in the clear, as ``waitsendpay``).
            barq.errors.RpcError: -32602 an onion this simulator cannot model.
        """
        h = PaymentHash(str(params["payment_hash"]))
        try:
            final = onion.final_of(onion.unpack_onion(str(params["onion"])))
            sent = onion.cleartext_route(route, final)
        except (ValueError, KeyError) as exc:
            raise _rpc(f"simulator: {exc}", JSONRPC2_INVALID_PARAMS, "injectpaymentonion") from exc
        p = final.payload
        secret = p.payment_secret.hex() if p.payment_secret is not None else None
        preimage = final.keysend_preimage
        if preimage is not None:
            self.net._invoices.add_keysend(route.destination, preimage, secret)
        elif final.blinded:
            record = self.net._invoices.get(h)
            secret = None if record is None else record.terms.payment_secret
        total = p.total_amount_msat or p.total_msat or sent.amount_msat
        partid, groupid = PartId(int(params["partid"])), int(params["groupid"])
        await self.sendpay(
            sent, h, partid=partid, groupid=groupid, total_msat=total, payment_secret=secret
        )
        return await self.waitsendpay(h, partid=partid, groupid=groupid)

    async def decode(self, invstring: str) -> dict[str, Any]:
        """The simulator issues no BOLT 12 strings.

        Raises:
            barq.errors.InvalidInvoice: always.
        """
        raise InvalidInvoice(f"simulator: cannot decode {invstring[:12]!r}... (no BOLT 12 here)")

    async def fetch_invoice(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The simulator has no offers.

        Raises:
            barq.errors.RpcError: always (-1).
        """
        raise _rpc("simulator: no offers", -1, "fetchinvoice")

    async def node_features(self, node_id: NodeId) -> str | None:
        """The invoice features every simulated node has (``basic_mpp``), ``None`` when
        the gossip graph does not know ``node_id``."""
        return INVOICE_FEATURES if node_id in self.net.graph.node_index else None

    # -- helpers ------------------------------------------------------------------------

    def _part_failed(self, part: Part, f: RouteFailure, *, method: str) -> PartFailed:
        """The error lightningd raises for a failed part (203 for a PERM failure at the payee)."""
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
