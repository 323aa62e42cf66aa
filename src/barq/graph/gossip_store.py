"""Load lightningd's ``gossip_store`` file.

Why not ``pyln.client.gossmap.Gossmap``: it reads v26.06 stores correctly (the
tests use it as an oracle on generated stores) but

* it never records the capacity of the obsolete private-channel record
  (4104: ``satoshis`` stays ``None``), and its ``reopen_store`` is an
  ``assert False`` (raised when lightningd rewrote the store and appended
  ``gossip_store_ended``), which ``python -O`` would silently skip;
* on a mainnet-sized store (59k channels, 107k updates, 44 MB) it takes
  1.9 s and 280 MB of Python objects that we would only convert to arrays;
  this reader takes 0.3 s, 38 MB for the result and a 110 MB peak of which
  44 MB is the file (``benchmarks/bench_graph.py`` measures both);
* it cannot tell a record still being written from a truncated file.

So we walk the records ourselves, with the semantics of Core Lightning's own
``common/gossmap.c`` (v26.06), and parse the fixed-layout ``channel_update``
fields of all records at once with numpy:

* version byte: major 0 (top 3 bits) and minor >= 15 (the first with the
  ``completed`` flag; lightningd upgrades older stores when it starts);
* a record without ``completed`` (0x2000) is still being written: stop there,
  as gossmap does; a completed record cut short by the end of the file means
  the file is truncated (error);
* ``deleted`` (0x8000) records are skipped; CRCs are not checked (gossmap
  only checks them as a sanity test when it has an mmap);
* ``dying`` (0x0800, a closed channel kept 12 blocks for splices) is ignored:
  gossmap keeps routing over dying channels of other nodes (askrene only
  disables our own, which :func:`barq.graph.overlay_local_channels` does from
  the channel state);
* a channel is loaded only with its capacity (``gossip_store_channel_amount``
  4101 after the announcement), a duplicate announcement keeps the first;
  ``channel_update`` for an unknown channel is dropped; the last update of a
  direction wins; ``gossip_store_delete_chan`` (4103) removes a channel;
* the obsolete private records (4104 channel with its capacity, 4102 update,
  removed from stores in v24.02) are read and marked ``private``;
* ``gossip_store_ended`` (4105): lightningd rewrote the store into a new file
  at the same path; if the path now names another file we start over on it,
  otherwise we keep what we read (every record before it is complete).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from barq.errors import GraphLoadError
from barq.graph._graph import Graph
from barq.graph._io import StrPath
from barq.graph.store_writer import (
    CHANNEL_ANNOUNCEMENT,
    CHANNEL_UPDATE,
    FLAG_COMPLETED,
    FLAG_DELETED,
    STORE_CHANNEL_AMOUNT,
    STORE_DELETE_CHAN,
    STORE_ENDED,
    STORE_PRIVATE_CHANNEL,
    STORE_PRIVATE_UPDATE,
)
from barq.model import NodeId, scid_from_u64

__all__ = ["load_gossip_store"]

_HDR = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_MIN_MINOR_VERSION = 15
# channel_update after its type: signature 64, chain_hash 32, then
# scid 8, timestamp 4, message_flags 1, channel_flags 1, cltv 2, htlc_min 8,
# fee_base 4, fee_ppm 4, htlc_max 8
_UPDATE_LEN = 2 + 64 + 32 + 8 + 4 + 1 + 1 + 2 + 8 + 4 + 4 + 8
_MAX_REOPEN = 5
_INT64_MAX = np.iinfo(np.int64).max


class _Corrupt(Exception):
    """Internal: what is wrong, without the path."""


class _Channel:
    __slots__ = ("ann_off", "capacity_sat", "node1", "node2", "private")

    def __init__(self, node1: bytes, node2: bytes, ann_off: int, private: bool) -> None:
        self.node1 = node1
        self.node2 = node2
        self.ann_off = ann_off
        self.private = private
        self.capacity_sat: int | None = None


def _be(
    a: npt.NDArray[np.uint8], offs: npt.NDArray[np.int64], width: int
) -> npt.NDArray[np.uint64]:
    """Big-endian unsigned ints of ``width`` bytes at byte offsets ``offs``."""
    v = np.zeros(len(offs), dtype=np.uint64)
    for j in range(width):
        v = (v << np.uint64(8)) | a[offs + j].astype(np.uint64)
    return v


class _Walk:
    """What a walk over the records found (:func:`_walk`).

    Attributes:
        channels: live channels by scid.
        upd_offs: offsets of the ``channel_update`` s (at their type field).
        upd_private: per update, whether it came in an obsolete private record.
        ended: a ``gossip_store_ended`` record stopped the walk.
    """

    __slots__ = ("channels", "ended", "last", "upd_offs", "upd_private")

    def __init__(self) -> None:
        self.channels: dict[int, _Channel] = {}
        self.last: _Channel | None = None  # the channel an amount record belongs to
        self.upd_offs: list[int] = []
        self.upd_private: list[bool] = []
        self.ended = False

    def record(self, data: bytes, typ: int, body: int, length: int, end: int) -> None:
        """Take one record other than a public ``channel_update`` (which :func:`_walk` does)."""
        at = body - 12
        if typ in (CHANNEL_ANNOUNCEMENT, STORE_PRIVATE_CHANNEL):
            self._channel(data, typ == STORE_PRIVATE_CHANNEL, body, length, end)
        elif typ == STORE_CHANNEL_AMOUNT:
            if length < 10:
                raise _Corrupt(f"channel_amount record at offset {at} is too short")
            if self.last is not None and self.last.capacity_sat is None:
                (self.last.capacity_sat,) = _U64.unpack_from(data, body + 2)
        elif typ == STORE_PRIVATE_UPDATE:
            if length < 4 + _UPDATE_LEN:
                raise _Corrupt(f"private update at offset {at} is too short")
            self.upd_offs.append(body + 4)
            self.upd_private.append(True)
        elif typ == STORE_DELETE_CHAN:
            if length < 10:
                raise _Corrupt(f"delete_chan record at offset {at} is too short")
            (scid,) = _U64.unpack_from(data, body + 2)
            gone = self.channels.pop(scid, None)
            if gone is not None and gone is self.last:
                self.last = None
        elif typ == STORE_ENDED:
            self.ended = True
        # node_announcement, chan_dying, uuid and unknown types: nothing for the graph

    def _channel(self, data: bytes, private: bool, body: int, length: int, end: int) -> None:
        """A ``channel_announcement`` (or the obsolete private channel record around one)."""
        ann = body
        cap: int | None = None
        if private:  # type, satoshis u64, len u16, announcement
            if length < 12:
                raise _Corrupt(f"private channel record at offset {body - 12} is too short")
            (cap,) = _U64.unpack_from(data, body + 2)
            ann = body + 12
        # type 2, 4 signatures 256, features len 2 + flen, chain 32, scid 8, ids 33+33
        if ann + 260 > end:
            raise _Corrupt(f"channel_announcement at offset {body - 12} is too short")
        (flen,) = _U16.unpack_from(data, ann + 258)
        p = ann + 260 + flen + 32
        if p + 8 + 66 > end:
            raise _Corrupt(f"channel_announcement at offset {body - 12} is too short")
        (scid,) = _U64.unpack_from(data, p)
        if scid in self.channels:
            self.last = None  # duplicate: gossmap keeps the first one
            return
        self.last = _Channel(data[p + 8 : p + 41], data[p + 41 : p + 74], ann, private)
        self.last.capacity_sat = cap
        self.channels[scid] = self.last


def _check_version(data: bytes) -> None:
    if not data:
        raise _Corrupt("empty file (no version byte)")
    version = data[0]
    if version >> 5 != 0 or version & 0x1F < _MIN_MINOR_VERSION:
        raise _Corrupt(
            f"unsupported gossip_store version 0x{version:02x} "
            f"(need major 0, minor >= {_MIN_MINOR_VERSION})"
        )


def _walk(data: bytes) -> _Walk:
    """Walk the records in file order (the semantics are in the module doc).

    ``channel_update`` records, most of a store, are taken here; the others by
    :meth:`_Walk.record`.
    """
    _check_version(data)
    size = len(data)
    w = _Walk()
    off = 1
    while off < size and not w.ended:
        if data[off] & (FLAG_COMPLETED >> 8) == 0:
            break  # being written (flags are written complete last): stop like gossmap
        if off + 12 > size:
            raise _Corrupt(f"truncated record header at offset {off}")
        flags, length = _HDR.unpack_from(data, off)
        body = off + 12
        end = body + length
        if end > size:
            raise _Corrupt(
                f"truncated record at offset {off}: {length} bytes announced, {size - body} present"
            )
        off = end
        if flags & FLAG_DELETED:
            continue
        if length < 2:
            raise _Corrupt(f"record at offset {body - 12} is too short ({length} bytes)")
        (typ,) = _U16.unpack_from(data, body)
        if typ == CHANNEL_UPDATE:
            if length < _UPDATE_LEN:
                raise _Corrupt(f"channel_update at offset {body - 12} is too short ({length})")
            w.upd_offs.append(body)
            w.upd_private.append(False)
        else:
            w.record(data, typ, body, length, end)
    return w


def _build(data: bytes, w: _Walk) -> Graph:
    upd_offs, upd_private = w.upd_offs, w.upd_private
    live = {s: c for s, c in w.channels.items() if c.capacity_sat is not None}
    a = np.frombuffer(data, dtype=np.uint8)
    offs = np.asarray(upd_offs, dtype=np.int64) + (2 + 64 + 32)  # at the scid
    scid = _be(a, offs, 8)
    chan_flags = a[offs + 13]
    direction = (chan_flags & 1).astype(np.int64)
    # last update per (scid, direction), in file order
    order = np.lexsort((np.arange(len(offs)), direction, scid))
    if len(order):
        ks, kd = scid[order], direction[order]
        is_last = np.ones(len(order), dtype=np.bool_)
        is_last[:-1] = (ks[1:] != ks[:-1]) | (kd[1:] != kd[:-1])
        pick = order[is_last]
    else:
        pick = order
    # keep updates of live channels written after the announcement
    scid_list = scid[pick].tolist()
    keep_rows: list[int] = []
    row_chan: list[_Channel] = []
    for j, s in zip(pick.tolist(), scid_list, strict=True):
        c = live.get(s)
        if c is not None and upd_offs[j] > c.ann_off:
            keep_rows.append(j)
            row_chan.append(c)
    rows = np.asarray(keep_rows, dtype=np.int64)
    ro = offs[rows]
    rdir = direction[rows]

    node_index: dict[bytes, int] = {}
    nodes: list[NodeId] = []

    def idx(n: bytes) -> int:
        i = node_index.get(n)
        if i is None:
            i = node_index[n] = len(nodes)
            nodes.append(NodeId(n.hex()))
        return i

    n1 = np.fromiter((idx(c.node1) for c in row_chan), dtype=np.int32, count=len(row_chan))
    n2 = np.fromiter((idx(c.node2) for c in row_chan), dtype=np.int32, count=len(row_chan))
    cap_msat = np.fromiter(
        (min(c.capacity_sat or 0, _INT64_MAX // 1000) * 1000 for c in row_chan),
        dtype=np.int64,
        count=len(row_chan),
    )
    private = np.fromiter((c.private for c in row_chan), dtype=np.bool_, count=len(row_chan))
    if len(rows):
        private |= np.asarray(upd_private, dtype=np.bool_)[rows]

    def i64(v: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        return np.minimum(v, np.uint64(_INT64_MAX)).astype(np.int64)

    htlc_max = np.minimum(i64(_be(a, ro + 32, 8)), cap_msat)
    return Graph(
        nodes=nodes,
        scid=[scid_from_u64(s) for s in scid[rows].tolist()],
        direction=rdir,
        src=np.where(rdir == 0, n1, n2),
        dst=np.where(rdir == 0, n2, n1),
        capacity_msat=cap_msat,
        fee_base_msat=i64(_be(a, ro + 24, 4)),
        fee_ppm=i64(_be(a, ro + 28, 4)),
        cltv_delta=i64(_be(a, ro + 14, 2)),
        htlc_min_msat=i64(_be(a, ro + 16, 8)),
        htlc_max_msat=htlc_max,
        enabled=(a[ro + 13] & 2) == 0,
        private=private,
    )


def _read(path: Path) -> tuple[bytes, tuple[int, int]]:
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), (st.st_dev, st.st_ino)
    except FileNotFoundError:
        raise GraphLoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GraphLoadError(f"{path}: is a directory, not a gossip_store") from None
    except OSError as e:
        raise GraphLoadError(f"{path}: cannot read: {e.strerror or e}") from None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def load_gossip_store(path: StrPath) -> Graph:
    """Build the graph of lightningd's ``gossip_store`` (see the module docstring).

    Returns:
        one row per channel direction that has a ``channel_update``; capacity
        from the channel's amount record; ``enabled`` is the update's
        ``channel_flags`` bit 1 cleared; ``htlc_max_msat`` capped at the
        capacity; ``private`` for the obsolete private records. Nodes are the
        ends of channels with at least one row.

    Raises:
        GraphLoadError: missing/unreadable file, unsupported version, a
            truncated or malformed record; the message names the file.
    """
    p = Path(path)
    for _ in range(_MAX_REOPEN):
        data, ident = _read(p)
        try:
            w = _walk(data)
            if w.ended and _identity(p) not in (None, ident):
                continue  # lightningd renamed a new store over the path: read that one
            # not replaced (a copy?): every record before the end marker is complete
            return _build(data, w)
        except _Corrupt as e:
            raise GraphLoadError(f"{p}: {e}") from None
        except (ValueError, IndexError, struct.error) as e:  # defensive: never leak these
            raise GraphLoadError(f"{p}: malformed gossip_store: {e}") from None
    raise GraphLoadError(f"{p}: the store was replaced {_MAX_REOPEN} times while reading")
