"""Barq's data model: frozen msgspec Structs with integer msat amounts.

Conventions (as Core Lightning writes them):

* node ids are 66-character lowercase hex compressed public keys (``NodeId``);
* short channel ids are ``BLOCKxTXxOUT`` strings such as ``103x1x0`` (``Scid``);
* a *half-channel* is one direction of a channel: direction 0 goes from the
  lexicographically smaller node id (``node1``) to the larger (``node2``),
  direction 1 the other way; ``ScidDir`` writes it ``103x1x0/1``;
* every amount is an ``int`` of millisatoshi and its name ends in ``_msat``;
  fee rates are ``*_ppm``; CLTV deltas are blocks; durations end in ``_s``.

Nothing in this package does I/O.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, NewType

import msgspec

from barq.model.failcodes import FailCode, failcode_name

__all__ = [
    "ChannelUpdate",
    "FailCode",
    "HalfChannel",
    "Hop",
    "Invoice",
    "LocalChannel",
    "NodeId",
    "NodeInfo",
    "PartId",
    "PartStatus",
    "PaymentHash",
    "Route",
    "RouteFailure",
    "RouteHintHop",
    "RouteInput",
    "Scid",
    "ScidDir",
    "SendpayStatus",
    "direction_of",
    "failcode_name",
    "fee_msat",
    "is_node_id",
    "parse_scid_dir",
    "scid_dir",
    "scid_from_u64",
    "scid_to_u64",
]

NodeId = NewType("NodeId", str)
Scid = NewType("Scid", str)
ScidDir = NewType("ScidDir", str)
PaymentHash = NewType("PaymentHash", str)
PartId = NewType("PartId", int)

_NODE_ID = re.compile(r"0[23][0-9a-f]{64}")


def is_node_id(text: str) -> bool:
    """Whether ``text`` is exactly a node id: 66 lowercase hex characters starting 02 or 03."""
    return _NODE_ID.fullmatch(text) is not None


def scid_dir(scid: Scid, direction: int) -> ScidDir:
    """``("103x1x0", 1)`` -> ``"103x1x0/1"``."""
    return ScidDir(f"{scid}/{direction}")


_SCID = re.compile(r"(\d+)x(\d+)x(\d+)")


def scid_to_u64(scid: str) -> int:
    """``BLOCKxTXxOUT`` -> the BOLT 7 8-byte integer (block 24 bits, tx 24, output 16).

    The one codec of short channel ids (gossip, onion payloads, bolt11 hints, wire messages).

    Raises:
        ValueError: not ``BLOCKxTXxOUT`` or a part out of range.
    """
    m = _SCID.fullmatch(scid)
    if m is None:
        raise ValueError(f"not a short_channel_id: {scid!r}")
    block, tx, out = (int(g) for g in m.groups())
    if block >= 1 << 24 or tx >= 1 << 24 or out >= 1 << 16:
        raise ValueError(f"short_channel_id out of range: {scid!r}")
    return (block << 40) | (tx << 16) | out


def scid_from_u64(value: int) -> Scid:
    """Inverse of :func:`scid_to_u64`."""
    return Scid(f"{value >> 40}x{(value >> 16) & 0xFFFFFF}x{value & 0xFFFF}")


def direction_of(source: NodeId, destination: NodeId) -> int:
    """The direction of the half-channel ``source -> destination`` (BOLT 7).

    Returns:
        0 when ``source`` is the lexicographically smaller id (``node1``), else 1.
    """
    return 0 if source < destination else 1


def parse_scid_dir(text: str) -> tuple[Scid, int]:
    """Inverse of :func:`scid_dir`.

    Raises:
        ValueError: not ``BLOCKxTXxOUT/DIR`` with DIR 0 or 1.
    """
    scid, sep, d = text.partition("/")
    parts = scid.split("x")
    if not sep or d not in ("0", "1") or len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a short_channel_id/direction: {text!r}")
    return Scid(scid), int(d)


def fee_msat(amount_msat: int, base_msat: int, ppm: int) -> int:
    """BOLT 7 forwarding fee for forwarding ``amount_msat``: base + amount*ppm // 1e6."""
    return base_msat + (amount_msat * ppm) // 1_000_000


