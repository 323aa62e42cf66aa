"""The cost model: what a route costs in fees, CLTV risk and failure risk (written once).

Three terms price a route, each with one rule here:

* **fee** — the BOLT 7 forwarding fee ``base + amount * ppm / 1e6`` of every
  half-channel but the payer's own first hop (:func:`fee_costs` as a float cost,
  :func:`edge_fees_msat` exactly in msat, :func:`prorated_fee_rate` /
  :func:`prorated_fee_ppm` linearised with the base fee spread over the amount,
  as a flow solver needs it);
* **delay** — CLN's ``riskfactor``: the annual interest, in percent, on the
  amount for each block a hop's CLTV delta may lock it
  (``amount * cltv_delta * riskfactor / 100 / BLOCKS_PER_YEAR``,
  :func:`risk_costs`, :func:`risk_rate`);
* **success probability** — liquidity uniform in ``[min, max]``
  (Pickhardt-Richter, renepay, LDK's ``ProbabilisticScorer``):
  ``P(a) = (max + 1 - a) / (max + 1 - min)`` (:func:`success_probability`,
  :func:`success_probabilities`, :func:`neg_log_success`,
  :func:`route_probability`, :func:`nlp_pieces` for its convex piecewise-linear
  form in a min-cost flow).

:class:`CostParams` is the frozen set of weights that combine them into one
number per half-channel (:meth:`CostParams.edge_costs`,
``fee + risk + penalty * -ln P``). Every built-in strategy prices with it, the
bench oracle prices fees with it, and ``barqroute`` shows routes priced by it
(through the router). Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from barq.graph import Graph
from barq.model import NodeId, Route
from barq.routing._context import RoutingContext

__all__ = [
    "BLOCKS_PER_YEAR",
    "DEFAULT_RISKFACTOR",
    "CostParams",
    "delay_block_weight",
    "edge_fees_msat",
    "fee_costs",
    "flow_probability",
    "neg_log_success",
    "nlp_pieces",
    "prorated_fee_ppm",
    "prorated_fee_rate",
    "risk_costs",
    "risk_rate",
    "route_probability",
    "success_probabilities",
    "success_probability",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: Blocks in a year (CLN ``BLOCKS_PER_YEAR``: 365.25 * 144).
BLOCKS_PER_YEAR = 52_596
#: CLN ``getroute``'s default ``riskfactor``: the annual interest rate, in percent, charged
#: on the amount for each block the funds may stay locked (``amount * delay * rf / 100 / year``).
DEFAULT_RISKFACTOR = 10


class CostParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a strategy weighs fees, CLTV delay and the risk of failure (one frozen set).

    The cost of sending ``amount`` over a half-channel is
    ``fee + risk + penalty(amount) * -ln P(amount)`` (:meth:`edge_costs`), with
    ``penalty(amount) = penalty_base_msat + amount * penalty_ppm / 1e6`` msat per unit
    of ``-ln P`` (LDK's ``liquidity_penalty_multiplier_msat`` /
    ``liquidity_penalty_amount_multiplier_msat``, Pickhardt's ``mu``). A zero
    penalty prices fees and CLTV alone (CLN ``getroute``, ``dijkstra``).

    Attributes:
        riskfactor: CLN's ``riskfactor``, annual percent on the amount per block
            of CLTV delta (10: one block on 1 BTC weighs about 190 sat).
        penalty_ppm: ppm of the amount in fees worth one unit of ``-ln P``
            (a factor ``e`` in success probability). Min-cost flows use this
            proportional part only (their ``mu`` is ``1 / (penalty_ppm * amount / 1e6)``).
        penalty_base_msat: msat worth one unit of ``-ln P`` whatever the amount
            (single-path searches only).
    """

    riskfactor: float = float(DEFAULT_RISKFACTOR)
    penalty_ppm: float = 2000.0
    penalty_base_msat: int = 1000

    @property
    def prices_probability(self) -> bool:
        """False when the penalty is zero: only fees and CLTV risk count."""
        return self.penalty_ppm != 0 or self.penalty_base_msat != 0

    def penalty_msat(self, amount_msat: int) -> float:
        """msat charged per unit of ``-ln P`` when sending ``amount_msat``."""
        return self.penalty_base_msat + amount_msat * self.penalty_ppm / 1e6

    def edge_costs(self, ctx: RoutingContext, source: NodeId, amount_msat: int) -> F64:
        """``fee + risk + penalty * -ln P`` of ``amount_msat`` over each half-channel (msat).

        ``inf`` where ``P == 0`` (when the penalty is not zero); fee and risk are
        zero on the half-channels leaving ``source``.
        """
        g = ctx.graph
        base = fee_costs(g, source, amount_msat) + risk_costs(
            g, source, amount_msat, self.riskfactor
        )
        if not self.prices_probability:
            return base
        nlp = neg_log_success(ctx, amount_msat)
        cost = base + self.penalty_msat(amount_msat) * nlp
        out: F64 = np.where(np.isfinite(nlp), cost, np.inf)
        return out

    def flow_cost_per_msat(self, graph: Graph, rows: I64, amount_msat: int, from_source: B) -> F64:
        """Fee (base prorated over ``amount_msat``) plus CLTV risk per msat of flow on ``rows``.

        Zero where ``from_source`` (the payer's own channels).
        """
        per_msat = prorated_fee_rate(graph, rows, amount_msat) + graph.cltv_delta[rows] * risk_rate(
            self.riskfactor
        )
        out: F64 = np.where(from_source, 0.0, per_msat)
        return out


