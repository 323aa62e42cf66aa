"""Is a ``channel_update`` really from the node it speaks for? (BOLT 7 signature check)

A ``channel_update`` is signed by the node that forwards over its direction:
``signature`` (64 bytes, compact ``r || s``) over the double SHA-256 of the
rest of the message (from ``chain_hash`` on), with that node's key. A failure
message may carry any bytes an intermediate node likes, so the router applies
an update from a failure only when :func:`signed_by` says yes.
"""

from __future__ import annotations

import hashlib

import coincurve
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from barq.model import ChannelUpdate, NodeId

__all__ = ["signed_by", "update_digest"]

_SIG = 64


def update_digest(signed: bytes) -> bytes:
    """The double SHA-256 a ``channel_update``'s signature covers (``signed``: from the sig)."""
    return hashlib.sha256(hashlib.sha256(signed[_SIG:]).digest()).digest()


def signed_by(update: ChannelUpdate, node_id: NodeId) -> bool:
    """True when ``update.signed`` carries a valid signature of ``node_id`` over the update.

    False for an update without its wire bytes, a malformed key or signature,
    or a signature by anyone else. Never raises.
    """
    raw = update.signed
    if len(raw) <= _SIG:
        return False
    try:
        key = coincurve.PublicKey(bytes.fromhex(node_id))
        der = cdata_to_der(deserialize_compact(raw[:_SIG]))
        return bool(key.verify(der, update_digest(raw), hasher=None))
    except Exception:  # coincurve raises plain Exception/ValueError on bad keys and signatures
        return False
