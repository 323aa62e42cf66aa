"""bech32 (BIP-173) and the 5-bit words bolt11 is written in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from barq.errors import InvalidInvoice

__all__ = [
    "CHARSET",
    "bech32_decode",
    "bech32_encode",
    "bytes_to_words",
    "int_to_words",
    "words_to_bytes",
    "words_to_int",
]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
"""The 32 bech32 characters; a character's index is its 5-bit value (and a bolt11 tag)."""
_CHAR_VALUE = {c: i for i, c in enumerate(CHARSET)}


def _polymod_table() -> tuple[int, ...]:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    table = []
    for top in range(32):
        x = 0
        for i in range(5):
            if (top >> i) & 1:
                x ^= gen[i]
        table.append(x)
    return tuple(table)


_POLYMOD_XOR = _polymod_table()


def _polymod(values: Iterable[int]) -> int:
    table = _POLYMOD_XOR
    chk = 1
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ v) ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, words: Sequence[int]) -> str:
    poly = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[w] for w in [*words, *checksum])


def bech32_decode(text: str) -> tuple[str, list[int]]:
    if text.lower() != text and text.upper() != text:
        raise InvalidInvoice("bolt11: bad bech32 string (mixed case)")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise InvalidInvoice("bolt11: bad bech32 string (no separator '1' or no checksum)")
    hrp, data = text[:pos], text[pos + 1 :]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise InvalidInvoice("bolt11: bad bech32 string (invalid character in prefix)")
    try:
        words = [_CHAR_VALUE[c] for c in data]
    except KeyError as e:
        raise InvalidInvoice(
            f"bolt11: bad bech32 string (invalid character {e.args[0]!r})"
        ) from None
    if _polymod([*_hrp_expand(hrp), *words]) != 1:
        raise InvalidInvoice("bolt11: bad bech32 checksum")
    return hrp, words[:-6]


_BIN5 = tuple(f"{i:05b}" for i in range(32))
_FROM_BIN5 = {b: i for i, b in enumerate(_BIN5)}


def words_to_bytes(words: Sequence[int], *, pad: bool) -> bytes:
    """5-bit words -> bytes; ``pad`` appends zero bits to a byte boundary, else drops them."""
    nbits = 5 * len(words)
    if nbits == 0:
        return b""
    v = int("".join([_BIN5[w] for w in words]), 2)
    if pad:
        extra = -nbits % 8
        return (v << extra).to_bytes((nbits + extra) // 8, "big")
    return (v >> (nbits % 8)).to_bytes(nbits // 8, "big")


def bytes_to_words(data: bytes) -> list[int]:
    """Bytes -> 5-bit words, the last one zero-padded."""
    nbits = 8 * len(data)
    if nbits == 0:
        return []
    extra = -nbits % 5
    bits = format(int.from_bytes(data, "big") << extra, f"0{nbits + extra}b")
    return [_FROM_BIN5[bits[i : i + 5]] for i in range(0, nbits + extra, 5)]


def int_to_words(value: int, min_words: int = 1) -> list[int]:
    words: list[int] = []
    while value:
        words.append(value & 31)
        value >>= 5
    words.extend([0] * (min_words - len(words)))
    return words[::-1]


def words_to_int(words: Sequence[int]) -> int:
    v = 0
    for w in words:
        v = (v << 5) | w
    return v
