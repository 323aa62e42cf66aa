"""``load_graph``: any supported graph file, recognised by its content."""

from __future__ import annotations

from pathlib import Path

from barq.errors import GraphLoadError
from barq.graph._graph import Graph
from barq.graph._io import StrPath, peek
from barq.graph.compressed import GC_HEADER, load_compressed
from barq.graph.gossip_store import load_gossip_store
from barq.graph.listchannels import load_listchannels

__all__ = ["load_graph", "sniff_format"]

_JSON_WS = b" \t\r\n"


def sniff_format(path: StrPath) -> str:
    """``"compressed"``, ``"listchannels"`` or ``"gossip_store"``, from the first bytes.

    * ``GOSSMAP_COMPRESSv1\\0`` (after gzip decompression if gzipped) -> compressed;
    * a JSON object (``{`` after optional whitespace, gzipped or not), or a
      ``.json``/``.json.gz`` name -> listchannels;
    * a first byte with major version 0 (``< 0x20``) -> gossip_store (its
      loader checks the version further).

    Raises:
        GraphLoadError: ``"<path>: no such file"``, unreadable, or none of the above.
    """
    p = Path(path)
    head = peek(p, 256)
    if head.startswith(GC_HEADER):
        return "compressed"
    if head.lstrip(_JSON_WS).startswith(b"{"):
        return "listchannels"
    name = p.name.lower()
    if name.endswith((".json", ".json.gz")):
        return "listchannels"
    if head and head[0] < 0x20 and not head.startswith(b"\x1f\x8b"):
        return "gossip_store"
    if not head:
        raise GraphLoadError(f"{p}: empty file")
    raise GraphLoadError(
        f"{p}: unknown graph format (not a gossip_store, "
        f"GOSSMAP_COMPRESSv1 or listchannels JSON file)"
    )


def load_graph(path: StrPath) -> Graph:
    """Load a ``gossip_store``, ``GOSSMAP_COMPRESSv1`` or ``listchannels`` file.

    Dispatches on :func:`sniff_format` to :func:`load_gossip_store`,
    :func:`load_compressed` (its default node map: the sibling
    ``-node-map.xz`` when present) or :func:`load_listchannels`.

    Raises:
        GraphLoadError: missing file (``"<path>: no such file"``), unknown
            format, or whatever the chosen loader reports.
    """
    fmt = sniff_format(path)
    if fmt == "compressed":
        return load_compressed(path)
    if fmt == "listchannels":
        return load_listchannels(path)
    return load_gossip_store(path)
