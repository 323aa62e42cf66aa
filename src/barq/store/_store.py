"""SQLite persistence for payments, parts and the estimator's knowledge.

Threading model (why writes never block the event loop)
-------------------------------------------------------
A :class:`Store` owns exactly one ``sqlite3`` connection and one dedicated
thread (``barq-store``) that is the only user of it. Every operation is a
closure put on an unbounded FIFO ``queue.Queue`` that this thread runs in
order, each in its own transaction:

* **writes** (:meth:`Store.put_payment`, :meth:`Store.put_knowledge`) only
  enqueue and return at once: they are safe to call from the trio thread (or
  any thread) and never wait for the disk. A failed write is logged through
  ``on_error`` and kept in :attr:`Store.last_error`; it never raises into
  the caller (a payment already made cannot be undone because the history
  could not be written);
* **reads** (:meth:`Store.get_payments`, :meth:`Store.get_knowledge`) go
  through the same queue, so they see every write submitted before them
  (read-your-writes). The blocking forms are for tests and tools; async code
  uses the ``a``-prefixed forms, which wait in an ``anyio.to_thread`` worker.

The file is in WAL mode (readers of other processes, e.g. ``sqlite3`` on the
command line, never block the writer). Opening takes the write lock briefly
(``BEGIN IMMEDIATE``) so a database locked by another process is reported at
open time rather than at the first write.
"""

from __future__ import annotations

import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import msgspec

from barq.errors import StoreError
from barq.model import Route, RouteFailure
from barq.model.payment import PartState, PartView, PaymentStatus, PaymentView
from barq.store._schema import MIGRATIONS, Migration

__all__ = ["KnowledgeRecord", "Store", "open_store"]

log = logging.getLogger("barq.store")

T = TypeVar("T")

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


