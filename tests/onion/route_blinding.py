"""Test-side BOLT 4 route blinding and BOLT 12 invoice re-writing (issue 14, two-path MPP).

CLN v26.06 puts exactly one blinded path in each invoice it issues
(``plugins/offers_invreq_hook.c``), so a regtest of MPP across two paths
builds the paths itself (:func:`blind_path`), writes them into a real
invoice of the payee (:func:`rewrite_invoice`) and has the payee sign and
store it with ``createinvoice``. Barq itself never blinds a path (a payer
only reads them); this module lives in the tests.

Route blinding (BOLT 4 "Route Blinding"), for nodes ``N_0 .. N_k`` and a
session key ``e_0``:

* ``E_i = e_i * G`` (the path key), ``ss_i = SHA256(ECDH(e_i, N_i))``;
* ``rho_i = HMAC256("rho", ss_i)``, ``B_i = HMAC256("blinded_node_id", ss_i) * N_i``;
* ``encrypted_data_i = ChaCha20-Poly1305(rho_i, nonce 0, tlvs_i)``;
* ``e_{i+1} = SHA256(E_i || ss_i) * e_i``.

BOLT 12 strings are bech32 *without* checksum; the invoice is a TLV stream
(``invoice_paths`` 160, ``invoice_blindedpay`` 162, ``invoice_payment_hash``
168, ``signature`` 240).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from barq.invoice._bech32 import CHARSET, bytes_to_words, words_to_bytes
from barq.model import scid_to_u64
from barq.onion.tlv import decode_tlv_stream, encode_tlv_stream, encode_truncated

__all__ = [
    "INVOICE_BLINDEDPAY",
    "INVOICE_PATHS",
    "INVOICE_PAYMENT_HASH",
    "SIGNATURE",
    "BlindedHopData",
    "BlindedRoute",
    "Payinfo",
    "blind_path",
    "bolt12_decode",
    "bolt12_encode",
    "final_tlvs",
    "hop_secrets",
    "intro_tlvs",
    "next_path_privkey",
    "rewrite_invoice",
]

INVOICE_PATHS = 160
INVOICE_BLINDEDPAY = 162
INVOICE_PAYMENT_HASH = 168
SIGNATURE = 240

_NONCE = bytes(12)


@dataclass(frozen=True)
class BlindedHopData:
    """What route blinding derives for one node: the keys and its encrypted data."""

    path_key: bytes  # E_i (compressed point)
    shared_secret: bytes  # ss_i
    rho: bytes
    blinded_node_id: bytes  # B_i (compressed point)
    encrypted_data: bytes


@dataclass(frozen=True)
class BlindedRoute:
    """A BOLT 4 ``blinded_path``: its introduction node, first path key and hops."""

    first_node_id: bytes
    first_path_key: bytes
    hops: tuple[BlindedHopData, ...]

    def serialize(self) -> bytes:
        """The wire ``blinded_path`` (BOLT 12 ``invoice_paths`` entries are these, concatenated)."""
        out = self.first_node_id + self.first_path_key + bytes([len(self.hops)])
        for h in self.hops:
            out += h.blinded_node_id + struct.pack(">H", len(h.encrypted_data)) + h.encrypted_data
        return out


@dataclass(frozen=True)
class Payinfo:
    """BOLT 12 ``blinded_payinfo`` of one path."""

    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    htlc_maximum_msat: int

    def serialize(self) -> bytes:
        return struct.pack(
            ">IIHQQH",
            self.fee_base_msat,
            self.fee_proportional_millionths,
            self.cltv_expiry_delta,
            self.htlc_minimum_msat,
            self.htlc_maximum_msat,
            0,  # no features
        )


def hop_secrets(path_privkey: bytes, node_id: bytes, tlvs: bytes) -> BlindedHopData:
    """Everything route blinding derives for node ``node_id`` with path key ``e_i``."""
    e = PrivateKey(path_privkey)
    ss = e.ecdh(node_id)  # SHA256 of the compressed shared point
    rho = hmac.new(b"rho", ss, hashlib.sha256).digest()
    tweak = hmac.new(b"blinded_node_id", ss, hashlib.sha256).digest()
    blinded = PublicKey(node_id).multiply(tweak).format()
    encrypted = ChaCha20Poly1305(rho).encrypt(_NONCE, tlvs, None)
    return BlindedHopData(
        path_key=e.public_key.format(),
        shared_secret=ss,
        rho=rho,
        blinded_node_id=blinded,
        encrypted_data=encrypted,
    )


def next_path_privkey(path_privkey: bytes, hop: BlindedHopData) -> bytes:
    """``e_{i+1} = SHA256(E_i || ss_i) * e_i``."""
    factor = hashlib.sha256(hop.path_key + hop.shared_secret).digest()
    return PrivateKey(path_privkey).multiply(factor).secret


def blind_path(session_key: bytes, nodes: Sequence[bytes], tlvs: Sequence[bytes]) -> BlindedRoute:
    """The blinded path through ``nodes`` (``nodes[0]`` the introduction node) carrying
    ``tlvs[i]`` (a TLV stream) encrypted to ``nodes[i]``."""
    if len(nodes) != len(tlvs) or not nodes:
        raise ValueError("one TLV stream per node, at least one node")
    e = session_key
    hops: list[BlindedHopData] = []
    for node, data in zip(nodes, tlvs, strict=True):
        hop = hop_secrets(e, node, data)
        hops.append(hop)
        e = next_path_privkey(e, hop)
    return BlindedRoute(first_node_id=nodes[0], first_path_key=hops[0].path_key, hops=tuple(hops))


def intro_tlvs(
    *,
    scid: str,
    cltv_expiry_delta: int,
    fee_base_msat: int,
    fee_proportional_millionths: int,
    max_cltv_expiry: int,
    htlc_minimum_msat: int,
) -> bytes:
    """A forwarding node's ``encrypted_data_tlv``: ``short_channel_id`` (2),
    ``payment_relay`` (10), ``payment_constraints`` (12)."""
    relay = struct.pack(">HI", cltv_expiry_delta, fee_proportional_millionths) + encode_truncated(
        fee_base_msat, 4
    )
    constraints = struct.pack(">I", max_cltv_expiry) + encode_truncated(htlc_minimum_msat, 8)
    return encode_tlv_stream({2: scid_to_u64(scid).to_bytes(8, "big"), 10: relay, 12: constraints})


def final_tlvs(path_id: bytes) -> bytes:
    """The recipient's ``encrypted_data_tlv``: ``path_id`` (6) only."""
    return encode_tlv_stream({6: path_id})


