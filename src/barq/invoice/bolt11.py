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
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import coincurve
import msgspec

from barq.errors import InvalidInvoice, InvalidParams
from barq.invoice._bech32 import (
    CHARSET,
    bech32_decode,
    bech32_encode,
    bytes_to_words,
    int_to_words,
    words_to_bytes,
    words_to_int,
)
from barq.model import Invoice, NodeId, PaymentHash, RouteHintHop, Scid, scid_from_u64, scid_to_u64

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
_TAG = {c: i for i, c in enumerate(CHARSET)}
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
    payment_hash: PaymentHash
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
            description_hash=inv.description_hash,
            expiry=inv.expiry,
            min_final_cltv_expiry=inv.min_final_cltv_expiry,
            payee=inv.payee if include_payee else None,
            route_hints=inv.route_hints,
            features=inv.features,
        )


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
    try:
        return scid_to_u64(scid)
    except ValueError as e:
        raise InvalidParams(f"bolt11: {e}") from None


def pubkey_of(privkey: bytes) -> NodeId:
    """The compressed public key (66 hex chars) of a 32-byte secp256k1 private key.

    Raises:
        barq.errors.InvalidParams: not a valid private key.
    """
    try:
        return NodeId(coincurve.PrivateKey(privkey).public_key.format(compressed=True).hex())
    except (ValueError, TypeError) as e:
        raise InvalidParams(f"bolt11: invalid private key: {e}") from None


# -- encoding ---------------------------------------------------------------------------


def _tagged(tag: int, words: Sequence[int]) -> list[int]:
    if len(words) >= 1024:
        raise InvalidParams(f"bolt11: field {CHARSET[tag]!r} too long ({len(words)} words)")
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
    hrp = _hrp_of(inv.network, inv.amount_msat)
    if not 0 <= inv.created_at < 1 << 35:
        raise InvalidParams(f"bolt11: timestamp out of range: {inv.created_at}")
    words = int_to_words(inv.created_at, _TIMESTAMP_WORDS)
    words += _hash_and_text_words(inv)
    words += _number_words("expiry", _T_X, inv.expiry)
    words += _number_words("min_final_cltv_expiry", _T_C, inv.min_final_cltv_expiry)
    words += _payee_words(inv.payee, privkey, signer_is_payee=signer_is_payee)
    for hint in inv.route_hints:
        raw = b"".join(_hint_bytes(h) for h in hint)
        words += _tagged(_T_R, bytes_to_words(raw))
    words += _feature_words(inv.features)
    message = hrp.encode() + words_to_bytes(words, pad=True)
    sig = coincurve.PrivateKey(privkey).sign_recoverable(message)  # sha256 hasher
    words += bytes_to_words(sig)
    return bech32_encode(hrp, words)


def _hrp_of(network: str, amount_msat: int | None) -> str:
    currency = CURRENCY_OF_NETWORK.get(network)
    if currency is None:
        raise InvalidParams(
            f"bolt11: unknown network {network!r} (one of {', '.join(CURRENCY_OF_NETWORK)})"
        )
    return "ln" + currency + ("" if amount_msat is None else _amount_to_hrp(amount_msat))


def _hash_and_text_words(inv: InvoiceFields) -> list[int]:
    """The ``p``, ``d``, ``h`` and ``s`` fields."""
    words = _tagged(_T_P, bytes_to_words(_hex32("payment_hash", inv.payment_hash)))
    if inv.description is not None:
        words += _tagged(_T_D, bytes_to_words(inv.description.encode()))
    if inv.description_hash is not None:
        words += _tagged(_T_H, bytes_to_words(_hex32("description_hash", inv.description_hash)))
    if inv.payment_secret is not None:
        words += _tagged(_T_S, bytes_to_words(_hex32("payment_secret", inv.payment_secret)))
    return words


def _number_words(name: str, tag: int, value: int | None) -> list[int]:
    """A non-negative integer field (``x``, ``c``); ``None`` leaves it out."""
    if value is None:
        return []
    if value < 0:
        raise InvalidParams(f"bolt11: negative {name} {value}")
    return _tagged(tag, int_to_words(value))


def _payee_words(payee: NodeId | None, privkey: bytes, *, signer_is_payee: bool) -> list[int]:
    """The ``n`` field; checks ``privkey`` either way."""
    signer = pubkey_of(privkey)
    if payee is None:
        return []
    if signer_is_payee and payee != signer:
        raise InvalidParams(f"bolt11: payee {payee} is not the signing key's {signer}")
    try:
        payee_bytes = bytes.fromhex(payee)
    except ValueError:
        raise InvalidParams(f"bolt11: payee is not hex: {payee!r}") from None
    if len(payee_bytes) != 33:
        raise InvalidParams(f"bolt11: payee must be 33 bytes: {payee!r}")
    return _tagged(_T_N, bytes_to_words(payee_bytes))


