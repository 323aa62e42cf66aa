"""Public test tools: a scripted node and part scripts (httpx ``MockTransport`` style).

:class:`ScriptedNode` implements :class:`barq.node.base.NodeInterface` over a
fixed graph; what happens to each part ``sendpay`` receives is decided by a
*handler* you give it, a function of the part (:class:`SentPart`) to a
script::

    def handler(part: SentPart) -> PartScript:
        if part.route.channels()[1] == "101x1x0/0":
            return fail_at(part.route, 1, FailCode.TEMPORARY_CHANNEL_FAILURE)
        return Succeed(after_s=0.5)

    node = ScriptedNode(graph=graph, our_id=graph.nodes[0], handler=handler)
    bolt11 = node.add_invoice(payee=graph.nodes[3], amount_msat=50_000_000)

What a real node refuses whatever the script says (a malformed route,
``sendpay``'s refusals, our first hop's limits, the payee's checks) is
refused by the simulated network's rules, :mod:`barq.sim.rules`, the same
functions (see :mod:`barq.testing._scripted`).

At every ``sendpay`` it also checks the engine's money rules for payments
registered with :meth:`ScriptedNode.expect` and records any breach in
:attr:`ScriptedNode.violations` (tests assert it stays empty);
:class:`CheckedNode` does the same around any other node (the simulator):

1. parts in flight + delivered never exceed the invoice amount;
2. fees of parts in flight + succeeded never exceed ``maxfee_msat``;
3. each route's delay is at most ``maxdelay``; parts in flight + succeeded
   never exceed ``maxparts``;
4. no ``(groupid, partid)`` is reused for a different route.

Time is ``anyio.current_time()`` (fine under ``trio.testing.MockClock``).

For convenience this module also re-exports the other fakes and the seeded
graph builders: :class:`~barq.sim.SimulatedNetwork` /
:class:`~barq.sim.SimulatedNode` and
:func:`~barq.graph.synthetic.builtin_network`,
:func:`~barq.graph.synthetic.line_network`,
:func:`~barq.graph.synthetic.network_from_channels`.
"""

from __future__ import annotations

from barq.graph.synthetic import (
    ChannelSpec,
    builtin_network,
    line_network,
    network_from_channels,
)
from barq.sim import SimulatedNetwork, SimulatedNode
from barq.testing._checks import CheckedNode, Limits, SentPart, money_rule_violations
from barq.testing._scripted import ScriptedNode, local_channels
from barq.testing._scripts import Fail, Handler, PartScript, Refuse, Succeed, fail_at

__all__ = [
    "ChannelSpec",
    "CheckedNode",
    "Fail",
    "Handler",
    "Limits",
    "PartScript",
    "Refuse",
    "ScriptedNode",
    "SentPart",
    "SimulatedNetwork",
    "SimulatedNode",
    "Succeed",
    "builtin_network",
    "fail_at",
    "line_network",
    "local_channels",
    "money_rule_violations",
    "network_from_channels",
]
