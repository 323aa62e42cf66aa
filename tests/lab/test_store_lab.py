"""The lab's reads of a real store: one record per payment hash, assignments, a safe copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

from helpers import h, view

from barq.lab.summary import experiments_report, format_report
from barq.store import open_store
from barq.store._lab import (
    Assignment,
    copy_attempts,
    copy_payments,
    get_assignment,
    lab_payments,
    put_assignment,
)


def test_payments_assignments_and_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "barq.sqlite3"
    with open_store(path) as store:
        store.put_payment(view(1, ok=False))  # first group failed...
        store.put_payment(view(1, ok=True, groupid=1))  # ...a retry paid: one payment
        store.put_payment(view(2, ok=False, strategy="cheapflow"))
        store.put_payment(view(3, ok=True))
        put_assignment(store, Assignment(payment_hash=h(1), strategy="dijkstra", experiment="a"))
        put_assignment(store, Assignment(payment_hash=h(1), strategy="other", experiment="b"))
        put_assignment(store, Assignment(payment_hash=h(2), strategy="cheapflow", experiment="b"))
        put_assignment(store, Assignment(payment_hash=h(3), strategy="dijkstra", experiment="a"))
        got = lab_payments(store)
        first = get_assignment(store, h(1))
        assert first is not None and first.experiment == "a"  # the first assignment stays
        assert get_assignment(store, h(9)) is None
    assert [p.payment_hash for p in got] == [h(1), h(2), h(3)]
    one = got[0]
    assert one.status == "complete" and one.attempts == 3 and one.parts == 1
    assert one.created_at == 101.0 and one.completed_at == 104.0 and one.experiment == "a"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert copy_payments(path) == got
    assert [p.payment_hash for p in copy_payments(path, since=102.0)] == [h(2), h(3)]
    attempts = copy_attempts(path)
    assert len(attempts) == 6 and attempts[0].route.probability == 0.7
    assert attempts[0].erring_index == 1 and attempts[0].failcode == 0x1007
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # never written

    report = experiments_report(got)
    rows = {r["name"]: r for r in report["experiments"]}
    assert rows["a"]["payments"] == 2 and rows["a"]["succeeded"] == 2
    assert rows["b"]["payments"] == 1 and rows["b"]["succeeded"] == 0
    assert rows["a"]["strategy"] == "dijkstra" and rows["a"]["percent"] is None
    assert sum(r["payments"] for r in rows.values()) == 3
    assert [(b["bucket"], b["experiment"]) for b in report["buckets"]] == [
        ("10k-100k sat", "a"),
        ("10k-100k sat", "b"),
    ]
    text = format_report(report)
    assert "experiment  strategy" in text and "sample too small to tell" in text


def test_a_version_1_database_gains_the_lab_table(tmp_path: Path) -> None:
    from barq.store import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    with open_store(path, migrations=MIGRATIONS[:1]) as old:
        old.put_payment(view(1, ok=True))
        assert old.schema_version() == 1
    assert copy_payments(path)[0].experiment is None  # the tools read a v1 file too
    with open_store(path) as store:
        assert store.schema_version() == len(MIGRATIONS) == 2
        put_assignment(store, Assignment(payment_hash=h(1), strategy="dijkstra", experiment="a"))
        [p] = lab_payments(store)
    assert p.experiment == "a" and p.status == "complete"
