"""BOLT 4 per-hop payloads (the ``payload`` TLV stream of ``hop_payloads``).

A :class:`HopPayload` holds the fields BOLT 4 defines for a payment onion;
:meth:`HopPayload.encode` gives the length-prefixed bytes ``createonion``
takes as a hop's ``payload`` (hex). Three builders write the payloads BOLT 4
asks of a *writer*, and refuse the combinations it forbids:

* :func:`forward_payload`: a node outside a blinded path that forwards
  (``amt_to_forward``, ``outgoing_cltv_value``, ``short_channel_id``);
* :func:`final_payload`: the recipient outside a blinded path
  (``payment_data`` when the invoice gave a ``payment_secret``, optional
  ``payment_metadata`` and custom records, e.g. keysend's preimage);
* :func:`blinded_payload`: a node inside a blinded path (its
  ``encrypted_recipient_data``, ``current_path_key`` at the introduction
  node, and ``amt_to_forward``/``outgoing_cltv_value``/``total_amount_msat``
  only at the final node).

Custom records (:func:`check_custom_records`) must use types from 65536 up
(below is the BOLT payload's own namespace); keysend's preimage type
5482373484 is one of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from barq.model import Scid, scid_from_u64, scid_to_u64
from barq.onion.tlv import (
    TlvError,
    decode_tlv_stream,
    decode_truncated,
    encode_tlv_stream,
    encode_truncated,
    prefix_length,
    strip_length,
)

__all__ = [
    "AMT_TO_FORWARD",
    "CURRENT_PATH_KEY",
    "CUSTOM_RECORD_MIN",
    "ENCRYPTED_RECIPIENT_DATA",
    "KEYSEND_PREIMAGE",
    "OUTGOING_CLTV_VALUE",
    "PAYMENT_DATA",
    "PAYMENT_METADATA",
    "SHORT_CHANNEL_ID",
    "TOTAL_AMOUNT_MSAT",
    "HopPayload",
    "blinded_payload",
    "check_custom_records",
    "decode_payload",
    "final_payload",
    "forward_payload",
    "scid_from_u64",
    "scid_to_u64",
]

# BOLT 4 ``payload`` TLV types
AMT_TO_FORWARD = 2
OUTGOING_CLTV_VALUE = 4
SHORT_CHANNEL_ID = 6
PAYMENT_DATA = 8
ENCRYPTED_RECIPIENT_DATA = 10
CURRENT_PATH_KEY = 12  # called ``blinding_point`` before BOLT 4 renamed it
PAYMENT_METADATA = 16
TOTAL_AMOUNT_MSAT = 18

KEYSEND_PREIMAGE = 5482373484
"""The keysend record: the 32-byte preimage in the final payload (CLN/LND)."""

CUSTOM_RECORD_MIN = 65536
"""Lowest type a custom record may use; below it is the BOLT payload namespace."""

_KNOWN = frozenset(
    {
        AMT_TO_FORWARD,
        OUTGOING_CLTV_VALUE,
        SHORT_CHANNEL_ID,
        PAYMENT_DATA,
        ENCRYPTED_RECIPIENT_DATA,
        CURRENT_PATH_KEY,
        PAYMENT_METADATA,
        TOTAL_AMOUNT_MSAT,
    }
)
_SCID = re.compile(r"(\d+)x(\d+)x(\d+)")


def check_custom_records(records: Mapping[int, bytes]) -> None:
    """Refuse custom record types a payload must not carry.

    Types below 65536 belong to BOLT 4 (known fields such as 2 or 8, and
    reserved ones, even or odd): a custom record there would collide with,
    or be read as, a protocol field. From 65536 up any type is allowed, even
    ones included (a receiver that does not know an even type fails the
    HTLC: "it's OK to be odd").

    Raises:
        ValueError: a type below 65536 or above 2**64 - 1 (the message names it).
    """
    for tlv_type in records:
        if tlv_type < CUSTOM_RECORD_MIN:
            what = "a BOLT 4 payload field" if tlv_type in _KNOWN else "reserved for BOLT 4"
            raise ValueError(
                f"custom record type {tlv_type} is {what}: custom records need a type >= 65536"
            )
        if tlv_type > 2**64 - 1:
            raise ValueError(f"custom record type {tlv_type} is above 2**64 - 1")


def _check_point(name: str, value: bytes) -> None:
    if len(value) != 33 or value[0] not in (2, 3):
        raise ValueError(f"{name} must be a 33-byte compressed point, got {value.hex()!r}")


class HopPayload(msgspec.Struct, frozen=True, kw_only=True):
    """One hop's BOLT 4 ``payload``; ``None`` leaves a field out.

    ``payment_secret`` and ``total_msat`` together form ``payment_data``
    (type 8); ``total_amount_msat`` (type 18) is the blinded-path
    counterpart of ``total_msat``. ``custom_records`` are extra records
    (type -> raw value), checked by :func:`check_custom_records`.
    """

    amt_to_forward: int | None = None
    outgoing_cltv_value: int | None = None
    short_channel_id: Scid | None = None
    payment_secret: bytes | None = None
    total_msat: int | None = None
    encrypted_recipient_data: bytes | None = None
    current_path_key: bytes | None = None
    payment_metadata: bytes | None = None
    total_amount_msat: int | None = None
    custom_records: dict[int, bytes] = {}

    def records(self) -> dict[int, bytes]:
        """The TLV records (type -> value bytes) this payload encodes to.

        Raises:
            ValueError: a value out of its type's range, ``payment_secret``
                without ``total_msat`` (or the reverse), a bad point, or a
                custom record type below 65536.
        """
        out: dict[int, bytes] = {}
        if self.amt_to_forward is not None:
            out[AMT_TO_FORWARD] = encode_truncated(self.amt_to_forward, 8)
        if self.outgoing_cltv_value is not None:
            out[OUTGOING_CLTV_VALUE] = encode_truncated(self.outgoing_cltv_value, 4)
        if self.short_channel_id is not None:
            out[SHORT_CHANNEL_ID] = scid_to_u64(self.short_channel_id).to_bytes(8, "big")
        if (self.payment_secret is None) != (self.total_msat is None):
            raise ValueError("payment_data needs both payment_secret and total_msat")
        if self.payment_secret is not None and self.total_msat is not None:
            if len(self.payment_secret) != 32:
                raise ValueError("payment_secret must be 32 bytes")
            out[PAYMENT_DATA] = self.payment_secret + encode_truncated(self.total_msat, 8)
        if self.encrypted_recipient_data is not None:
            out[ENCRYPTED_RECIPIENT_DATA] = self.encrypted_recipient_data
        if self.current_path_key is not None:
            _check_point("current_path_key", self.current_path_key)
            out[CURRENT_PATH_KEY] = self.current_path_key
        if self.payment_metadata is not None:
            out[PAYMENT_METADATA] = self.payment_metadata
        if self.total_amount_msat is not None:
            out[TOTAL_AMOUNT_MSAT] = encode_truncated(self.total_amount_msat, 8)
        check_custom_records(self.custom_records)
        out.update(self.custom_records)
        return out

    def encode(self) -> bytes:
        """``bigsize(length) || tlv_stream``: the bytes ``createonion`` takes as ``payload``.

        Raises:
            ValueError: as :meth:`records` (``TlvError`` is a ``ValueError``).
        """
        return prefix_length(encode_tlv_stream(self.records()))


def _decode_known(payload: dict[str, object], tlv_type: int, value: bytes) -> None:
    if tlv_type == AMT_TO_FORWARD:
        payload["amt_to_forward"] = decode_truncated(value, 8)
    elif tlv_type == OUTGOING_CLTV_VALUE:
        payload["outgoing_cltv_value"] = decode_truncated(value, 4)
    elif tlv_type == SHORT_CHANNEL_ID:
        if len(value) != 8:
            raise TlvError("short_channel_id must be 8 bytes")
        payload["short_channel_id"] = scid_from_u64(int.from_bytes(value, "big"))
    elif tlv_type == PAYMENT_DATA:
        if len(value) < 32:
            raise TlvError("payment_data shorter than its 32-byte secret")
        payload["payment_secret"] = value[:32]
        payload["total_msat"] = decode_truncated(value[32:], 8)
    elif tlv_type == ENCRYPTED_RECIPIENT_DATA:
        payload["encrypted_recipient_data"] = value
    elif tlv_type == CURRENT_PATH_KEY:
        if len(value) != 33:
            raise TlvError("current_path_key must be 33 bytes")
        payload["current_path_key"] = value
    elif tlv_type == PAYMENT_METADATA:
        payload["payment_metadata"] = value
    else:  # TOTAL_AMOUNT_MSAT
        payload["total_amount_msat"] = decode_truncated(value, 8)


def decode_payload(data: bytes, *, prefixed: bool = True) -> HopPayload:
    """Parse a payload back into a :class:`HopPayload` (to inspect what was built).

    Known types are decoded with their BOLT 4 lengths; every other type
    lands in ``custom_records`` as is, whatever its parity (this is a reader
    for our own payloads, not a forwarding node's: it does not fail on
    unknown even types).

    Args:
        data: the payload, with its BigSize length prefix unless ``prefixed``
            is false.

    Raises:
        TlvError: malformed framing, stream, or known field.
    """
    stream = strip_length(data) if prefixed else data
    fields: dict[str, object] = {}
    custom: dict[int, bytes] = {}
    for tlv_type, value in decode_tlv_stream(stream).items():
        if tlv_type in _KNOWN:
            _decode_known(fields, tlv_type, value)
        else:
            custom[tlv_type] = value
    return msgspec.convert({**fields, "custom_records": custom}, HopPayload, strict=True)


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def forward_payload(*, short_channel_id: Scid, amt_to_forward: int, outgoing_cltv: int) -> bytes:
    """The payload of a node outside a blinded path that forwards the HTLC.

    Args:
        short_channel_id: the channel it forwards over.
        amt_to_forward: what the next node must receive (msat).
        outgoing_cltv: absolute CLTV expiry of the HTLC it offers.

    Returns:
        The length-prefixed payload.

    Raises:
        ValueError: a non-positive amount or CLTV, or a bad scid.
    """
    _positive("amt_to_forward", amt_to_forward)
    _positive("outgoing_cltv", outgoing_cltv)
    return HopPayload(
        amt_to_forward=amt_to_forward,
        outgoing_cltv_value=outgoing_cltv,
        short_channel_id=short_channel_id,
    ).encode()


def final_payload(
    *,
    amt_to_forward: int,
    outgoing_cltv: int,
    payment_secret: bytes | None = None,
    total_msat: int | None = None,
    payment_metadata: bytes | None = None,
    custom_records: Mapping[int, bytes] | None = None,
) -> bytes:
    """The payload of the recipient when it is outside a blinded path.

    Args:
        amt_to_forward: what this part delivers (msat).
        outgoing_cltv: absolute CLTV expiry the recipient checks.
        payment_secret: the invoice's 32-byte secret (BOLT 11); ``None`` for
            keysend.
        total_msat: the whole payment (MPP): defaults to ``amt_to_forward``.
            Above ``amt_to_forward`` needs ``payment_secret`` (BOLT 4
            carries ``total_msat`` only inside ``payment_data``).
        payment_metadata: the invoice's metadata, sent with every part.
        custom_records: extra records, types >= 65536 (e.g. keysend's).

    Returns:
        The length-prefixed payload.

    Raises:
        ValueError: a non-positive amount/CLTV, ``total_msat`` below the
            amount, MPP without a secret, or a bad custom record type.
    """
    _positive("amt_to_forward", amt_to_forward)
    _positive("outgoing_cltv", outgoing_cltv)
    total = amt_to_forward if total_msat is None else total_msat
    if total < amt_to_forward:
        raise ValueError(f"total_msat {total} is below this part's amount {amt_to_forward}")
    if payment_secret is None and total != amt_to_forward:
        raise ValueError("a multi-part total_msat needs the invoice's payment_secret")
    return HopPayload(
        amt_to_forward=amt_to_forward,
        outgoing_cltv_value=outgoing_cltv,
        payment_secret=payment_secret,
        total_msat=total if payment_secret is not None else None,
        payment_metadata=payment_metadata,
        custom_records=dict(custom_records or {}),
    ).encode()


def blinded_payload(
    *,
    encrypted_recipient_data: bytes,
    path_key: bytes | None = None,
    amt_to_forward: int | None = None,
    outgoing_cltv: int | None = None,
    total_amount_msat: int | None = None,
) -> bytes:
    """The payload of a node inside a blinded path (BOLT 4 "Route Blinding").

    Every blinded node gets its ``encrypted_recipient_data``; the
    introduction node also ``current_path_key`` (``path_key``); only the
    final node gets ``amt_to_forward``, ``outgoing_cltv_value`` and
    ``total_amount_msat``, all three or none. Nothing else may be added.

    Raises:
        ValueError: the three final fields are neither all given nor all
            absent, an amount/CLTV is non-positive, ``total_amount_msat`` is
            below ``amt_to_forward``, or ``path_key`` is not a point.
    """
    finals = (amt_to_forward, outgoing_cltv, total_amount_msat)
    if any(v is None for v in finals) and not all(v is None for v in finals):
        raise ValueError(
            "the final blinded hop needs amt_to_forward, outgoing_cltv and total_amount_msat"
        )
    if amt_to_forward is not None and outgoing_cltv is not None and total_amount_msat is not None:
        _positive("amt_to_forward", amt_to_forward)
        _positive("outgoing_cltv", outgoing_cltv)
        if total_amount_msat < amt_to_forward:
            raise ValueError(
                f"total_amount_msat {total_amount_msat} is below this part's {amt_to_forward}"
            )
    return HopPayload(
        amt_to_forward=amt_to_forward,
        outgoing_cltv_value=outgoing_cltv,
        encrypted_recipient_data=encrypted_recipient_data,
        current_path_key=path_key,
        total_amount_msat=total_amount_msat,
    ).encode()
