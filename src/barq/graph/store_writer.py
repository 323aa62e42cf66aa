"""Write ``gossip_store`` files: fixtures for tests, benchmarks and simulations.

The records are the ones lightningd's gossipd writes (``common/gossip_store.h``,
``common/gossip_store_wire.csv``, BOLT 7): a version byte, then records of a
12-byte header (``flags``, ``len``, ``crc``, ``timestamp``, big-endian) and a
message that starts with its u16 type. Signatures, chain hash and bitcoin keys
are zero bytes: no reader of a local store verifies them.

Only the writer lives here; :mod:`barq.graph.gossip_store` reads.

Example::

    w = GossipStoreWriter()
    w.add_channel("103x1x0", node_a, node_b, capacity_sat=1_000_000)
    w.add_update("103x1x0", 0, fee_base_msat=1000, fee_ppm=10, cltv_delta=6)
    path.write_bytes(w.getvalue())
"""

from __future__ import annotations

import struct

from barq.model import NodeId, Scid, scid_to_u64

scid_to_int = scid_to_u64  # exported name kept; the codec lives in barq.model

__all__ = [
    "CHANNEL_ANNOUNCEMENT",
    "CHANNEL_UPDATE",
    "FLAG_COMPLETED",
    "FLAG_DELETED",
    "FLAG_DYING",
    "GOSSIP_STORE_VERSION",
    "NODE_ANNOUNCEMENT",
    "STORE_CHANNEL_AMOUNT",
    "STORE_CHAN_DYING",
    "STORE_DELETE_CHAN",
    "STORE_ENDED",
    "STORE_PRIVATE_CHANNEL",
    "STORE_PRIVATE_UPDATE",
    "STORE_UUID",
    "GossipStoreWriter",
    "crc32c",
    "encode_channel_amount",
    "encode_channel_announcement",
    "encode_channel_update",
    "encode_node_announcement",
    "scid_to_int",
]

GOSSIP_STORE_VERSION = 0x10  # major 0, minor 16 (Core Lightning 24.x .. 26.x)

FLAG_DELETED = 0x8000
FLAG_COMPLETED = 0x2000
FLAG_DYING = 0x0800

CHANNEL_ANNOUNCEMENT = 256
NODE_ANNOUNCEMENT = 257
CHANNEL_UPDATE = 258
STORE_CHANNEL_AMOUNT = 4101
STORE_PRIVATE_UPDATE = 4102  # obsolete since v24.02, still read
STORE_DELETE_CHAN = 4103
STORE_PRIVATE_CHANNEL = 4104  # obsolete since v24.02, still read
STORE_ENDED = 4105
STORE_CHAN_DYING = 4106
STORE_UUID = 4107

