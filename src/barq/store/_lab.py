"""The strategy lab's reads of the database (and its one write: a payment's assignment).

The lab (:mod:`barq.lab`) needs payments as flat records (one per payment
hash, whatever number of groups it took), and every part with its route as
the engine recorded it. Two ways in:

* on the live store, through the store thread (:func:`lab_payments`,
  :func:`get_assignment`, :func:`put_assignment`; ``a``-prefixed forms for
  async code), so reads see every write queued before them;
* on a file, for the ``barq`` tools: :func:`open_copy` copies the database
  into memory through a read-only connection (SQLite's backup API), so a
  live node's file is never written, locked or migrated by a tool.
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec

from barq.errors import StoreError
from barq.model import Route
from barq.store._store import Store

__all__ = [
    "Assignment",
    "LabAttempt",
    "LabPayment",
    "aget_assignment",
    "alab_payments",
    "copy_attempts",
    "copy_payments",
    "get_assignment",
    "lab_attempts",
    "lab_payments",
    "open_copy",
    "put_assignment",
    "read_assignment",
    "read_lab_attempts",
    "read_lab_payments",
]

_route_decoder = msgspec.json.Decoder(Route)


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    """Which strategy the lab chose for a payment hash, and why (a row of ``lab_assignments``).

    ``experiment`` is ``None`` for a choice of ``strategy=auto``.
    """

    payment_hash: str
    strategy: str
    experiment: str | None = None
    reason: str = ""
    assigned_at: float = 0.0


class LabPayment(msgspec.Struct, frozen=True, kw_only=True):
    """One payment hash as the lab counts it (all its groups together).

    ``status`` is ``complete`` when any group completed, else the latest
    group's; ``fee_msat`` and ``parts`` (succeeded parts) are the completed
    group's; ``attempts`` counts the parts of every group; ``created_at`` is
    the first group's start and ``completed_at`` the last group's end.
    ``experiment``/``reason`` come from the lab's assignment (``None``/``""``
    for a payment the lab did not assign).
    """

    payment_hash: str
    amount_msat: int
    strategy: str
    status: str
    created_at: float
    completed_at: float | None = None
    fee_msat: int = 0
    attempts: int = 0
    parts: int = 0
    experiment: str | None = None
    reason: str = ""


class LabAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One part sent, with what its strategy knew (``route.probability``) and how it ended.

    ``erring_index`` follows :class:`barq.model.RouteFailure` (0 is us; ``i``
    the node that reported the failure, so hop ``i`` — its outgoing channel —
    failed when ``i < len(route.hops)``).
    """

    payment_hash: str
    partid: int
    groupid: int
    route: Route
    state: str
    started_at: float
    finished_at: float | None = None
    erring_index: int | None = None
    failcode: int | None = None
    failcodename: str | None = None
    strategy: str = ""
    experiment: str | None = None


def _has_lab_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lab_assignments'"
    ).fetchone()
    return row is not None


def _window(column: str, since: float | None, until: float | None) -> tuple[str, list[Any]]:
    where, args = [], []
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        args.append(until)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def _assignments(conn: sqlite3.Connection) -> dict[str, tuple[str | None, str]]:
    if not _has_lab_table(conn):
        return {}
    rows = conn.execute("SELECT payment_hash, experiment, reason FROM lab_assignments")
    return {h: (e, r) for h, e, r in rows}


def _merge(
    prev: LabPayment | None, row: Any, succeeded: int, experiment: str | None, reason: str
) -> LabPayment:
    """``prev`` (the hash's earlier groups) with one more group's ``payments`` row."""
    h, _, amount, strategy, status, created, completed, fee, attempts = row
    done = status == "complete"
    if prev is None:
        prev = LabPayment(
            payment_hash=h, amount_msat=amount, strategy=strategy, status=status, created_at=created
        )
    elif prev.status == "complete":  # a later group of a paid hash changes nothing paid
        done, strategy = False, prev.strategy
    return LabPayment(
        payment_hash=h,
        amount_msat=amount,
        strategy=strategy,
        status="complete" if done or prev.status == "complete" else status,
        created_at=prev.created_at,
        completed_at=completed if completed is not None else prev.completed_at,
        fee_msat=fee if done else prev.fee_msat,
        attempts=attempts + prev.attempts,
        parts=succeeded if done else prev.parts,
        experiment=experiment,
        reason=reason,
    )


def read_lab_payments(
    conn: sqlite3.Connection, *, since: float | None = None, until: float | None = None
) -> list[LabPayment]:
    """Every payment hash whose first group started in ``[since, until)``, oldest first."""
    rows = conn.execute(
        "SELECT payment_hash, groupid, amount_msat, strategy, status, created_at, "
        "completed_at, fee_msat, attempts FROM payments ORDER BY created_at, groupid"
    ).fetchall()
    succeeded = dict(
        conn.execute(
            "SELECT payment_hash || ':' || groupid, COUNT(*) FROM parts "
            "WHERE state = 'succeeded' GROUP BY payment_hash, groupid"
        ).fetchall()
    )
    assigned = _assignments(conn)
    by_hash: dict[str, LabPayment] = {}
    for row in rows:
        h, gid = row[0], row[1]
        exp, reason = assigned.get(h, (None, ""))
        by_hash[h] = _merge(by_hash.get(h), row, succeeded.get(f"{h}:{gid}", 0), exp, reason)
    lo = -float("inf") if since is None else since
    hi = float("inf") if until is None else until
    return sorted(
        (p for p in by_hash.values() if lo <= p.created_at < hi), key=lambda p: p.created_at
    )


