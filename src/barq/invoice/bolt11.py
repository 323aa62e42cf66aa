"""A small BOLT 11 codec: bech32, amounts, tagged fields and the payee signature.

What it reads and writes (BOLT 11, "Tagged Fields"):

* ``p`` payment_hash, ``s`` payment_secret, ``d`` description, ``h``
  description hash, ``x`` expiry (default 3600), ``c`` min_final_cltv_expiry
  (default 18), ``n`` payee, ``r`` route hints, ``9`` features;
* the prefixes ``lnbc`` (bitcoin), ``lntb`` (testnet), ``lntbs`` (signet) and
  ``lnbcrt`` (regtest) with an optional amount and multiplier ``m/u/n/p``.

Unknown fields, fallback addresses (``f``) and fields of the wrong length are
skipped as the spec requires. The signature is a recoverable secp256k1
signature of ``sha256(hrp_utf8 || data_words_as_bytes_zero_padded)``; without
an ``n`` field the payee is the key recovered from it, with one the signature
must verify against ``n``.

:func:`decode` raises :class:`barq.errors.InvalidInvoice` for every malformed
input and never lets a foreign exception escape.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

import coincurve
import msgspec

from barq.errors import InvalidInvoice, InvalidParams
from barq.model import Invoice, NodeId, RouteHintHop, Scid

__all__ = [
    "CURRENCY_OF_NETWORK",
    "DEFAULT_EXPIRY_S",
    "DEFAULT_MIN_FINAL_CLTV",
    "NETWORK_OF_CURRENCY",
    "InvoiceFields",
    "decode",
    "decode_fields",
    "encode",
    "pubkey_of",
]

DEFAULT_EXPIRY_S = 3600
DEFAULT_MIN_FINAL_CLTV = 18

# BIP-173 currency prefix (after "ln") -> CLN chain name.
NETWORK_OF_CURRENCY: dict[str, str] = {
    "bc": "bitcoin",
    "tb": "testnet",
    "tbs": "signet",
    "bcrt": "regtest",
}
CURRENCY_OF_NETWORK: dict[str, str] = {v: k for k, v in NETWORK_OF_CURRENCY.items()}
# Longest first so that "bcrt" is not read as "bc" + amount "rt".
_CURRENCIES_LONGEST_FIRST = sorted(NETWORK_OF_CURRENCY, key=len, reverse=True)

# msat per unit of amount, by multiplier ("" = whole bitcoin). "p" is 0.1 msat.
_MSAT_PER_BTC = 100_000_000_000
_MULTIPLIER_MSAT = {"": _MSAT_PER_BTC, "m": 100_000_000, "u": 100_000, "n": 100}
_AMOUNT_RE = re.compile(r"^([0-9]+)([munp]?)$")

# Feature bits this codec knows in invoices (BOLT 9, context "9"): var_onion_optin,
# payment_secret, basic_mpp, option_route_blinding, option_payment_metadata.
# An unknown *even* bit set means "you must understand this": the invoice is refused.
_KNOWN_FEATURE_PAIRS = frozenset({8, 14, 16, 24, 48})

# Tag letters (bech32 charset index = tag number).
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_VALUE = {c: i for i, c in enumerate(_CHARSET)}
_TAG = {c: i for i, c in enumerate(_CHARSET)}
_T_P, _T_S, _T_D, _T_H = _TAG["p"], _TAG["s"], _TAG["d"], _TAG["h"]
_T_X, _T_C, _T_N, _T_R, _T_9 = _TAG["x"], _TAG["c"], _TAG["n"], _TAG["r"], _TAG["9"]

_SIGNATURE_WORDS = 104  # 520 bits: 64-byte compact signature + 1 recovery byte
_TIMESTAMP_WORDS = 7  # 35 bits
_HINT_BYTES = 33 + 8 + 4 + 4 + 2


class InvoiceFields(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a bolt11 string carries except the signature.

    ``expiry`` / ``min_final_cltv_expiry`` of ``None`` leave the ``x`` / ``c``
    field out (readers then use 3600 s / 18 blocks). ``payee`` set writes an
    ``n`` field (it must be the signing key). ``features`` is the feature
    bitfield as big-endian hex, CLN ``decode`` style (``"024100"``);
    ``description_hash`` is hex. Amounts are msat (``None``: any amount).
    """

    network: str
    payment_hash: str
    created_at: int
    amount_msat: int | None = None
    payment_secret: str | None = None
    description: str | None = None
    description_hash: str | None = None
    expiry: int | None = None
    min_final_cltv_expiry: int | None = None
    payee: NodeId | None = None
    route_hints: tuple[tuple[RouteHintHop, ...], ...] = ()
    features: str = ""

    @classmethod
    def from_invoice(cls, inv: Invoice, *, include_payee: bool = False) -> InvoiceFields:
        """The fields of a decoded :class:`~barq.model.Invoice` (``x`` and ``c`` written out)."""
        return cls(
            network=inv.network,
            payment_hash=inv.payment_hash,
            created_at=inv.created_at,
            amount_msat=inv.amount_msat,
            payment_secret=inv.payment_secret,
            description=inv.description,
            expiry=inv.expiry,
            min_final_cltv_expiry=inv.min_final_cltv_expiry,
            payee=inv.payee if include_payee else None,
            route_hints=inv.route_hints,
            features=inv.features,
        )


