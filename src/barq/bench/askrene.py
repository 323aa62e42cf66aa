"""``barq bench --peer askrene``: CLN's askrene in an xpay-style loop on the bench's payments.

For every payment the bench drew (same graph, same hidden liquidity, same
payer, payee and amount as Barq's strategies), :func:`pay_like_xpay` runs
what ``xpay`` (``plugins/xpay/xpay.c``, v26.06) does, against a regtest
``lightningd`` whose gossip is the bench graph (:mod:`barq.bench.lightningd`):

1. ``getroutes`` for the amount still unpaid, with the fee budget left and
   the part slots left, on the payment's own layer;
2. "send" every route against the hidden liquidity: a route passes when
   every hop's sending side holds its ``amount_out_msat`` (after what the
   payment's parts already hold) within the hop's htlc limits; a passing
   part holds that liquidity and is reserved (``askrene-reserve``) like
   xpay's parts in flight;
3. for a failed part, as xpay does on ``WIRE_TEMPORARY_CHANNEL_FAILURE``:
   ``askrene-inform-channel`` ``unconstrained`` for each hop before the one
   that failed and ``constrained`` for that one (in the layer);
4. again, until the amount is delivered or ``getroutes`` finds nothing
   (the payment fails: the parts at the payee are returned, as at the MPP
   timeout), or :data:`MAX_ROUNDS` rounds.

The payer knows its own channels' balances exactly, as Barq's payer does
(xpay's ``auto.localchans`` layer): the layer starts with each of them
informed both ``unconstrained`` at its balance and ``constrained`` one msat
above. Every payment starts from a fresh layer (the bench is cold).

``compute_s`` is the wall time of the ``getroutes`` calls (their RPC
included); ``sim_time_s`` is 0 (nothing is simulated in time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from barq.bench.metrics import PaymentRecord
from barq.bench.oracle import oracle
from barq.bench.runner import EPOCH_S, BenchConfig, Session, bench_engine_config
from barq.errors import BarqError
from barq.graph import Graph
from barq.model import NodeId, ScidDir

__all__ = [
    "MAX_ROUNDS",
    "PEER_NAME",
    "AskHop",
    "AskRoute",
    "Askrene",
    "NoRoutes",
    "RpcAskrene",
    "XpayOutcome",
    "channel_mismatches",
    "parse_routes",
    "pay_like_xpay",
    "run_askrene_peer",
]

#: the name of the peer's rows in the table
PEER_NAME = "askrene"
#: getroutes rounds after which a payment is given up (xpay: until retry_for)
MAX_ROUNDS = 60

I64 = npt.NDArray[np.int64]


class AskHop(msgspec.Struct, frozen=True, kw_only=True):
    """One hop of a ``getroutes`` route: the half-channel and what crosses it."""

    scid_dir: ScidDir
    amount_msat: int  # ``amount_out_msat``: what the hop's sending side sends over it


class AskRoute(msgspec.Struct, frozen=True, kw_only=True):
    """One route of a ``getroutes`` answer."""

    amount_msat: int  # delivered to the destination
    hops: tuple[AskHop, ...]

    @property
    def fee_msat(self) -> int:
        """What the payer pays on top of the amount (its own first hop is free)."""
        return self.hops[0].amount_msat - self.amount_msat


class NoRoutes(BarqError):
    """``getroutes`` found nothing (its message is the reason)."""


class Askrene(Protocol):
    """The four askrene calls the loop makes (a real node: :class:`RpcAskrene`)."""

    def getroutes(
        self, layer: str, amount_msat: int, maxfee_msat: int, maxparts: int
    ) -> list[AskRoute]:
        """Routes for ``amount_msat``; raises :class:`NoRoutes` when there are none."""
        ...

    def inform(self, layer: str, scid_dir: str, amount_msat: int, constrained: bool) -> None:
        """``askrene-inform-channel`` (``constrained``: it could not carry the amount)."""
        ...

    def reserve(self, route: AskRoute, release: bool = False) -> None:
        """``askrene-reserve`` the route's hops (``release``: ``askrene-unreserve``)."""
        ...


def parse_routes(answer: dict[str, Any]) -> list[AskRoute]:
    """The routes of a ``getroutes`` answer (``amount_out_msat`` per hop, v26.06 or later;
    else the next hop's ``amount_msat``, as older askrene gives the amount *into* a hop)."""
    out: list[AskRoute] = []
    for r in answer["routes"]:
        path = r["path"]
        amount = int(r["amount_msat"])
        hops = []
        for i, h in enumerate(path):
            if "amount_out_msat" in h:
                crossing = int(h["amount_out_msat"])
            else:
                crossing = int(path[i + 1]["amount_msat"]) if i + 1 < len(path) else amount
            hops.append(AskHop(scid_dir=ScidDir(h["short_channel_id_dir"]), amount_msat=crossing))
        out.append(AskRoute(amount_msat=amount, hops=tuple(hops)))
    return out


class XpayOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`pay_like_xpay` did for one payment."""

    succeeded: bool
    attempts: int  # parts sent
    rounds: int  # getroutes answers that sent parts
    fee_msat: int  # of the delivered parts (0 unless succeeded)
    compute_s: float  # in getroutes
    error: str | None = None


def _first_failure(graph: Graph, liquidity: I64, held: I64, route: AskRoute) -> int | None:
    """The index of the hop where ``route`` fails (``None``: it reaches the payee)."""
    for i, hop in enumerate(route.hops):
        e = graph.edge_by_scid_dir(hop.scid_dir)
        if e is None:
            return i
        a = hop.amount_msat
        if (
            not graph.enabled[e]
            or a < graph.htlc_min_msat[e]
            or a > graph.htlc_max_msat[e]
            or liquidity[e] - held[e] < a
        ):
            return i
    return None


def pay_like_xpay(
    ask: Askrene,
    layer: str,
    graph: Graph,
    liquidity: I64,
    *,
    amount_msat: int,
    maxfee_msat: int,
    maxparts: int,
    clock: Callable[[], float] = time.perf_counter,
) -> XpayOutcome:
    """Pay ``amount_msat`` over the hidden ``liquidity`` (per half-channel row) like xpay.

    See the module docstring for the loop. Every part that passed is
    released (``askrene-unreserve``) before returning.
    """
    held = np.zeros(graph.num_edges, dtype=np.int64)
    delivered: list[AskRoute] = []
    attempts = rounds = 0
    compute = 0.0
    error: str | None = None
    try:
        while (left := amount_msat - sum(r.amount_msat for r in delivered)) > 0:
            if rounds >= MAX_ROUNDS:
                error = f"gave up after {MAX_ROUNDS} rounds"
                break
            fee_left = maxfee_msat - sum(r.fee_msat for r in delivered)
            t0 = clock()
            try:
                routes = ask.getroutes(layer, left, max(fee_left, 0), maxparts - len(delivered))
            except NoRoutes as exc:
                error = f"getroutes: {exc.message}"
                break
            finally:
                compute += clock() - t0
            rounds += 1
            for route in routes:
                attempts += 1
                failed = _first_failure(graph, liquidity, held, route)
                if failed is None:
                    for hop in route.hops:
                        e = graph.edge_by_scid_dir(hop.scid_dir)
                        assert e is not None  # _first_failure found every hop
                        held[e] += hop.amount_msat
                    ask.reserve(route)
                    delivered.append(route)
                    continue
                for i, hop in enumerate(route.hops[: failed + 1]):
                    ask.inform(layer, hop.scid_dir, hop.amount_msat, constrained=i == failed)
    finally:
        for route in delivered:
            ask.reserve(route, release=True)
    ok = error is None
    return XpayOutcome(
        succeeded=ok,
        attempts=attempts,
        rounds=rounds,
        fee_msat=sum(r.fee_msat for r in delivered) if ok else 0,
        compute_s=compute,
        error=error,
    )


class RpcAskrene:
    """:class:`Askrene` over a ``pyln.client.LightningRpc`` for one (source, destination)."""

    def __init__(self, rpc: Any, source: NodeId, destination: NodeId, final_cltv: int) -> None:
        self._rpc = rpc
        self._source = source
        self._destination = destination
        self._final_cltv = final_cltv

    def getroutes(
        self, layer: str, amount_msat: int, maxfee_msat: int, maxparts: int
    ) -> list[AskRoute]:
        from pyln.client import RpcError

        try:
            answer = self._rpc.call(
                "getroutes",
                {
                    "source": self._source,
                    "destination": self._destination,
                    "amount_msat": amount_msat,
                    "layers": [layer],
                    "maxfee_msat": maxfee_msat,
                    "final_cltv": self._final_cltv,
                    "maxparts": max(1, maxparts),
                },
            )
        except RpcError as exc:
            raise NoRoutes(str((exc.error or {}).get("message", exc))) from None
        return parse_routes(answer)

    def inform(self, layer: str, scid_dir: str, amount_msat: int, constrained: bool) -> None:
        self._rpc.call(
            "askrene-inform-channel",
            {
                "layer": layer,
                "short_channel_id_dir": scid_dir,
                "amount_msat": amount_msat,
                "inform": "constrained" if constrained else "unconstrained",
            },
        )

    def reserve(self, route: AskRoute, release: bool = False) -> None:
        path = [
            {"short_channel_id_dir": h.scid_dir, "amount_msat": h.amount_msat} for h in route.hops
        ]
        self._rpc.call("askrene-unreserve" if release else "askrene-reserve", {"path": path})


def _listchannels_key(c: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return (
        f"{c['short_channel_id']}/{int(c['direction'])}",
        (
            c["source"],
            c["destination"],
            int(c["amount_msat"]),
            bool(c["active"]),
            int(c["base_fee_millisatoshi"]),
            int(c["fee_per_millionth"]),
            int(c["delay"]),
            int(c["htlc_minimum_msat"]),
            int(c["htlc_maximum_msat"]),
        ),
    )


def channel_mismatches(graph: Graph, channels: Sequence[dict[str, Any]]) -> list[str]:
    """How ``listchannels``' half-channels differ from ``graph``'s (empty: equal).

    Compared per half-channel (``SCID/DIR``): source, destination, capacity,
    enabled (``active``), base fee, fee rate, CLTV delta, htlc min and max;
    plus half-channels only one side has.
    """
    theirs = dict(_listchannels_key(c) for c in channels)
    ours = {
        graph.scid_dir(e): (
            graph.nodes[int(graph.src[e])],
            graph.nodes[int(graph.dst[e])],
            int(graph.capacity_msat[e]),
            bool(graph.enabled[e]),
            int(graph.fee_base_msat[e]),
            int(graph.fee_ppm[e]),
            int(graph.cltv_delta[e]),
            int(graph.htlc_min_msat[e]),
            int(graph.htlc_max_msat[e]),
        )
        for e in range(graph.num_edges)
    }
    out = [f"{k}: not in listchannels" for k in ours.keys() - theirs.keys()]
    out += [f"{k}: not in the graph" for k in theirs.keys() - ours.keys()]
    out += [
        f"{k}: graph {ours[k]} != listchannels {theirs[k]}"
        for k in ours.keys() & theirs.keys()
        if ours[k] != theirs[k]
    ]
    return sorted(out)


def _own_channels(ask: RpcAskrene, layer: str, graph: Graph, liquidity: I64, source: int) -> None:
    """Tell the layer the payer's exact balances (xpay's ``auto.localchans``)."""
    for e in np.flatnonzero(graph.src == source).tolist():
        scid_dir = graph.scid_dir(e)
        have = int(liquidity[e])
        if have > 0:
            ask.inform(layer, scid_dir, have, constrained=False)
        ask.inform(layer, scid_dir, have + 1, constrained=True)


def run_askrene_peer(
    graph: Graph,
    sessions: Sequence[Session],
    cfg: BenchConfig,
    rpc: Any,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[PaymentRecord]:
    """Pay every payment of ``sessions`` with askrene through ``rpc`` (a lightningd on ``graph``).

    One record per payment (strategy :data:`PEER_NAME`), with the oracle's
    verdict on the session's fresh network, in session order.

    Raises:
        BarqError: a session pays several payments on one network (``--warm`` or
            ``--concurrency``): the peer only runs cold, one payment per network.
    """
    from barq.sim import SimulatedNetwork

    engine = bench_engine_config(cfg, PEER_NAME)
    total = sum(s.payments for s in sessions)
    records: list[PaymentRecord] = []
    for session in sessions:
        if session.payments != 1:
            raise BarqError("--peer askrene runs cold only (no --warm, no --concurrency)")
        [[dest]] = session.batches
        amount = session.amount_msat
        liquidity = SimulatedNetwork(
            graph, seed=session.liquidity_seed, epoch_s=EPOCH_S
        ).true_liquidity_msat()
        maxfee = engine.default_maxfee_msat(amount)
        orc = oracle(
            graph,
            liquidity,
            session.source,
            dest,
            amount,
            maxparts=engine.maxparts,
            maxfee_msat=maxfee,
        )
        layer = f"barq-bench-{len(records)}"
        ask = RpcAskrene(rpc, session.source, dest, final_cltv=18)
        rpc.call("askrene-create-layer", {"layer": layer})
        try:
            _own_channels(ask, layer, graph, liquidity, graph.node_index[session.source])
            got = pay_like_xpay(
                ask,
                layer,
                graph,
                liquidity,
                amount_msat=amount,
                maxfee_msat=maxfee,
                maxparts=engine.maxparts,
            )
        finally:
            rpc.call("askrene-remove-layer", {"layer": layer})
        records.append(
            PaymentRecord(
                strategy=PEER_NAME,
                amount_msat=amount,
                source=session.source,
                destination=dest,
                feasible=orc.feasible,
                max_flow_msat=orc.max_flow_msat,
                oracle_fee_msat=orc.fee_msat,
                succeeded=got.succeeded,
                attempts=got.attempts,
                rounds=got.rounds,
                fee_msat=got.fee_msat,
                sim_time_s=0.0,
                compute_s=got.compute_s,
                error=got.error,
            )
        )
        if progress is not None:
            progress(len(records), total)
    return records
