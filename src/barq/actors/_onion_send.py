"""Parts sent as onions Barq builds itself: ``createonion`` + ``injectpaymentonion`` (issue 14).

``sendpay`` cannot carry keysend's preimage record or a BOLT 12 blinded
path, so for those payments the engine talks to an :class:`OnionSender`
instead of the node: a per-payment :class:`~barq.node.base.NodeInterface`
whose ``sendpay``/``waitsendpay`` send and await a part the way xpay does
(``plugins/xpay/xpay.c``), and whose other methods are the node's. The
supervisor, the shard workers and the book are unchanged, so results,
failures and adoption after a restart work as for ``sendpay`` parts:

* ``sendpay`` builds the part's payloads (:func:`barq.onion.build_onion`,
  with our own node first, as ``injectpaymentonion`` peels it), asks
  ``createonion`` for the packet and its shared secrets, then starts
  ``injectpaymentonion`` in the sender's task group (it only returns once
  the part resolved) and answers "pending", as ``sendpay`` does;
* ``waitsendpay`` waits for that call. A failure (218) is the error onion
  wrapped with our own layer too: :func:`barq.onion.unwrap_onion_error`
  with every secret, placed on the route (an error from inside a blinded
  path comes from its introduction node, as ``invalid_onion_blinding``,
  and is charged to the path's edge); 219 (already paid) is the earlier
  success. A refusal before any HTLC existed (-32602 "Unknown scid"...)
  is a failed part without a route failure;
* a part this sender did not start (adopted from an earlier run) is
  awaited with the node's ``waitsendpay``, which lightningd answers for
  injected parts too; their failure comes back as 202 with the error
  onion, which the node's ``waitsendpay`` reads as a failed part "reason
  unknown" (without the lost run's shared secrets; safe for the
  accounting), as the restart watcher does.

One payment uses one mechanism: every part of an onion payment is injected
(lightningd refuses a group mixing ``sendpay`` and injected parts).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from barq.errors import (
    JSONRPC2_INVALID_PARAMS,
    PAY_IN_PROGRESS,
    NodeError,
    PartFailed,
    RpcConnectionError,
    RpcError,
)
from barq.model import (
    ChannelUpdate,
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
)
from barq.model import SendpayStatus as _Status
from barq.node.base import OnionNodeInterface
from barq.node.wire import parse_failure_message
from barq.onion import (
    BlindedEdge,
    BlindedFinal,
    ClearFinal,
    OnionPlan,
    build_onion,
    createonion_params,
    injectpaymentonion_params,
    unwrap_onion_error,
)

if TYPE_CHECKING:
    from barq.graph import Graph

__all__ = [
    "PAY_INJECTPAYMENTONION_ALREADY_PAID",
    "PAY_INJECTPAYMENTONION_FAILED",
    "OnionSender",
    "OnionTarget",
    "onion_sender",
]

log = logging.getLogger(__name__)

#: lightningd's codes for injected parts (``common/jsonrpc_errors.h``)
PAY_INJECTPAYMENTONION_FAILED = 218
PAY_INJECTPAYMENTONION_ALREADY_PAID = 219


class OnionTarget(msgspec.Struct, frozen=True, kw_only=True):
    """What the final payload of every part of one payment holds.

    Attributes:
        payer: our node id (the onion's first layer, for ``injectpaymentonion``).
        custom_records: records for a recipient reached in the clear (keysend:
            the preimage record and ``extratlvs``).
        blinded: the invoice's usable blinded paths as edges (BOLT 12); a route
            ending with edge ``blinded[i].scid`` gets that path's blinded tail.
        invstring: the bolt12 invoice (``listsendpays`` shows it), ``None`` for keysend.
        destination: the payee ``listsendpays`` shows (keysend's destination, a
            bolt12 ``invoice_node_id``).
    """

    payer: NodeId
    custom_records: dict[int, bytes] = {}
    blinded: tuple[BlindedEdge, ...] = ()
    invstring: str | None = None
    destination: NodeId | None = None

    def final(self, route: Route, total_msat: int) -> ClearFinal | BlindedFinal:
        """The recipient's data for a part over ``route`` of a ``total_msat`` payment.

        A keysend part that is the whole payment carries no ``payment_data``
        (BOLT 4: ``total_msat`` = ``amt_to_forward``); a part of a multi-part
        keysend carries a per-payment secret so the payee can join the set.

        Raises:
            ValueError: a blinded payment's route does not end with one of its paths.
        """
        if self.blinded:
            last = route.hops[-1]
            for edge in self.blinded:
                if edge.scid == last.channel and edge.destination == last.id:
                    return BlindedFinal(edge=edge, total_msat=total_msat)
            raise ValueError(f"route ends over {last.channel}, not one of the invoice's paths")
        if route.amount_msat >= total_msat:
            return ClearFinal(custom_records=self.custom_records)
        return ClearFinal(
            payment_secret=self._mpp_secret(),
            total_msat=total_msat,
            custom_records=self.custom_records,
        )

    def _mpp_secret(self) -> bytes:
        # keysend MPP (LND/LDK style): a secret shared by the parts; derived from the
        # preimage record so every part of the payment carries the same one
        seed = b"".join(v for _, v in sorted(self.custom_records.items()))
        return hashlib.sha256(b"barq-keysend-mpp" + seed).digest()


class _Part:
    """One injected part: what it was built from, and how its call ended."""

    def __init__(self, route: Route, plan: OnionPlan, secrets: tuple[bytes, ...]) -> None:
        self.route = route
        self.plan = plan
        self.secrets = secrets
        self.done = anyio.Event()
        self.result: PartStatus | None = None
        self.error: NodeError | None = None


class OnionSender:
    """A :class:`~barq.node.base.NodeInterface` for one onion payment (see the module doc).

    Get one from :func:`onion_sender` (it owns the task group the
    ``injectpaymentonion`` calls run in, and waits for them on exit).
    """

    def __init__(
        self, node: OnionNodeInterface, target: OnionTarget, tg: anyio.abc.TaskGroup
    ) -> None:
        self._node = node
        self._target = target
        self._tg = tg
        self._parts: dict[tuple[int, int], _Part] = {}

    # -- the node's own answers ---------------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        return await self._node.get_info()

    async def decode_invoice(self, invstring: str) -> Invoice:
        return await self._node.decode_invoice(invstring)

    async def list_peer_channels(self) -> list[LocalChannel]:
        return await self._node.list_peer_channels()

    async def gossip_graph(self) -> Graph:
        return await self._node.gossip_graph()

    async def listsendpays(self, payment_hash: PaymentHash | None = None) -> list[PartStatus]:
        return await self._node.listsendpays(payment_hash)

    # -- sending ------------------------------------------------------------------------------

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
        """Build the part's onion and start injecting it; returns it ``pending``.

        Raises:
            barq.errors.RpcError: -32602 when the route cannot become an onion (too
                long, outside the blinded path's limits), or ``createonion``'s
                refusal; nothing was sent then.
        """
        target = self._target
        try:
            final = target.final(route, total_msat)
        except ValueError as exc:
            raise _not_an_onion(exc) from exc
        if isinstance(final, BlindedFinal):
            _check_path_limits(route, final.edge)
        info = await self._node.get_info()
        try:
            plan = build_onion(
                route,
                final,
                blockheight=info.blockheight + 1,  # xpay: one block of slack
                payer=target.payer,
            )
        except ValueError as exc:
            raise _not_an_onion(exc) from exc
        p = createonion_params(plan, payment_hash)
        created = await self._node.create_onion(p["hops"], p["assocdata"])
        params = injectpaymentonion_params(
            plan,
            onion=created.onion,
            payment_hash=payment_hash,
            partid=partid,
            groupid=groupid,
            invstring=target.invstring,
            destination=target.destination,
            label=label,
        )
        part = _Part(route, plan, tuple(bytes.fromhex(s) for s in created.shared_secrets))
        self._parts[(groupid, partid)] = part
        self._tg.start_soon(self._inject, part, params, name=f"barq-inject-{partid}")
        return PartStatus(
            payment_hash=payment_hash,
            partid=partid,
            groupid=groupid,
            status=_Status.PENDING,
            amount_msat=plan.delivered_msat,
            amount_sent_msat=plan.first_amount_msat,
            destination=target.destination,
            bolt11=target.invstring,
            label=label,
        )

    async def _inject(self, part: _Part, params: Mapping[str, Any]) -> None:
        try:
            part.result = await self._node.inject_payment_onion(params, route=part.route)
        except RpcError as exc:
            ended = _translate(exc, part, params)
            if isinstance(ended, PartStatus):
                part.result = ended
            else:
                part.error = ended
        except NodeError as exc:
            part.error = exc
        finally:
            part.done.set()

    async def waitsendpay(
        self,
        payment_hash: PaymentHash,
        *,
        partid: PartId,
        groupid: int,
        timeout_s: float | None = None,
    ) -> PartStatus:
        """Wait for the part (see the module doc for what each ending raises).

        Raises:
            barq.errors.PartFailed: the part failed (``failure`` ``None`` when no HTLC
                left, or the reason is unknown).
            barq.errors.RpcError: 200 when ``timeout_s`` passed with the part pending.
        """
        part = self._parts.get((groupid, partid))
        if part is None:
            return await self._wait_adopted(payment_hash, partid, groupid, timeout_s)
        with anyio.move_on_after(timeout_s if timeout_s is not None else float("inf")):
            await part.done.wait()
        if not part.done.is_set():
            raise RpcError("part still in flight", method="waitsendpay", rpc_code=PAY_IN_PROGRESS)
        if isinstance(part.error, RpcConnectionError):
            # the call's answer is lost, not the part: lightningd knows how it ends
            return await self._wait_adopted(payment_hash, partid, groupid, timeout_s)
        if part.error is not None:
            raise part.error
        assert part.result is not None
        return part.result

    async def _wait_adopted(
        self, payment_hash: PaymentHash, partid: PartId, groupid: int, timeout_s: float | None
    ) -> PartStatus:
        # the node's waitsendpay reads a failed injected part (202, its error onion
        # unreadable without the lost run's secrets) as a failed part, reason unknown
        return await self._node.waitsendpay(
            payment_hash, partid=partid, groupid=groupid, timeout_s=timeout_s
        )


def _not_an_onion(exc: ValueError) -> RpcError:
    return RpcError(
        f"Could not create payment onion: {exc}",
        method="createonion",
        rpc_code=JSONRPC2_INVALID_PARAMS,
    )


def _check_path_limits(route: Route, edge: BlindedEdge) -> None:
    """Refuse a part the blinded path cannot carry as its introduction node would.

    The router sees a path as a route hint (fee and CLTV, no HTLC limits), so
    the payinfo's limits are first learnt here: as a ``temporary_channel_failure``
    of the path's edge carrying a ``channel_update`` with the payinfo's limits
    (the router applies it, the book re-plans the amount); nothing is sent.

    Raises:
        PartFailed: the delivered amount is outside the path's HTLC limits.
    """
    deliver = route.amount_msat
    if edge.accepts(deliver):
        return
    update = ChannelUpdate(
        scid=edge.scid,
        direction=edge.direction,
        fee_base_msat=edge.fee_base_msat,
        fee_ppm=edge.fee_ppm,
        cltv_delta=edge.cltv_delta,
        htlc_min_msat=edge.htlc_min_msat,
        htlc_max_msat=edge.htlc_max_msat,
    )
    k = len(route.hops) - 1  # the introduction node: the edge leaves it
    message = (
        f"blinded path {edge.scid} carries {edge.htlc_min_msat}..{edge.htlc_max_msat} msat, "
        f"not {deliver}"
    )
    raise PartFailed(
        message,
        failure=RouteFailure(
            failcode=int(FailCode.TEMPORARY_CHANNEL_FAILURE),
            erring_index=k,
            erring_node=edge.source,
            erring_channel=edge.scid,
            erring_direction=edge.direction,
            channel_update=update,
            message=message,
        ),
        method="sendpay",
    )


def _translate(exc: RpcError, part: _Part, params: Mapping[str, Any]) -> PartStatus | NodeError:
    """An ``injectpaymentonion`` error as what ``waitsendpay`` would answer for the part.

    A :class:`PartFailed` (a node that reports failures in the clear, as the
    simulator does) is kept as it is.
    """
    if isinstance(exc, PartFailed):
        return exc
    if exc.rpc_code == PAY_INJECTPAYMENTONION_FAILED:
        return PartFailed(
            exc.message,
            failure=_route_failure(exc, part),
            method="injectpaymentonion",
            rpc_code=exc.rpc_code,
            rpc_data=exc.rpc_data,
        )
    if exc.rpc_code == PAY_INJECTPAYMENTONION_ALREADY_PAID:
        preimage = exc.rpc_data.get("payment_preimage")
        if isinstance(preimage, str):
            # the earlier success: as good as this part's (the preimage is the proof)
            return PartStatus(
                payment_hash=PaymentHash(str(params["payment_hash"])),
                partid=PartId(int(params["partid"])),
                groupid=int(params["groupid"]),
                status=_Status.COMPLETE,
                amount_msat=part.plan.delivered_msat,
                amount_sent_msat=part.plan.first_amount_msat,
                payment_preimage=preimage,
            )
    return PartFailed(
        f"injectpaymentonion refused: {exc.message}",
        failure=None,
        method="injectpaymentonion",
        rpc_code=exc.rpc_code,
        rpc_data=exc.rpc_data,
    )


def _route_failure(exc: RpcError, part: _Part) -> RouteFailure | None:
    """Decrypt the 218 error onion (our own layer included) and place it on the route."""
    reply = exc.rpc_data.get("onionreply")
    if not isinstance(reply, str):
        return None
    try:
        failure = unwrap_onion_error(part.secrets, bytes.fromhex(reply), first_index=0)
    except ValueError:
        failure = None
    if failure is None:
        log.warning("injected part: garbled error onion (no hop's HMAC matches)")
        return None
    try:
        site = failure.locate(part.route, part.plan)
    except ValueError:
        return None
    update = None
    with contextlib.suppress(ValueError):
        _, update = parse_failure_message(failure.message)
    failcode, message = failure.failcode, exc.message
    if site.in_blinded_path and failcode == FailCode.INVALID_ONION_BLINDING:
        # whatever failed inside the path, its introduction node says only this: read it as
        # the path lacking capacity for this amount (xpay's reading, with the same caveat
        # that it may hide an mpp_timeout); the edge is this invoice's own (see _onion_pay)
        failcode = int(FailCode.TEMPORARY_CHANNEL_FAILURE)
        message = f"invalid_onion_blinding from the introduction node: {message}"
    return RouteFailure(
        failcode=failcode,
        erring_index=site.erring_index,
        erring_node=site.erring_node,
        erring_channel=site.erring_channel,
        erring_direction=site.erring_direction,
        channel_update=update,
        message=message,
    )


@contextlib.asynccontextmanager
async def onion_sender(node: OnionNodeInterface, target: OnionTarget) -> AsyncIterator[OnionSender]:
    """An :class:`OnionSender` whose injections live as long as the ``async with`` block.

    Leaving the block waits for every injection started in it (the supervisor
    has already awaited them all when it returns). An exception of the block
    leaves it as itself, not inside an exception group.
    """
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        try:
            yield OnionSender(node, target, tg)
        except Exception as exc:
            failure = exc
    if failure is not None:
        raise failure
