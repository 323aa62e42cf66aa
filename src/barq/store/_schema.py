"""The database schema as a list of migration steps.

``MIGRATIONS[i]`` takes a database from schema version ``i`` to ``i + 1``
(``PRAGMA user_version``). A fresh file is at version 0, so opening it runs
every step. Steps are only ever *appended*: a released step is never edited,
because databases in the field already ran it.

Tables (version 1):

``payments``
    one row per payment attempt group (``payment_hash``, ``groupid``): the
    invoice, totals, status, strategy, preimage and error.
``parts``
    one row per ``sendpay`` part (``payment_hash``, ``groupid``, ``partid``):
    the route as JSON (``sendpay`` hops), amounts, timing, state and, for a
    failed part, the failure (failcode, erring node/channel, JSON of the
    :class:`barq.model.RouteFailure`) and a human reason.
``knowledge``
    the estimator's export, one row per entry, so learning survives restarts:
    ``kind`` ``channel`` (key ``scid_dir``: ``lo_msat``/``hi_msat`` bounds,
    ``capacity_msat``, ``updated_at`` = UNIX second of the last observation,
    from which the engine decays them), ``disabled_channel`` (key
    ``scid_dir``) or ``disabled_node`` (key node id), both with ``until`` and
    ``reason``.

Version 2 adds ``lab_assignments``: one row per payment hash that the strategy
lab (:mod:`barq.lab`) assigned: the ``experiment`` (``NULL`` for
``strategy=auto``), the ``strategy`` it ran with, the one-line ``reason`` and
``assigned_at`` (UNIX seconds). Read with :mod:`barq.store._lab`.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]

Migration = tuple[str, ...]
"""One schema step: SQL statements run in one transaction."""

MIGRATIONS: tuple[Migration, ...] = (
    # 0 -> 1: initial schema
    (
        """
        CREATE TABLE payments (
            payment_hash     TEXT    NOT NULL,
            groupid          INTEGER NOT NULL,
            bolt11           TEXT,
            label            TEXT,
            destination      TEXT    NOT NULL,
            amount_msat      INTEGER NOT NULL,
            status           TEXT    NOT NULL,
            strategy         TEXT    NOT NULL,
            created_at       REAL    NOT NULL,
            completed_at     REAL,
            payment_preimage TEXT,
            amount_sent_msat INTEGER NOT NULL DEFAULT 0,
            delivered_msat   INTEGER NOT NULL DEFAULT 0,
            inflight_msat    INTEGER NOT NULL DEFAULT 0,
            fee_msat         INTEGER NOT NULL DEFAULT 0,
            attempts         INTEGER NOT NULL DEFAULT 0,
            maxfee_msat      INTEGER NOT NULL DEFAULT 0,
            compute_s        REAL    NOT NULL DEFAULT 0,
            error            TEXT,
            error_code       INTEGER,
            PRIMARY KEY (payment_hash, groupid)
        )
        """,
        "CREATE INDEX payments_by_status ON payments (status)",
        "CREATE INDEX payments_by_created ON payments (created_at)",
        """
        CREATE TABLE parts (
            payment_hash     TEXT    NOT NULL,
            groupid          INTEGER NOT NULL,
            partid           INTEGER NOT NULL,
            amount_msat      INTEGER NOT NULL,
            amount_sent_msat INTEGER NOT NULL,
            fee_msat         INTEGER NOT NULL,
            route            TEXT    NOT NULL,
            state            TEXT    NOT NULL,
            started_at       REAL    NOT NULL,
            finished_at      REAL,
            failcode         INTEGER,
            failcodename     TEXT,
            erring_index     INTEGER,
            erring_node      TEXT,
            erring_channel   TEXT,
            erring_direction INTEGER,
            failure          TEXT,
            reason           TEXT,
            PRIMARY KEY (payment_hash, groupid, partid),
            FOREIGN KEY (payment_hash, groupid)
                REFERENCES payments (payment_hash, groupid) ON DELETE CASCADE
        )
        """,
        """
        CREATE TABLE knowledge (
            kind          TEXT    NOT NULL,
            key           TEXT    NOT NULL,
            lo_msat       INTEGER,
            hi_msat       INTEGER,
            capacity_msat INTEGER,
            updated_at    REAL,
            until         REAL,
            reason        TEXT    NOT NULL DEFAULT '',
            PRIMARY KEY (kind, key)
        )
        """,
    ),
    # 1 -> 2: the strategy lab's assignment of each payment hash (issue 15)
    (
        """
        CREATE TABLE lab_assignments (
            payment_hash TEXT PRIMARY KEY,
            experiment   TEXT,
            strategy     TEXT NOT NULL,
            reason       TEXT NOT NULL DEFAULT '',
            assigned_at  REAL NOT NULL
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
