"""Follow lightningd's ``gossip_store`` as it grows: read only what was appended.

lightningd only ever appends to its ``gossip_store`` (records superseded later
get their ``deleted`` flag set in place, which a reader that keeps the last
update per direction can ignore). So after one full load
(:func:`~barq.graph.gossip_store.load_with_walk`) a :class:`GossipStoreReader`
keeps the offset of the first record it has not read, and each
:meth:`~GossipStoreReader.graph` call

* costs one ``stat`` when the file has not grown (the same :class:`Graph`
  object comes back, so callers can tell "nothing changed" by identity);
* reads only the bytes appended since, walks those records with the same
  rules as the full loader, and applies them to the previous graph as a delta
  (:meth:`Graph.with_half_channels` for new channels and policies,
  :meth:`Graph.without_channels` for ``gossip_store_delete_chan``): the graph
  arrays are never written, every refresh is a new read-only graph;
* starts over with a full load when the store was rewritten or compacted:
  another file at the path (device/inode changed), a file shorter than the
  offset read, another version byte, or a ``gossip_store_ended`` record.

A record still being written (no ``completed`` flag) ends the read; it is read
again, complete, next time.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

from barq.graph._graph import Graph
from barq.graph._io import StrPath
from barq.graph.gossip_store import _Corrupt, _Walk, _walk, load_with_walk
from barq.model import HalfChannel, NodeId, scid_from_u64

__all__ = ["GossipStoreReader", "RefreshStats"]

_UPD = struct.Struct(">QIBBHQIIQ")  # scid .. htlc_maximum_msat, after type+signature+chain
_UPD_AT = 2 + 64 + 32
_INT64_MAX = 2**63 - 1


class RefreshStats:
    """What the last :meth:`GossipStoreReader.graph` did (for logs and benchmarks)."""

    __slots__ = ("bytes_read", "full", "records", "rows_changed")

    def __init__(self) -> None:
        self.full = False  # a full load (first read, or the store was rewritten)
        self.bytes_read = 0
        self.records = 0  # channel_update records applied by a delta
        self.rows_changed = 0  # half-channels added or replaced, channels removed


class GossipStoreReader:
    """The graph of a ``gossip_store``, refreshed incrementally (see the module doc).

    Args:
        path: the ``gossip_store`` file.

    Thread-safe: calls from several threads are served one at a time (the
    router may refresh for a payment opening and for a forced refresh at once).
    """

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        self._graph: Graph | None = None
        self._walk = _Walk()
        self._ident: tuple[int, int] = (0, 0)
        self._version = 0
        self.last = RefreshStats()
        self._lock = threading.Lock()

    def graph(self) -> Graph:
        """The store's graph now: the previous one when nothing was appended.

        Raises:
            GraphLoadError: the store is missing, unreadable or corrupt (a
                full load's errors; a delta that does not parse triggers a full load).
        """
        with self._lock:
            return self._refresh()

    def _refresh(self) -> Graph:
        self.last = RefreshStats()
        try:
            st = self.path.stat()
        except OSError:
            return self._full()  # let the loader say what is wrong
        if self._graph is None or (st.st_dev, st.st_ino) != self._ident:
            return self._full()
        if self._walk.ended:
            return self._graph  # an ended store never grows again (another file will come)
        if st.st_size < self._walk.end:
            return self._full()  # shrunk: compacted in place
        if st.st_size == self._walk.end:
            return self._graph
        try:
            return self._delta(self._graph)
        except (_Corrupt, ValueError, IndexError, struct.error, OSError):
            return self._full()

    def _full(self) -> Graph:
        graph, w, ident, version = load_with_walk(self.path)
        self._graph, self._walk, self._ident, self._version = graph, w, ident, version
        w.upd_offs, w.upd_private, w.deleted = [], [], []
        self.last.full = True
        self.last.rows_changed = graph.num_edges
        return graph

    def _delta(self, graph: Graph) -> Graph:
        """Apply the records appended since the last read to ``graph``."""
        w = self._walk
        with self.path.open("rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) != self._ident:
                raise _Corrupt("replaced")
            version = f.read(1)
            if not version or version[0] != self._version:
                raise _Corrupt("version changed")
            f.seek(w.end)
            data = f.read()
        self.last.bytes_read = len(data)
        w.base = w.end
        _walk(data, w, 0)
        if w.ended:  # rewritten: read the new file (or keep this one) in full
            raise _Corrupt("ended")
        halves = self._halves(data, w)
        removed = [scid_from_u64(s) for s in w.deleted if s not in w.channels]
        self.last.records = len(w.upd_offs)
        w.upd_offs, w.upd_private, w.deleted = [], [], []
        if removed:
            graph = graph.without_channels(removed)
        graph = graph.with_half_channels(halves)
        self.last.rows_changed = len(halves) + len(removed)
        self._graph = graph
        return graph

    @staticmethod
    def _halves(data: bytes, w: _Walk) -> list[HalfChannel]:
        """The last update of each direction in the delta, as half-channels (live channels only)."""
        out: dict[tuple[int, int], HalfChannel] = {}
        for rel, private in zip(w.upd_offs, w.upd_private, strict=True):
            scid, _ts, _mflags, cflags, cltv, hmin, fbase, fppm, hmax = _UPD.unpack_from(
                data, rel + _UPD_AT
            )
            c = w.channels.get(scid)
            if c is None or c.capacity_sat is None or w.base + rel <= c.ann_off:
                continue
            d = cflags & 1
            n1, n2 = NodeId(c.node1.hex()), NodeId(c.node2.hex())
            cap = min(c.capacity_sat, _INT64_MAX // 1000) * 1000
            out[(scid, d)] = HalfChannel(
                scid=scid_from_u64(scid),
                direction=d,
                source=n1 if d == 0 else n2,
                destination=n2 if d == 0 else n1,
                capacity_msat=cap,
                fee_base_msat=fbase,
                fee_ppm=fppm,
                cltv_delta=cltv,
                htlc_min_msat=min(hmin, _INT64_MAX),
                htlc_max_msat=min(hmax, cap),
                enabled=not cflags & 2,
                private=c.private or private,
            )
        return list(out.values())