# -- fees --------------------------------------------------------------------------------


def _source_mask(graph: Graph, source: NodeId) -> B:
    i = graph.node_index.get(source)
    if i is None:
        return np.zeros(graph.num_edges, dtype=np.bool_)
    out: B = graph.src == i
    return out


def fee_costs(graph: Graph, source: NodeId, amount_msat: int) -> F64:
    """Forwarding fee (msat, float) each half-channel charges for ``amount_msat``.

    Half-channels leaving ``source`` cost nothing: the payer does not pay itself.
    """
    fee = graph.fee_base_msat + amount_msat * graph.fee_ppm.astype(np.float64) / 1e6
    out: F64 = np.where(_source_mask(graph, source), 0.0, fee)
    return out


def edge_fees_msat(graph: Graph, rows: I64, flow_msat: npt.ArrayLike, payer: int) -> int:
    """Exact fees (msat, BOLT 7, base in full) of ``flow_msat`` over ``rows``, summed.

    Rows leaving node index ``payer`` are free. The scalar form is
    :func:`barq.model.fee_msat`.
    """
    f = np.asarray(flow_msat, dtype=np.int64)
    charged = graph.src[rows] != payer
    fee = graph.fee_base_msat[rows] + (f * graph.fee_ppm[rows]) // 1_000_000
    return int(np.sum(np.where(charged, fee, 0)))


def prorated_fee_rate(graph: Graph, rows: I64, amount_msat: int) -> F64:
    """Fee per msat of flow on ``rows`` with the base fee spread over ``amount_msat``.

    ``ppm / 1e6 + base / amount``: linear in the flow, so a min-cost flow can
    use it; it under-charges the base of a half-channel that carries less than
    the whole amount.
    """
    out: F64 = graph.fee_ppm[rows] / 1e6 + graph.fee_base_msat[rows] / amount_msat
    return out


def prorated_fee_ppm(graph: Graph, rows: I64, amount_msat: int, scale: int) -> I64:
    """:func:`prorated_fee_rate` in integers: ``scale`` x (ppm + base prorated, in ppm).

    For integer solvers: ``ppm * scale + base * 1e6 * scale // amount`` (rounded down).
    """
    base = (graph.fee_base_msat[rows] * (1_000_000 * scale)) // max(amount_msat, 1)
    out: I64 = graph.fee_ppm[rows] * scale + base
    return out


# -- delay -------------------------------------------------------------------------------


def risk_rate(riskfactor: float) -> float:
    """CLTV risk per msat and per block: ``riskfactor / 100 / BLOCKS_PER_YEAR``."""
    return riskfactor / 100.0 / BLOCKS_PER_YEAR


def risk_costs(
    graph: Graph,
    source: NodeId,
    amount_msat: int,
    riskfactor: float = DEFAULT_RISKFACTOR,
) -> F64:
    """CLN's CLTV risk of each half-channel, in msat: ``amount * cltv_delta * rf / 100 / year``.

    Zero on half-channels leaving ``source`` (their delta is not charged).
    """
    risk = amount_msat * graph.cltv_delta.astype(np.float64) * risk_rate(riskfactor)
    out: F64 = np.where(_source_mask(graph, source), 0.0, risk)
    return out


def delay_block_weight(amount_msat: int) -> float:
    """msat one block of CLTV weighs when a route must shed delay: at least 1, else CLN's
    default risk of the amount (``amount * 10 / 100 / year``)."""
    return max(1.0, amount_msat * DEFAULT_RISKFACTOR / 100.0 / BLOCKS_PER_YEAR)