class HalfChannel(msgspec.Struct, frozen=True, kw_only=True):
    """One direction of a channel as gossip (or our own view) describes it.

    ``capacity_msat`` is the channel's total capacity (both sides).
    ``htlc_max_msat`` is already resolved (never 0 meaning "capacity").
    """

    scid: Scid
    direction: int
    source: NodeId
    destination: NodeId
    capacity_msat: int
    fee_base_msat: int
    fee_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int
    enabled: bool = True
    private: bool = False


class ChannelUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The policy part of a BOLT 7 ``channel_update`` (as carried by UPDATE failures).

    ``signed`` is the message as it came off the wire, without its type and
    starting with the 64-byte signature (``barq.graph.signatures`` checks it);
    empty for updates that never crossed the wire (the simulator, tests).
    """

    scid: Scid
    direction: int
    fee_base_msat: int
    fee_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int | None = None
    disabled: bool = False
    timestamp: int = 0
    signed: bytes = b""


class Hop(msgspec.Struct, frozen=True, kw_only=True):
    """One hop exactly as ``sendpay`` takes it.

    ``id`` is the node this hop reaches over ``channel`` (in ``direction``),
    ``amount_msat`` what that node receives, ``delay`` the CLTV delta (blocks,
    relative to the current height) of the HTLC that node receives.
    """

    id: NodeId
    channel: Scid
    direction: int
    amount_msat: int
    delay: int

    def to_sendpay(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "direction": self.direction,
            "amount_msat": self.amount_msat,
            "delay": self.delay,
            "style": "tlv",
        }


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """A path from the payer to the destination, in ``sendpay`` shape.

    Invariants (checked by :meth:`check`): non-empty; amounts and delays never
    increase along the path. ``probability`` is the strategy's estimate of
    success (``None`` when it made none).
    """

    hops: tuple[Hop, ...]
    probability: float | None = None

    @property
    def amount_msat(self) -> int:
        """What the destination receives."""
        return self.hops[-1].amount_msat

    @property
    def sent_msat(self) -> int:
        """What leaves the payer (amount + fees)."""
        return self.hops[0].amount_msat

    @property
    def fee_msat(self) -> int:
        return self.sent_msat - self.amount_msat

    @property
    def delay(self) -> int:
        """Total CLTV the payer commits to (first hop's delay)."""
        return self.hops[0].delay

    @property
    def destination(self) -> NodeId:
        return self.hops[-1].id

    def channels(self) -> list[ScidDir]:
        return [scid_dir(h.channel, h.direction) for h in self.hops]

    def to_sendpay(self) -> list[dict[str, Any]]:
        return [h.to_sendpay() for h in self.hops]

    def describe(self) -> str:
        """``103x1x0/0 -> 105x1x0/1`` (for logs, notifications and errors)."""
        return " -> ".join(self.channels())

    def check(self) -> None:
        """Raise ``ValueError`` if amounts or delays grow along the path."""
        if not self.hops:
            raise ValueError("empty route")
        for a, b in zip(self.hops, self.hops[1:], strict=False):
            if a.amount_msat < b.amount_msat or a.delay < b.delay:
                raise ValueError(f"route amounts/delays increase along the path: {self}")


class RouteHintHop(msgspec.Struct, frozen=True, kw_only=True):
    """One hop of a bolt11 ``r`` field: ``node_id`` forwards over ``scid`` toward the payee."""

    node_id: NodeId
    scid: Scid
    fee_base_msat: int
    fee_ppm: int
    cltv_delta: int


class RouteInput(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a strategy needs to know of one routing question.

    ``exclude_channels`` hold ``ScidDir`` strings, ``exclude_nodes`` node ids.
    ``maxfee_msat`` bounds the fees of all routes returned together,
    ``maxdelay`` each route's total CLTV (``Route.delay``), ``maxparts`` the
    number of routes returned.
    """

    source: NodeId
    destination: NodeId
    amount_msat: int
    final_cltv: int = 18
    maxfee_msat: int = 5000
    maxdelay: int = 2016
    maxparts: int = 1
    exclude_channels: frozenset[ScidDir] = frozenset()
    exclude_nodes: frozenset[NodeId] = frozenset()
    route_hints: tuple[tuple[RouteHintHop, ...], ...] = ()


class RouteFailure(msgspec.Struct, frozen=True, kw_only=True):
    """Why a part failed, as ``waitsendpay`` reports it (BOLT 4).

    ``erring_index`` is the index of the erring node on the path: 0 is us
    (our own first hop failed), ``len(route)`` is the destination.
    ``erring_channel``/``erring_direction`` name the half-channel *leaving*
    the erring node (the one it could not forward over), when there is one.
    """

    failcode: int
    erring_index: int
    erring_node: NodeId | None = None
    erring_channel: Scid | None = None
    erring_direction: int | None = None
    channel_update: ChannelUpdate | None = None
    message: str = ""

    @property
    def failcodename(self) -> str:
        return failcode_name(self.failcode)

    def code(self) -> FailCode | None:
        try:
            return FailCode(self.failcode)
        except ValueError:
            return None


class NodeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``getinfo``: who we are, which chain, how high."""

    id: NodeId
    network: str
    blockheight: int
    alias: str = ""
    lightning_dir: str | None = None


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded bolt11 invoice (the fields of CLN's ``decode`` that paying needs).

    ``network`` is CLN's chain name (``bitcoin``, ``testnet``, ``signet``,
    ``regtest``); ``amount_msat`` is ``None`` for an amountless invoice;
    ``created_at`` + ``expiry`` is the UNIX second it expires.
    """

    bolt11: str
    payee: NodeId
    payment_hash: PaymentHash
    amount_msat: int | None
    created_at: int
    expiry: int
    min_final_cltv_expiry: int
    network: str
    payment_secret: str | None = None
    description: str | None = None
    description_hash: str | None = None  # hex sha256 of the description (``h`` field)
    route_hints: tuple[tuple[RouteHintHop, ...], ...] = ()
    features: str = ""

    @property
    def expires_at(self) -> int:
        return self.created_at + self.expiry


class LocalChannel(msgspec.Struct, frozen=True, kw_only=True):
    """One of our channels as ``listpeerchannels`` shows it.

    ``direction`` is *our* direction (ours -> peer) when ``scid`` is known.
    ``spendable_msat``/``receivable_msat`` are exact: the payer sees its own
    balances. ``usable`` is true in state ``CHANNELD_NORMAL`` with the peer
    connected. ``fee_*``/``cltv_delta``/``htlc_*`` are the peer's policy for
    forwarding *to us* (unused when paying) or ours toward them.
    """

    peer_id: NodeId
    scid: Scid | None
    direction: int | None
    state: str
    peer_connected: bool
    spendable_msat: int
    receivable_msat: int
    capacity_msat: int
    private: bool = False
    htlc_min_msat: int = 0
    htlc_max_msat: int | None = None
    max_accepted_htlcs: int | None = None
    htlcs_out: int = 0  # HTLCs we offered on it that are still in flight (``htlcs``, "out")
    #: commitment fee each further HTLC of ours adds (channels we opened; 0 otherwise):
    #: ``spendable_msat`` leaves room for one more HTLC's fee, a second part needs this more
    htlc_fee_msat: int = 0

    @property
    def usable(self) -> bool:
        return self.state == "CHANNELD_NORMAL" and self.peer_connected and self.scid is not None


class SendpayStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


class PartStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One part as ``sendpay``/``waitsendpay``/``listsendpays`` report it.

    ``amount_msat`` is what this part delivers, ``amount_sent_msat`` what
    left the payer for it.
    """

    payment_hash: PaymentHash
    partid: PartId
    groupid: int
    status: SendpayStatus
    amount_msat: int
    amount_sent_msat: int
    destination: NodeId | None = None
    created_at: int = 0
    completed_at: int | None = None
    payment_preimage: str | None = None
    bolt11: str | None = None
    label: str | None = None
    id: int | None = None
