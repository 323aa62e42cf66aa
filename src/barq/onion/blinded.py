"""BOLT 12 blinded paths, and the one-edge model a strategy routes across.

An invoice (``lni1…``) lists blinded paths to the payee, each with a
``blinded_payinfo`` that aggregates the path's fees, CLTV delta and HTLC
limits (BOLT 4 "Route Blinding", BOLT 12 ``invoice_blindedpay``). The sender
sees one path as one channel from the *introduction node* to the payee:

* fee: exactly BOLT 7's, on the amount the payee receives ``d``:
  ``fee = fee_base_msat + floor(d * fee_proportional_millionths / 1e6)``, so
  the introduction node must receive ``d + fee``. This is what CLN does
  (``amount_msat_add_fee`` in ``plugins/pay.c``; xpay's askrene fake
  channel, ``add_blindedpath``) and what the BOLT 4 test vector
  ``blinded-payment-onion-test.json`` encodes (100000 msat -> 110125 msat
  with base 10100, 251 ppm). The recipient rounds its aggregate *up*
  (BOLT 4 ``total_fee_*`` formulas), so flooring here is enough.
* CLTV: ``cltv_expiry_delta`` on top of the final blinded hop's
  ``outgoing_cltv_value``, which BOLT 4 pins to the current block height
  (plus any shadow offset): the payee's final delta is inside the aggregate.
* the payer as introduction node (CLN builds such a path when the payee's
  only channel is with us, ``find_best_peer`` in
  ``plugins/offers_invreq_hook.c``): ``injectpaymentonion`` peels the
  onion's first layer as if we had received it, so the route to the
  introduction node is empty and that first layer is the path's own
  (``encrypted_recipient_data`` + ``current_path_key``), as in xpay. A
  strategy charges no fee on the payer's own edges, so the path's edge then
  leaves a pseudo node (:func:`payer_introduction`) reached from the payer
  by a free, zero-delay *lead* edge: the route is ``[lead, path]``, its
  fee and CLTV are the payinfo's, and :func:`barq.onion.build_onion` drops
  the lead hop (it is the payer itself);
* limits: ``htlc_minimum_msat`` is checked on the delivered amount and
  ``htlc_maximum_msat`` on the amount entering the path (fees included):
  the tighter reading of each, so both interpretations in the wild (CLN
  sets them from its channel to the payee; LDK documents them "including
  fees") accept every amount this model allows.

Nothing here does I/O; :func:`paths_from_decode` reads CLN's ``decode``
JSON (``invoice_paths``), whose signature lightningd has already checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from barq.model import (
    Hop,
    NodeId,
    Scid,
    ScidDir,
    direction_of,
    fee_msat,
    is_node_id,
    scid_dir,
)

__all__ = [
    "BLINDED_DESTINATION",
    "BLINDED_SCID_BLOCK",
    "BlindedEdge",
    "BlindedHop",
    "BlindedPath",
    "BlindedPayinfo",
    "blinded_edge",
    "lead_scid",
    "paths_from_decode",
    "payer_introduction",
]

BLINDED_SCID_BLOCK = 0
"""Block height of the synthetic scid naming path ``i`` (``0x0x{i}``): no real
channel was ever mined in block 0, so it cannot collide with gossip (xpay does
the same, ``scid.u64 = blindedpath_num``)."""


BLINDED_DESTINATION = NodeId("02" + "00" * 31 + "01")
"""The pseudo node every blinded edge leads to (xpay's ``fakenode``, a point
nobody holds the key of). Routing to it, rather than to ``invoice_node_id``,
keeps a path whose introduction node *is* the payee an ordinary edge, and
forbids reaching the payee any other way than through one of its paths."""


#: the output index bit that names the lead edge of path ``i`` (``0x{tx}x{LEAD_BIT | i}``)
_LEAD_BIT = 0x8000


def payer_introduction(index: int) -> NodeId:
    """The pseudo node standing for the payer as introduction node of path ``index``.

    Like :data:`BLINDED_DESTINATION` a point nobody holds the key of; it only
    exists in the routing graph of the payment (the onion is keyed with the
    payer's real id).
    """
    return NodeId("02" + "00" * 30 + f"{index + 2:04x}")


def lead_scid(scid: Scid) -> Scid:
    """The synthetic channel of the lead edge of the path named ``scid`` (same block 0 and
    transaction, output ``0x8000 | index``)."""
    block, tx, out = scid.split("x")
    return Scid(f"{block}x{tx}x{_LEAD_BIT | int(out)}")


class BlindedHop(msgspec.Struct, frozen=True, kw_only=True):
    """One hop of a blinded path: its blinded key and the data only it can read."""

    blinded_node_id: NodeId
    encrypted_recipient_data: bytes


class BlindedPath(msgspec.Struct, frozen=True, kw_only=True):
    """A BOLT 4 ``blinded_path``.

    ``first_node_id`` is the introduction node; an invoice may name it by a
    channel end instead (``first_scid_dir``), which the payer must resolve
    from its graph (:meth:`with_first_node`) before routing. ``hops[0]`` is
    the introduction node itself (its ``blinded_node_id`` is unused: the
    sender keys the onion with the real ``first_node_id``), the last hop is
    the payee.
    """

    first_path_key: bytes
    hops: tuple[BlindedHop, ...]
    first_node_id: NodeId | None = None
    first_scid_dir: ScidDir | None = None

    def with_first_node(self, node_id: NodeId) -> BlindedPath:
        """This path with its introduction node resolved to ``node_id``.

        Raises:
            ValueError: ``node_id`` is not a node id.
        """
        if not is_node_id(node_id):
            raise ValueError(f"not a node id: {node_id!r}")
        return msgspec.structs.replace(self, first_node_id=node_id)


class BlindedPayinfo(msgspec.Struct, frozen=True, kw_only=True):
    """BOLT 12 ``blinded_payinfo``: the aggregate policy of one blinded path."""

    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    htlc_maximum_msat: int
    features: bytes = b""

    def fee_msat(self, deliver_msat: int) -> int:
        """Fee the path charges for delivering ``deliver_msat`` to the payee (floored)."""
        return fee_msat(deliver_msat, self.fee_base_msat, self.fee_proportional_millionths)

    def amount_in_msat(self, deliver_msat: int) -> int:
        """What the introduction node must receive so the payee gets ``deliver_msat``."""
        return deliver_msat + self.fee_msat(deliver_msat)

    def max_deliverable_msat(self, amount_in_msat: int) -> int:
        """The largest ``d`` with ``amount_in_msat(d) <= amount_in_msat`` (-1 if none).

        ``amount_in_msat`` grows by at least 1 per msat delivered, so the
        answer is unique; it is found from the real-valued inverse and then
        corrected by the exact floor formula.
        """
        budget = amount_in_msat - self.fee_base_msat
        if budget < 0:
            return -1
        d = budget * 1_000_000 // (1_000_000 + self.fee_proportional_millionths)
        while self.amount_in_msat(d + 1) <= amount_in_msat:
            d += 1
        while d >= 0 and self.amount_in_msat(d) > amount_in_msat:
            d -= 1
        return d

    def unknown_even_feature(self, known: frozenset[int] = frozenset()) -> int | None:
        """The lowest even feature bit set that is not in ``known`` (BOLT 12: such a
        path MUST NOT be used), or ``None``."""
        bits = int.from_bytes(self.features, "big") if self.features else 0
        bit = 0
        while bits >> bit:
            if (bits >> bit) & 1 and bit % 2 == 0 and bit not in known:
                return bit
            bit += 1
        return None


class BlindedEdge(msgspec.Struct, frozen=True, kw_only=True):
    """One blinded path seen as a channel ``source -> destination`` (delivered amounts).

    ``source`` is the introduction node (or, when the payer is the
    introduction node, ``via_payer``, the pseudo node
    :func:`payer_introduction` that the lead edge :attr:`lead_scid` reaches
    from the payer), ``destination`` is :data:`BLINDED_DESTINATION` (the same
    for every path of every invoice); ``scid`` is synthetic (``0x0x{index}``,
    see :data:`BLINDED_SCID_BLOCK`).
    A strategy can route over it as over a half-channel with fee
    ``fee_base_msat``/``fee_ppm``, ``cltv_delta``, and
    ``htlc_min_msat <= delivered <= htlc_max_msat``; a route to
    ``BLINDED_DESTINATION`` whose last hop is this edge is what
    :func:`barq.onion.build_onion` turns into a blinded onion.
    """

    index: int
    scid: Scid
    direction: int
    source: NodeId
    destination: NodeId
    fee_base_msat: int
    fee_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int
    path: BlindedPath
    payinfo: BlindedPayinfo
    via_payer: bool = False

    @property
    def scid_dir(self) -> ScidDir:
        return scid_dir(self.scid, self.direction)

    @property
    def introduction(self) -> NodeId:
        """The real introduction node (the onion's key for the path's first layer)."""
        node = self.path.first_node_id
        assert node is not None  # blinded_edge() refuses an unresolved path
        return node

    @property
    def lead_scid(self) -> Scid:
        """The lead edge's channel (payer -> :attr:`source`), meaningful when ``via_payer``."""
        return lead_scid(self.scid)

    @property
    def lead_direction(self) -> int:
        return direction_of(self.introduction, self.source)

    def fee_msat(self, deliver_msat: int) -> int:
        """Fee for delivering ``deliver_msat`` over this path."""
        return self.payinfo.fee_msat(deliver_msat)

    def amount_in_msat(self, deliver_msat: int) -> int:
        """What the introduction node must receive to deliver ``deliver_msat``."""
        return self.payinfo.amount_in_msat(deliver_msat)

    def accepts(self, deliver_msat: int) -> bool:
        """Whether this path can carry a part delivering ``deliver_msat``."""
        return self.htlc_min_msat <= deliver_msat <= self.htlc_max_msat

    def hop(self, deliver_msat: int, delay: int = 0) -> Hop:
        """This edge as a route's last hop (``sendpay`` shape).

        Args:
            deliver_msat: what the payee receives.
            delay: the final blinded hop's CLTV offset above the block height
                (0, or a shadow-route offset).
        """
        return Hop(
            id=self.destination,
            channel=self.scid,
            direction=self.direction,
            amount_msat=deliver_msat,
            delay=delay,
        )


def blinded_edge(
    index: int, path: BlindedPath, payinfo: BlindedPayinfo, *, payer: NodeId | None = None
) -> BlindedEdge:
    """The edge a strategy routes across for path ``index`` of an invoice.

    Args:
        index: the path's position in ``invoice_paths`` (names the scid).
        path: the path, with ``first_node_id`` resolved (it may be the payer
            itself, a direct peer, or the payee).
        payinfo: its ``blinded_payinfo``.
        payer: our node id: a path whose introduction node it is leaves
            :func:`payer_introduction` (``via_payer``; see the module doc).

    Returns:
        The edge to :data:`BLINDED_DESTINATION`; ``htlc_max_msat`` is the
        largest amount the payee can receive so that amount plus fee stays
        within ``htlc_maximum_msat``, ``htlc_min_msat`` at least 1.

    Raises:
        ValueError: an index outside 0..32767, the introduction node unresolved, or a
            payinfo whose limits leave no deliverable amount.
    """
    if not 0 <= index < _LEAD_BIT:
        raise ValueError(f"path index {index} outside 0..{_LEAD_BIT - 1}")
    source = path.first_node_id
    if source is None:
        raise ValueError(f"blinded path {index}: introduction node not resolved")
    hi = payinfo.max_deliverable_msat(payinfo.htlc_maximum_msat)
    lo = max(payinfo.htlc_minimum_msat, 1)
    if hi < lo:
        raise ValueError(
            f"blinded path {index}: htlc_maximum_msat {payinfo.htlc_maximum_msat} leaves "
            f"nothing above htlc_minimum_msat {payinfo.htlc_minimum_msat} after fees"
        )
    via_payer = payer is not None and source == payer
    if via_payer:
        source = payer_introduction(index)
    return BlindedEdge(
        index=index,
        scid=Scid(f"{BLINDED_SCID_BLOCK}x0x{index}"),
        direction=direction_of(source, BLINDED_DESTINATION),
        source=source,
        destination=BLINDED_DESTINATION,
        fee_base_msat=payinfo.fee_base_msat,
        fee_ppm=payinfo.fee_proportional_millionths,
        cltv_delta=payinfo.cltv_expiry_delta,
        htlc_min_msat=lo,
        htlc_max_msat=hi,
        path=path,
        payinfo=payinfo,
        via_payer=via_payer,
    )


# --------------------------------------------------------------------------- decode JSON


class _Payinfo(msgspec.Struct):
    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    htlc_maximum_msat: int
    features: str = ""


class _PathHop(msgspec.Struct):
    blinded_node_id: NodeId
    encrypted_recipient_data: str


class _Path(msgspec.Struct):
    first_path_key: str
    payinfo: _Payinfo
    path: list[_PathHop]
    first_node_id: NodeId | None = None
    first_scid: Scid | None = None
    first_scid_dir: int | None = None


def _hex(i: int, name: str, value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"invoice_paths[{i}]: {name} is not hex: {value!r}") from None


def _path_of(i: int, p: _Path) -> tuple[BlindedPath, BlindedPayinfo]:
    if not p.path:
        raise ValueError(f"invoice_paths[{i}] has no hops")
    if p.first_node_id is not None and not is_node_id(p.first_node_id):
        raise ValueError(f"invoice_paths[{i}]: first_node_id is not a node id")
    if p.first_node_id is None and (p.first_scid is None or p.first_scid_dir not in (0, 1)):
        raise ValueError(f"invoice_paths[{i}] has neither first_node_id nor first_scid/dir")
    path_key = _hex(i, "first_path_key", p.first_path_key)
    if len(path_key) != 33 or path_key[0] not in (2, 3):
        raise ValueError(f"invoice_paths[{i}]: first_path_key is not a compressed point")
    path = BlindedPath(
        first_path_key=path_key,
        hops=tuple(
            BlindedHop(
                blinded_node_id=h.blinded_node_id,
                encrypted_recipient_data=_hex(
                    i, "encrypted_recipient_data", h.encrypted_recipient_data
                ),
            )
            for h in p.path
        ),
        first_node_id=p.first_node_id,
        first_scid_dir=(
            scid_dir(p.first_scid, p.first_scid_dir)
            if p.first_scid is not None and p.first_scid_dir is not None
            else None
        ),
    )
    info = BlindedPayinfo(
        fee_base_msat=p.payinfo.fee_base_msat,
        fee_proportional_millionths=p.payinfo.fee_proportional_millionths,
        cltv_expiry_delta=p.payinfo.cltv_expiry_delta,
        htlc_minimum_msat=p.payinfo.htlc_minimum_msat,
        htlc_maximum_msat=p.payinfo.htlc_maximum_msat,
        features=_hex(i, "features", p.payinfo.features),
    )
    return path, info


def paths_from_decode(decoded: Mapping[str, Any]) -> list[tuple[BlindedPath, BlindedPayinfo]]:
    """The blinded paths of CLN's ``decode`` answer for a ``bolt12 invoice``.

    Args:
        decoded: the ``decode`` result; ``type`` must be ``"bolt12 invoice"``
            and ``valid`` true (lightningd checked the signature and the
            one-payinfo-per-path rule).

    Returns:
        ``(path, payinfo)`` in the invoice's order (BOLT 12: earlier is
        preferred). A path named by ``first_scid``/``first_scid_dir`` keeps
        ``first_node_id`` ``None`` until resolved.

    Raises:
        ValueError: not a valid bolt12 invoice, no ``invoice_paths``, a path
            without hops or without a start, or malformed fields (the
            message names the path).
    """
    if decoded.get("type") != "bolt12 invoice" or decoded.get("valid") is not True:
        raise ValueError(f"not a valid bolt12 invoice: type={decoded.get('type')!r}")
    raw = decoded.get("invoice_paths")
    if not raw:
        raise ValueError("bolt12 invoice without invoice_paths")
    try:
        paths = msgspec.convert(raw, list[_Path])
    except msgspec.ValidationError as exc:
        raise ValueError(f"malformed invoice_paths: {exc}") from None
    return [_path_of(i, p) for i, p in enumerate(paths)]
