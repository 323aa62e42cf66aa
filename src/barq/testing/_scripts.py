"""Part scripts: what a :class:`~barq.testing.ScriptedNode` does with each part it is sent."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from barq.model import ChannelUpdate, FailCode, NodeId, Route, RouteFailure, failcode_name
from barq.testing._checks import SentPart

__all__ = ["Fail", "Handler", "PartScript", "Refuse", "Succeed", "fail_at"]


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