def _feature_words(features: str) -> list[int]:
    """The ``9`` field from big-endian hex; no bit set leaves it out."""
    if not features:
        return []
    try:
        bits = int(features, 16)
    except ValueError:
        raise InvalidParams(f"bolt11: features is not hex: {features!r}") from None
    return _tagged(_T_9, int_to_words(bits)) if bits else []


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
    hrp, data = bech32_decode(s)
    network, amount_msat = _parse_hrp(hrp)
    if len(data) < _TIMESTAMP_WORDS + _SIGNATURE_WORDS:
        raise InvalidInvoice("bolt11: too short to hold a timestamp and a signature")
    body = data[:-_SIGNATURE_WORDS]
    t = _Tagged()
    for tag, field in _split_fields(body):
        _read_field(t, tag, field)
    if t.payment_hash is None:
        raise InvalidInvoice("bolt11: missing payment hash (no 'p' field of 52 words)")
    message = hrp.encode() + words_to_bytes(body, pad=True)
    sig = words_to_bytes(data[-_SIGNATURE_WORDS:], pad=False)
    payee = _checked_payee(sig, message, t.payee, trusted_signers)
    fields = InvoiceFields(
        network=network,
        payment_hash=t.payment_hash,
        created_at=words_to_int(body[:_TIMESTAMP_WORDS]),
        amount_msat=amount_msat,
        payment_secret=t.payment_secret,
        description=t.description,
        description_hash=t.description_hash,
        expiry=t.expiry,
        min_final_cltv_expiry=t.min_final,
        payee=t.payee,
        route_hints=tuple(t.hints),
        features=t.features,
    )
    return fields, payee, s.lower()


@dataclass(slots=True)
class _Tagged:
    """The tagged fields read so far (the first of each kind counts)."""

    payment_hash: PaymentHash | None = None
    payment_secret: str | None = None
    description: str | None = None
    description_hash: str | None = None
    expiry: int | None = None
    min_final: int | None = None
    payee: NodeId | None = None
    hints: list[tuple[RouteHintHop, ...]] = dataclass_field(default_factory=list)
    features: str = ""


def _split_fields(body: Sequence[int]) -> Iterator[tuple[int, Sequence[int]]]:
    """``(tag, data words)`` of each tagged field after the timestamp."""
    i = _TIMESTAMP_WORDS
    while i < len(body):
        if i + 3 > len(body):
            raise InvalidInvoice("bolt11: truncated tagged field header")
        tag = body[i]
        length = body[i + 1] << 5 | body[i + 2]
        field = body[i + 3 : i + 3 + length]
        if len(field) != length:
            raise InvalidInvoice(f"bolt11: field {CHARSET[tag]!r} overruns the data part")
        i += 3 + length
        yield tag, field


def _read_field(t: _Tagged, tag: int, field: Sequence[int]) -> None:
    """Read one tagged field into ``t``; a repeated field, a wrong length or an unknown
    tag (``f``, ``t``...) is skipped, as BOLT 11 requires."""
    n = len(field)
    if tag == _T_P and n == 52 and t.payment_hash is None:
        t.payment_hash = PaymentHash(words_to_bytes(field, pad=False).hex())
    elif tag == _T_S and n == 52 and t.payment_secret is None:
        t.payment_secret = words_to_bytes(field, pad=False).hex()
    elif tag == _T_H and n == 52 and t.description_hash is None:
        t.description_hash = words_to_bytes(field, pad=False).hex()
    elif tag == _T_N and n == 53 and t.payee is None:
        t.payee = NodeId(words_to_bytes(field, pad=False).hex())
    elif tag == _T_D and t.description is None:
        try:
            t.description = words_to_bytes(field, pad=False).decode()
        except UnicodeDecodeError:
            raise InvalidInvoice("bolt11: description 'd' is not valid UTF-8") from None
    elif tag == _T_X and t.expiry is None:
        t.expiry = words_to_int(field)
    elif tag == _T_C and t.min_final is None:
        t.min_final = words_to_int(field)
    elif tag == _T_R:
        t.hints.append(_parse_hint(words_to_bytes(field, pad=False)))
    elif tag == _T_9 and not t.features:
        bits = words_to_int(field)
        _check_features(bits)
        t.features = bits.to_bytes((bits.bit_length() + 7) // 8, "big").hex() if bits else ""


def _checked_payee(
    sig: bytes, message: bytes, payee_field: NodeId | None, trusted_signers: Collection[NodeId]
) -> NodeId:
    """The payee the signature proves: the ``n`` field's when it verifies (or a trusted
    signer signed), else the recovered key when there is no ``n`` field."""
    if sig[64] > 3:
        raise InvalidInvoice(f"bolt11: bad signature (recovery id {sig[64]} not in 0..3)")
    recovered = _recover(sig, message)
    if recovered is None:
        raise InvalidInvoice("bolt11: bad signature (no public key can be recovered from it)")
    if payee_field is None:
        return NodeId(recovered.hex())
    ok = recovered.hex() == payee_field or any(
        _recover(sig[:64] + bytes([r]), message) == bytes.fromhex(payee_field)
        for r in range(4)
        if r != sig[64]
    )
    if not ok and recovered.hex() not in trusted_signers:
        raise InvalidInvoice(f"bolt11: bad signature (does not verify for payee {payee_field})")
    return payee_field


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
                node_id=NodeId(e[:33].hex()),
                scid=scid_from_u64(int.from_bytes(e[33:41], "big")),
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
        description_hash=f.description_hash,
        route_hints=f.route_hints,
        features=f.features,
    )
