"""A simulated Lightning network and the payer nodes on it.

:class:`SimulatedNetwork` holds a channel graph, the hidden liquidity of every
channel, the invoices it issued and the HTLCs in flight; :class:`SimulatedNode`
is one payer on it and implements :class:`barq.node.base.NodeInterface` the
way lightningd answers (``sendpay``/``waitsendpay``/``listsendpays``/
``listpeerchannels``/``decode``/``getinfo``). Use it as::

    async with SimulatedNetwork.open(graph, seed=1, keys=keys) as net:
        node = net.node(payer_id)
        bolt11 = net.create_invoice(payee_id, 50_000_000)

(or ``await tg.start(net.run)``); HTLCs run as tasks in the network's task group.

Model (what the payer can observe matches lightningd), one module per concern:

* **Channel state** (:mod:`barq.sim.channels`): per-channel hidden balances
  (seeded), HTLCs locked on the sending side until they resolve, and the
  policies each half-channel enforces. Policies changed with
  :meth:`SimulatedNetwork.set_policy` are enforced but not shown by
  :meth:`SimulatedNode.gossip_graph`. The payer sees its own channels'
  balances exactly (``listpeerchannels``) and nothing beyond.
* **Acceptance rules** (:mod:`barq.sim.rules`): amount, CLTV, HTLC limits,
  fees, ``sendpay``'s refusals and the payee's checks, as pure functions
  shared with :mod:`barq.testing`.
* **Forwarding** (:mod:`barq.sim.forwarding`): HTLCs hop by hop with real
  fees, HTLC limits and CLTV deltas; failures are BOLT 4 codes reported as
  lightningd does (``erring_index`` 0 = us .. ``len(route)`` = destination),
  UPDATE failures carrying the channel's current policy. Our first hop is
  checked inside ``sendpay``: a refusal raises
  :class:`~barq.errors.PartFailed` (204, ``erring_index`` 0) at once.
* **The payee** (:mod:`barq.sim.invoices`, :mod:`barq.sim.receiver`): invoices
  signed by the payee's key (or the simulator's), the payee's checks
  (``INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS``), basic MPP: parts are held until
  they sum to ``total_msat``, else fail with ``MPP_TIMEOUT`` after
  ``mpp_timeout_s`` (60 s). ``waitsendpay`` raises ``PartFailed`` 203 when the
  destination failed the part with a PERM code, else 204.
* **Time** (:mod:`barq.sim.clock`): each hop takes ``hop_latency_s`` (+ a seeded
  jitter) each way, slept with ``anyio.sleep``; under
  ``trio.testing.MockClock(autojump_threshold=0)`` everything finishes
  instantly in wall time. The same seed gives the same results.
"""

from __future__ import annotations

from barq.sim.network import SimulatedNetwork
from barq.sim.node import SimulatedNode
from barq.sim.parts import FaultHook, PartInfo
from barq.sim.receiver import Overpayment

__all__ = [
    "FaultHook",
    "Overpayment",
    "PartInfo",
    "SimulatedNetwork",
    "SimulatedNode",
]
