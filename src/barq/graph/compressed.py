"""Load ``GOSSMAP_COMPRESSv1`` graph snapshots (Core Lightning ``devtools/gossmap-compress``).

The format (see ``../shared/data/README.md``) is a gzip stream of BOLT
``bigsize`` numbers after the header ``"GOSSMAP_COMPRESSv1\\0"``::

    {n} {node1}*n {node2}*n                 channel ends (node indexes)
    {chan*2+dir}* {>= 2n}                   disabled directions, then a terminator
    {k} {sat}*k {idx}*n                     capacities (satoshi), templated
    {k} {v}*k {idx}*2n  x 5                 htlc_min, htlc_max, base fee, ppm, delay
                                            (channel 0 dir 0, channel 0 dir 1, ...)

``htlc_max`` 0 means the capacity and 1 means 99 % of it, in msat
(``capacity_msat * 99 // 100``; CLN's own decompressor substitutes satoshi
there, a bug we do not copy). A file must be consumed exactly.

Direction semantics (read this before comparing numbers). The compressor
(``write_bidir_perchan``, the disabled list) indexes the per-direction values
by gossmap's ``half[dir]``, i.e. by the BOLT 7 direction: slot ``dir`` 0 is the
update of the endpoint with the *smaller public key*, whichever end the file
lists first (the file lists the end with more channels first). So:

* with the node map (real public keys), direction ``d`` of channel ``i`` goes
  from the smaller pubkey when ``d == 0``: exactly the BOLT rule and the
  model's convention. Evidence on the 2024-09-22 snapshot: the share of a
  node's outgoing enabled half-channels that carry the node's most common
  cltv delta is 0.91 this way against 0.66 when slot 0 is read as file
  ``node1 -> node2`` (fees show the same), as expected from per-node configs;
* without it, the real keys are unknown and slot 0 is read as file ``node1 ->
  node2`` (what the README and CLN's decompressor do). Synthetic ids increase
  with the node index and the compressor always writes ``node1 < node2``, so
  direction 0 still goes from the smaller id.

The README's largest strongly connected component (13,134 nodes) is the
second reading; with real keys it is 12,739. The other README counts and
medians do not depend on it.

Synthetic short channel ids are the ones CLN's decompressor writes:
``f"{i + node1}x{node2}x{i & 0xFFFF}"`` (block heights below 80k on mainnet, before
Lightning existed, so they never collide with a real channel overlaid later).
"""

from __future__ import annotations

import hashlib
import lzma
import re
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from barq.errors import GraphLoadError
from barq.graph._graph import Graph
from barq.graph._io import StrPath, gunzip, read_bytes
from barq.model import NodeId, Scid

__all__ = [
    "GC_HEADER",
    "default_node_map_path",
    "load_compressed",
    "parse_bigsizes",
    "read_node_map",
    "synthetic_node_id",
]

GC_HEADER = b"GOSSMAP_COMPRESSv1\0"

_U64 = npt.NDArray[np.uint64]
_I64 = npt.NDArray[np.int64]
_INT64_MAX = np.iinfo(np.int64).max

_NODE_LINE = re.compile(r"(\d+):((?:02|03)[0-9a-f]{64}):")


class _Corrupt(Exception):
    """Internal: a decoding problem; the public functions add the path."""


