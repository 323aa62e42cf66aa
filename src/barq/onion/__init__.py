"""The onion layer: BOLT 4 hop payloads, blinded paths, keysend, onion errors.

Sans-IO throughout: every function takes and returns plain values, and the
RPC calls that use them (``createonion``, ``injectpaymentonion``,
``sendonion``) are made elsewhere. Modules:

* :mod:`barq.onion.tlv`: BOLT 1 BigSize, truncated integers, TLV streams;
* :mod:`barq.onion.payload`: a hop's payload fields and the three BOLT 4
  payload shapes (forwarding, final, blinded);
* :mod:`barq.onion.blinded`: BOLT 12 blinded paths/payinfo from ``decode``
  and the one-edge model (fee, CLTV, limits) strategies route across;
* :mod:`barq.onion.route`: a Barq :class:`~barq.model.Route` plus the
  recipient's data -> ``createonion``'s hops and the first HTLC's values;
* :mod:`barq.onion.keysend`: keysend's preimage record and ``extratlvs``;
* :mod:`barq.onion.failure`: peeling an onion error with the shared secrets
  and placing it on the route.
"""

from barq.onion.blinded import (
    BLINDED_DESTINATION,
    BlindedEdge,
    BlindedHop,
    BlindedPath,
    BlindedPayinfo,
    blinded_edge,
    paths_from_decode,
    payer_introduction,
)
from barq.onion.failure import FailureSite, OnionFailure, unwrap_onion_error
from barq.onion.keysend import (
    KEYSEND_FINAL_CLTV,
    keysend_final,
    new_preimage,
    parse_extratlvs,
    payment_hash_of,
)
from barq.onion.payload import (
    KEYSEND_PREIMAGE,
    HopPayload,
    blinded_payload,
    check_custom_records,
    decode_payload,
    final_payload,
    forward_payload,
)
from barq.onion.route import (
    BlindedFinal,
    ClearFinal,
    OnionHop,
    OnionPlan,
    OnionTooLarge,
    build_onion,
    createonion_params,
    injectpaymentonion_params,
)
from barq.onion.tlv import TlvError

__all__ = [
    "BLINDED_DESTINATION",
    "KEYSEND_FINAL_CLTV",
    "KEYSEND_PREIMAGE",
    "BlindedEdge",
    "BlindedFinal",
    "BlindedHop",
    "BlindedPath",
    "BlindedPayinfo",
    "ClearFinal",
    "FailureSite",
    "HopPayload",
    "OnionFailure",
    "OnionHop",
    "OnionPlan",
    "OnionTooLarge",
    "TlvError",
    "blinded_edge",
    "blinded_payload",
    "build_onion",
    "check_custom_records",
    "createonion_params",
    "decode_payload",
    "final_payload",
    "forward_payload",
    "injectpaymentonion_params",
    "keysend_final",
    "new_preimage",
    "parse_extratlvs",
    "paths_from_decode",
    "payer_introduction",
    "payment_hash_of",
    "unwrap_onion_error",
]
