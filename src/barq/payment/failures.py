"""Reading a part's failure (renepay's ``routefail``): one pure function, used by three readers.

:func:`classify` turns a :class:`~barq.model.RouteFailure` on a route into a
:class:`Verdict`; the payment's book and two actors each act on their own
piece of it:

==============  ==============================  ===========================  ==============
kind            book (this payment)             estimator (all payments)     router
==============  ==============================  ===========================  ==============
LIQUIDITY       amount back to the pool (or     hop k: hi < amount;          refresh our
                halved)                         hops < k: lo >= amount       channels if k=0
POLICY          retry (update applied), else    hops < k forwarded;          apply the
                exclude the channel             DISABLED: channel off a      ``channel_update``
                                                while
CHANNEL         exclude the channel             channel off (long)
NODE_TEMPORARY  exclude the node                node off for a while
NODE_PERMANENT  exclude the node                node off (long)
MPP_TIMEOUT     amount back to the pool         whole path forwarded
DESTINATION     stop: final failure (203)       whole path forwarded
OTHER           exclude channel (or node)       hops < k forwarded
==============  ==============================  ===========================  ==============

``erring_index`` k counts nodes on the path: 0 is us, ``len(hops)`` the
destination; the half-channel blamed is ``route.hops[k]`` (the one leaving
the erring node). ``local`` is true when k == 0: our own channel was not
what we thought.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from barq.model import ChannelUpdate, FailCode, NodeId, Route, RouteFailure, ScidDir, scid_dir
from barq.model.failcodes import BADONION, PERM, UPDATE

__all__ = ["FailureKind", "Verdict", "classify"]


class FailureKind(StrEnum):
    LIQUIDITY = "liquidity"
    POLICY = "policy"
    CHANNEL = "channel"
    NODE_TEMPORARY = "node_temporary"
    NODE_PERMANENT = "node_permanent"
    MPP_TIMEOUT = "mpp_timeout"
    DESTINATION = "destination"
    OTHER = "other"


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What a failure means.

    Attributes:
        kind: see the module table.
        index: the erring index, clamped to ``0..len(route.hops)``.
        channel: the half-channel blamed (``None`` at the destination).
        node: the node blamed (``None`` when it is us).
        update: the ``channel_update`` to apply (UPDATE codes only).
        local: the failure is at our own first hop.
    """

    kind: FailureKind
    index: int
    channel: ScidDir | None = None
    node: NodeId | None = None
    update: ChannelUpdate | None = None
    local: bool = False

    @property
    def final(self) -> bool:
        """The payment must stop: the destination refused it for good."""
        return self.kind is FailureKind.DESTINATION

    @property
    def forwarded_hops(self) -> int:
        """How many hops carried the HTLC before the failure (all of them at the destination)."""
        return self.index


_CHANNEL_PERMANENT = {
    FailCode.PERMANENT_CHANNEL_FAILURE,
    FailCode.UNKNOWN_NEXT_PEER,
    FailCode.REQUIRED_CHANNEL_FEATURE_MISSING,
}
_NODE_PERMANENT = {FailCode.PERMANENT_NODE_FAILURE, FailCode.REQUIRED_NODE_FEATURE_MISSING}


def classify(route: Route, failure: RouteFailure) -> Verdict:
    """Read ``failure`` of a part sent over ``route`` (pure; see the module table).

    Unknown failure codes are ``OTHER``: the blamed channel (or node) is
    avoided for the rest of the payment, nothing is learnt.
    """
    n = len(route.hops)
    k = min(max(failure.erring_index, 0), n)
    code = failure.failcode
    channel = scid_dir(route.hops[k].channel, route.hops[k].direction) if k < n else None
    node = failure.erring_node if k > 0 else None
    if node is None and k > 0:
        node = route.hops[k - 1].id
    local = k == 0

    if code == FailCode.MPP_TIMEOUT:
        return Verdict(kind=FailureKind.MPP_TIMEOUT, index=k, node=node, local=local)
    if k == n:
        return Verdict(kind=FailureKind.DESTINATION, index=k, node=node)
    if code == FailCode.TEMPORARY_CHANNEL_FAILURE:
        return Verdict(
            kind=FailureKind.LIQUIDITY,
            index=k,
            channel=channel,
            node=node,
            update=failure.channel_update,
            local=local,
        )
    if code in _CHANNEL_PERMANENT:
        return Verdict(kind=FailureKind.CHANNEL, index=k, channel=channel, node=node, local=local)
    if code in _NODE_PERMANENT and node is not None:
        return Verdict(kind=FailureKind.NODE_PERMANENT, index=k, channel=channel, node=node)
    if code == FailCode.TEMPORARY_NODE_FAILURE and node is not None:
        return Verdict(kind=FailureKind.NODE_TEMPORARY, index=k, channel=channel, node=node)
    if code & UPDATE and not code & (PERM | BADONION):
        return Verdict(
            kind=FailureKind.POLICY,
            index=k,
            channel=channel,
            node=node,
            update=failure.channel_update,
            local=local,
        )
    return Verdict(kind=FailureKind.OTHER, index=k, channel=channel, node=node, local=local)
