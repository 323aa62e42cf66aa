"""BOLT 1 BigSize, truncated integers and TLV streams (Appendix A and B vectors)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barq.onion.tlv import (
    TlvError,
    decode_bigsize,
    decode_tlv_stream,
    decode_truncated,
    encode_bigsize,
    encode_tlv_stream,
    encode_truncated,
    prefix_length,
    strip_length,
)

# BOLT 1 Appendix A: BigSize encoding/decoding tests (value, bytes)
BIGSIZE_OK = [
    (0, "00"),
    (252, "fc"),
    (253, "fd00fd"),
    (65535, "fdffff"),
    (65536, "fe00010000"),
    (4294967295, "feffffffff"),
    (4294967296, "ff0000000100000000"),
    (18446744073709551615, "ffffffffffffffffff"),
]
BIGSIZE_BAD = [
    ("fd00fc", "not canonical"),
    ("fe0000ffff", "not canonical"),
    ("ff00000000ffffffff", "not canonical"),
    ("fd00", "unexpected EOF"),
    ("feffff", "unexpected EOF"),
    ("ffffffffff", "unexpected EOF"),
    ("", "EOF"),
    ("fd", "unexpected EOF"),
    ("fe", "unexpected EOF"),
    ("ff", "unexpected EOF"),
]


@pytest.mark.parametrize(("value", "hexed"), BIGSIZE_OK)
def test_bigsize_spec_vectors(value: int, hexed: str) -> None:
    assert encode_bigsize(value).hex() == hexed
    assert decode_bigsize(bytes.fromhex(hexed)) == (value, len(hexed) // 2)


@pytest.mark.parametrize(("hexed", "error"), BIGSIZE_BAD)
def test_bigsize_spec_failures(hexed: str, error: str) -> None:
    with pytest.raises(TlvError, match=error):
        decode_bigsize(bytes.fromhex(hexed))


@pytest.mark.parametrize("value", [-1, 2**64])
def test_bigsize_out_of_range(value: int) -> None:
    with pytest.raises(TlvError, match="out of range"):
        encode_bigsize(value)


# BOLT 1 Appendix B, namespace n1 type 1 (tu64 amount_msat): valid encodings
TU64_OK = [
    ("", 0),
    ("01", 1),
    ("0100", 256),
    ("010000", 65536),
    ("01000000", 16777216),
    ("0100000000", 4294967296),
    ("010000000000", 1099511627776),
    ("01000000000000", 281474976710656),
    ("0100000000000000", 72057594037927936),
]
# ... and the non-minimal / too long ones the spec says must fail
TU64_BAD = [
    "ffffffffffffffffff",
    "00",
    "0001",
    "000100",
    "00010000",
    "0001000000",
    "000100000000",
    "00010000000000",
    "0001000000000000",
]


@pytest.mark.parametrize(("hexed", "value"), TU64_OK)
def test_tu64_spec_vectors(hexed: str, value: int) -> None:
    assert encode_truncated(value, 8).hex() == hexed
    assert decode_truncated(bytes.fromhex(hexed), 8) == value
    # the same record through the stream reader (n1: type 1)
    record = bytes([1, len(hexed) // 2]) + bytes.fromhex(hexed)
    assert decode_tlv_stream(record) == {1: bytes.fromhex(hexed)}


@pytest.mark.parametrize("hexed", TU64_BAD)
def test_tu64_spec_failures(hexed: str) -> None:
    with pytest.raises(TlvError):
        decode_truncated(bytes.fromhex(hexed), 8)


def test_tu32_limits() -> None:
    assert encode_truncated(2**32 - 1, 4) == b"\xff\xff\xff\xff"
    with pytest.raises(TlvError, match="tu32 out of range"):
        encode_truncated(2**32, 4)
    with pytest.raises(TlvError, match="tu16 out of range"):
        encode_truncated(-1, 2)


# BOLT 1 Appendix B: streams that fail in any namespace for stream-level reasons
STREAM_BAD = [
    ("fd", "EOF"),  # type truncated
    ("fd01", "EOF"),  # type truncated
    ("fd000100", "not canonical"),  # not minimally encoded type
    ("fd0101", "missing or bad length"),  # missing length
    ("0ffd", "missing or bad length"),  # length truncated
    ("0ffd26", "missing or bad length"),  # length truncated
    ("0ffd2602", "value truncated"),  # missing value
    ("0ffd000100", "missing or bad length"),  # not minimally encoded length
    ("0ffd0201" + "00" * 512, "value truncated"),  # value truncated
]


@pytest.mark.parametrize(("hexed", "error"), STREAM_BAD)
def test_tlv_stream_spec_failures(hexed: str, error: str) -> None:
    with pytest.raises(TlvError, match=error):
        decode_tlv_stream(bytes.fromhex(hexed))


# BOLT 1 Appendix B: valid streams (unknown odd types, here all kept raw)
STREAM_OK = [
    ("", {}),
    ("2100", {0x21: b""}),
    ("fd020100", {0x201: b""}),
    ("fd00fd00", {0xFD: b""}),
    ("fd00ff00", {0xFF: b""}),
    ("fe0200000100", {0x02000001: b""}),
    ("ff020000000000000100", {0x0200000000000001: b""}),
]


@pytest.mark.parametrize(("hexed", "records"), STREAM_OK)
def test_tlv_stream_spec_successes(hexed: str, records: dict[int, bytes]) -> None:
    assert decode_tlv_stream(bytes.fromhex(hexed)) == records
    assert encode_tlv_stream(records).hex() == hexed


def test_stream_types_must_increase() -> None:
    with pytest.raises(TlvError, match="strictly increasing"):
        decode_tlv_stream(bytes.fromhex("0300" + "0100"))
    with pytest.raises(TlvError, match="strictly increasing"):
        decode_tlv_stream(bytes.fromhex("0100" + "0100"))


def test_encoder_sorts_and_refuses_duplicates() -> None:
    assert encode_tlv_stream({5: b"\x01", 1: b""}) == bytes.fromhex("0100" + "050101")
    with pytest.raises(TlvError, match="duplicate TLV type 3"):
        encode_tlv_stream([(3, b""), (3, b"\x00")])


def test_length_prefix() -> None:
    stream = bytes(300)
    framed = prefix_length(stream)
    assert framed[:3] == bytes.fromhex("fd012c")
    assert strip_length(framed) == stream
    with pytest.raises(TlvError, match="length prefix"):
        strip_length(framed + b"\x00")


@given(st.dictionaries(st.integers(0, 2**64 - 1), st.binary(max_size=300), max_size=8))
def test_stream_round_trip(records: dict[int, bytes]) -> None:
    assert decode_tlv_stream(encode_tlv_stream(records)) == records


@given(st.integers(0, 2**64 - 1))
def test_bigsize_and_tu64_round_trip(value: int) -> None:
    encoded = encode_bigsize(value)
    assert decode_bigsize(encoded) == (value, len(encoded))
    assert decode_truncated(encode_truncated(value, 8), 8) == value