_ZERO_SIG = bytes(64)
_ZERO_HASH = bytes(32)
_ZERO_POINT = b"\x02" + bytes(32)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(seed: int, data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data`` continuing from ``seed`` (ccan's ``crc32c``).

    gossipd seeds it with the record's timestamp. Pure Python: about 10 MB/s.
    """
    crc = seed ^ 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _node(node_id: NodeId) -> bytes:
    raw = bytes.fromhex(node_id)
    if len(raw) != 33:
        raise ValueError(f"not a 33-byte node id: {node_id!r}")
    return raw


def encode_channel_announcement(
    scid: Scid, node_id_1: NodeId, node_id_2: NodeId, *, features: bytes = b""
) -> bytes:
    """BOLT 7 ``channel_announcement`` (type 256) with zero signatures.

    ``node_id_1`` must be the smaller id (BOLT 7); this function does not reorder.
    """
    return b"".join(
        (
            struct.pack(">H", CHANNEL_ANNOUNCEMENT),
            _ZERO_SIG * 4,
            struct.pack(">H", len(features)),
            features,
            _ZERO_HASH,
            struct.pack(">Q", scid_to_int(scid)),
            _node(node_id_1),
            _node(node_id_2),
            _ZERO_POINT,
            _ZERO_POINT,
        )
    )


def encode_channel_amount(capacity_sat: int) -> bytes:
    """``gossip_store_channel_amount`` (4101): follows every channel announcement."""
    return struct.pack(">HQ", STORE_CHANNEL_AMOUNT, capacity_sat)


def encode_channel_update(
    scid: Scid,
    direction: int,
    *,
    fee_base_msat: int = 1000,
    fee_ppm: int = 1,
    cltv_delta: int = 40,
    htlc_min_msat: int = 1000,
    htlc_max_msat: int = 0,
    disabled: bool = False,
    timestamp: int = 0,
) -> bytes:
    """BOLT 7 ``channel_update`` (type 258); ``channel_flags`` bit 0 direction, bit 1 disable."""
    channel_flags = (direction & 1) | (2 if disabled else 0)
    return b"".join(
        (
            struct.pack(">H", CHANNEL_UPDATE),
            _ZERO_SIG,
            _ZERO_HASH,
            struct.pack(
                ">QIBBHQIIQ",
                scid_to_int(scid),
                timestamp,
                1,
                channel_flags,
                cltv_delta,
                htlc_min_msat,
                fee_base_msat,
                fee_ppm,
                htlc_max_msat,
            ),
        )
    )


def encode_node_announcement(node_id: NodeId, *, alias: str = "", timestamp: int = 0) -> bytes:
    """BOLT 7 ``node_announcement`` (type 257), no features, no addresses."""
    alias_b = alias.encode()[:32].ljust(32, b"\0")
    return b"".join(
        (
            struct.pack(">H", NODE_ANNOUNCEMENT),
            _ZERO_SIG,
            struct.pack(">H", 0),
            struct.pack(">I", timestamp),
            _node(node_id),
            b"\x00\x00\x00",
            alias_b,
            struct.pack(">H", 0),
        )
    )


class GossipStoreWriter:
    """Builds a ``gossip_store`` image in memory (``getvalue()``).

    Args:
        version: the first byte (``0x10`` for Core Lightning 24.x - 26.x).
        checksums: compute each record's CRC-32C as gossipd does; turn off to
            build big stores fast (no Python reader checks them).
    """

    def __init__(self, *, version: int = GOSSIP_STORE_VERSION, checksums: bool = True) -> None:
        self._buf = bytearray([version])
        self._checksums = checksums
        self._capacity_sat: dict[Scid, int] = {}

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def record(self, msg: bytes, *, flags: int = FLAG_COMPLETED, timestamp: int = 0) -> int:
        """Append one record; returns its offset (of the header)."""
        off = len(self._buf)
        crc = crc32c(timestamp, msg) if self._checksums else 0
        self._buf += struct.pack(">HHII", flags, len(msg), crc, timestamp)
        self._buf += msg
        return off

    def add_uuid(self, uuid: bytes = bytes(32)) -> None:
        """The ``gossip_store_uuid`` record gossipd writes first."""
        self.record(struct.pack(">H", STORE_UUID) + uuid)

    def add_channel(
        self,
        scid: Scid,
        node_a: NodeId,
        node_b: NodeId,
        *,
        capacity_sat: int,
        flags: int = FLAG_COMPLETED,
    ) -> None:
        """``channel_announcement`` + ``channel_amount``; the ends are put in BOLT order."""
        n1, n2 = sorted((node_a, node_b))
        self._capacity_sat[scid] = capacity_sat
        self.record(encode_channel_announcement(scid, n1, n2), flags=flags)
        self.record(encode_channel_amount(capacity_sat), flags=flags & ~FLAG_DYING)

    def add_private_channel(
        self, scid: Scid, node_a: NodeId, node_b: NodeId, *, capacity_sat: int
    ) -> None:
        """Obsolete ``gossip_store_private_channel`` (4104) record (pre-24.02 stores)."""
        n1, n2 = sorted((node_a, node_b))
        self._capacity_sat[scid] = capacity_sat
        ann = encode_channel_announcement(scid, n1, n2)
        self.record(struct.pack(">HQH", STORE_PRIVATE_CHANNEL, capacity_sat, len(ann)) + ann)

    def add_update(
        self,
        scid: Scid,
        direction: int,
        *,
        fee_base_msat: int = 1000,
        fee_ppm: int = 1,
        cltv_delta: int = 40,
        htlc_min_msat: int = 1000,
        htlc_max_msat: int | None = None,
        disabled: bool = False,
        timestamp: int = 0,
        private: bool = False,
        flags: int = FLAG_COMPLETED,
    ) -> None:
        """A ``channel_update`` (see :func:`encode_channel_update`); ``private`` wraps
        it in the obsolete ``gossip_store_private_update`` (4102) record.
        ``htlc_max_msat`` defaults to the capacity given to :meth:`add_channel` (else 0)."""
        if htlc_max_msat is None:
            htlc_max_msat = self._capacity_sat.get(scid, 0) * 1000
        upd = encode_channel_update(
            scid,
            direction,
            fee_base_msat=fee_base_msat,
            fee_ppm=fee_ppm,
            cltv_delta=cltv_delta,
            htlc_min_msat=htlc_min_msat,
            htlc_max_msat=htlc_max_msat,
            disabled=disabled,
            timestamp=timestamp,
        )
        if private:
            upd = struct.pack(">HH", STORE_PRIVATE_UPDATE, len(upd)) + upd
        self.record(upd, flags=flags, timestamp=timestamp)

    def add_node(self, node_id: NodeId, *, alias: str = "") -> None:
        self.record(encode_node_announcement(node_id, alias=alias))

    def add_delete(self, scid: Scid) -> None:
        """``gossip_store_delete_chan`` (4103)."""
        self.record(struct.pack(">HQ", STORE_DELETE_CHAN, scid_to_int(scid)))

    def add_dying(self, scid: Scid, blockheight: int) -> None:
        """``gossip_store_chan_dying`` (4106)."""
        self.record(struct.pack(">HQI", STORE_CHAN_DYING, scid_to_int(scid), blockheight))

    def add_ended(self, equivalent_offset: int = 0, uuid: bytes = bytes(32)) -> None:
        """``gossip_store_ended`` (4105): lightningd rewrote the store to a new file."""
        self.record(struct.pack(">HQ", STORE_ENDED, equivalent_offset) + uuid)
