"""Onion payments on the simulated network (keysend, BOLT 12): what the simulator models.

The simulator does not do Sphinx: its ``createonion`` packs the hops'
payloads in the clear (:func:`pack_onion`), and its ``injectpaymentonion``
reads the recipient's payload back and forwards the part along the Barq
route it is given, as ``sendpay`` would:

* a keysend payload (the preimage record) makes the payee create an
  invoice for the hash on the spot, as CLN's ``keysend`` plugin does
  (:meth:`barq.sim.invoices.Invoices.add_keysend`);
* a blinded tail is modelled as a one-hop blinded path whose introduction
  node is the payee: the route's last hop (the blinded edge) is dropped
  and the part is delivered to the introduction node, which must have
  issued an invoice of the hash (the test's "BOLT 12 invoice");
* a clear final payload is a plain payment (``payment_data`` when set).
"""

from __future__ import annotations

import hashlib
import json

import msgspec

from barq.model import Route
from barq.onion import KEYSEND_PREIMAGE, HopPayload, decode_payload
from barq.onion.blinded import BLINDED_SCID_BLOCK

__all__ = [
    "FinalPayload",
    "cleartext_route",
    "final_of",
    "pack_onion",
    "secrets_of",
    "unpack_onion",
]


class FinalPayload(msgspec.Struct, frozen=True, kw_only=True):
    """What the simulator reads of the last payload of an onion."""

    payload: HopPayload
    blinded: bool

    @property
    def keysend_preimage(self) -> bytes | None:
        return self.payload.custom_records.get(KEYSEND_PREIMAGE)


def pack_onion(hops: list[dict[str, str]]) -> str:
    """The simulator's "onion": the hops as JSON, hex-encoded (nothing is encrypted)."""
    return json.dumps(hops, sort_keys=True).encode().hex()


def unpack_onion(onion: str) -> list[dict[str, str]]:
    """Inverse of :func:`pack_onion`.

    Raises:
        ValueError: not an onion of this simulator.
    """
    hops = json.loads(bytes.fromhex(onion))
    if not isinstance(hops, list) or not hops:
        raise ValueError("simulated onion without hops")
    return hops


def secrets_of(hops: list[dict[str, str]]) -> tuple[str, ...]:
    """Stand-in shared secrets (one per hop; the simulator reports failures in the clear)."""
    return tuple(hashlib.sha256(h["pubkey"].encode()).hexdigest() for h in hops)


def final_of(hops: list[dict[str, str]]) -> FinalPayload:
    """The recipient's payload (the last hop; a blinded tail's last blinded hop)."""
    payload = decode_payload(bytes.fromhex(hops[-1]["payload"]))
    return FinalPayload(payload=payload, blinded=payload.encrypted_recipient_data is not None)


def cleartext_route(route: Route, final: FinalPayload) -> Route:
    """The route the simulated HTLCs take: a blinded route stops at its introduction node.

    Raises:
        ValueError: a blinded route with nothing before its edge (the payer is the
            introduction node: not modelled).
    """
    if not final.blinded:
        return route
    clear = route.hops[:-1]
    if not clear or clear[0].channel.startswith(f"{BLINDED_SCID_BLOCK}x"):
        # nothing before the edge, or only the lead edge of barq.onion.blinded
        raise ValueError("simulator: a blinded path starting at the payer is not modelled")
    return Route(hops=clear, probability=route.probability)
