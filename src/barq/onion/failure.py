"""Reading a failed part's onion reply (BOLT 4 "Returning Errors").

``injectpaymentonion`` does not decode failures for the caller: it fails
with code 218 and ``data.onionreply``, the error packet wrapped by every
hop and last by our own node (``lightningd/pay.c``, ``injectonion_fail``).
The sender peels it with the ``shared_secrets`` ``createonion`` returned, one
hop at a time: XOR with ChaCha20 keyed by ``ammag``, then check the HMAC
keyed by ``um``; the hop whose HMAC matches sent the error
(:func:`unwrap_onion_error`). The same part's ``listsendpays``
``erroronion`` / ``waitsendpay`` 202 ``onionreply`` lacks our own layer:
peel it with ``shared_secrets[1:]`` and ``first_index=1``.

:meth:`OnionFailure.locate` maps the sender's onion position back to the
Barq route, in :class:`barq.model.RouteFailure`'s terms. An error from
inside a blinded path arrives from the introduction node as
``invalid_onion_blinding`` (BOLT 4: blinded nodes never reply themselves),
and is charged to the blinded edge, as xpay does.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence

import msgspec

from barq.model import NodeId, Route, Scid
from barq.onion.route import OnionPlan

__all__ = [
    "FailureSite",
    "OnionFailure",
    "chacha20_stream",
    "generate_key",
    "unwrap_onion_error",
]

_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _MASK) | (v >> (32 - c))


def _quarter(s: list[int], a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & _MASK
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & _MASK
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & _MASK
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & _MASK
    s[b] = _rotl(s[b] ^ s[c], 7)


def _block(key_words: tuple[int, ...], counter: int, nonce_words: tuple[int, ...]) -> bytes:
    init = [*_SIGMA, *key_words, counter & _MASK, *nonce_words]
    s = list(init)
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12)
        _quarter(s, 1, 5, 9, 13)
        _quarter(s, 2, 6, 10, 14)
        _quarter(s, 3, 7, 11, 15)
        _quarter(s, 0, 5, 10, 15)
        _quarter(s, 1, 6, 11, 12)
        _quarter(s, 2, 7, 8, 13)
        _quarter(s, 3, 4, 9, 14)
    return struct.pack("<16I", *((x + y) & _MASK for x, y in zip(s, init, strict=True)))


def chacha20_stream(
    key: bytes, length: int, *, nonce: bytes = bytes(12), counter: int = 0
) -> bytes:
    """``length`` bytes of ChaCha20 keystream (RFC 8439 block function).

    BOLT 4 uses a zero 96-bit nonce and counter 0 for its ``rho``/``ammag``
    streams (the same bytes as the original 64-bit-nonce ChaCha20 then).

    Raises:
        ValueError: ``key`` not 32 bytes or ``nonce`` not 12.
    """
    if len(key) != 32 or len(nonce) != 12:
        raise ValueError("chacha20 needs a 32-byte key and a 12-byte nonce")
    key_words = struct.unpack("<8I", key)
    nonce_words = struct.unpack("<3I", nonce)
    blocks = (length + 63) // 64
    out = b"".join(_block(key_words, counter + i, nonce_words) for i in range(blocks))
    return out[:length]


def generate_key(key_type: bytes, secret: bytes) -> bytes:
    """BOLT 4 key generation: ``HMAC-SHA256(key=key_type, msg=secret)``.

    ``key_type`` is e.g. ``b"um"`` (error HMAC) or ``b"ammag"`` (error obfuscation).
    """
    return hmac.new(key_type, secret, hashlib.sha256).digest()


class FailureSite(msgspec.Struct, frozen=True, kw_only=True):
    """Where on a Barq route a failure came from (``RouteFailure``'s fields).

    ``erring_index``: 0 is the payer, ``len(route.hops)`` the destination;
    ``erring_channel``/``erring_direction``: the half-channel leaving the
    erring node (``None`` at the destination); ``in_blinded_path``: the error
    was reported by the introduction node of the route's blinded path on
    behalf of the path (charged to the blinded edge).
    """

    erring_index: int
    erring_node: NodeId | None
    erring_channel: Scid | None
    erring_direction: int | None
    in_blinded_path: bool = False


class OnionFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A decrypted BOLT 4 failure: who sent it (onion position) and what.

    ``onion_index`` counts :attr:`OnionPlan.hops` (0 is ``hops[0]``, the
    payer itself for an ``injectpaymentonion`` onion); ``message`` is the
    ``failuremsg`` (``failure_code`` u16 then its data; a ``channel_update``
    inside can be read with ``barq.node.lightningd.parse_failure_message``).
    """

    onion_index: int
    message: bytes

    @property
    def failcode(self) -> int:
        """The BOLT 4 ``failure_code`` (0 when the message is shorter than 2 bytes)."""
        return int.from_bytes(self.message[:2], "big") if len(self.message) >= 2 else 0

    def locate(self, route: Route, plan: OnionPlan) -> FailureSite:
        """Map :attr:`onion_index` onto ``route`` (the route ``plan`` was built from).

        An index past the introduction node (a blinded node replying, which
        BOLT 4 forbids) is charged to the introduction node as well.

        Raises:
            ValueError: the index is beyond the plan's hops.
        """
        if self.onion_index >= len(plan.hops):
            raise ValueError(f"onion index {self.onion_index} beyond {len(plan.hops)} hops")
        intro = plan.introduction_index
        blinded = intro is not None and self.onion_index >= intro
        hops = route.hops
        if blinded:
            # the introduction node, charged for the path's edge (the route's last hop; the
            # node before it is the introduction node, or the payer's pseudo node when the
            # payer is the introduction node and the route is [lead, path])
            k = len(hops) - 1
        else:
            k = self.onion_index if plan.payer_included else self.onion_index + 1
        node = hops[k - 1].id if k > 0 else plan.hops[0].pubkey  # k == 0: the payer itself
        if k >= len(hops):
            return FailureSite(
                erring_index=k, erring_node=node, erring_channel=None, erring_direction=None
            )
        return FailureSite(
            erring_index=k,
            erring_node=node,
            erring_channel=hops[k].channel,
            erring_direction=hops[k].direction,
            in_blinded_path=blinded,
        )


def unwrap_onion_error(
    shared_secrets: Sequence[bytes], reply: bytes, *, first_index: int = 0
) -> OnionFailure | None:
    """Peel an onion error reply with the route's shared secrets, nearest hop first.

    Args:
        shared_secrets: ``createonion``'s ``shared_secrets`` (bytes), in hop
            order, starting at the first hop that wrapped ``reply``.
        reply: the onion reply bytes (``onionreply``/``erroronion`` hex-decoded).
        first_index: onion index of ``shared_secrets[0]`` (1 when our own
            layer is absent, see the module docstring).

    Returns:
        The failure, or ``None`` when no hop's HMAC matches (a garbled
        reply: some hop corrupted it, which one is unknown).
    """
    packet = reply
    for i, secret in enumerate(shared_secrets):
        ammag = generate_key(b"ammag", secret)
        stream = chacha20_stream(ammag, len(packet))
        packet = bytes(a ^ b for a, b in zip(packet, stream, strict=True))
        if len(packet) < 34:
            return None
        mac, body = packet[:32], packet[32:]
        expected = hmac.new(generate_key(b"um", secret), body, hashlib.sha256).digest()
        if hmac.compare_digest(mac, expected):
            length = int.from_bytes(body[:2], "big")
            if 2 + length > len(body):
                return None
            return OnionFailure(onion_index=first_index + i, message=body[2 : 2 + length])
    return None