# -- success probability -----------------------------------------------------------------


def success_probability(amount_msat: int, min_msat: int, max_msat: int) -> float:
    """P(a half-channel with liquidity uniform in ``[min, max]`` can forward ``amount``)."""
    if amount_msat <= min_msat:
        return 1.0
    if amount_msat > max_msat:
        return 0.0
    return (max_msat + 1 - amount_msat) / (max_msat + 1 - min_msat)


def success_probabilities(
    amount_msat: int | npt.NDArray[np.int64],
    min_msat: npt.NDArray[np.int64],
    max_msat: npt.NDArray[np.int64],
) -> F64:
    """Vectorised :func:`success_probability` (uniform liquidity in ``[min, max]``).

    ``amount_msat`` is one amount for every half-channel or one per half-channel.
    Returns 1 where ``amount <= min``, 0 where ``amount > max``.
    """
    a = np.asarray(amount_msat, dtype=np.float64)
    lo = min_msat.astype(np.float64)
    hi = max_msat.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (hi + 1.0 - a) / (hi + 1.0 - lo)
    p = np.where(a <= lo, 1.0, np.where(a > hi, 0.0, p))
    return np.clip(p, 0.0, 1.0)


def neg_log_success(ctx: RoutingContext, amount_msat: int) -> F64:
    """``-ln P(success)`` of sending ``amount_msat`` over each half-channel (``inf`` if 0)."""
    p = success_probabilities(amount_msat, ctx.min_msat, ctx.max_msat)
    with np.errstate(divide="ignore"):
        out: F64 = -np.log(p)
    return out


def route_probability(
    ctx: RoutingContext,
    route: Route,
    edges: Sequence[int],
    used_msat: I64 | None = None,
) -> float:
    """Product over hops of the success probability of the hop amount
    (plus what ``used_msat`` already puts on the same half-channel)."""
    p = 1.0
    for hop, e in zip(route.hops, edges, strict=True):
        extra = 0 if used_msat is None else int(used_msat[e])
        p *= success_probability(
            hop.amount_msat + extra, int(ctx.min_msat[e]), int(ctx.max_msat[e])
        )
    return p


def flow_probability(
    ctx: RoutingContext, edges: Sequence[int], total_msat: dict[int, int]
) -> float:
    """Product over ``edges`` of the success probability of what a whole set of routes
    puts on each (``total_msat[e]``): conservative where routes share a half-channel."""
    p = 1.0
    for e in edges:
        p *= success_probability(total_msat[e], int(ctx.min_msat[e]), int(ctx.max_msat[e]))
    return p


def nlp_pieces(
    lo: F64, hi: F64, cap_units: I64, unit: int, pivots: Sequence[float]
) -> list[tuple[I64, F64]]:
    """``-ln P`` of flow on each half-channel as convex linear pieces, in flow units.

    The certain part ``[0, lo]`` costs nothing; the uncertain range ``[lo, hi]``
    is cut at the fractions ``pivots`` (from 0 to 1) with the chord slope of
    ``-ln P`` on each piece. The last chord ends at ``-ln P(hi) = ln(hi - lo + 1)``:
    steep but finite, so a channel can still be filled when nothing else exists.

    Args:
        lo, hi: per half-channel liquidity bounds (msat, float, ``lo <= hi``).
        cap_units: per half-channel capacity in flow units (pieces stop there).
        unit: msat per flow unit.
        pivots: increasing fractions of ``[lo, hi]``, from 0.0 to 1.0.

    Returns:
        ``[(capacity in units, cost in -ln P per unit)]`` per piece, the certain part first.
    """
    n = len(lo)
    width = hi - lo
    prev = np.minimum(np.floor(lo / unit).astype(np.int64), cap_units)  # certain part
    pieces: list[tuple[I64, F64]] = [(prev, np.zeros(n))]
    for a, b in itertools.pairwise(pivots):
        upto = np.minimum(np.floor((lo + b * width) / unit).astype(np.int64), cap_units)
        with np.errstate(divide="ignore", invalid="ignore"):
            if b < 1.0:
                rise = np.full(n, math.log(1 - a) - math.log(1 - b))
            else:  # up to max itself: P(max) = 1 / (width + 1)
                rise = np.log1p(width) + math.log(1 - a)
            c = np.where(width > 0, rise * unit / ((b - a) * width), 0.0)
        pieces.append((np.maximum(upto - prev, 0), np.maximum(c, 0.0)))
        prev = np.maximum(prev, upto)
    return pieces
