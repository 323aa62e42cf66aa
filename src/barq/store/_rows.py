"""Rows of the database: how payments, parts and knowledge become SQL and back.

``write_*``/``read_*`` run on the store thread, inside the transaction the
store opened for them; ``*_row`` encode on the caller's thread.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from barq.model import PaymentHash, Route, RouteFailure
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView

__all__ = [
    "KnowledgeRecord",
    "knowledge_row",
    "part_row",
    "payment_row",
    "read_knowledge",
    "read_payments",
    "write_knowledge",
    "write_payment",
]

_route_encoder = msgspec.json.Encoder()
_route_decoder = msgspec.json.Decoder(Route)
_failure_decoder = msgspec.json.Decoder(RouteFailure)


class KnowledgeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the estimator's knowledge, as stored (a row of ``knowledge``).

    ``kind`` is ``"channel"`` (``key`` a ``scid_dir``; ``lo_msat <= hi_msat``
    bounds learnt at ``updated_at``, UNIX seconds; ``capacity_msat`` when
    known), ``"disabled_channel"`` (``key`` a ``scid_dir``) or
    ``"disabled_node"`` (``key`` a node id), the last two not to be used before
    ``until`` for ``reason``. ``(kind, key)`` is unique.
    """

    kind: str
    key: str
    lo_msat: int | None = None
    hi_msat: int | None = None
    capacity_msat: int | None = None
    updated_at: float | None = None
    until: float | None = None
    reason: str = ""


_PAYMENT_COLS = (
    "payment_hash",
    "groupid",
    "bolt11",
    "label",
    "destination",
    "amount_msat",
    "status",
    "strategy",
    "created_at",
    "completed_at",
    "payment_preimage",
    "amount_sent_msat",
    "delivered_msat",
    "inflight_msat",
    "fee_msat",
    "attempts",
    "maxfee_msat",
    "compute_s",
    "error",
    "error_code",
)
_PART_COLS = (
    "payment_hash",
    "groupid",
    "partid",
    "amount_msat",
    "amount_sent_msat",
    "fee_msat",
    "route",
    "state",
    "started_at",
    "finished_at",
    "failcode",
    "failcodename",
    "erring_index",
    "erring_node",
    "erring_channel",
    "erring_direction",
    "failure",
    "reason",
)


def payment_row(v: PaymentView) -> tuple[Any, ...]:
    return (
        v.payment_hash,
        v.groupid,
        v.bolt11,
        v.label,
        v.destination,
        v.amount_msat,
        str(v.status),
        v.strategy,
        v.created_at,
        v.completed_at,
        v.payment_preimage,
        v.amount_sent_msat,
        v.delivered_msat,
        v.inflight_msat,
        v.fee_msat,
        v.attempts,
        v.maxfee_msat,
        v.compute_s,
        v.error,
        v.error_code,
    )


def part_row(v: PaymentView, p: PartView) -> tuple[Any, ...]:
    f = p.failure
    return (
        v.payment_hash,
        v.groupid,
        p.partid,
        p.amount_msat,
        p.amount_sent_msat,
        p.fee_msat,
        _route_encoder.encode(p.route).decode(),
        str(p.state),
        p.started_at,
        p.finished_at,
        f.failcode if f else None,
        f.failcodename if f else None,
        f.erring_index if f else None,
        f.erring_node if f else None,
        f.erring_channel if f else None,
        f.erring_direction if f else None,
        _route_encoder.encode(f).decode() if f else None,
        p.reason,
    )


def write_payment(
    conn: sqlite3.Connection, *, row: tuple[Any, ...], parts: list[tuple[Any, ...]]
) -> None:
    cols = ", ".join(_PAYMENT_COLS)
    marks = ", ".join("?" for _ in _PAYMENT_COLS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _PAYMENT_COLS[2:])
    conn.execute(
        f"INSERT INTO payments ({cols}) VALUES ({marks}) "
        f"ON CONFLICT (payment_hash, groupid) DO UPDATE SET {updates}",
        row,
    )
    if parts:
        pcols = ", ".join(_PART_COLS)
        pmarks = ", ".join("?" for _ in _PART_COLS)
        conn.executemany(f"INSERT OR REPLACE INTO parts ({pcols}) VALUES ({pmarks})", parts)


