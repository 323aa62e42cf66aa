"""Keysend: a payment without an invoice, the preimage travelling in the onion.

The sender picks a random preimage, pays to its SHA256, and puts the
preimage in the final payload as record 5482373484
(:data:`~barq.onion.payload.KEYSEND_PREIMAGE`). There is no
``payment_secret``; BOLT 4 then wants ``total_msat == amt_to_forward``, so
:func:`keysend_final` makes one-part payloads. (CLN's receiving ``keysend``
plugin also answers each HTLC on its own: it sets ``total_msat`` to that
HTLC's amount, so a multi-part keysend to a CLN node would settle on the
first part.)

Final CLTV: CLN's ``keysend`` uses 42 (``plugins/keysend.c``, "the
Rust-Lightning default and the highest minimum we know of"), ``xkeysend``
22 (``plugins/xpay/xpay.c``): :data:`KEYSEND_FINAL_CLTV` is 42.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from barq.errors import InvalidParams
from barq.model import PaymentHash
from barq.onion.payload import CUSTOM_RECORD_MIN, KEYSEND_PREIMAGE
from barq.onion.route import ClearFinal

__all__ = [
    "KEYSEND_FINAL_CLTV",
    "keysend_final",
    "new_preimage",
    "parse_extratlvs",
    "payment_hash_of",
]

KEYSEND_FINAL_CLTV = 42


def new_preimage() -> bytes:
    """32 random bytes from the OS CSPRNG."""
    return secrets.token_bytes(32)


def payment_hash_of(preimage: bytes) -> PaymentHash:
    """``sha256(preimage)`` as lowercase hex (the keysend payment hash)."""
    return PaymentHash(hashlib.sha256(preimage).hexdigest())


def _tlv_type(key: str | int) -> int:
    if isinstance(key, int):
        return key
    if not key.isdigit():
        raise InvalidParams(f"extratlvs: {key!r} is not a numeric TLV type")
    return int(key)


def parse_extratlvs(extratlvs: Mapping[str, str] | Mapping[int, str]) -> dict[int, bytes]:
    """Validate ``keysend``'s ``extratlvs`` parameter (``{"type": "hex value"}``).

    The format is CLN's (``param_extra_tlvs``: keys are decimal types, as
    strings or numbers, values hex). Barq is stricter than CLN, which would
    write a low type out of order after its own fields: a type below 65536
    (the BOLT payload's own namespace) or the keysend preimage type
    (Barq sets it) is refused.

    Returns:
        ``type -> value bytes``.

    Raises:
        InvalidParams (-32602): a non-numeric or out-of-range type, a type
            below 65536 or 5482373484, or a value that is not hex.
    """
    out: dict[int, bytes] = {}
    for key, value in extratlvs.items():
        tlv_type = _tlv_type(key)
        if tlv_type > 2**64 - 1:
            raise InvalidParams(f"extratlvs: type {tlv_type} is above 2**64 - 1")
        if tlv_type < CUSTOM_RECORD_MIN:
            raise InvalidParams(
                f"extratlvs: type {tlv_type} is reserved for BOLT 4 payload fields "
                "(custom records need a type >= 65536)"
            )
        if tlv_type == KEYSEND_PREIMAGE:
            raise InvalidParams(
                f"extratlvs: type {KEYSEND_PREIMAGE} is the keysend preimage, set by keysend itself"
            )
        if not isinstance(value, str):
            raise InvalidParams(f"extratlvs: value of type {tlv_type} must be a hex string")
        try:
            out[tlv_type] = bytes.fromhex(value)
        except ValueError:
            raise InvalidParams(
                f"extratlvs: value of type {tlv_type} is not hex: {value!r}"
            ) from None
    return out


def keysend_final(preimage: bytes, extra_records: Mapping[int, bytes] | None = None) -> ClearFinal:
    """The recipient's data for a keysend part: the preimage record plus ``extra_records``.

    Args:
        preimage: the 32-byte preimage (:func:`new_preimage`).
        extra_records: already validated custom records
            (:func:`parse_extratlvs`).

    Raises:
        ValueError: the preimage is not 32 bytes or ``extra_records`` holds
            the preimage type.
    """
    if len(preimage) != 32:
        raise ValueError(f"keysend preimage must be 32 bytes, got {len(preimage)}")
    records = dict(extra_records or {})
    if KEYSEND_PREIMAGE in records:
        raise ValueError("extra_records must not carry the keysend preimage type")
    records[KEYSEND_PREIMAGE] = preimage
    return ClearFinal(custom_records=records)
