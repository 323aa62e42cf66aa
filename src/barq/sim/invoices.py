"""The invoices the simulated network's payees issue, and decoding them.

An invoice is signed with its payee's key when the network knows it, else
with the simulator's own key plus an ``n`` field naming the payee; such an
invoice decodes only on this network (:meth:`Invoices.decode` trusts that
key). Preimages and payment secrets are hashes of ``(seed, count)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from barq.errors import InvalidParams
from barq.graph import Graph
from barq.invoice import bolt11
from barq.model import Invoice, NodeId, PaymentHash, RouteHintHop
from barq.sim.rules import InvoiceTerms

__all__ = ["INVOICE_FEATURES", "InvoiceOptions", "InvoiceRecord", "Invoices"]

INVOICE_FEATURES = "024100"  # var_onion_optin (8), payment_secret (14), basic_mpp (17 optional)


class InvoiceOptions(TypedDict, total=False):
    """The optional terms of :meth:`Invoices.create` (defaults there)."""

    expiry_s: int
    description: str
    route_hints: Sequence[Sequence[RouteHintHop]] | None
    min_final_cltv: int


@dataclass(slots=True)
class InvoiceRecord:
    """An invoice a payee issued, what it checks parts against, and what it received."""

    payee: NodeId
    payment_hash: PaymentHash
    preimage: str
    terms: InvoiceTerms
    bolt11: str
    paid: bool = False
    received_msat: int = 0
    parts_settled: int = 0


class Invoices:
    """Every invoice issued on one network.

    Args:
        graph: the network's graph (payees must be its nodes).
        seed: seeds preimages, secrets and the simulator's signing key.
        network: chain name written into invoices.
        keys: node id -> 32-byte private key of nodes that sign their own invoices.
        now: simulated UNIX time (invoices' ``created_at``).
    """

    def __init__(
        self,
        graph: Graph,
        *,
        seed: int,
        network: str,
        keys: Mapping[NodeId, bytes],
        now: Callable[[], float],
    ) -> None:
        self.graph = graph
        self.seed = seed
        self.network = network
        self._now = now
        self._keys: dict[NodeId, bytes] = dict(keys)
        self._sim_key = hashlib.sha256(f"barq-sim-signer-{seed}".encode()).digest()
        self._trusted = frozenset({bolt11.pubkey_of(self._sim_key)})
        self._records: dict[str, InvoiceRecord] = {}
        self._decoded: dict[str, Invoice] = {}
        self._count = 0

    def create(
        self,
        payee: NodeId,
        amount_msat: int | None,
        *,
        expiry_s: int = 3600,
        description: str = "barq simulated payment",
        route_hints: Sequence[Sequence[RouteHintHop]] | None = None,
        min_final_cltv: int = 18,
    ) -> str:
        """Issue a bolt11 invoice of ``payee`` and remember its preimage.

        ``route_hints=None`` adds one single-hop hint per private channel into the payee.

        Raises:
            barq.errors.InvalidParams: unknown payee or non-positive amount.
        """
        if payee not in self.graph.node_index:
            raise InvalidParams(f"simulated network: unknown payee {payee}")
        if amount_msat is not None and amount_msat <= 0:
            raise InvalidParams(
                f"simulated network: invoice amount must be positive: {amount_msat}"
            )
        k = self._count
        self._count += 1
        preimage = hashlib.sha256(f"barq-sim-preimage-{self.seed}-{k}".encode()).digest()
        payment_hash = PaymentHash(hashlib.sha256(preimage).hexdigest())
        secret = hashlib.sha256(f"barq-sim-secret-{self.seed}-{k}".encode()).hexdigest()
        hints = (
            self._auto_hints(payee) if route_hints is None else tuple(tuple(h) for h in route_hints)
        )
        created_at = int(self._now())
        key = self._keys.get(payee)
        fields = bolt11.InvoiceFields(
            network=self.network,
            payment_hash=payment_hash,
            created_at=created_at,
            amount_msat=amount_msat,
            payment_secret=secret,
            description=description,
            expiry=expiry_s,
            min_final_cltv_expiry=min_final_cltv,
            payee=None if key is not None else payee,
            route_hints=hints,
            features=INVOICE_FEATURES,
        )
        if key is not None:
            text = bolt11.encode(fields, key)
        else:
            text = bolt11.encode(fields, self._sim_key, signer_is_payee=False)
        self._records[payment_hash] = InvoiceRecord(
            payee=payee,
            payment_hash=payment_hash,
            preimage=preimage.hex(),
            terms=InvoiceTerms(
                payment_secret=secret,
                amount_msat=amount_msat,
                min_final_cltv=min_final_cltv,
                created_at=created_at,
                expiry_s=expiry_s,
            ),
            bolt11=text,
        )
        return text

    def add_keysend(self, payee: NodeId, preimage: bytes, payment_secret: str | None) -> str:
        """The payee of a keysend part creates its invoice on receipt (CLN's ``keysend``
        plugin): any amount, the part's own ``payment_secret``. Returns the payment hash."""
        payment_hash = PaymentHash(hashlib.sha256(preimage).hexdigest())
        if payment_hash not in self._records:
            self._records[payment_hash] = InvoiceRecord(
                payee=payee,
                payment_hash=payment_hash,
                preimage=preimage.hex(),
                terms=InvoiceTerms(
                    payment_secret=payment_secret,
                    amount_msat=None,
                    min_final_cltv=0,
                    created_at=int(self._now()),
                    expiry_s=3600,
                ),
                bolt11="",
            )
        return payment_hash

    def _auto_hints(self, payee: NodeId) -> tuple[tuple[RouteHintHop, ...], ...]:
        g = self.graph
        if not bool(g.private.any()):
            return ()
        p = g.node_index[payee]
        hints = []
        for e in np.flatnonzero(g.private & (g.dst == p)).tolist():
            hints.append(
                (
                    RouteHintHop(
                        node_id=g.nodes[int(g.src[e])],
                        scid=g.scid[e],
                        fee_base_msat=int(g.fee_base_msat[e]),
                        fee_ppm=int(g.fee_ppm[e]),
                        cltv_delta=int(g.cltv_delta[e]),
                    ),
                )
            )
        return tuple(hints)

    def decode(self, invstring: str) -> Invoice:
        """Decode (and check) a bolt11 string, trusting this simulator's signing key.

        Raises:
            barq.errors.InvalidInvoice: see :func:`barq.invoice.bolt11.decode`.
        """
        inv = self._decoded.get(invstring)
        if inv is None:
            inv = bolt11.decode(invstring, trusted_signers=self._trusted)
            if len(self._decoded) < 100_000:
                self._decoded[invstring] = inv
        return inv

    def get(self, payment_hash: PaymentHash) -> InvoiceRecord | None:
        """The record of an invoice this network issued (``None`` if unknown)."""
        return self._records.get(payment_hash)
