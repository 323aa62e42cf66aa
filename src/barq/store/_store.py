"""SQLite persistence for payments, parts and the estimator's knowledge.

Threading model (why writes never block the event loop)
-------------------------------------------------------
A :class:`Store` owns exactly one ``sqlite3`` connection and one dedicated
thread (``barq-store``) that is the only user of it. Every operation is a
closure put on an unbounded FIFO ``queue.Queue`` that this thread runs in
order, each in its own transaction:

* **writes** (:meth:`Store.record`, :meth:`Store.put_payment`,
  :meth:`Store.put_knowledge`) only enqueue and return at once: they are safe
  to call from the trio thread (or any thread) and never wait for the disk.
  A failed write is logged through ``on_error`` and kept in
  :attr:`Store.last_error`; it never raises into
  the caller (a payment already made cannot be undone because the history
  could not be written);
* **reads** (:meth:`Store.get_payments`, :meth:`Store.get_knowledge`) go
  through the same queue, so they see every write submitted before them
  (read-your-writes). The blocking forms are for tests and tools; async code
  uses the ``a``-prefixed forms, which wait in an ``anyio.to_thread`` worker.

A payment is recorded as it happens, one event at a time (:meth:`Store.record`,
the engine's :class:`barq.payment.PaymentJournal` port): each event writes the
payment's row and the one part it changed, so a payment of N parts costs
O(N) row writes. The payment's totals come from :func:`barq.payment.fold`,
the same fold every other reader uses; the store keeps the fold of each
payment until its ``PaymentEnded``.

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

from barq.errors import StoreError
from barq.model import PaymentHash
from barq.model.payment import (
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentView,
)
from barq.payment import GroupKey, fold
from barq.store._rows import (
    KnowledgeRecord,
    knowledge_row,
    part_row,
    payment_row,
    read_knowledge,
    read_payments,
    write_knowledge,
    write_payment,
)
from barq.store._schema import MIGRATIONS, Migration

__all__ = ["KnowledgeRecord", "Store", "open_store"]

log = logging.getLogger("barq.store")

T = TypeVar("T")


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
    created = not p.exists()
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
    if created:
        log.warning("barq database %s did not exist: created it", p)
    return Store(p, conn, on_error=on_error, created=created)


def _inode(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of ``path`` (``None``: it does not exist)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class _Stop:
    pass


_STOP = _Stop()
_Op = tuple[Callable[[sqlite3.Connection], Any], "Future[Any] | None"]


class Store:
    """An open Barq database; see the module docstring for the threading model.

    Build it with :func:`open_store`. Safe to use from any thread. Close it
    with :meth:`close` (it drains the queue first, so no accepted write is lost).

    Attributes:
        created: the file did not exist when it was opened (first run, or deleted).
        rebuilt: payments the engine rebuilt from the node into it (:meth:`put_history`).
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        on_error: Callable[[str], None] | None = None,
        created: bool = False,
    ) -> None:
        self.path = path
        self._created = created
        self.rebuilt: int | None = None
        self._inode = _inode(path)
        self._gone_logged = False
        self._conn = conn
        self._on_error = on_error
        self._queue: queue.Queue[_Op | _Stop] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._folding = threading.Lock()  # events fold and enqueue in one order
        self._open: dict[GroupKey, PaymentView] = {}  # payments recorded by event, not ended
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

    def record(self, event: PaymentEvent) -> None:
        """Record one event of a payment (non-blocking): its row and the changed part's.

        The payment is the fold of the events recorded for its
        ``(payment_hash, groupid)`` since its ``PaymentStarted``; an event the
        fold refuses (a part event before the start) is reported through
        ``on_error`` and skipped.

        Raises:
            StoreError: the store is closed.
        """
        key = (event.payment_hash, event.groupid)
        with self._folding:
            try:
                view = fold(self._open.get(key), event)
            except ValueError as exc:
                self._report(f"cannot record {type(event).__name__} of {key[0]}: {exc}")
                return
            if isinstance(event, PaymentEnded):
                self._open.pop(key, None)
            else:
                self._open[key] = view
            parts = []
            if not isinstance(event, PaymentStarted | PaymentEnded):
                part = next(p for p in reversed(view.parts) if p.partid == event.partid)
                parts.append(part_row(view, part))
            write = functools.partial(write_payment, row=payment_row(view), parts=parts)
            self._submit(write, wait=False)

    def put_payment(self, view: PaymentView) -> None:
        """Insert or update a whole payment and all its parts (non-blocking).

        For payments rebuilt at once (from ``listsendpays`` after a restart);
        running payments are recorded event by event (:meth:`record`). Written
        in one transaction by the store thread.

        Raises:
            StoreError: the store is closed.
        """
        row, parts = payment_row(view), [part_row(view, p) for p in view.parts]
        self._submit(functools.partial(write_payment, row=row, parts=parts), wait=False)

    def put_history(self, views: Sequence[PaymentView]) -> None:
        """Insert payments rebuilt from the node, in one transaction (non-blocking); counted
        in :attr:`rebuilt`.

        Raises:
            StoreError: the store is closed.
        """
        rows = [(payment_row(v), [part_row(v, p) for p in v.parts]) for v in views]

        def write(conn: sqlite3.Connection) -> None:
            for row, parts in rows:
                write_payment(conn, row=row, parts=parts)

        self._submit(write, wait=False)
        self.rebuilt = (self.rebuilt or 0) + len(rows)

    @property
    def created(self) -> bool:
        """The file did not exist when it was opened (first run, or deleted since)."""
        return self._created

    def health(self) -> dict[str, Any]:
        """What ``barqstatus`` shows of the file: ``deleted`` (it was deleted or replaced since
        it was opened), ``created`` (with how many payments were rebuilt from
        ``listsendpays``), the last write error and how many writes failed."""
        out: dict[str, Any] = {}
        if self._inode is not None and _inode(self.path) != self._inode:
            # SQLite goes on writing to the unlinked file: whatever is written now is lost
            # at the next start, which creates the file again and rebuilds the history
            out["deleted"] = (
                f"barq database {self.path} was deleted or replaced while barq runs: restart "
                f"the plugin to recreate it (the history is rebuilt from listsendpays)"
            )
            if not self._gone_logged:
                self._gone_logged = True
                log.warning("%s", out["deleted"])
        if self._created:
            out["created"] = True
            if self.rebuilt is not None:
                out["rebuilt_from_listsendpays"] = self.rebuilt
        if self.last_error:
            out["last_write_error"] = self.last_error
            out["writes_failed"] = self.writes_failed
        return out

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
        rows = [knowledge_row(r) for r in records]
        self._submit(functools.partial(write_knowledge, rows=rows, replace=replace), wait=False)

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
        payment_hash: PaymentHash | None = None,
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
            functools.partial(read_payments, payment_hash=payment_hash, status=status, limit=limit),
            timeout_s,
        )

    def get_knowledge(self, *, timeout_s: float | None = 10.0) -> list[KnowledgeRecord]:
        """Every knowledge row (ordered by ``kind``, ``key``).

        Raises:
            StoreError: the read failed or the store is closed.
        """
        return self._call(read_knowledge, timeout_s)

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
        payment_hash: PaymentHash | None = None,
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
