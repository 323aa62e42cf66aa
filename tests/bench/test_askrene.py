"""The askrene peer: the xpay-style loop against a fake getroutes, and the graph checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from barq.bench.askrene import (
    MAX_ROUNDS,
    AskHop,
    AskRoute,
    NoRoutes,
    parse_routes,
    pay_like_xpay,
)
from barq.graph import Graph
from barq.graph.synthetic import builtin_network
from barq.model import Scid


def _line() -> Graph:
    """a -> b -> c twice: (1x1x0, 2x1x0) and (1x2x0, 2x2x0) parallel, each 1M sat."""
    graph, _ = builtin_network(1)
    a, b, c = graph.nodes[:3]
    rows = [
        ("1x1x0", a, b),
        ("2x1x0", b, c),
        ("1x2x0", a, b),
        ("2x2x0", b, c),
    ]
    n = len(rows)
    return Graph(
        nodes=[a, b, c],
        scid=[Scid(r[0]) for r in rows],
        direction=np.array([0 if r[1] < r[2] else 1 for r in rows], dtype=np.int8),
        src=np.array([[a, b, c].index(r[1]) for r in rows], dtype=np.int32),
        dst=np.array([[a, b, c].index(r[2]) for r in rows], dtype=np.int32),
        capacity_msat=np.full(n, 1_000_000_000, dtype=np.int64),
        fee_base_msat=np.zeros(n, dtype=np.int64),
        fee_ppm=np.array([0, 10, 0, 100], dtype=np.int64),
        cltv_delta=np.full(n, 40, dtype=np.int64),
        htlc_min_msat=np.ones(n, dtype=np.int64),
        htlc_max_msat=np.full(n, 1_000_000_000, dtype=np.int64),
        enabled=np.ones(n, dtype=bool),
        private=np.zeros(n, dtype=bool),
    )


def _sd(graph: Graph, e: int) -> str:
    return f"{graph.scid[e]}/{int(graph.direction[e])}"


class FakeAskrene:
    """Answers getroutes from a script of plans; records informs and reservations."""

    def __init__(self, graph: Graph, plans: list[list[tuple[int, list[int]]]]) -> None:
        self.graph = graph
        self.plans = plans
        self.asked: list[tuple[int, int, int]] = []
        self.informs: list[tuple[str, int, bool]] = []
        self.reserved: dict[str, int] = {}

    def getroutes(
        self, layer: str, amount_msat: int, maxfee_msat: int, maxparts: int
    ) -> list[AskRoute]:
        self.asked.append((amount_msat, maxfee_msat, maxparts))
        if not self.plans:
            raise NoRoutes("no path found")
        out = []
        for amount, edges in self.plans.pop(0):
            hops = []
            carried = amount
            for e in reversed(edges):
                hops.append(AskHop(scid_dir=_sd(self.graph, e), amount_msat=carried))
                carried += carried * int(self.graph.fee_ppm[e]) // 1_000_000
            out.append(AskRoute(amount_msat=amount, hops=tuple(reversed(hops))))
        return out

    def inform(self, layer: str, scid_dir: str, amount_msat: int, constrained: bool) -> None:
        self.informs.append((scid_dir, amount_msat, constrained))

    def reserve(self, route: AskRoute, release: bool = False) -> None:
        for h in route.hops:
            self.reserved[h.scid_dir] = self.reserved.get(h.scid_dir, 0) + (
                -h.amount_msat if release else h.amount_msat
            )


def test_loop_reroutes_only_the_failed_part_and_informs_like_xpay() -> None:
    g = _line()
    liquidity = np.array([600_000, 600_000, 600_000, 100_000], dtype=np.int64)
    # round 1: 500k over route 0 (passes), 500k over route 1 (fails at hop 2x2x0);
    # round 2: the 500k left over route 0 again fails (100k of its 600k left)
    ask = FakeAskrene(g, [[(500_000, [0, 1]), (500_000, [2, 3])], [(500_000, [0, 1])]])
    got = pay_like_xpay(
        ask, "l", g, liquidity, amount_msat=1_000_000, maxfee_msat=10_000, maxparts=8
    )
    assert not got.succeeded
    assert got.attempts == 3 and got.rounds == 2
    assert ask.asked[0] == (1_000_000, 10_000, 8)
    assert ask.asked[1] == (500_000, 10_000 - 5, 7)  # budget and slots left after part 1
    assert ask.informs[:2] == [
        (_sd(g, 2), 500_050, False),  # the hop before the failure passed it (with its fee)
        (_sd(g, 3), 500_000, True),  # the failing hop is constrained
    ]
    assert all(v == 0 for v in ask.reserved.values())  # everything released at the end
    assert got.error is not None and got.error.startswith("getroutes: ")


def test_loop_succeeds_and_counts_fees_of_delivered_parts_only() -> None:
    g = _line()
    liquidity = np.array([600_000, 600_000, 800_000, 800_000], dtype=np.int64)
    ask = FakeAskrene(g, [[(700_000, [0, 1])], [(700_000, [2, 3]), (300_000, [0, 1])]])
    got = pay_like_xpay(
        ask, "l", g, liquidity, amount_msat=1_000_000, maxfee_msat=10_000, maxparts=8
    )
    # round 1 fails at the first hop (600k < 700k + fee); round 2 both pass
    assert got.succeeded and got.rounds == 2 and got.attempts == 3
    assert got.fee_msat == 700_000 * 100 // 1_000_000 + 300_000 * 10 // 1_000_000
    assert ask.informs[0] == (_sd(g, 0), 700_007, True)


def test_loop_gives_up_after_max_rounds() -> None:
    g = _line()
    liquidity = np.zeros(4, dtype=np.int64)
    ask = FakeAskrene(g, [[(1_000, [0, 1])] for _ in range(MAX_ROUNDS + 5)])
    got = pay_like_xpay(ask, "l", g, liquidity, amount_msat=1_000, maxfee_msat=10, maxparts=2)
    assert not got.succeeded and got.rounds == MAX_ROUNDS
    assert got.error == f"gave up after {MAX_ROUNDS} rounds"


def test_parse_routes_reads_amount_out_or_the_next_hops_amount() -> None:
    new: dict[str, Any] = {
        "routes": [
            {
                "amount_msat": 1000,
                "path": [
                    {"short_channel_id_dir": "1x1x0/0", "amount_out_msat": 1013},
                    {"short_channel_id_dir": "2x1x0/1", "amount_out_msat": 1000},
                ],
            }
        ]
    }
    old: dict[str, Any] = {
        "routes": [
            {
                "amount_msat": 1000,
                "path": [
                    {"short_channel_id_dir": "1x1x0/0", "amount_msat": 1026},
                    {"short_channel_id_dir": "2x1x0/1", "amount_msat": 1013},
                ],
            }
        ]
    }
    [r] = parse_routes(new)
    assert [h.amount_msat for h in r.hops] == [1013, 1000] and r.fee_msat == 13
    [r] = parse_routes(old)
    assert [h.amount_msat for h in r.hops] == [1013, 1000] and r.fee_msat == 13
