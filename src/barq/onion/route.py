"""A Barq route (``sendpay`` shape) -> the hop list ``createonion`` takes.

:func:`build_onion` writes one BOLT 4 payload per node the onion visits:

* with ``payer`` given (for ``injectpaymentonion``, which unwraps the first
  layer itself, as xpay uses it), the onion starts at the payer's own node,
  whose payload names its outgoing channel; without it (for ``sendonion``)
  the onion starts at the first peer;
* each forwarding node outside a blinded path gets ``short_channel_id``,
  ``amt_to_forward`` and ``outgoing_cltv_value`` of the next hop;
* a route ``[lead, path]`` (the payer is the path's introduction node, see
  :mod:`barq.onion.blinded`) has no forwarding payload: the onion starts
  with the path's first layer, for the payer itself;
* the recipient gets a :class:`ClearFinal` payload (bolt11 ``payment_data``,
  ``payment_metadata``, keysend/custom records), or, for a route ending
  with a :class:`~barq.onion.blinded.BlindedEdge`, the blinded tail: the
  introduction node and every blinded hop get their
  ``encrypted_recipient_data``, the introduction node the path's
  ``current_path_key``, and only the last blinded hop the amount, CLTV and
  ``total_amount_msat``.

``Hop.delay`` is relative to the block height, so every absolute CLTV is
``blockheight + delay``; pass the height to build on (xpay uses the current
height + 1, so a block found meanwhile does not make the HTLC too close).
For a blinded tail the route's last hop is the edge itself (to
:data:`~barq.onion.blinded.BLINDED_DESTINATION`): its ``amount_msat`` is what
the payee gets and its ``delay`` the final blinded hop's CLTV offset (0, or a
shadow offset), as BOLT 4 asks ("MUST use the current block height as a
baseline value").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from barq.model import Hop, NodeId, PartId, PaymentHash, Route
from barq.onion.blinded import BlindedEdge
from barq.onion.payload import blinded_payload, final_payload, forward_payload

__all__ = [
    "HMAC_SIZE",
    "ONION_PAYLOADS_SIZE",
    "BlindedFinal",
    "ClearFinal",
    "OnionHop",
    "OnionPlan",
    "OnionTooLarge",
    "build_onion",
    "createonion_params",
    "injectpaymentonion_params",
]

ONION_PAYLOADS_SIZE = 1300
"""BOLT 4 ``hop_payloads`` size of a payment onion."""
HMAC_SIZE = 32


class OnionTooLarge(ValueError):
    """The payloads do not fit in the 1300-byte ``hop_payloads``."""


class OnionHop(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``createonion``'s ``hops``: the key to encrypt for and its payload.

    ``payload`` carries its BigSize length prefix, as ``createonion`` requires.
    """

    pubkey: NodeId
    payload: bytes

    def to_json(self) -> dict[str, str]:
        return {"pubkey": self.pubkey, "payload": self.payload.hex()}


class ClearFinal(msgspec.Struct, frozen=True, kw_only=True):
    """The recipient's payload data when the route reaches it in the clear.

    ``payment_secret``/``payment_metadata`` come from a bolt11 invoice;
    ``total_msat`` is the whole payment (defaults to this part's amount, and
    needs ``payment_secret`` when larger); ``custom_records`` (types >=
    65536) carry e.g. keysend's preimage (:func:`barq.onion.keysend_final`).
    """

    payment_secret: bytes | None = None
    total_msat: int | None = None
    payment_metadata: bytes | None = None
    custom_records: dict[int, bytes] = {}


class BlindedFinal(msgspec.Struct, frozen=True, kw_only=True):
    """The route ends with ``edge`` (a BOLT 12 blinded path); ``total_msat`` is
    the whole payment (``total_amount_msat`` in the final blinded payload)."""

    edge: BlindedEdge
    total_msat: int


class OnionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`build_onion` made, and what the sending RPC needs with it.

    Attributes:
        hops: ``createonion``'s ``hops`` (see :func:`createonion_params`).
        payer_included: ``hops[0]`` is the payer (``injectpaymentonion``).
        first_amount_msat: the first HTLC's amount (what leaves the payer):
            ``injectpaymentonion``'s ``amount_msat``, ``sendonion``'s
            ``first_hop.amount_msat``.
        first_delay: the first HTLC's CLTV relative to ``blockheight``
            (``sendonion``'s ``first_hop.delay``).
        first_cltv_expiry: ``blockheight + first_delay``
            (``injectpaymentonion``'s ``cltv_expiry``).
        first_peer: the peer the first HTLC goes to (``None`` when the payer
            is itself the introduction node of the blinded path).
        delivered_msat: what the recipient gets (``destination_msat``).
        introduction_index: position in ``hops`` of the blinded path's
            introduction node (errors from inside the path come from there as
            ``invalid_onion_blinding``); ``None`` without a blinded tail.
    """

    hops: tuple[OnionHop, ...]
    payer_included: bool
    first_amount_msat: int
    first_delay: int
    first_cltv_expiry: int
    first_peer: NodeId | None
    delivered_msat: int
    introduction_index: int | None = None

    @property
    def payloads_size(self) -> int:
        """Bytes of ``hop_payloads`` used (each payload plus its 32-byte HMAC)."""
        return sum(len(h.payload) + HMAC_SIZE for h in self.hops)


def _check_hops(route: Route) -> None:
    route.check()  # non-empty, amounts and delays never growing along the path
    for h in route.hops:
        if h.amount_msat <= 0:
            raise ValueError(f"hop over {h.channel} carries a non-positive amount")


def _forwards(payer: NodeId | None, hops: Sequence[Hop], blockheight: int) -> list[OnionHop]:
    """Forwarding payloads: the payer (if given) over ``hops[0]``, ``hops[i].id`` over
    ``hops[i+1]``; the last node of ``hops`` (recipient or introduction node) gets none."""
    senders = ([payer] if payer is not None else []) + [h.id for h in hops]
    nexts = list(hops) if payer is not None else list(hops[1:])
    return [
        OnionHop(
            pubkey=node,
            payload=forward_payload(
                short_channel_id=nxt.channel,
                amt_to_forward=nxt.amount_msat,
                outgoing_cltv=blockheight + nxt.delay,
            ),
        )
        for node, nxt in zip(senders, nexts, strict=False)
    ]


def _blinded_tail(
    final: BlindedFinal, virtual: Hop, blockheight: int, introduction: NodeId
) -> list[OnionHop]:
    path = final.edge.path
    out: list[OnionHop] = []
    last = len(path.hops) - 1
    for i, bh in enumerate(path.hops):
        is_final = i == last
        out.append(
            OnionHop(
                pubkey=introduction if i == 0 else bh.blinded_node_id,
                payload=blinded_payload(
                    encrypted_recipient_data=bh.encrypted_recipient_data,
                    path_key=path.first_path_key if i == 0 else None,
                    amt_to_forward=virtual.amount_msat if is_final else None,
                    outgoing_cltv=blockheight + virtual.delay if is_final else None,
                    total_amount_msat=final.total_msat if is_final else None,
                ),
            )
        )
    return out


def _split_blinded(
    route: Route, final: BlindedFinal, payer: NodeId | None
) -> tuple[tuple[Hop, ...], Hop, int, int]:
    """(clear hops up to the introduction node, the edge hop, amount in, delay in).

    For a path starting at the payer the route is ``[lead, edge]``: no clear
    hop, and what enters the path is the lead hop's amount and delay (the
    route's own ``sent_msat`` and ``delay``, at least the payinfo's).
    """
    edge = final.edge
    hops = route.hops
    if not hops or hops[-1].channel != edge.scid or hops[-1].id != edge.destination:
        raise ValueError(f"route must end with the blinded edge {edge.scid} to its destination")
    virtual, clear = hops[-1], hops[:-1]
    if edge.via_payer:
        # [lead, path]: the lead hop is the payer itself (see barq.onion.blinded)
        if len(clear) != 1 or clear[0].channel != edge.lead_scid or clear[0].id != edge.source:
            raise ValueError(
                f"a path starting at the payer is reached over its lead {edge.lead_scid} only"
            )
        if payer != edge.introduction:
            raise ValueError(
                "a path starting at the payer needs payer= that node (injectpaymentonion)"
            )
    if not edge.accepts(virtual.amount_msat):
        raise ValueError(
            f"blinded path {edge.scid} carries {edge.htlc_min_msat}..{edge.htlc_max_msat} msat, "
            f"not {virtual.amount_msat}"
        )
    amount_in = edge.amount_in_msat(virtual.amount_msat)
    delay_in = virtual.delay + edge.cltv_delta
    if clear:
        entry = clear[-1]
        if entry.id != edge.source:
            raise ValueError(f"route reaches {entry.id}, not the introduction node {edge.source}")
        if entry.amount_msat < amount_in or entry.delay < delay_in:
            raise ValueError(
                f"introduction node gets {entry.amount_msat} msat/{entry.delay} blocks; the path "
                f"needs {amount_in} msat/{delay_in} blocks to deliver {virtual.amount_msat} msat"
            )
    elif payer != edge.source:
        raise ValueError(
            "a route of only the blinded edge starts at its introduction node: "
            "pass payer= that node (injectpaymentonion)"
        )
    if edge.via_payer:
        return (), virtual, clear[0].amount_msat, clear[0].delay
    return clear, virtual, amount_in, delay_in


def build_onion(
    route: Route,
    final: ClearFinal | BlindedFinal,
    *,
    blockheight: int,
    payer: NodeId | None = None,
) -> OnionPlan:
    """Every hop payload of one part, in onion order.

    Args:
        route: the part's route in ``sendpay`` shape; for a
            :class:`BlindedFinal` its last hop is the blinded edge.
        final: the recipient's data (clear) or the blinded path (BOLT 12).
        blockheight: base of every absolute CLTV (e.g. current height + 1).
        payer: our node id to start the onion at ourselves
            (``injectpaymentonion``); ``None`` for ``sendonion``.

    Returns:
        The :class:`OnionPlan`.

    Raises:
        ValueError: an empty route, amounts/delays growing along it, a
            non-positive amount, a route not ending with the blinded edge or
            not reaching its introduction node with enough amount/CLTV, an
            amount outside the path's HTLC limits, a payer-only blinded route
            without ``payer``, or a bad final field.
        OnionTooLarge: the payloads exceed 1300 bytes.
    """
    _check_hops(route)
    intro_index: int | None = None
    if isinstance(final, BlindedFinal):
        clear, virtual, amount_in, delay_in = _split_blinded(route, final, payer)
        hops = _forwards(payer, clear, blockheight)
        intro_index = len(hops)
        hops += _blinded_tail(final, virtual, blockheight, final.edge.introduction)
        delivered = virtual.amount_msat
        first_amount, first_delay = (
            (clear[0].amount_msat, clear[0].delay) if clear else (amount_in, delay_in)
        )
        first_peer = clear[0].id if clear else None
    else:
        last = route.hops[-1]
        hops = _forwards(payer, route.hops, blockheight)
        hops.append(
            OnionHop(
                pubkey=last.id,
                payload=final_payload(
                    amt_to_forward=last.amount_msat,
                    outgoing_cltv=blockheight + last.delay,
                    payment_secret=final.payment_secret,
                    total_msat=final.total_msat,
                    payment_metadata=final.payment_metadata,
                    custom_records=final.custom_records,
                ),
            )
        )
        delivered = last.amount_msat
        first_amount, first_delay = route.hops[0].amount_msat, route.hops[0].delay
        first_peer = route.hops[0].id
    plan = OnionPlan(
        hops=tuple(hops),
        payer_included=payer is not None,
        first_amount_msat=first_amount,
        first_delay=first_delay,
        first_cltv_expiry=blockheight + first_delay,
        first_peer=first_peer,
        delivered_msat=delivered,
        introduction_index=intro_index,
    )
    if plan.payloads_size > ONION_PAYLOADS_SIZE:
        raise OnionTooLarge(
            f"payloads need {plan.payloads_size} bytes, the onion holds {ONION_PAYLOADS_SIZE}"
        )
    return plan


def createonion_params(
    plan: OnionPlan, payment_hash: PaymentHash, *, session_key: str | None = None
) -> dict[str, Any]:
    """``createonion``'s parameters: the hops, and the payment hash as ``assocdata``.

    ``session_key`` is for tests only (deterministic onions); leave it out
    and lightningd picks a random one.
    """
    params: dict[str, Any] = {"hops": [h.to_json() for h in plan.hops], "assocdata": payment_hash}
    if session_key is not None:
        params["session_key"] = session_key
    return params


def injectpaymentonion_params(
    plan: OnionPlan,
    *,
    onion: str,
    payment_hash: PaymentHash,
    partid: PartId,
    groupid: int,
    invstring: str | None = None,
    destination: NodeId | None = None,
    label: str | None = None,
    localinvreqid: str | None = None,
) -> dict[str, Any]:
    """``injectpaymentonion``'s parameters for an onion built with ``payer``.

    Args:
        plan: from :func:`build_onion` with ``payer`` set.
        onion: ``createonion``'s ``onion`` (hex).
        payment_hash: the payment hash the onion commits to.
        partid: this part's id, non-zero (lightningd refuses 0).
        groupid: the payment group.
        invstring: the bolt11/bolt12 string (shown by ``listsendpays``).
        destination: the node ``listsendpays`` should show (keysend, or a
            bolt12 ``invoice_node_id``; lightningd reads it from
            ``invstring`` otherwise).
        label: free text for ``listsendpays``.
        localinvreqid: links the payment to a local ``invoice_request``.

    Raises:
        ValueError: the plan does not start at the payer, or ``partid`` is 0.
    """
    if not plan.payer_included:
        raise ValueError("injectpaymentonion needs an onion built with payer=")
    if partid <= 0:
        raise ValueError(f"injectpaymentonion needs a non-zero partid, got {partid}")
    params: dict[str, Any] = {
        "onion": onion,
        "payment_hash": payment_hash,
        "amount_msat": plan.first_amount_msat,
        "cltv_expiry": plan.first_cltv_expiry,
        "partid": partid,
        "groupid": groupid,
        "destination_msat": plan.delivered_msat,
    }
    optional = {
        "invstring": invstring,
        "destination": destination,
        "label": label,
        "localinvreqid": localinvreqid,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params