_KNOWLEDGE_COLS = (
    "kind",
    "key",
    "lo_msat",
    "hi_msat",
    "capacity_msat",
    "updated_at",
    "until",
    "reason",
)


def knowledge_row(r: KnowledgeRecord) -> tuple[Any, ...]:
    return (r.kind, r.key, r.lo_msat, r.hi_msat, r.capacity_msat, r.updated_at, r.until, r.reason)


def write_knowledge(
    conn: sqlite3.Connection, *, rows: list[tuple[Any, ...]], replace: bool
) -> None:
    if replace:
        conn.execute("DELETE FROM knowledge")
    cols = ", ".join(_KNOWLEDGE_COLS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _KNOWLEDGE_COLS[2:])
    conn.executemany(
        f"INSERT INTO knowledge ({cols}) VALUES ({', '.join('?' for _ in _KNOWLEDGE_COLS)}) "
        f"ON CONFLICT (kind, key) DO UPDATE SET {updates}",
        rows,
    )


def read_payments(
    conn: sqlite3.Connection,
    *,
    payment_hash: PaymentHash | None,
    status: str | None,
    limit: int | None,
) -> list[PaymentView]:
    where: list[str] = []
    args: list[Any] = []
    if payment_hash is not None:
        where.append("payment_hash = ?")
        args.append(payment_hash)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    sql = f"SELECT {', '.join(_PAYMENT_COLS)} FROM payments"
    if where:
        sql += " WHERE " + " AND ".join(where)
    # newest first so that LIMIT keeps the most recent; reversed below
    sql += " ORDER BY created_at DESC, payment_hash DESC, groupid DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    rows = conn.execute(sql, args).fetchall()
    rows.reverse()
    views: list[PaymentView] = []
    for r in rows:
        d = dict(zip(_PAYMENT_COLS, r, strict=True))
        parts = [
            _part_from_row(dict(zip(_PART_COLS, pr, strict=True)))
            for pr in conn.execute(
                f"SELECT {', '.join(_PART_COLS)} FROM parts "
                "WHERE payment_hash = ? AND groupid = ? ORDER BY partid",
                (d["payment_hash"], d["groupid"]),
            ).fetchall()
        ]
        views.append(
            PaymentView(
                payment_hash=d["payment_hash"],
                groupid=d["groupid"],
                bolt11=d["bolt11"],
                label=d["label"],
                destination=d["destination"],
                amount_msat=d["amount_msat"],
                status=PaymentStatus(d["status"]),
                strategy=d["strategy"],
                created_at=d["created_at"],
                completed_at=d["completed_at"],
                payment_preimage=d["payment_preimage"],
                amount_sent_msat=d["amount_sent_msat"],
                delivered_msat=d["delivered_msat"],
                inflight_msat=d["inflight_msat"],
                fee_msat=d["fee_msat"],
                attempts=d["attempts"],
                maxfee_msat=d["maxfee_msat"],
                compute_s=d["compute_s"],
                error=d["error"],
                error_code=d["error_code"],
                parts=tuple(parts),
            )
        )
    return views


def _part_from_row(d: dict[str, Any]) -> PartView:
    return PartView(
        partid=d["partid"],
        groupid=d["groupid"],
        amount_msat=d["amount_msat"],
        amount_sent_msat=d["amount_sent_msat"],
        fee_msat=d["fee_msat"],
        route=_route_decoder.decode(d["route"]),
        state=PartState(d["state"]),
        started_at=d["started_at"],
        finished_at=d["finished_at"],
        failure=_failure_decoder.decode(d["failure"]) if d["failure"] else None,
        reason=d["reason"],
    )


def read_knowledge(conn: sqlite3.Connection) -> list[KnowledgeRecord]:
    return [
        KnowledgeRecord(**dict(zip(_KNOWLEDGE_COLS, r, strict=True)))
        for r in conn.execute(
            f"SELECT {', '.join(_KNOWLEDGE_COLS)} FROM knowledge ORDER BY kind, key"
        ).fetchall()
    ]
