"""HTLC forwarding hop by hop, and the BOLT 4 failures the nodes on the way report.

Forwarding node ``k`` (``hops[k-1].id``) asked to forward ``hops[k]`` checks,
in this order: the channel exists and joins it to ``hops[k].id`` (else
``UNKNOWN_NEXT_PEER``), then :func:`barq.sim.rules.forward_refusal`
(``CHANNEL_DISABLED``, ``FEE_INSUFFICIENT``, ``INCORRECT_CLTV_EXPIRY``,
``AMOUNT_BELOW_MINIMUM``, ``TEMPORARY_CHANNEL_FAILURE`` above ``htlc_max``, with
every HTLC slot of the channel taken (``max_htlcs``) or above the available
liquidity). Our first hop is checked the same way inside
``sendpay`` (:func:`barq.sim.rules.first_hop_refusal`). Failures with the
UPDATE bit carry the channel's *current* policy as ``channel_update``.

Failures are reported as lightningd does: ``erring_index`` is the index of
the failing node (0 = us, ``len(route)`` = destination), ``erring_channel``
the channel it could not forward over (the last channel for the destination).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import anyio
import msgspec

from barq.model import FailCode, Hop, NodeId, Route, RouteFailure, Scid, SendpayStatus
from barq.sim import rules
from barq.sim.channels import Channels
from barq.sim.clock import SimClock
from barq.sim.parts import FaultHook, Part
from barq.sim.receiver import MppReceiver

__all__ = ["Forwarding"]


class Forwarding:
    """Carries HTLCs over the network's channels to the payee and the result back.

    Args:
        channels: balances, locks and policies.
        clock: the latency of each hop.
        receiver: the payees.
        counters: network counters (``parts_succeeded``, ``parts_failed``, one per failcode).

    Attributes:
        fault_hook: see :data:`barq.sim.parts.FaultHook` (``None``: no faults injected).
    """

    def __init__(
        self, channels: Channels, clock: SimClock, receiver: MppReceiver, counters: Counter[str]
    ) -> None:
        self.channels = channels
        self.clock = clock
        self.receiver = receiver
        self.counters = counters
        self.fault_hook: FaultHook | None = None

    def failure(
        self,
        code: FailCode,
        index: int,
        node: NodeId | None,
        scid: Scid,
        direction: int,
        e: int | None,
        message: str,
    ) -> RouteFailure:
        """The failure node ``index`` reports; UPDATE codes carry row ``e``'s current policy."""
        upd = self.channels.channel_update(e) if (e is not None and code.has_update) else None
        return RouteFailure(
            failcode=int(code),
            erring_index=index,
            erring_node=node,
            erring_channel=scid,
            erring_direction=direction,
            channel_update=upd,
            message=message,
        )

    def first_hop(
        self, payer: int, payer_id: NodeId, route: Route
    ) -> tuple[int | None, RouteFailure | None]:
        """Our channel for ``route``'s first hop (node index ``payer``): its row or the failure."""
        ch = self.channels
        hop = route.hops[0]
        e = self._row_to(payer, hop)
        own = (
            None
            if e is None
            else rules.OwnChannel(
                enabled=ch.enabled[e],
                htlc_min_msat=ch.htlc_min[e],
                available_msat=ch.available(e),
                free_slots=ch.free_slots(e),
            )
        )
        r = rules.first_hop_refusal(hop, own)
        if r is not None:
            return None, self._refused(r, 0, payer_id, hop, e)
        return e, None

    def forward(self, k: int, hops: Sequence[Hop]) -> tuple[int | None, RouteFailure | None]:
        """Node ``k`` (``hops[k-1].id``) forwards ``hops[k]``: its row or the failure."""
        ch = self.channels
        node_id = hops[k - 1].id
        hop = hops[k]
        e = self._row_to(ch.graph.node_index[node_id], hop)
        chan = (
            None
            if e is None
            else rules.ForwardChannel(
                enabled=ch.enabled[e],
                fee_base_msat=ch.fee_base[e],
                fee_ppm=ch.fee_ppm[e],
                cltv_delta=ch.cltv[e],
                htlc_min_msat=ch.htlc_min[e],
                htlc_max_msat=ch.htlc_max[e],
                available_msat=ch.available(e),
                free_slots=ch.free_slots(e),
            )
        )
        r = rules.forward_refusal(hops[k - 1], hop, chan)
        if r is not None:
            return None, self._refused(r, k, node_id, hop, e)
        return e, None

    def _row_to(self, node: int, hop: Hop) -> int | None:
        """The row of ``hop.channel`` leaving node index ``node`` towards ``hop.id``, if any."""
        ch = self.channels
        e = ch.out_row(node, hop.channel)
        if e is None or ch.graph.nodes[ch.dst[e]] != hop.id:
            return None
        return e

    def _refused(
        self, r: rules.Refusal, index: int, node: NodeId, hop: Hop, e: int | None
    ) -> RouteFailure:
        direction = hop.direction if e is None else self.channels.dir[e]
        return self.failure(r.code, index, node, hop.channel, direction, e, r.message)

    async def carry(self, part: Part) -> None:
        """Take ``part`` (its first hop already locked) to the payee and the result back.

        Each hop costs its latency each way; on the way back every HTLC is
        settled (success) or unlocked (failure), last hop first. Sets
        ``part.done`` at the end.
        """
        ch = self.channels
        hops = part.info.route.hops
        n = len(hops)
        failure: RouteFailure | None = None
        preimage: str | None = None
        k = 1
        while True:
            await anyio.sleep(self.clock.latency(part.info, part.attempt, k - 1, False))
            hook = self.fault_hook
            if hook is not None:
                f = hook(k, hops[k - 1], part.info)
                if f is not None:
                    failure = msgspec.structs.replace(f, erring_index=k, erring_node=hops[k - 1].id)
                    break
            if k == n:
                preimage, failure = await self.receiver.receive(part, ch.dir[part.rows[-1]])
                break
            e, failure = self.forward(k, hops)
            if e is None:
                break
            ch.lock(e, hops[k].amount_msat)
            part.rows.append(e)
            k += 1
        # The result travels back hop by hop, releasing or settling each HTLC.
        for j in range(len(part.rows) - 1, -1, -1):
            await anyio.sleep(self.clock.latency(part.info, part.attempt, j, True))
            if failure is None:
                ch.settle(part.rows[j], hops[j].amount_msat)
            else:
                ch.unlock(part.rows[j], hops[j].amount_msat)
        part.completed_at = int(self.clock.now())
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
