"""Channel state: the hidden balances, the HTLCs locked on them and the enforced policies.

Liquidity is per channel: side A (``node1``, the source of direction 0)
holds ``x`` msat, side B ``capacity - x``. With ``"uniform"`` liquidity ``x
~ U[0, capacity]`` drawn from ``numpy.random.default_rng(seed)``; with
``"half"`` it is ``capacity // 2``. An HTLC offered over a direction *locks*
its amount on the sending side until it resolves; on success the amount
moves to the other side (:meth:`Channels.settle`), on failure it is unlocked.

Invariants: for every channel ``0 <= side A <= capacity``; the HTLCs locked on
a direction never exceed its side's balance (forwarding checks it first).

Per-row values are Python lists: the simulator reads them one HTLC at a
time, where list reads beat numpy scalar reads.
"""

from __future__ import annotations

from typing import Literal, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

from barq.errors import InvalidParams
from barq.graph import Graph
from barq.model import ChannelUpdate, LocalChannel, Scid

__all__ = ["DEFAULT_MAX_HTLCS", "Channels", "PolicyChange"]

#: HTLCs a half-channel takes at once unless :meth:`Channels.set_max_htlcs` says
#: otherwise (BOLT 2's largest ``max_accepted_htlcs``)
DEFAULT_MAX_HTLCS = 483


class PolicyChange(TypedDict, total=False):
    """A change of what a half-channel enforces (a key left out keeps its value)."""

    fee_base_msat: int
    fee_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int
    enabled: bool


