"""Load a Core Lightning ``listchannels`` dump (JSON, optionally gzipped, or already parsed).

Field names follow ``doc/schemas/listchannels.json``: one object per channel
direction with ``source``, ``destination``, ``short_channel_id``,
``direction``, ``public``, ``amount_msat`` (capacity), ``active``,
``base_fee_millisatoshi``, ``fee_per_millionth``, ``delay``,
``htlc_minimum_msat`` and the optional ``htlc_maximum_msat`` (missing means
the capacity). Amounts may be integers or the older ``"1000msat"`` strings.
Other fields are ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from barq.errors import GraphLoadError
from barq.graph._graph import Graph
from barq.graph._io import StrPath, gunzip, read_bytes
from barq.model import NodeId, Scid, direction_of, is_node_id

__all__ = ["load_listchannels"]

_SCID = re.compile(r"\d+x\d+x\d+")
_INT64_MAX = 2**63 - 1


class _Channel(msgspec.Struct, kw_only=True):
    source: NodeId
    destination: NodeId
    short_channel_id: Scid
    amount_msat: int | str
    base_fee_millisatoshi: int
    fee_per_millionth: int
    delay: int
    direction: int | None = None
    public: bool = True
    active: bool = True
    htlc_minimum_msat: int | str = 0
    htlc_maximum_msat: int | str | None = None


class _ListChannels(msgspec.Struct):
    channels: list[_Channel]


_decoder = msgspec.json.Decoder(_ListChannels)


class _Bad(Exception):
    pass


def _msat(v: int | str, what: str, i: int) -> int:
    if isinstance(v, int):
        out = v
    elif v.endswith("msat") and v[:-4].isdigit():
        out = int(v[:-4])
    else:
        raise _Bad(f"channels[{i}].{what}: {v!r} is not an msat amount")
    if out < 0:
        raise _Bad(f"channels[{i}].{what}: negative amount {out}")
    return min(out, _INT64_MAX)


def _u32(v: int, what: str, i: int) -> int:
    if not 0 <= v < 2**32:
        raise _Bad(f"channels[{i}].{what}: {v} is not a u32")
    return v


def _build(doc: _ListChannels) -> Graph:
    rows: dict[tuple[Scid, int], int] = {}  # (scid, direction) -> position in doc.channels
    for i, c in enumerate(doc.channels):
        if not _SCID.fullmatch(c.short_channel_id):
            raise _Bad(
                f"channels[{i}].short_channel_id: {c.short_channel_id!r} is not BLOCKxTXxOUT"
            )
        if c.source == c.destination:
            raise _Bad(f"channels[{i}]: source and destination are the same node")
        d = direction_of(c.source, c.destination)
        if c.direction is not None and c.direction != d:
            raise _Bad(
                f"channels[{i}] ({c.short_channel_id}): direction {c.direction} but "
                f"direction {d} goes from the {'smaller' if d == 0 else 'larger'} id"
            )
        rows[(c.short_channel_id, d)] = i  # a later entry replaces an earlier one
    chans = [doc.channels[i] for i in rows.values()]
    nodes: list[NodeId] = []
    index: dict[str, int] = {}

    def idx(n: NodeId) -> int:
        j = index.get(n)
        if j is None:
            if not is_node_id(n):
                raise _Bad(f"{n!r} is not a node id (66 lowercase hex, 02/03)")
            j = index[n] = len(nodes)
            nodes.append(n)
        return j

    pos = list(rows.values())
    cap = [_msat(c.amount_msat, "amount_msat", i) for c, i in zip(chans, pos, strict=True)]
    hmax = [
        cp
        if c.htlc_maximum_msat is None
        else min(_msat(c.htlc_maximum_msat, "htlc_maximum_msat", i), cp)
        for c, i, cp in zip(chans, pos, cap, strict=True)
    ]
    return Graph(
        nodes=nodes,
        scid=[k[0] for k in rows],
        direction=np.array([k[1] for k in rows], dtype=np.int8),
        src=[idx(c.source) for c in chans],
        dst=[idx(c.destination) for c in chans],
        capacity_msat=cap,
        fee_base_msat=[
            _u32(c.base_fee_millisatoshi, "base_fee_millisatoshi", i)
            for c, i in zip(chans, pos, strict=True)
        ],
        fee_ppm=[
            _u32(c.fee_per_millionth, "fee_per_millionth", i)
            for c, i in zip(chans, pos, strict=True)
        ],
        cltv_delta=[_u32(c.delay, "delay", i) for c, i in zip(chans, pos, strict=True)],
        htlc_min_msat=[
            _msat(c.htlc_minimum_msat, "htlc_minimum_msat", i)
            for c, i in zip(chans, pos, strict=True)
        ],
        htlc_max_msat=hmax,
        enabled=[c.active for c in chans],
        private=[not c.public for c in chans],
    )


def load_listchannels(path_or_obj: StrPath | Mapping[str, Any]) -> Graph:
    """Build the graph of a ``listchannels`` result.

    Args:
        path_or_obj: a JSON file (gzip detected by its magic bytes, so
            ``.json.gz`` works), or the already-parsed ``{"channels": [...]}``.

    Returns:
        one row per listed direction (a repeated ``(scid, direction)``: the
        last one wins); ``enabled`` is ``active``, ``private`` is ``not
        public``, ``htlc_max_msat`` defaults to and is capped at the capacity.

    Raises:
        GraphLoadError: missing file, bad gzip/JSON, a missing or mistyped
            field (msgspec's path, e.g. ``$.channels[3].delay``), a
            ``direction`` that contradicts the node id order, a malformed node
            id or scid. The message names the file (or "<listchannels object>").
    """
    if isinstance(path_or_obj, Mapping):
        where = "<listchannels object>"
        try:
            doc = msgspec.convert(path_or_obj, _ListChannels)
        except msgspec.ValidationError as e:
            raise GraphLoadError(f"{where}: not a listchannels result: {e}") from None
    elif isinstance(path_or_obj, str | os.PathLike):
        where = os.fspath(path_or_obj)
        raw = gunzip(read_bytes(path_or_obj), where)
        try:
            doc = _decoder.decode(raw)
        except msgspec.ValidationError as e:
            raise GraphLoadError(f"{where}: not a listchannels result: {e}") from None
        except msgspec.DecodeError as e:
            raise GraphLoadError(f"{where}: invalid JSON: {e}") from None
    else:
        raise GraphLoadError(
            f"load_listchannels: expected a path or a mapping, got {type(path_or_obj).__name__}"
        )
    try:
        return _build(doc)
    except _Bad as e:
        raise GraphLoadError(f"{where}: {e}") from None
