"""Invoices: the BOLT 11 codec (:mod:`barq.invoice.bolt11`)."""

from barq.invoice.bolt11 import InvoiceFields, decode, decode_fields, encode, pubkey_of

__all__ = ["InvoiceFields", "decode", "decode_fields", "encode", "pubkey_of"]
