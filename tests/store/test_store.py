"""barq.store: migrations, WAL, round trips, and every way a database file can be bad."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio
from msgspec.structs import replace

from barq.errors import StoreError
from barq.model import Hop, Route, RouteFailure
from barq.model.payment import (
    PartEnded,
    PartStarted,
    PartState,
    PartView,
    PaymentEnded,
    PaymentEvent,
    PaymentStarted,
    PaymentStatus,
    PaymentView,
)
from barq.payment import fold_all
from barq.store import MIGRATIONS, SCHEMA_VERSION, KnowledgeRecord, open_store

A = "02" + "aa" * 32
B = "03" + "bb" * 32
C = "02" + "cc" * 32


def _route(amount_msat: int, fee_msat: int) -> Route:
    return Route(
        hops=(
            Hop(id=B, channel="101x1x0", direction=0, amount_msat=amount_msat + fee_msat, delay=58),
            Hop(id=C, channel="102x2x1", direction=1, amount_msat=amount_msat, delay=18),
        ),
        probability=0.75,
    )


def _view(
    payment_hash: str = "11" * 32,
    *,
    status: PaymentStatus = PaymentStatus.PENDING,
    created_at: float = 1_700_000_000.0,
    groupid: int = 1,
) -> PaymentView:
    failure = RouteFailure(
        failcode=0x1007,
        erring_index=1,
        erring_node=B,
        erring_channel="102x2x1",
        erring_direction=1,
        message="WIRE_TEMPORARY_CHANNEL_FAILURE",
    )
    return PaymentView(
        payment_hash=payment_hash,
        destination=C,
        amount_msat=300_000,
        status=status,
        strategy="mincostflow",
        created_at=created_at,
        groupid=groupid,
        bolt11="lnbcrt1...",
        label="coffee",
        maxfee_msat=5000,
        attempts=2,
        compute_s=0.01,
        parts=(
            PartView(
                partid=1,
                groupid=groupid,
                amount_msat=200_000,
                amount_sent_msat=200_002,
                fee_msat=2,
                route=_route(200_000, 2),
                state=PartState.FAILED,
                started_at=created_at + 0.1,
                finished_at=created_at + 0.3,
                failure=failure,
                reason="no liquidity on 102x2x1/1",
            ),
            PartView(
                partid=2,
                groupid=groupid,
                amount_msat=300_000,
                amount_sent_msat=300_003,
                fee_msat=3,
                route=_route(300_000, 3),
                state=PartState.INFLIGHT,
                started_at=created_at + 0.4,
            ),
        ),
    )


def test_fresh_database_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    with open_store(tmp_path / "barq.sqlite3") as store:
        assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.journal_mode() == "wal"
    conn = sqlite3.connect(tmp_path / "barq.sqlite3")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"payments", "parts", "knowledge"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    conn.close()


def test_migration_upgrades_an_older_database_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_store(path) as store:
        store.put_payment(_view())
    extra = (
        *MIGRATIONS,
        ("ALTER TABLE payments ADD COLUMN note TEXT", "UPDATE payments SET note = 'migrated'"),
    )
    with open_store(path, migrations=extra) as store:
        assert store.schema_version() == len(MIGRATIONS) + 1
        assert len(store.get_payments()) == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT note FROM payments").fetchall() == [("migrated",)]
    conn.close()


def test_failed_migration_rolls_back_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "db"
    open_store(path).close()
    bad = (*MIGRATIONS, ("ALTER TABLE payments ADD COLUMN ok TEXT", "THIS IS NOT SQL"))
    with pytest.raises(StoreError, match=str(path)):
        open_store(path, migrations=bad)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(payments)")]
    assert "ok" not in cols
    conn.close()


def test_payment_round_trip_and_upsert(tmp_path: Path) -> None:
    path = tmp_path / "db"
    view = _view()
    with open_store(path) as store:
        store.put_payment(view)
        assert store.get_payments() == [view]
    # a later snapshot of the same payment replaces the row and adds/updates parts
    done = _view(status=PaymentStatus.COMPLETE)
    last = replace(done.parts[1], state=PartState.SUCCEEDED, finished_at=done.created_at + 1)
    done = replace(
        done,
        parts=(done.parts[0], last),
        payment_preimage="22" * 32,
        completed_at=done.created_at + 1,
        amount_sent_msat=300_003,
        fee_msat=3,
    )
    with open_store(path) as store:  # survives a restart
        store.put_payment(done)
        got = store.get_payments()
    assert got == [done]
    assert got[0].parts[0].failure is not None
    assert got[0].parts[0].failure.failcodename == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert got[0].parts[1].route.describe() == "101x1x0/0 -> 102x2x1/1"


def test_filters_and_limit(tmp_path: Path) -> None:
    with open_store(tmp_path / "db") as store:
        for i in range(5):
            store.put_payment(
                _view(
                    f"{i:02x}" * 32,
                    created_at=1000.0 + i,
                    status=PaymentStatus.COMPLETE if i % 2 else PaymentStatus.FAILED,
                )
            )
        store.put_payment(_view("00" * 32, groupid=2, created_at=2000.0))
        assert [v.payment_hash[:2] for v in store.get_payments()] == [
            "00",
            "01",
            "02",
            "03",
            "04",
            "00",
        ]
        assert [v.groupid for v in store.get_payments("00" * 32)] == [1, 2]
        assert [v.payment_hash[:2] for v in store.get_payments(status="complete")] == ["01", "03"]
        assert [v.payment_hash[:2] for v in store.get_payments(limit=2)] == ["04", "00"]
        assert store.get_payments("ff" * 32) == []


def test_knowledge_round_trip_replace_and_upsert(tmp_path: Path) -> None:
    path = tmp_path / "db"
    chan = KnowledgeRecord(
        kind="channel",
        key="1x1x1/0",
        lo_msat=0,
        hi_msat=5_000,
        capacity_msat=9_000,
        updated_at=10.5,
    )
    dis_c = KnowledgeRecord(
        kind="disabled_channel", key="1x1x1/1", until=99.0, reason="WIRE_PERMANENT_CHANNEL_FAILURE"
    )
    dis_n = KnowledgeRecord(kind="disabled_node", key=B, until=98.0, reason="unknown")
    with open_store(path) as store:
        store.put_knowledge([chan, dis_c, dis_n])
        assert store.get_knowledge() == [chan, dis_c, dis_n]
        newer = KnowledgeRecord(
            kind="channel", key="1x1x1/0", lo_msat=100, hi_msat=4_000, updated_at=12.0
        )
        store.put_knowledge([newer], replace=False)  # upsert: the others stay
        assert store.get_knowledge() == [newer, dis_c, dis_n]
        store.put_knowledge([dis_n])  # an export is the whole knowledge: the rest goes
    with open_store(path) as store:  # survives a restart
        assert store.get_knowledge() == [dis_n]
        store.put_knowledge([])
        assert store.get_knowledge() == []


def test_database_from_a_newer_barq_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer") as info:
        open_store(path)
    assert str(path) in info.value.message
    assert info.value.data["version"] == SCHEMA_VERSION + 5


def test_locked_database_is_reported_at_open(tmp_path: Path) -> None:
    path = tmp_path / "db"
    open_store(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked") as info:
            open_store(path, timeout_s=0.05)
        assert str(path) in info.value.message
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"this is certainly not sqlite\n" * 200)
    with pytest.raises(StoreError, match="not a valid SQLite database") as info:
        open_store(path)
    assert str(path) in info.value.message


def test_truncated_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_store(path) as store:
        for i in range(50):
            store.put_payment(_view(f"{i:064x}"))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * (len(data) - 100))  # header kept, pages trashed
    with pytest.raises(StoreError, match=str(path)):
        open_store(path)


def test_unopenable_paths_are_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing" / "db")


def test_failed_background_write_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "db"
    errors: list[str] = []
    got_error = threading.Event()

    def on_error(msg: str) -> None:
        errors.append(msg)
        got_error.set()

    store = open_store(path, timeout_s=0.2, on_error=on_error)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        store.put_payment(_view())  # must not wait for the lock
        assert time.monotonic() - t0 < 0.1
        assert got_error.wait(5)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "locked" in errors[0] and str(path) in errors[0]
    assert store.last_error == errors[0] and store.writes_failed == 1
    store.put_payment(_view())  # the store keeps working once the lock is gone
    assert len(store.get_payments()) == 1
    store.close()


def test_close_drains_queue_and_rejects_later_use(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = open_store(path)
    for i in range(200):
        store.put_payment(_view(f"{i:064x}", created_at=float(i)))
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.put_payment(_view())
    with open_store(path) as again:
        assert len(again.get_payments()) == 200


@pytest.mark.trio
async def test_async_reads_see_earlier_writes(tmp_path: Path) -> None:
    with trio.fail_after(10):
        store = open_store(tmp_path / "db")
        try:
            store.put_payment(_view())
            store.put_knowledge(
                [
                    KnowledgeRecord(
                        kind="channel", key="9x9x9/1", lo_msat=1, hi_msat=2, updated_at=3.0
                    )
                ]
            )
            assert [v.payment_hash for v in await store.aget_payments()] == ["11" * 32]
            assert len(await store.aget_knowledge()) == 1
            await store.aflush()
        finally:
            store.close()


# -- recording a payment event by event (the engine's journal port) ------------------------------


def _events(n_parts: int, payment_hash: str = "33" * 32) -> list[PaymentEvent]:
    """A payment of ``n_parts`` parts: every third part fails, the others succeed."""
    t = 1_700_000_000.0
    events: list[PaymentEvent] = [
        PaymentStarted(
            payment_hash=payment_hash,
            destination=C,
            amount_msat=1000 * n_parts,
            strategy="mincostflow",
            at=t,
            groupid=2,
            bolt11="lnbcrt1...",
            label="coffee",
            maxfee_msat=5000,
        )
    ]
    for i in range(1, n_parts + 1):
        events.append(
            PartStarted(
                payment_hash=payment_hash,
                partid=i,
                groupid=2,
                amount_msat=1000,
                route=_route(1000, 1),
                at=t + i,
                compute_s=0.001 * i,
            )
        )
    for i in range(1, n_parts + 1):
        ok = i % 3 != 0
        events.append(
            PartEnded(
                payment_hash=payment_hash,
                partid=i,
                groupid=2,
                amount_msat=1000,
                state=PartState.SUCCEEDED if ok else PartState.FAILED,
                at=t + 100 + i,
                failure=None if ok else RouteFailure(failcode=0x1007, erring_index=1),
                reason=None if ok else "no liquidity",
                preimage="44" * 32 if ok else None,
            )
        )
    events.append(
        PaymentEnded(
            payment_hash=payment_hash,
            status=PaymentStatus.COMPLETE,
            at=t + 500,
            groupid=2,
            compute_s=0.5,
        )
    )
    return events


def test_recorded_events_read_back_as_their_fold(tmp_path: Path) -> None:
    events = _events(7)
    with open_store(tmp_path / "db") as store:
        for i, ev in enumerate(events):
            store.record(ev)
            assert store.get_payments() == [fold_all(events[: i + 1])]  # after every event
    with open_store(tmp_path / "db") as store:
        [got] = store.get_payments()
    assert got == fold_all(events)
    assert got.status is PaymentStatus.COMPLETE and got.payment_preimage == "44" * 32
    assert got.delivered_msat == 5000 and got.attempts == 7 and got.compute_s == 0.5


def test_recording_costs_one_part_row_per_event(tmp_path: Path) -> None:
    """O(parts) row writes per payment: each event writes its part's row and the payment's."""
    path = tmp_path / "db"
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE row_writes (n INTEGER)")
    for table in ("payments", "parts"):
        for op in ("INSERT", "UPDATE"):
            conn.execute(
                f"CREATE TRIGGER count_{table}_{op} AFTER {op} ON {table} "
                "BEGIN INSERT INTO row_writes VALUES (1); END"
            )
    conn.commit()
    conn.close()
    parts = 64
    events = _events(parts)
    with open_store(path) as store:
        for ev in events:
            store.record(ev)
        store.flush()
    conn = sqlite3.connect(path)
    [(writes,)] = conn.execute("SELECT COUNT(*) FROM row_writes").fetchall()
    conn.close()
    assert writes <= 2 * len(events) == 2 * (2 * parts + 2)  # not parts * events


def test_an_event_of_a_payment_never_started_is_reported_and_skipped(tmp_path: Path) -> None:
    errors: list[str] = []
    with open_store(tmp_path / "db", on_error=errors.append) as store:
        store.record(_events(1)[-1])  # PaymentEnded alone
        assert store.get_payments() == []
    assert "PaymentEnded" in errors[0] and "before PaymentStarted" in errors[0]


def test_a_created_file_says_so_and_counts_the_rebuilt_history(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_store(path) as store:
        assert store.created and store.health() == {"created": True}
        store.put_history([_view("11" * 32), _view("22" * 32, status=PaymentStatus.COMPLETE)])
        store.flush()
        assert [v.payment_hash for v in store.get_payments()] == ["11" * 32, "22" * 32]
        assert store.health() == {"created": True, "rebuilt_from_listsendpays": 2}
    with open_store(path) as again:  # the file exists now
        assert not again.created and again.health() == {}


def test_a_file_deleted_while_open_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    open_store(path).close()
    with open_store(path) as store:
        assert store.health() == {}
        path.unlink()
        health = store.health()
        assert "deleted or replaced while barq runs" in health["deleted"]
        assert str(path) in health["deleted"]
    with open_store(path) as recreated:
        assert recreated.created