def parse_bigsizes(buf: bytes, start: int = 0) -> _U64:
    """Decode ``buf[start:]`` as a sequence of BOLT ``bigsize`` numbers (vectorised).

    Each byte ``>= 0xfd`` may start a 3/5/9-byte number; which of them really
    do is a chain (each value's start depends on the previous lengths). The
    chain is resolved among those candidate bytes only, by pointer doubling,
    so the cost is O(N + C log C) numpy work for N bytes with C candidates
    (~30 ms for the 1.3 MB mainnet snapshot against ~100 ms for a Python loop).

    Returns:
        the values (uint64), in order.

    Raises:
        ValueError: the last number is cut short, or a number is not
            minimally encoded (as CLN's ``bigsize_get`` rejects).
    """
    a = np.frombuffer(buf, dtype=np.uint8)
    size = len(a)
    if start >= size:
        return np.zeros(0, dtype=np.uint64)
    cand = np.flatnonzero(a[start:] >= 0xFD) + start
    ncand = len(cand)
    if ncand:
        extra = np.int64(2) << (a[cand].astype(np.int64) - 0xFD)  # payload: 2, 4 or 8
        after = cand + 1 + extra
        # nxt[c]: the first candidate a value starting at candidate c can reach
        nxt = np.empty(ncand + 1, dtype=np.int64)
        nxt[:ncand] = np.searchsorted(cand, after)
        nxt[ncand] = ncand  # sentinel
        # Everything before the first candidate is single-byte values, so the
        # chain reaches candidate 0. reach <- reach | jump(reach), jump <- jump∘jump.
        reach = np.zeros(ncand + 1, dtype=np.bool_)
        reach[0] = True
        jump = nxt
        span = 1
        while span <= ncand:
            reach[jump[reach]] = True
            jump = jump[jump]
            span *= 2
        starts_mb = cand[reach[:ncand]]
        ends_mb = after[reach[:ncand]]
        if len(ends_mb) and ends_mb[-1] > size:
            raise ValueError(
                f"truncated: the last number (at byte {int(starts_mb[-1])}) is cut short"
            )
        inside = np.zeros(size + 1, dtype=np.int64)
        inside[starts_mb + 1] = 1  # payload starts and ends are all distinct
        inside[ends_mb] -= 1
        is_start = np.cumsum(inside[:size]) == 0
    else:
        is_start = np.ones(size, dtype=np.bool_)
    is_start[:start] = False
    starts = np.flatnonzero(is_start)
    first = a[starts]
    vals = first.astype(np.uint64)
    for prefix, width, minimum in ((0xFD, 2, 0xFD), (0xFE, 4, 0x10000), (0xFF, 8, 1 << 32)):
        sel = np.flatnonzero(first == prefix)
        if not len(sel):
            continue
        pos = starts[sel]
        v = np.zeros(len(sel), dtype=np.uint64)
        for j in range(1, width + 1):
            v = (v << np.uint64(8)) | a[pos + j].astype(np.uint64)
        bad = np.flatnonzero(v < np.uint64(minimum))
        if len(bad):
            raise ValueError(f"non-minimal bigsize at byte {int(pos[bad[0]])}")
        vals[sel] = v
    return vals


def synthetic_node_id(index: int) -> NodeId:
    """A stable 66-hex id for node ``index``: ``"02" + index (8 hex) + sha256 tail``.

    The ids increase with the index (so the BOLT "smaller id first" rule follows
    the file's ``node1 < node2``); they are not valid curve points.
    """
    tail = hashlib.sha256(index.to_bytes(8, "big")).hexdigest()[:56]
    return NodeId(f"02{index:08x}{tail}")


def default_node_map_path(path: StrPath) -> Path:
    """``X.compressed`` -> ``X-node-map.xz`` (the name CLN's test data uses)."""
    p = Path(path)
    stem = p.stem if p.suffix else p.name
    return p.with_name(f"{stem}-node-map.xz")


def read_node_map(path: StrPath) -> dict[int, NodeId]:
    """Parse an ``INDEX:PUBKEY_HEX:ALIAS`` node map (xz, gzip or plain text).

    A line that does not start with ``INDEX:PUBKEY:`` continues the previous
    alias (aliases are free text) and is ignored.

    Raises:
        GraphLoadError: unreadable/corrupt file, an index given twice, no entry.
    """
    raw = read_bytes(path)
    if raw.startswith(b"\xfd7zXZ\x00"):
        try:
            raw = lzma.decompress(raw)
        except lzma.LZMAError as e:
            raise GraphLoadError(f"{path}: corrupt or truncated xz data: {e}") from None
    else:
        raw = gunzip(raw, path)
    text = raw.decode("utf-8", errors="replace")
    out: dict[int, NodeId] = {}
    for m in _NODE_LINE.finditer(text):
        # finditer also matches mid-line; only accept matches at a line start
        s = m.start()
        if s and text[s - 1] != "\n":
            continue
        idx = int(m.group(1))
        if idx in out:
            raise GraphLoadError(f"{path}: node index {idx} appears twice")
        out[idx] = NodeId(m.group(2))
    if not out:
        raise GraphLoadError(f"{path}: no INDEX:PUBKEY:ALIAS line found")
    return out