class Channels:
    """Balances, locks and policies of every channel of ``graph`` (rows are graph rows).

    Args:
        graph: the channel graph.
        seed: seeds the uniform balances.
        liquidity: ``"uniform"`` or ``"half"`` (see the module doc).
        epoch_s: the timestamp of the first ``channel_update`` of a row.

    Raises:
        barq.errors.InvalidParams: unknown liquidity model.
    """

    def __init__(
        self, graph: Graph, *, seed: int, liquidity: Literal["uniform", "half"], epoch_s: int
    ) -> None:
        self.graph = graph
        self.epoch_s = epoch_s
        n = graph.num_edges
        self.src: list[int] = graph.src.tolist()
        self.dst: list[int] = graph.dst.tolist()
        self.dir: list[int] = graph.direction.tolist()
        # The policies a row enforces (set_policy changes them; gossip does not see it).
        self.fee_base: list[int] = graph.fee_base_msat.tolist()
        self.fee_ppm: list[int] = graph.fee_ppm.tolist()
        self.cltv: list[int] = graph.cltv_delta.tolist()
        self.htlc_min: list[int] = graph.htlc_min_msat.tolist()
        self.htlc_max: list[int] = graph.htlc_max_msat.tolist()
        self.enabled: list[bool] = graph.enabled.tolist()
        self._update_ts: dict[int, int] = {}

        chan_index: dict[Scid, int] = {}
        chan_of_row = np.empty(n, dtype=np.int64)
        for e, s in enumerate(graph.scid):
            c = chan_index.get(s)
            if c is None:
                c = chan_index[s] = len(chan_index)
            chan_of_row[e] = c
        nchan = len(chan_index)
        self._chan_index = chan_index
        self._chan_of_row_np = chan_of_row
        self.chan_of_row: list[int] = chan_of_row.tolist()
        cap = np.zeros(nchan, dtype=np.int64)
        np.maximum.at(cap, chan_of_row, graph.capacity_msat)
        rows = np.full((nchan, 2), -1, dtype=np.int64)
        rows[chan_of_row, graph.direction.astype(np.int64)] = np.arange(n, dtype=np.int64)
        self.chan_rows: list[list[int]] = rows.tolist()
        self.cap: list[int] = cap.tolist()
        if liquidity == "uniform":
            side_a = np.random.default_rng(seed).integers(0, cap, endpoint=True, dtype=np.int64)
        elif liquidity == "half":
            side_a = cap // 2
        else:
            raise InvalidParams(f"simulated network: unknown liquidity model {liquidity!r}")
        self._side_a: list[int] = side_a.tolist()
        self.locked: list[int] = [0] * n
        #: per row: HTLCs in flight over it and how many it takes at once (the
        #: receiving node's ``max_accepted_htlcs``)
        self.htlcs: list[int] = [0] * n
        self.max_htlcs: list[int] = [DEFAULT_MAX_HTLCS] * n

    # -- lookups -------------------------------------------------------------------------

    def chan(self, scid: Scid) -> int:
        """The channel index of ``scid``.

        Raises:
            barq.errors.InvalidParams: unknown channel.
        """
        c = self._chan_index.get(scid)
        if c is None:
            raise InvalidParams(f"simulated network: unknown channel {scid}")
        return c

    @staticmethod
    def check_dir(direction: int) -> None:
        """Raises :class:`~barq.errors.InvalidParams` unless ``direction`` is 0 or 1."""
        if direction not in (0, 1):
            raise InvalidParams(f"simulated network: direction must be 0 or 1, got {direction}")

    def row(self, scid: Scid, direction: int) -> int:
        """The graph row of ``scid/direction``.

        Raises:
            barq.errors.InvalidParams: bad direction, unknown channel or no such half-channel.
        """
        self.check_dir(direction)
        e = self.chan_rows[self.chan(scid)][direction]
        if e < 0:
            raise InvalidParams(f"simulated network: no half-channel {scid}/{direction}")
        return e

    def out_row(self, node: int, scid: Scid) -> int | None:
        """The row of ``scid`` leaving node index ``node``, if any."""
        c = self._chan_index.get(scid)
        if c is None:
            return None
        for e in self.chan_rows[c]:
            if e >= 0 and self.src[e] == node:
                return e
        return None

    # -- balances ------------------------------------------------------------------------

    def side(self, c: int, direction: int) -> int:
        """Settled msat on the sending side of channel ``c`` in ``direction``."""
        a = self._side_a[c]
        return a if direction == 0 else self.cap[c] - a

    def available(self, e: int) -> int:
        """What row ``e`` can forward now: its side's balance minus HTLCs locked on it."""
        return self.side(self.chan_of_row[e], self.dir[e]) - self.locked[e]

    def balance_of(self, scid: Scid, direction: int) -> int:
        """Settled msat on the sending side of ``scid/direction`` (HTLCs in flight included)."""
        self.check_dir(direction)
        return self.side(self.chan(scid), direction)

    def liquidity_of(self, scid: Scid, direction: int) -> int:
        """What ``scid/direction`` can forward now: its side's balance minus HTLCs locked on it."""
        self.check_dir(direction)
        c = self.chan(scid)
        e = self.chan_rows[c][direction]
        return self.side(c, direction) - (self.locked[e] if e >= 0 else 0)

    def locked_msat(self, scid: Scid, direction: int) -> int:
        """HTLCs in flight over ``scid/direction``."""
        self.check_dir(direction)
        e = self.chan_rows[self.chan(scid)][direction]
        return self.locked[e] if e >= 0 else 0

    def set_balance(self, scid: Scid, direction: int, msat: int) -> None:
        """Give the sending side of ``scid/direction`` ``msat`` (the other side the rest).

        Raises:
            barq.errors.InvalidParams: unknown channel, bad direction, or
                ``msat`` outside ``[0, capacity]``.
        """
        self.check_dir(direction)
        c = self.chan(scid)
        cap = self.cap[c]
        if not 0 <= msat <= cap:
            raise InvalidParams(
                f"simulated network: balance {msat} msat outside [0, {cap}] for {scid}"
            )
        self._side_a[c] = msat if direction == 0 else cap - msat

    def true_liquidity_msat(self) -> npt.NDArray[np.int64]:
        """Per graph row: what that half-channel can forward now (oracle for benchmarks)."""
        c = self._chan_of_row_np
        a = np.asarray(self._side_a, dtype=np.int64)[c]
        cap = np.asarray(self.cap, dtype=np.int64)[c]
        side = np.where(self.graph.direction == 0, a, cap - a)
        return np.asarray(side - np.asarray(self.locked, dtype=np.int64), dtype=np.int64)

    # -- HTLCs ---------------------------------------------------------------------------

    def free_slots(self, e: int) -> int:
        """HTLCs row ``e`` still takes now (its ``max_htlcs`` minus those in flight)."""
        return self.max_htlcs[e] - self.htlcs[e]

    def set_max_htlcs(self, scid: Scid, direction: int, n: int) -> None:
        """``scid/direction`` takes at most ``n`` HTLCs at once (``max-concurrent-htlcs``).

        Raises:
            barq.errors.InvalidParams: no such half-channel, or ``n`` < 1.
        """
        if n < 1:
            raise InvalidParams(f"simulated network: max HTLCs must be at least 1, got {n}")
        self.max_htlcs[self.row(scid, direction)] = n

    def lock(self, e: int, amount: int) -> None:
        """An HTLC of ``amount`` is offered over row ``e``."""
        self.locked[e] += amount
        self.htlcs[e] += 1

    def unlock(self, e: int, amount: int) -> None:
        """The HTLC over row ``e`` failed: its amount is spendable again."""
        self.locked[e] -= amount
        self.htlcs[e] -= 1

    def settle(self, e: int, amount: int) -> None:
        """The HTLC over row ``e`` succeeded: its amount moves to the receiving side."""
        self.locked[e] -= amount
        self.htlcs[e] -= 1
        c = self.chan_of_row[e]
        if self.dir[e] == 0:
            self._side_a[c] -= amount
        else:
            self._side_a[c] += amount

    # -- policies ------------------------------------------------------------------------

    def set_policy(self, scid: Scid, direction: int, **change: Unpack[PolicyChange]) -> None:
        """Change what ``scid/direction`` enforces, without telling gossip.

        Raises:
            barq.errors.InvalidParams: no such half-channel.
        """
        e = self.row(scid, direction)
        if (fee_base := change.get("fee_base_msat")) is not None:
            self.fee_base[e] = fee_base
        if (fee_ppm := change.get("fee_ppm")) is not None:
            self.fee_ppm[e] = fee_ppm
        if (cltv := change.get("cltv_delta")) is not None:
            self.cltv[e] = cltv
        if (htlc_min := change.get("htlc_min_msat")) is not None:
            self.htlc_min[e] = htlc_min
        if (htlc_max := change.get("htlc_max_msat")) is not None:
            self.htlc_max[e] = htlc_max
        if (enabled := change.get("enabled")) is not None:
            self.enabled[e] = enabled
        self._update_ts[e] = self._update_ts.get(e, self.epoch_s) + 1

    def channel_update(self, e: int) -> ChannelUpdate:
        """The current policy of row ``e`` as a ``channel_update``."""
        return ChannelUpdate(
            scid=self.graph.scid[e],
            direction=self.dir[e],
            fee_base_msat=self.fee_base[e],
            fee_ppm=self.fee_ppm[e],
            cltv_delta=self.cltv[e],
            htlc_min_msat=self.htlc_min[e],
            htlc_max_msat=self.htlc_max[e],
            disabled=not self.enabled[e],
            timestamp=self._update_ts.get(e, self.epoch_s),
        )

    # -- what a node sees of its own channels -----------------------------------------------

    def local_channels(self, me: int) -> list[LocalChannel]:
        """Node index ``me``'s channels as ``listpeerchannels`` shows them, exactly.

        ``spendable_msat`` is our side minus our HTLCs in flight. A channel
        whose direction *from* us is missing from the graph cannot be used by
        ``sendpay`` and shows ``spendable_msat`` 0.
        """
        g = self.graph
        chans: dict[int, None] = {}
        for e in np.flatnonzero((g.src == me) | (g.dst == me)).tolist():
            chans.setdefault(self.chan_of_row[e], None)
        out: list[LocalChannel] = []
        for c in chans:
            rows = [e for e in self.chan_rows[c] if e >= 0]
            e_out = next((e for e in rows if self.src[e] == me), None)
            e_in = next((e for e in rows if self.dst[e] == me), None)
            if e_out is not None:
                d = self.dir[e_out]
                peer = self.dst[e_out]
            elif e_in is not None:
                d = 1 - self.dir[e_in]
                peer = self.src[e_in]
            else:  # pragma: no cover - every channel found has a row touching us
                continue
            spendable = self.side(c, d) - self.locked[e_out] if e_out is not None else 0
            receivable = self.side(c, 1 - d) - (self.locked[e_in] if e_in is not None else 0)
            any_row = rows[0]
            out.append(
                LocalChannel(
                    peer_id=g.nodes[peer],
                    scid=g.scid[any_row],
                    direction=d,
                    state="CHANNELD_NORMAL",
                    peer_connected=self.enabled[e_out] if e_out is not None else True,
                    spendable_msat=spendable,
                    receivable_msat=receivable,
                    capacity_msat=self.cap[c],
                    private=bool(g.private[any_row]),
                    htlc_min_msat=self.htlc_min[e_out] if e_out is not None else 0,
                    htlc_max_msat=self.htlc_max[e_out] if e_out is not None else None,
                    max_accepted_htlcs=(
                        self.max_htlcs[e_in] if e_in is not None else DEFAULT_MAX_HTLCS
                    ),
                    htlcs_out=self.htlcs[e_out] if e_out is not None else 0,
                )
            )
        return out