# -- bech32 (BIP-173) -------------------------------------------------------------------


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


def _bech32_encode(hrp: str, words: Sequence[int]) -> str:
    poly = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in [*words, *checksum])


def _bech32_decode(text: str) -> tuple[str, list[int]]:
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


def _words_to_bytes(words: Sequence[int], *, pad: bool) -> bytes:
    """5-bit words -> bytes; ``pad`` appends zero bits to a byte boundary, else drops them."""
    nbits = 5 * len(words)
    if nbits == 0:
        return b""
    v = int("".join([_BIN5[w] for w in words]), 2)
    if pad:
        extra = -nbits % 8
        return (v << extra).to_bytes((nbits + extra) // 8, "big")
    return (v >> (nbits % 8)).to_bytes(nbits // 8, "big")


def _bytes_to_words(data: bytes) -> list[int]:
    """Bytes -> 5-bit words, the last one zero-padded."""
    nbits = 8 * len(data)
    if nbits == 0:
        return []
    extra = -nbits % 5
    bits = format(int.from_bytes(data, "big") << extra, f"0{nbits + extra}b")
    return [_FROM_BIN5[bits[i : i + 5]] for i in range(0, nbits + extra, 5)]


def _int_to_words(value: int, min_words: int = 1) -> list[int]:
    words: list[int] = []
    while value:
        words.append(value & 31)
        value >>= 5
    words.extend([0] * (min_words - len(words)))
    return words[::-1]


def _words_to_int(words: Sequence[int]) -> int:
    v = 0
    for w in words:
        v = (v << 5) | w
    return v


# -- amounts and scids ------------------------------------------------------------------


def _amount_to_hrp(amount_msat: int) -> str:
    if amount_msat <= 0:
        raise InvalidParams(f"bolt11: amount must be positive, got {amount_msat} msat")
    for mult in ("", "m", "u", "n"):
        unit = _MULTIPLIER_MSAT[mult]
        if amount_msat % unit == 0:
            return f"{amount_msat // unit}{mult}"
    return f"{amount_msat * 10}p"


def _amount_from_hrp(text: str) -> int:
    m = _AMOUNT_RE.match(text)
    if m is None:
        raise InvalidInvoice(f"bolt11: bad amount {text!r} (digits then one of m/u/n/p)")
    digits, mult = m.groups()
    value = int(digits)
    if value == 0:
        raise InvalidInvoice(f"bolt11: bad amount {text!r} (zero)")
    if mult == "p":
        if value % 10:
            raise InvalidInvoice(f"bolt11: bad amount {text!r} (sub-millisatoshi precision)")
        return value // 10
    return value * _MULTIPLIER_MSAT[mult]


def _scid_to_int(scid: Scid) -> int:
    parts = scid.split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InvalidParams(f"bolt11: not a short channel id: {scid!r}")
    block, tx, out = (int(p) for p in parts)
    if block >= 1 << 24 or tx >= 1 << 24 or out >= 1 << 16:
        raise InvalidParams(f"bolt11: short channel id out of range: {scid!r}")
    return block << 40 | tx << 16 | out


def _scid_from_int(v: int) -> Scid:
    return f"{v >> 40}x{(v >> 16) & 0xFFFFFF}x{v & 0xFFFF}"


def pubkey_of(privkey: bytes) -> NodeId:
    """The compressed public key (66 hex chars) of a 32-byte secp256k1 private key.

    Raises:
        barq.errors.InvalidParams: not a valid private key.
    """
    try:
        return str(coincurve.PrivateKey(privkey).public_key.format(compressed=True).hex())
    except (ValueError, TypeError) as e:
        raise InvalidParams(f"bolt11: invalid private key: {e}") from None


# -- encoding ---------------------------------------------------------------------------


def _tagged(tag: int, words: Sequence[int]) -> list[int]:
    if len(words) >= 1024:
        raise InvalidParams(f"bolt11: field {_CHARSET[tag]!r} too long ({len(words)} words)")
    return [tag, len(words) >> 5, len(words) & 31, *words]


def _hex32(name: str, value: str) -> bytes:
    try:
        b = bytes.fromhex(value)
    except ValueError:
        raise InvalidParams(f"bolt11: {name} is not hex: {value!r}") from None
    if len(b) != 32:
        raise InvalidParams(f"bolt11: {name} must be 32 bytes, got {len(b)}")
    return b


def encode(inv: InvoiceFields, privkey: bytes, *, signer_is_payee: bool = True) -> str:
    """Write and sign a bolt11 string.

    Fields are written in the order p, d, h, s, x, c, n, r, 9 (the order of
    most of the spec's examples, so encoding their fields reproduces them
    exactly: signatures are RFC 6979 deterministic).

    Args:
        inv: the fields; ``inv.payee``, when set, must be ``privkey``'s public key.
        privkey: the payee's 32-byte secp256k1 private key.
        signer_is_payee: when False, ``inv.payee`` is written as the ``n``
            field although ``privkey`` is another key: the result only decodes
            with that key among ``trusted_signers`` (simulator use only).

    Returns:
        the lowercase bolt11 string.

    Raises:
        barq.errors.InvalidParams: unknown network, malformed hex, a value out
            of range, or ``payee`` not matching ``privkey``.
    """
    currency = CURRENCY_OF_NETWORK.get(inv.network)
    if currency is None:
        raise InvalidParams(
            f"bolt11: unknown network {inv.network!r} (one of {', '.join(CURRENCY_OF_NETWORK)})"
        )
    hrp = "ln" + currency + ("" if inv.amount_msat is None else _amount_to_hrp(inv.amount_msat))
    if not 0 <= inv.created_at < 1 << 35:
        raise InvalidParams(f"bolt11: timestamp out of range: {inv.created_at}")
    words = _int_to_words(inv.created_at, _TIMESTAMP_WORDS)
    words += _tagged(_T_P, _bytes_to_words(_hex32("payment_hash", inv.payment_hash)))
    if inv.description is not None:
        words += _tagged(_T_D, _bytes_to_words(inv.description.encode()))
    if inv.description_hash is not None:
        words += _tagged(_T_H, _bytes_to_words(_hex32("description_hash", inv.description_hash)))
    if inv.payment_secret is not None:
        words += _tagged(_T_S, _bytes_to_words(_hex32("payment_secret", inv.payment_secret)))
    if inv.expiry is not None:
        if inv.expiry < 0:
            raise InvalidParams(f"bolt11: negative expiry {inv.expiry}")
        words += _tagged(_T_X, _int_to_words(inv.expiry))
    if inv.min_final_cltv_expiry is not None:
        if inv.min_final_cltv_expiry < 0:
            raise InvalidParams(
                f"bolt11: negative min_final_cltv_expiry {inv.min_final_cltv_expiry}"
            )
        words += _tagged(_T_C, _int_to_words(inv.min_final_cltv_expiry))
    signer = pubkey_of(privkey)
    if inv.payee is not None:
        if signer_is_payee and inv.payee != signer:
            raise InvalidParams(f"bolt11: payee {inv.payee} is not the signing key's {signer}")
        try:
            payee_bytes = bytes.fromhex(inv.payee)
        except ValueError:
            raise InvalidParams(f"bolt11: payee is not hex: {inv.payee!r}") from None
        if len(payee_bytes) != 33:
            raise InvalidParams(f"bolt11: payee must be 33 bytes: {inv.payee!r}")
        words += _tagged(_T_N, _bytes_to_words(payee_bytes))
    for hint in inv.route_hints:
        raw = b"".join(_hint_bytes(h) for h in hint)
        words += _tagged(_T_R, _bytes_to_words(raw))
    if inv.features:
        try:
            bits = int(inv.features, 16)
        except ValueError:
            raise InvalidParams(f"bolt11: features is not hex: {inv.features!r}") from None
        if bits:
            words += _tagged(_T_9, _int_to_words(bits))
    message = hrp.encode() + _words_to_bytes(words, pad=True)
    sig = coincurve.PrivateKey(privkey).sign_recoverable(message)  # sha256 hasher
    words += _bytes_to_words(sig)
    return _bech32_encode(hrp, words)


def _hint_bytes(h: RouteHintHop) -> bytes:
    try:
        node = bytes.fromhex(h.node_id)
    except ValueError:
        raise InvalidParams(f"bolt11: route hint node id is not hex: {h.node_id!r}") from None
    if len(node) != 33:
        raise InvalidParams(f"bolt11: route hint node id must be 33 bytes: {h.node_id!r}")
    try:
        return (
            node
            + _scid_to_int(h.scid).to_bytes(8, "big")
            + h.fee_base_msat.to_bytes(4, "big")
            + h.fee_ppm.to_bytes(4, "big")
            + h.cltv_delta.to_bytes(2, "big")
        )
    except OverflowError:
        raise InvalidParams(f"bolt11: route hint value out of range: {h}") from None


# -- decoding ---------------------------------------------------------------------------


def _parse_hrp(hrp: str) -> tuple[str, int | None]:
    if not hrp.startswith("ln"):
        raise InvalidInvoice(
            f"bolt11: prefix {hrp!r} does not start with 'ln': not a lightning invoice"
        )
    rest = hrp[2:]
    for cur in _CURRENCIES_LONGEST_FIRST:
        if rest.startswith(cur):
            tail = rest[len(cur) :]
            if tail == "":
                return NETWORK_OF_CURRENCY[cur], None
            if tail[0].isdigit():
                return NETWORK_OF_CURRENCY[cur], _amount_from_hrp(tail)
    cur = re.sub(r"[0-9].*$", "", rest)
    raise InvalidInvoice(
        f"bolt11: unknown currency prefix {('ln' + cur)!r} "
        f"(known: {', '.join('ln' + c for c in NETWORK_OF_CURRENCY)})"
    )


def _recover(sig: bytes, message: bytes) -> bytes | None:
    try:
        return bytes(coincurve.PublicKey.from_signature_and_message(sig, message).format(True))
    except Exception:  # coincurve raises plain Exception when recovery fails
        return None


def decode_fields(
    text: str, *, trusted_signers: Collection[NodeId] = ()
) -> tuple[InvoiceFields, NodeId, str]:
    """Parse and check a bolt11 string, keeping every field (``h`` included).

    Args:
        text: the invoice, optionally prefixed by ``lightning:`` (any case).
        trusted_signers: node ids whose signature is accepted *in place of*
            the ``n`` field's (the simulator signs invoices for nodes whose
            private key it does not know with such a key). Empty for real use.

    Returns:
        ``(fields, payee, normalised_bolt11)``; ``fields.payee`` is the ``n``
        field if present, ``payee`` the checked payee.

    Raises:
        barq.errors.InvalidInvoice: bad bech32 or checksum, not starting with
            ``ln``, unknown currency, bad amount, missing payment hash, unknown
            even feature bit, malformed field, or bad signature.
    """
    if not isinstance(text, str):
        raise InvalidInvoice(f"bolt11: expected a string, got {type(text).__name__}")
    s = text.strip()
    if s[:10].lower() == "lightning:":
        s = s[10:]
    hrp, data = _bech32_decode(s)
    network, amount_msat = _parse_hrp(hrp)
    if len(data) < _TIMESTAMP_WORDS + _SIGNATURE_WORDS:
        raise InvalidInvoice("bolt11: too short to hold a timestamp and a signature")
    sig_words = data[-_SIGNATURE_WORDS:]
    body = data[:-_SIGNATURE_WORDS]
    created_at = _words_to_int(body[:_TIMESTAMP_WORDS])

    payment_hash: str | None = None
    payment_secret: str | None = None
    description: str | None = None
    description_hash: str | None = None
    expiry: int | None = None
    min_final: int | None = None
    payee_field: NodeId | None = None
    hints: list[tuple[RouteHintHop, ...]] = []
    features = ""

    i = _TIMESTAMP_WORDS
    while i < len(body):
        if i + 3 > len(body):
            raise InvalidInvoice("bolt11: truncated tagged field header")
        tag = body[i]
        length = body[i + 1] << 5 | body[i + 2]
        field = body[i + 3 : i + 3 + length]
        if len(field) != length:
            raise InvalidInvoice(f"bolt11: field {_CHARSET[tag]!r} overruns the data part")
        i += 3 + length
        if tag == _T_P and length == 52 and payment_hash is None:
            payment_hash = _words_to_bytes(field, pad=False).hex()
        elif tag == _T_S and length == 52 and payment_secret is None:
            payment_secret = _words_to_bytes(field, pad=False).hex()
        elif tag == _T_H and length == 52 and description_hash is None:
            description_hash = _words_to_bytes(field, pad=False).hex()
        elif tag == _T_N and length == 53 and payee_field is None:
            payee_field = _words_to_bytes(field, pad=False).hex()
        elif tag == _T_D and description is None:
            try:
                description = _words_to_bytes(field, pad=False).decode()
            except UnicodeDecodeError:
                raise InvalidInvoice("bolt11: description 'd' is not valid UTF-8") from None
        elif tag == _T_X and expiry is None:
            expiry = _words_to_int(field)
        elif tag == _T_C and min_final is None:
            min_final = _words_to_int(field)
        elif tag == _T_R:
            hints.append(_parse_hint(_words_to_bytes(field, pad=False)))
        elif tag == _T_9 and not features:
            bits = _words_to_int(field)
            _check_features(bits)
            features = bits.to_bytes((bits.bit_length() + 7) // 8, "big").hex() if bits else ""
        # anything else (f, t, unknown, wrong lengths): skipped

    if payment_hash is None:
        raise InvalidInvoice("bolt11: missing payment hash (no 'p' field of 52 words)")

    sig = _words_to_bytes(sig_words, pad=False)
    if sig[64] > 3:
        raise InvalidInvoice(f"bolt11: bad signature (recovery id {sig[64]} not in 0..3)")
    message = hrp.encode() + _words_to_bytes(body, pad=True)
    recovered = _recover(sig, message)
    if recovered is None:
        raise InvalidInvoice("bolt11: bad signature (no public key can be recovered from it)")
    if payee_field is not None:
        ok = recovered.hex() == payee_field or any(
            _recover(sig[:64] + bytes([r]), message) == bytes.fromhex(payee_field)
            for r in range(4)
            if r != sig[64]
        )
        if not ok and recovered.hex() not in trusted_signers:
            raise InvalidInvoice(f"bolt11: bad signature (does not verify for payee {payee_field})")
        payee = payee_field
    else:
        payee = recovered.hex()

    fields = InvoiceFields(
        network=network,
        payment_hash=payment_hash,
        created_at=created_at,
        amount_msat=amount_msat,
        payment_secret=payment_secret,
        description=description,
        description_hash=description_hash,
        expiry=expiry,
        min_final_cltv_expiry=min_final,
        payee=payee_field,
        route_hints=tuple(hints),
        features=features,
    )
    return fields, payee, s.lower()


def _parse_hint(raw: bytes) -> tuple[RouteHintHop, ...]:
    if not raw or len(raw) % _HINT_BYTES:
        raise InvalidInvoice(
            f"bolt11: route hint 'r' of {len(raw)} bytes is not a multiple of {_HINT_BYTES}"
        )
    hops = []
    for k in range(0, len(raw), _HINT_BYTES):
        e = raw[k : k + _HINT_BYTES]
        hops.append(
            RouteHintHop(
                node_id=e[:33].hex(),
                scid=_scid_from_int(int.from_bytes(e[33:41], "big")),
                fee_base_msat=int.from_bytes(e[41:45], "big"),
                fee_ppm=int.from_bytes(e[45:49], "big"),
                cltv_delta=int.from_bytes(e[49:51], "big"),
            )
        )
    return tuple(hops)


def _check_features(bits: int) -> None:
    b = 0
    while bits >> b:
        if (bits >> b) & 1 and b % 2 == 0 and b not in _KNOWN_FEATURE_PAIRS:
            raise InvalidInvoice(f"bolt11: unknown required feature bit {b} in '9'")
        b += 1


def decode(text: str, *, trusted_signers: Collection[NodeId] = ()) -> Invoice:
    """Decode and check a bolt11 string (CLN ``decode`` for what paying needs).

    Args:
        text: the invoice, optionally prefixed by ``lightning:``.
        trusted_signers: see :func:`decode_fields` (simulator only).

    Returns:
        the :class:`~barq.model.Invoice`; ``expiry`` and
        ``min_final_cltv_expiry`` default to 3600 and 18 when absent.

    Raises:
        barq.errors.InvalidInvoice: see :func:`decode_fields`.
    """
    f, payee, normalised = decode_fields(text, trusted_signers=trusted_signers)
    return Invoice(
        bolt11=normalised,
        payee=payee,
        payment_hash=f.payment_hash,
        amount_msat=f.amount_msat,
        created_at=f.created_at,
        expiry=DEFAULT_EXPIRY_S if f.expiry is None else f.expiry,
        min_final_cltv_expiry=(
            DEFAULT_MIN_FINAL_CLTV if f.min_final_cltv_expiry is None else f.min_final_cltv_expiry
        ),
        network=f.network,
        payment_secret=f.payment_secret,
        description=f.description,
        route_hints=f.route_hints,
        features=f.features,
    )