def read_lab_attempts(
    conn: sqlite3.Connection, *, since: float | None = None, until: float | None = None
) -> list[LabAttempt]:
    """Every part started in ``[since, until)``, in the order they started."""
    where, args = _window("p.started_at", since, until)
    rows = conn.execute(
        "SELECT p.payment_hash, p.partid, p.groupid, p.route, p.state, p.started_at, "
        "p.finished_at, p.erring_index, p.failcode, p.failcodename, y.strategy "
        "FROM parts p JOIN payments y ON y.payment_hash = p.payment_hash "
        f"AND y.groupid = p.groupid{where} ORDER BY p.started_at, p.partid",
        args,
    ).fetchall()
    assigned = _assignments(conn)
    out: list[LabAttempt] = []
    for h, partid, gid, route, state, started, finished, idx, code, name, strategy in rows:
        out.append(
            LabAttempt(
                payment_hash=h,
                partid=partid,
                groupid=gid,
                route=_route_decoder.decode(route),
                state=state,
                started_at=started,
                finished_at=finished,
                erring_index=idx,
                failcode=code,
                failcodename=name,
                strategy=strategy,
                experiment=assigned.get(h, (None, ""))[0],
            )
        )
    return out


def read_assignment(conn: sqlite3.Connection, payment_hash: str) -> Assignment | None:
    """The lab's assignment of ``payment_hash``, if any."""
    row = conn.execute(
        "SELECT strategy, experiment, reason, assigned_at FROM lab_assignments "
        "WHERE payment_hash = ?",
        (payment_hash,),
    ).fetchone()
    if row is None:
        return None
    return Assignment(
        payment_hash=payment_hash,
        strategy=row[0],
        experiment=row[1],
        reason=row[2],
        assigned_at=row[3],
    )


def _write_assignment(conn: sqlite3.Connection, a: Assignment) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO lab_assignments "
        "(payment_hash, experiment, strategy, reason, assigned_at) VALUES (?, ?, ?, ?, ?)",
        (a.payment_hash, a.experiment, a.strategy, a.reason, a.assigned_at),
    )


# -- on the live store (its thread) ---------------------------------------------------------


def put_assignment(store: Store, assignment: Assignment) -> None:
    """Record ``assignment`` (non-blocking; the first assignment of a hash is kept).

    Raises:
        StoreError: the store is closed.
    """
    store._submit(functools.partial(_write_assignment, a=assignment), wait=False)


def get_assignment(
    store: Store, payment_hash: str, *, timeout_s: float = 10.0
) -> Assignment | None:
    """The stored assignment of ``payment_hash`` (blocking; see :func:`aget_assignment`)."""
    return store._call(functools.partial(read_assignment, payment_hash=payment_hash), timeout_s)


def lab_payments(
    store: Store,
    *,
    since: float | None = None,
    until: float | None = None,
    timeout_s: float = 30.0,
) -> list[LabPayment]:
    """:func:`read_lab_payments` on the store thread (blocking)."""
    return store._call(functools.partial(read_lab_payments, since=since, until=until), timeout_s)


def lab_attempts(store: Store, *, timeout_s: float = 30.0) -> list[LabAttempt]:
    """:func:`read_lab_attempts` on the store thread (blocking)."""
    return store._call(read_lab_attempts, timeout_s)


async def aget_assignment(store: Store, payment_hash: str) -> Assignment | None:
    """:func:`get_assignment` without blocking the event loop."""
    return await anyio.to_thread.run_sync(get_assignment, store, payment_hash)


async def alab_payments(
    store: Store, *, since: float | None = None, until: float | None = None
) -> list[LabPayment]:
    """:func:`lab_payments` without blocking the event loop."""
    return await anyio.to_thread.run_sync(
        functools.partial(lab_payments, store, since=since, until=until)
    )


# -- on a file: a private in-memory copy ----------------------------------------------------


def open_copy(path: str | Path) -> sqlite3.Connection:
    """An in-memory copy of the database at ``path``, read through a read-only connection.

    The copy can be read (or even written) freely: the file itself is only
    read (``mode=ro``), never migrated, so a live node's store is safe.

    Raises:
        StoreError: no such file, or it is not a Barq database.
    """
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"barq database {p}: no such file", data={"path": str(p)})
    dst = sqlite3.connect(":memory:")
    try:
        src = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            src.backup(dst)
        finally:
            src.close()
        tables = {r[0] for r in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        dst.close()
        raise StoreError(f"barq database {p} cannot be read: {exc}", data={"path": str(p)}) from exc
    if not {"payments", "parts"} <= tables:
        dst.close()
        raise StoreError(
            f"barq database {p} is not a Barq database (no payments table)", data={"path": str(p)}
        )
    return dst


def copy_payments(
    path: str | Path, *, since: float | None = None, until: float | None = None
) -> list[LabPayment]:
    """:func:`read_lab_payments` of a copy of the file at ``path`` (see :func:`open_copy`)."""
    conn = open_copy(path)
    try:
        return read_lab_payments(conn, since=since, until=until)
    finally:
        conn.close()


def copy_attempts(path: str | Path) -> list[LabAttempt]:
    """:func:`read_lab_attempts` of a copy of the file at ``path`` (see :func:`open_copy`)."""
    conn = open_copy(path)
    try:
        return read_lab_attempts(conn)
    finally:
        conn.close()