class _Reader:
    """Walks the decoded value array section by section, checking bounds."""

    def __init__(self, vals: _U64) -> None:
        self.vals = vals
        self.pos = 0

    def take(self, count: int, what: str) -> _U64:
        if count < 0 or self.pos + count > len(self.vals):
            raise _Corrupt(
                f"truncated in {what}: needs {count} numbers at #{self.pos}, "
                f"file has {len(self.vals)}"
            )
        out = self.vals[self.pos : self.pos + count]
        self.pos += count
        return out

    def one(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def templated(self, count: int, what: str) -> _U64:
        k = self.one(f"{what} count")
        if k > len(self.vals):
            raise _Corrupt(f"{what}: template count {k} is larger than the file")
        template = self.take(k, f"{what} values")
        idx = self.take(count, f"{what} indexes")
        if count and (k == 0 or int(idx.max()) >= k):
            raise _Corrupt(
                f"{what}: index {int(idx.max()) if count else 0} outside the {k} template values"
            )
        return template[idx.astype(np.int64)]


def _to_i64(v: _U64) -> _I64:
    return np.minimum(v, np.uint64(_INT64_MAX)).astype(np.int64)


def _decode(data: bytes) -> tuple[_I64, _I64, npt.NDArray[np.bool_], _I64, dict[str, _I64]]:
    if not data.startswith(GC_HEADER):
        raise _Corrupt("bad magic: not a GOSSMAP_COMPRESSv1 file")
    try:
        vals = parse_bigsizes(data, len(GC_HEADER))
    except ValueError as e:
        raise _Corrupt(str(e)) from None
    r = _Reader(vals)
    n = r.one("channel count")
    if 2 * n > len(vals):
        raise _Corrupt(f"channel count {n} is larger than the file")
    node1 = _to_i64(r.take(n, "channel node1 indexes"))
    node2 = _to_i64(r.take(n, "channel node2 indexes"))
    rest = vals[r.pos :]
    term = np.flatnonzero(rest >= np.uint64(2 * n))
    if not len(term):
        raise _Corrupt("truncated in the disabled list: no terminator")
    disabled = _to_i64(r.take(int(term[0]), "disabled list"))
    r.take(1, "disabled list terminator")
    capacity_sat = r.templated(n, "capacities")
    fields = {
        name: r.templated(2 * n, name)
        for name in ("htlc_min", "htlc_max", "base_fee", "ppm", "delay")
    }
    if r.pos != len(vals):
        raise _Corrupt(f"{len(vals) - r.pos} trailing numbers after the delays section")
    enabled = np.ones(2 * n, dtype=np.bool_)
    enabled[disabled] = False
    # capacity_msat and the htlc_max specials, in exact integer arithmetic
    cap_sat = np.minimum(capacity_sat, np.uint64(_INT64_MAX // 1000)).astype(np.int64)
    cap_msat = np.repeat(cap_sat * 1000, 2)
    hmax_raw = fields.pop("htlc_max")
    hmax = np.where(
        hmax_raw == 0,
        cap_msat,
        np.where(
            hmax_raw == 1, cap_msat // 100 * 99 + cap_msat % 100 * 99 // 100, _to_i64(hmax_raw)
        ),
    )
    out = {name: _to_i64(v) for name, v in fields.items()}
    out["htlc_max"] = np.minimum(hmax, cap_msat)
    out["capacity_msat"] = cap_msat
    return node1, node2, enabled, cap_sat, out


def load_compressed(path: StrPath, *, node_map: StrPath | Literal["auto"] | None = "auto") -> Graph:
    """Build the graph of a ``GOSSMAP_COMPRESSv1`` file (gzip or plain).

    Args:
        path: the snapshot.
        node_map: ``INDEX:PUBKEY:ALIAS`` file giving the real node ids;
            ``"auto"`` uses :func:`default_node_map_path` when that file
            exists, ``None`` always uses :func:`synthetic_node_id`.

    Returns:
        a graph with one row per channel direction (``2 * n`` rows, channel
        ``i`` direction ``d`` at row ``2 * i + d``), disabled directions
        included with ``enabled=False``; nodes are all indexes ``0 ..
        max_index`` in order (node index == file index); see the module
        docstring for direction semantics and synthetic scids.

    Raises:
        GraphLoadError: missing/unreadable file, bad gzip, bad magic,
            truncation, an out-of-range template index, trailing bytes, a node
            index missing from the node map; the message names the file.
    """
    data = gunzip(read_bytes(path), path)
    try:
        node1, node2, enabled, _cap_sat, f = _decode(data)
    except _Corrupt as e:
        raise GraphLoadError(f"{path}: {e}") from None
    except (ValueError, IndexError, OverflowError) as e:  # defensive: never leak these
        raise GraphLoadError(f"{path}: malformed GOSSMAP_COMPRESSv1 data: {e}") from None
    n = len(node1)
    num_nodes = int(max(node1.max(initial=-1), node2.max(initial=-1))) + 1
    if num_nodes > 2 * n:  # every node has a channel: indexes are 0 .. (<= 2n) - 1
        raise GraphLoadError(f"{path}: node index {num_nodes - 1} out of range for {n} channels")

    map_path: StrPath | None
    if isinstance(node_map, str) and node_map == "auto":
        candidate = default_node_map_path(path)
        map_path = candidate if candidate.is_file() else None
    else:
        map_path = node_map
    if map_path is not None:
        ids = read_node_map(map_path)
        missing = [i for i in range(num_nodes) if i not in ids]
        if missing:
            raise GraphLoadError(
                f"{map_path}: no node id for index {missing[0]} "
                f"({len(missing)} missing) used by {path}"
            )
        nodes = [ids[i] for i in range(num_nodes)]
        rank = np.empty(num_nodes, dtype=np.int64)
        rank[np.argsort(np.array(nodes))] = np.arange(num_nodes)
        lo_first = rank[node1] < rank[node2]
    else:
        nodes = [synthetic_node_id(i) for i in range(num_nodes)]
        lo_first = node1 <= node2
    lo = np.where(lo_first, node1, node2)
    hi = np.where(lo_first, node2, node1)
    src = np.empty(2 * n, dtype=np.int32)
    dst = np.empty(2 * n, dtype=np.int32)
    src[0::2] = lo
    src[1::2] = hi
    dst[0::2] = hi
    dst[1::2] = lo

    chan = np.arange(n, dtype=np.int64)
    blocks = (chan + node1).tolist()
    txs = node2.tolist()
    outs = (chan & 0xFFFF).tolist()
    scids = [Scid(f"{b}x{t}x{o}") for b, t, o in zip(blocks, txs, outs, strict=True)]
    if n > 0xFFFF and len(set(scids)) != n:
        raise GraphLoadError(
            f"{path}: synthetic short channel ids collide ({n} channels); cannot number them"
        )
    return Graph(
        nodes=nodes,
        scid=[s for s in scids for _ in (0, 1)],
        direction=np.tile(np.array([0, 1], dtype=np.int8), n),
        src=src,
        dst=dst,
        capacity_msat=f["capacity_msat"],
        fee_base_msat=f["base_fee"],
        fee_ppm=f["ppm"],
        cltv_delta=f["delay"],
        htlc_min_msat=f["htlc_min"],
        htlc_max_msat=f["htlc_max"],
        enabled=enabled,
    )
