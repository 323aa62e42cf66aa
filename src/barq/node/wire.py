"""BOLT wire formats in lightningd's answers: ``short_channel_id``, ``channel_update``, failures.

lightningd's ``waitsendpay`` error carries the erring node's failure message
as hex (``raw_message``); :func:`parse_failure_message` splits it into its
BOLT 4 ``failure_code`` and, for UPDATE codes, the BOLT 7 ``channel_update``
(:func:`parse_channel_update`). Signatures are not checked.
"""

from __future__ import annotations

from barq.model import ChannelUpdate, FailCode, scid_from_u64

scid_from_int = scid_from_u64  # the name this module exported before the codec moved to model

__all__ = ["parse_channel_update", "parse_failure_message", "scid_from_int"]

_WIRE_CHANNEL_UPDATE = 258
_UPDATE_BODY_NO_MAX = 128  # signature .. fee_proportional_millionths
_UPDATE_BODY = 136  # .. htlc_maximum_msat

# Bytes of fixed fields before ``u16 len, channel_update`` in each UPDATE failure (BOLT 4).
_BYTES_BEFORE_UPDATE: dict[int, int] = {
    FailCode.TEMPORARY_CHANNEL_FAILURE: 0,
    FailCode.AMOUNT_BELOW_MINIMUM: 8,  # u64 htlc_msat
    FailCode.FEE_INSUFFICIENT: 8,  # u64 htlc_msat
    FailCode.INCORRECT_CLTV_EXPIRY: 4,  # u32 cltv_expiry
    FailCode.EXPIRY_TOO_SOON: 0,
    FailCode.CHANNEL_DISABLED: 2,  # u16 disabled_flags
}


def _u(data: bytes, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "big")


def parse_channel_update(data: bytes) -> ChannelUpdate:
    """Decode a BOLT 7 ``channel_update``, with or without its ``u16`` type (258) prefix.

    BOLT 4 lets failure messages carry the update with or without its type;
    the two are told apart by length (128 or 136 bytes without the type,
    i.e. without/with ``htlc_maximum_msat``), then by the ``0x0102`` prefix.
    The signature is not checked.

    Raises:
        ValueError: shorter than a channel_update.
    """
    prefixed = data[:2] == _WIRE_CHANNEL_UPDATE.to_bytes(2, "big")
    bare_sizes = (_UPDATE_BODY_NO_MAX, _UPDATE_BODY)
    if prefixed and len(data) - 2 in bare_sizes:
        body = data[2:]
    elif len(data) in bare_sizes:
        body = data
    else:
        body = data[2:] if prefixed else data
    if len(body) < _UPDATE_BODY_NO_MAX:
        raise ValueError(f"channel_update too short: {len(body)} bytes")
    message_flags = body[108]
    channel_flags = body[109]
    has_max = bool(message_flags & 1) and len(body) >= _UPDATE_BODY
    return ChannelUpdate(
        scid=scid_from_int(_u(body, 96, 8)),
        direction=channel_flags & 1,
        disabled=bool(channel_flags & 2),
        timestamp=_u(body, 104, 4),
        cltv_delta=_u(body, 110, 2),
        htlc_min_msat=_u(body, 112, 8),
        fee_base_msat=_u(body, 120, 4),
        fee_ppm=_u(body, 124, 4),
        htlc_max_msat=_u(body, 128, 8) if has_max else None,
    )


def parse_failure_message(raw: bytes) -> tuple[int, ChannelUpdate | None]:
    """Split a BOLT 4 failure message into its ``failure_code`` and its ``channel_update``.

    Only UPDATE-flag codes carry an update (``temporary_channel_failure``,
    ``amount_below_minimum``, ``fee_insufficient``, ``incorrect_cltv_expiry``,
    ``expiry_too_soon``, ``channel_disabled``); a zero length, a truncated
    message or an unparsable update gives ``None``, never an exception.

    Raises:
        ValueError: ``raw`` is shorter than the 2-byte failure code.
    """
    if len(raw) < 2:
        raise ValueError(f"failure message too short: {len(raw)} bytes")
    code = _u(raw, 0, 2)
    skip = _BYTES_BEFORE_UPDATE.get(code)
    if skip is None:
        return code, None
    at = 2 + skip
    if len(raw) < at + 2:
        return code, None
    length = _u(raw, at, 2)
    update = raw[at + 2 : at + 2 + length]
    if length == 0 or len(update) < length:
        return code, None
    try:
        return code, parse_channel_update(update)
    except ValueError:
        return code, None
