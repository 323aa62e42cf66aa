"""BOLT 1 primitives: BigSize, truncated integers and TLV streams.

Everything here works on ``bytes`` and ``int`` only (no I/O, no Barq types).
The rules are BOLT 1's "Type-Length-Value Format" and its Appendix A/B
test vectors:

* a BigSize is big-endian and *minimal*: ``fd`` + u16 only from 253,
  ``fe`` + u32 only from 65536, ``ff`` + u64 only from 2**32;
* a truncated integer (``tu16``/``tu32``/``tu64``) omits every leading zero
  byte (0 is the empty string) and is only allowed as the last field of a
  record;
* a TLV stream lists records by strictly increasing ``type``, each ``type``
  and ``length`` minimally encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "TlvError",
    "decode_bigsize",
    "decode_tlv_stream",
    "decode_truncated",
    "encode_bigsize",
    "encode_tlv_stream",
    "encode_truncated",
    "prefix_length",
    "strip_length",
]

U64_MAX = 2**64 - 1


class TlvError(ValueError):
    """Bytes that are not a valid BigSize, truncated integer or TLV stream
    (or a value that cannot be encoded as one)."""


def encode_bigsize(value: int) -> bytes:
    """The minimal BigSize encoding of ``value``.

    Raises:
        TlvError: ``value`` is negative or above 2**64 - 1.
    """
    if value < 0 or value > U64_MAX:
        raise TlvError(f"bigsize out of range: {value}")
    if value < 0xFD:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfd" + value.to_bytes(2, "big")
    if value <= 0xFFFFFFFF:
        return b"\xfe" + value.to_bytes(4, "big")
    return b"\xff" + value.to_bytes(8, "big")


_BIGSIZE_WIDTH = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}


def decode_bigsize(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read one BigSize at ``offset``.

    Returns:
        ``(value, offset just after it)``.

    Raises:
        TlvError: no byte at ``offset`` ("EOF"), fewer bytes than the prefix
            announces ("unexpected EOF"), or a non-minimal encoding
            ("not canonical").
    """
    if offset >= len(data):
        raise TlvError("bigsize: EOF")
    first = data[offset]
    if first < 0xFD:
        return first, offset + 1
    width, minimum = _BIGSIZE_WIDTH[first]
    end = offset + 1 + width
    if end > len(data):
        raise TlvError("bigsize: unexpected EOF")
    value = int.from_bytes(data[offset + 1 : end], "big")
    if value < minimum:
        raise TlvError("bigsize: decoded bigsize is not canonical")
    return value, end


def encode_truncated(value: int, max_bytes: int = 8) -> bytes:
    """``tu16``/``tu32``/``tu64`` (``max_bytes`` 2/4/8): big-endian, no leading zeros.

    Raises:
        TlvError: ``value`` is negative or needs more than ``max_bytes`` bytes.
    """
    if value < 0 or value >= 1 << (8 * max_bytes):
        raise TlvError(f"tu{8 * max_bytes} out of range: {value}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_truncated(data: bytes, max_bytes: int = 8) -> int:
    """Inverse of :func:`encode_truncated` over a whole record value.

    Raises:
        TlvError: longer than ``max_bytes`` or not minimal (a leading zero byte).
    """
    if len(data) > max_bytes:
        raise TlvError(f"tu{8 * max_bytes} longer than {max_bytes} bytes")
    if data[:1] == b"\x00":
        raise TlvError(f"tu{8 * max_bytes} not minimal")
    return int.from_bytes(data, "big")


def encode_tlv_stream(records: Mapping[int, bytes] | Iterable[tuple[int, bytes]]) -> bytes:
    """Serialise records as a TLV stream, sorted by type.

    Args:
        records: ``type -> value`` (or ``(type, value)`` pairs); the order
            given does not matter, the stream is written in increasing type.

    Raises:
        TlvError: a type appears twice or is out of BigSize range.
    """
    pairs = list(records.items()) if isinstance(records, Mapping) else list(records)
    pairs.sort(key=lambda kv: kv[0])
    out = bytearray()
    previous = -1
    for tlv_type, value in pairs:
        if tlv_type == previous:
            raise TlvError(f"duplicate TLV type {tlv_type}")
        previous = tlv_type
        out += encode_bigsize(tlv_type)
        out += encode_bigsize(len(value))
        out += value
    return bytes(out)


def decode_tlv_stream(data: bytes) -> dict[int, bytes]:
    """Parse a TLV stream into ``type -> value`` (no knowledge of any type).

    Whether a type is known, and whether its value has the right length, is
    for the caller (a namespace) to decide; this only enforces the stream
    rules every namespace shares.

    Raises:
        TlvError: a truncated type/length/value, a non-minimal BigSize, or
            types not strictly increasing.
    """
    records: dict[int, bytes] = {}
    offset = 0
    previous = -1
    while offset < len(data):
        tlv_type, offset = decode_bigsize(data, offset)
        if tlv_type <= previous:
            raise TlvError(f"TLV types not strictly increasing: {tlv_type} after {previous}")
        try:
            length, offset = decode_bigsize(data, offset)
        except TlvError as exc:
            raise TlvError(f"TLV type {tlv_type}: missing or bad length ({exc})") from None
        if offset + length > len(data):
            raise TlvError(f"TLV type {tlv_type}: value truncated")
        records[tlv_type] = data[offset : offset + length]
        offset += length
        previous = tlv_type
    return records


def prefix_length(stream: bytes) -> bytes:
    """``bigsize(len) + stream``: the ``hop_payloads`` framing ``createonion`` wants."""
    return encode_bigsize(len(stream)) + stream


def strip_length(payload: bytes) -> bytes:
    """Inverse of :func:`prefix_length`.

    Raises:
        TlvError: the length prefix is malformed or does not match the rest.
    """
    length, offset = decode_bigsize(payload)
    if length != len(payload) - offset:
        raise TlvError(f"payload length prefix {length} != {len(payload) - offset} bytes")
    return payload[offset:]