def _describe(path: Path, exc: BaseException) -> str:
    """A one-line, operator-facing reason for an sqlite3 failure on ``path``."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        why = "is locked by another process or connection"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        why = "is not a valid SQLite database (corrupt or another kind of file)"
    elif "unable to open" in low or "readonly" in low or "read-only" in low or "access" in low:
        why = "cannot be opened for reading and writing"
    elif "disk" in low or "full" in low:
        why = "cannot be written (disk I/O error or disk full)"
    else:
        why = "failed"
    return f"barq database {path} {why}: {text}"


def open_store(
    path: str | Path,
    *,
    timeout_s: float = 2.0,
    migrations: Sequence[Migration] = MIGRATIONS,
    on_error: Callable[[str], None] | None = None,
) -> Store:
    """Open (creating or upgrading) the database at ``path`` and start its thread.

    Blocking (disk I/O and possibly migrations): call it from a worker thread
    in async code (``await anyio.to_thread.run_sync(open_store, path)``).

    Args:
        path: the SQLite file; its directory must exist.
        timeout_s: how long to wait for a lock held by another connection.
        migrations: the schema steps (:data:`barq.store.MIGRATIONS`; tests
            pass a longer list to exercise upgrades).
        on_error: called (from the store thread) with a message whenever a
            background write fails.

    Returns:
        the open :class:`Store`, at schema version ``len(migrations)``, WAL on.

    Raises:
        StoreError: the file cannot be opened, is locked, is not a SQLite
            database (corrupt), or was written by a newer Barq (its
            ``user_version`` is above ``len(migrations)``). The message names
            the path.
    """
    p = Path(path)
    data = {"path": str(p)}
    if p.is_dir():
        raise StoreError(f"barq database {p} is a directory, not a file", data=data)
    if not p.parent.is_dir():
        raise StoreError(f"barq database {p}: directory {p.parent} does not exist", data=data)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(
            str(p), timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(migrations):
            raise StoreError(
                f"barq database {p} has schema version {version}, newer than this Barq "
                f"understands ({len(migrations)}): upgrade Barq, or point barq-db at another "
                f"file",
                data={**data, "version": version, "supported": len(migrations)},
            )
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        if mode != "wal":
            raise StoreError(
                f"barq database {p}: cannot switch to WAL mode (got {mode!r})", data=data
            )
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        ok = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
        if ok != "ok":
            raise StoreError(f"barq database {p} is corrupt: {ok}", data=data)
        # Take the write lock now: a database locked elsewhere fails here, not later.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for step in range(version, len(migrations)):
                for sql in migrations[step]:
                    conn.execute(sql)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except StoreError:
        if conn is not None:
            conn.close()
        raise
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise StoreError(_describe(p, exc), data={**data, "sqlite_error": str(exc)}) from exc
    return Store(p, conn, on_error=on_error)


class _Stop:
    pass


_STOP = _Stop()
_Op = tuple[Callable[[sqlite3.Connection], Any], "Future[Any] | None"]


class Store:
    """An open Barq database; see the module docstring for the threading model.

    Build it with :func:`open_store`. Safe to use from any thread. Close it
    with :meth:`close` (it drains the queue first, so no accepted write is lost).
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self._conn = conn
        self._on_error = on_error
        self._queue: queue.Queue[_Op | _Stop] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.writes_failed = 0
        self._thread = threading.Thread(target=self._run, name="barq-store", daemon=True)
        self._thread.start()

    # -- the store thread ---------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                break
            fn, fut = item
            if fut is not None and not fut.set_running_or_notify_cancel():
                continue
            try:
                conn.execute("BEGIN")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except Exception as exc:
                err: BaseException = exc
                if isinstance(exc, sqlite3.Error):
                    err = StoreError(_describe(self.path, exc), data={"path": str(self.path)})
                if fut is not None:
                    fut.set_exception(err)
                else:
                    self._report(f"write failed: {err}")
            else:
                if fut is not None:
                    fut.set_result(result)
        conn.close()

    def _report(self, message: str) -> None:
        self.last_error = message
        self.writes_failed += 1
        log.error("%s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # a broken callback must not stop the store thread
                log.exception("store on_error callback failed")

    def _submit(self, fn: Callable[[sqlite3.Connection], T], *, wait: bool) -> Future[T] | None:
        with self._lock:
            if self._closed:
                raise StoreError(
                    f"barq database {self.path} is closed", data={"path": str(self.path)}
                )
            fut: Future[T] | None = Future() if wait else None
            self._queue.put((fn, fut))
        return fut

    def _call(self, fn: Callable[[sqlite3.Connection], T], timeout_s: float | None) -> T:
        fut = self._submit(fn, wait=True)
        assert fut is not None
        return fut.result(timeout_s)

    # -- writes (never block) -------------------------------------------------------------

    def put_payment(self, view: PaymentView) -> None:
        """Insert or update a payment and all its parts (non-blocking).

        The view is encoded at once (so later mutation by the caller does not
        matter) and written in one transaction by the store thread.

        Raises:
            StoreError: the store is closed.
        """
        row, parts = _payment_row(view), [_part_row(view, p) for p in view.parts]
        self._submit(functools.partial(_write_payment, row=row, parts=parts), wait=False)

    def put_knowledge(self, records: Iterable[KnowledgeRecord], *, replace: bool = True) -> None:
        """Store the estimator's knowledge (non-blocking).

        Args:
            records: the entries.
            replace: the records are the whole knowledge (an export): rows not
                among them are deleted, in the same transaction. With False,
                rows are inserted or updated by ``(kind, key)`` only.

        Raises:
            StoreError: the store is closed.
        """
        rows = [
            (r.kind, r.key, r.lo_msat, r.hi_msat, r.capacity_msat, r.updated_at, r.until, r.reason)
            for r in records
        ]
        self._submit(functools.partial(_write_knowledge, rows=rows, replace=replace), wait=False)

    # -- reads and barriers (blocking forms) ------------------------------------------------

    def flush(self, timeout_s: float | None = 10.0) -> None:
        """Wait until every write submitted before this call is on disk.

        Raises:
            TimeoutError: the queue did not drain in ``timeout_s``.
            StoreError: the store is closed.
        """
        self._call(lambda _c: None, timeout_s)

    def get_payments(
        self,
        payment_hash: str | None = None,
        status: str | None = None,
        *,
        limit: int | None = None,
        timeout_s: float | None = 10.0,
    ) -> list[PaymentView]:
        """Payments (with their parts), oldest first, optionally filtered.

        Raises:
            StoreError: the read failed or the store is closed.
        """
        return self._call(
            functools.partial(
                _read_payments, payment_hash=payment_hash, status=status, limit=limit
            ),
            timeout_s,
        )

    def get_knowledge(self, *, timeout_s: float | None = 10.0) -> list[KnowledgeRecord]:
        """Every knowledge row (ordered by ``kind``, ``key``).

        Raises:
            StoreError: the read failed or the store is closed.
        """
        return self._call(_read_knowledge, timeout_s)

    def schema_version(self) -> int:
        """``PRAGMA user_version`` of the open file."""
        return self._call(lambda c: int(c.execute("PRAGMA user_version").fetchone()[0]), 10.0)

    def journal_mode(self) -> str:
        """``PRAGMA journal_mode`` of the open file (``wal``)."""
        return self._call(lambda c: str(c.execute("PRAGMA journal_mode").fetchone()[0]), 10.0)

    # -- async forms ----------------------------------------------------------------------

    async def aflush(self) -> None:
        """:meth:`flush` without blocking the event loop."""
        await anyio.to_thread.run_sync(self.flush)

    async def aget_payments(
        self,
        payment_hash: str | None = None,
        status: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[PaymentView]:
        """:meth:`get_payments` without blocking the event loop."""
        return await anyio.to_thread.run_sync(
            functools.partial(self.get_payments, payment_hash, status, limit=limit)
        )

    async def aget_knowledge(self) -> list[KnowledgeRecord]:
        """:meth:`get_knowledge` without blocking the event loop."""
        return await anyio.to_thread.run_sync(self.get_knowledge)

    # -- lifetime ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout_s: float | None = 10.0) -> None:
        """Write what is queued, stop the thread and close the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- SQL helpers (run on the store thread) ----------------------------------------------------

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


def _payment_row(v: PaymentView) -> tuple[Any, ...]:
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


def _part_row(v: PaymentView, p: PartView) -> tuple[Any, ...]:
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


def _write_payment(
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


def _write_knowledge(
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


def _read_payments(
    conn: sqlite3.Connection, *, payment_hash: str | None, status: str | None, limit: int | None
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
                parts=parts,
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


def _read_knowledge(conn: sqlite3.Connection) -> list[KnowledgeRecord]:
    return [
        KnowledgeRecord(**dict(zip(_KNOWLEDGE_COLS, r, strict=True)))
        for r in conn.execute(
            f"SELECT {', '.join(_KNOWLEDGE_COLS)} FROM knowledge ORDER BY kind, key"
        ).fetchall()
    ]
