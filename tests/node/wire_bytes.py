"""BOLT 7 ``channel_update`` and BOLT 4 failure bytes, built for the node tests."""

from __future__ import annotations

import random

REGTEST_GENESIS = bytes.fromhex("06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f")


def scid_int(block: int, tx: int, out: int) -> int:
    return (block << 40) | (tx << 16) | out


def channel_update(
    *,
    scid: tuple[int, int, int] = (118, 1, 0),
    direction: int = 0,
    disabled: bool = False,
    timestamp: int = 1738000123,
    cltv: int = 6,
    htlc_min: int = 1000,
    fee_base: int = 1,
    ppm: int = 10,
    htlc_max: int | None = 990000000,
    prefixed: bool = False,
    signature: bytes | None = None,
) -> bytes:
    """A BOLT 7 channel_update, optionally prefixed by its type 258."""
    sig = signature if signature is not None else random.Random(7).randbytes(64)
    body = (
        sig
        + REGTEST_GENESIS
        + scid_int(*scid).to_bytes(8, "big")
        + timestamp.to_bytes(4, "big")
        + bytes([1 if htlc_max is not None else 0, direction | (2 if disabled else 0)])
        + cltv.to_bytes(2, "big")
        + htlc_min.to_bytes(8, "big")
        + fee_base.to_bytes(4, "big")
        + ppm.to_bytes(4, "big")
        + (htlc_max.to_bytes(8, "big") if htlc_max is not None else b"")
    )
    return (b"\x01\x02" + body) if prefixed else body


def with_update(code: int, fixed: bytes, update: bytes) -> bytes:
    return code.to_bytes(2, "big") + fixed + len(update).to_bytes(2, "big") + update
