"""BOLT 4 failure codes, with the names Core Lightning prints (``failcodename``)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["BADONION", "NODE", "PERM", "UPDATE", "FailCode"]

BADONION = 0x8000
PERM = 0x4000
NODE = 0x2000
UPDATE = 0x1000


class FailCode(IntEnum):
    """BOLT 4 ``failure_code`` values.

    The flag bits tell how to read a failure: ``PERM`` never retry the same
    thing, ``NODE`` the erring node itself is at fault (not one channel),
    ``UPDATE`` the failure carries a ``channel_update``, ``BADONION`` the
    onion was unreadable.
    """

    INVALID_REALM = PERM | 1
    TEMPORARY_NODE_FAILURE = NODE | 2
    PERMANENT_NODE_FAILURE = PERM | NODE | 2
    REQUIRED_NODE_FEATURE_MISSING = PERM | NODE | 3
    INVALID_ONION_VERSION = BADONION | PERM | 4
    INVALID_ONION_HMAC = BADONION | PERM | 5
    INVALID_ONION_KEY = BADONION | PERM | 6
    TEMPORARY_CHANNEL_FAILURE = UPDATE | 7
    PERMANENT_CHANNEL_FAILURE = PERM | 8
    REQUIRED_CHANNEL_FEATURE_MISSING = PERM | 9
    UNKNOWN_NEXT_PEER = PERM | 10
    AMOUNT_BELOW_MINIMUM = UPDATE | 11
    FEE_INSUFFICIENT = UPDATE | 12
    INCORRECT_CLTV_EXPIRY = UPDATE | 13
    EXPIRY_TOO_SOON = UPDATE | 14
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15
    FINAL_INCORRECT_CLTV_EXPIRY = 18
    FINAL_INCORRECT_HTLC_AMOUNT = 19
    CHANNEL_DISABLED = UPDATE | 20
    EXPIRY_TOO_FAR = 21
    INVALID_ONION_PAYLOAD = PERM | 22
    MPP_TIMEOUT = 23
    INVALID_ONION_BLINDING = BADONION | PERM | 24

    @property
    def cln_name(self) -> str:
        """The name as lightningd prints it, e.g. ``WIRE_TEMPORARY_CHANNEL_FAILURE``."""
        return "WIRE_" + self.name

    @property
    def is_permanent(self) -> bool:
        return bool(self & PERM)

    @property
    def is_node(self) -> bool:
        return bool(self & NODE)

    @property
    def has_update(self) -> bool:
        return bool(self & UPDATE)

    @classmethod
    def from_name(cls, name: str) -> FailCode:
        """Parse ``WIRE_X`` or ``X`` (any case)."""
        key = name.upper().removeprefix("WIRE_")
        return cls[key]


def failcode_name(code: int) -> str:
    """CLN-style name of ``code``, or ``WIRE_UNKNOWN_0x....`` for an unknown one."""
    try:
        return FailCode(code).cln_name
    except ValueError:
        return f"WIRE_UNKNOWN_{code:#06x}"