def bolt12_decode(text: str) -> tuple[str, dict[int, bytes]]:
    """A BOLT 12 string (bech32 without checksum, ``+`` joins allowed) -> (hrp, TLV records)."""
    s = "".join(text.lower().split("+"))
    hrp, _, data = s.rpartition("1")
    words = [CHARSET.index(c) for c in data]
    return hrp, decode_tlv_stream(words_to_bytes(words, pad=False))


def bolt12_encode(hrp: str, records: Mapping[int, bytes]) -> str:
    """Inverse of :func:`bolt12_decode` (no ``+``)."""
    words = bytes_to_words(encode_tlv_stream(records))
    return hrp + "1" + "".join(CHARSET[w] for w in words)


def rewrite_invoice(
    invoice: str,
    paths: Sequence[BlindedRoute],
    payinfos: Sequence[Payinfo],
    payment_hash: bytes,
) -> str:
    """``invoice`` (``lni1…``) with these paths, payinfos and payment hash, unsigned.

    The payee signs it again with ``createinvoice`` (which refuses a signed one).
    """
    hrp, records = bolt12_decode(invoice)
    if hrp != "lni":
        raise ValueError(f"not a BOLT 12 invoice: {hrp!r}")
    records = dict(records)
    records[INVOICE_PATHS] = b"".join(p.serialize() for p in paths)
    records[INVOICE_BLINDEDPAY] = b"".join(i.serialize() for i in payinfos)
    records[INVOICE_PAYMENT_HASH] = payment_hash
    records.pop(SIGNATURE, None)
    return bolt12_encode(hrp, dict(sorted(records.items())))
