"""The shard worker: one part's life (renepay's routetracker for a single route).

    supervisor ──ShardOrder──▶ worker: sendpay ─▶ waitsendpay ─▶ report
                                 │ PartSent           │ PartResolved ─▶ estimator (first: the
                                 ▼                    │                  next route must see it)
                              estimator               │ ReleaseRoute ─▶ router
                                                      └ ShardResult  ─▶ supervisor (last)

Cancellation never loses a part: ``sendpay`` runs shielded (once started we
must learn whether it left), and the supervisor's payment deadline does
not reach its workers (they live in the supervisor's task group, outside
the deadline scope), so a part already sent is always awaited. Only the
runtime shutting down cancels a waiting worker; the part then stays with
the node and the next ``pay()`` of the invoice adopts it (``listsendpays``).
"""

from __future__ import annotations

import logging

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from barq.actors.messages import (
    EstimatorMsg,
    PartOutcome,
    PartResolved,
    PartSent,
    ReleaseRoute,
    RouterMsg,
    ShardOrder,
    ShardResult,
    SupervisorMsg,
)
from barq.errors import (
    PAY_IN_PROGRESS,
    PAY_NO_SUCH_PAYMENT,
    NodeError,
    PartFailed,
    RpcConnectionError,
    RpcError,
)
from barq.model import SendpayStatus
from barq.model.payment import EngineConfig, PartState
from barq.node.base import NodeInterface

__all__ = ["WAIT_ATTEMPTS", "shard_worker"]

log = logging.getLogger(__name__)

#: ``waitsendpay`` errors (other than a failed part or a timeout) tolerated before the
#: part is declared lost (its amount is then never reused).
WAIT_ATTEMPTS = 5
_WAIT_BACKOFF_S = 1.0


async def shard_worker(
    *,
    order: ShardOrder,
    node: NodeInterface,
    router: MemoryObjectSendStream[RouterMsg],
    estimator: MemoryObjectSendStream[EstimatorMsg],
    supervisor: MemoryObjectSendStream[SupervisorMsg],
    config: EngineConfig,
    send_before: float | None = None,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Send one part, wait for it, report it; returns after reporting.

    Args:
        order: the part (``order.planned`` ``None``: adopted, only wait).
        send_before: ``anyio.current_time()`` deadline after which a part not yet
            sent is dropped (reported FAILED, ``sent=False``).

    Emits (in this order, exactly once per part):
        PartSent to the estimator once ``sendpay`` accepted the part;
        PartResolved to the estimator, then ReleaseRoute to the router (routed
        parts only; not for a lost part, whose reservation the router keeps
        until the payment closes); then ShardResult to the supervisor.
    """
    task_status.started()
    planned = order.planned
    if planned is None:
        outcome = await _wait(node, order, config)
    else:
        outcome = await _send_and_wait(node, order, estimator, config, send_before)
        await estimator.send(
            PartResolved(
                route=planned.route, capacities_msat=planned.capacities_msat, outcome=outcome
            )
        )
        if not outcome.lost:
            await router.send(ReleaseRoute(reservation=planned.reservation, outcome=outcome))
    await supervisor.send(
        ShardResult(
            partid=order.partid,
            groupid=order.groupid,
            amount_msat=order.amount_msat,
            outcome=outcome,
        )
    )


async def _send_and_wait(
    node: NodeInterface,
    order: ShardOrder,
    estimator: MemoryObjectSendStream[EstimatorMsg],
    config: EngineConfig,
    send_before: float | None,
) -> PartOutcome:
    assert order.planned is not None
    route = order.planned.route
    if send_before is not None and anyio.current_time() >= send_before:
        return PartOutcome(
            state=PartState.FAILED,
            sent=False,
            reason="not sent: the payment's retry_for deadline passed first",
        )
    with anyio.CancelScope(shield=True):
        try:
            await node.sendpay(
                route,
                order.payment_hash,
                partid=order.partid,
                groupid=order.groupid,
                total_msat=order.total_msat,
                payment_secret=order.payment_secret,
                bolt11=order.bolt11,
                label=order.label,
            )
        except PartFailed as exc:
            return PartOutcome(
                state=PartState.FAILED,
                sent=False,
                failure=exc.failure,
                reason=f"sendpay refused: {exc.message}",
                rpc_code=exc.rpc_code,
            )
        except RpcConnectionError as exc:
            # we cannot tell whether it left: treat it as sent and ask about it
            log.warning(
                "part %d/%d: sendpay lost the connection (%s); waiting for it",
                order.groupid,
                order.partid,
                exc,
            )
        except RpcError as exc:
            return PartOutcome(
                state=PartState.FAILED,
                sent=False,
                reason=f"sendpay refused: {exc.message}",
                rpc_code=exc.rpc_code,
            )
    await estimator.send(PartSent(route=route, capacities_msat=order.planned.capacities_msat))
    return await _wait(node, order, config)


async def _wait(node: NodeInterface, order: ShardOrder, config: EngineConfig) -> PartOutcome:
    """``waitsendpay`` until the part resolves; timeouts just wait again."""
    errors = 0
    while True:
        try:
            st = await node.waitsendpay(
                order.payment_hash,
                partid=order.partid,
                groupid=order.groupid,
                timeout_s=config.waitsendpay_timeout_s,
            )
        except PartFailed as exc:
            return PartOutcome(
                state=PartState.FAILED,
                sent=True,
                failure=exc.failure,
                reason=exc.message,
                rpc_code=exc.rpc_code,
            )
        except RpcError as exc:
            if exc.rpc_code == PAY_IN_PROGRESS:
                continue  # waitsendpay's own timeout: still pending
            if exc.rpc_code == PAY_NO_SUCH_PAYMENT:
                return PartOutcome(
                    state=PartState.FAILED,
                    sent=True,
                    rpc_code=exc.rpc_code,
                    reason=f"the node knows no such part: {exc.message}",
                )
            errors += 1
            last: NodeError = exc
        except NodeError as exc:
            errors += 1
            last = exc
        else:
            if st.status is SendpayStatus.COMPLETE:
                return PartOutcome(
                    state=PartState.SUCCEEDED, sent=True, preimage=st.payment_preimage
                )
            if st.status is SendpayStatus.FAILED:
                return PartOutcome(
                    state=PartState.FAILED,
                    sent=True,
                    reason="waitsendpay reported the part failed (no details)",
                )
            await anyio.sleep(_WAIT_BACKOFF_S)  # still pending
            continue
        if errors >= WAIT_ATTEMPTS:
            return PartOutcome(
                state=PartState.FAILED,
                sent=True,
                lost=True,
                reason=f"lost track of the part after {errors} waitsendpay errors: {last.message}",
            )
        await anyio.sleep(_WAIT_BACKOFF_S)
