"""``barq report`` renders; ``barq experiments`` / ``replay`` read a copy of a store file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import fill_store

from barq.cli import main
from barq.errors import InvalidParams
from barq.lab.report import draw_report, report_data
from barq.store._lab import copy_attempts, copy_payments


def test_report_figures_and_render(tmp_path: Path) -> None:
    fill_store(tmp_path / "s.sqlite3")
    payments, attempts = (
        copy_payments(tmp_path / "s.sqlite3"),
        copy_attempts(tmp_path / "s.sqlite3"),
    )
    data = report_data(payments, attempts)
    assert data.payments == 3
    assert set(data.success_over_time) == {"a", "b"}
    assert data.parts == {1: 2}
    assert data.fail_hops == {1: 4} and data.fail_codes == {"WIRE_TEMPORARY_CHANNEL_FAILURE": 4}
    assert data.answer_s["a"] == [2.0, 3.0]
    for suffix in (".png", ".svg"):
        out = tmp_path / f"r{suffix}"
        draw_report(payments, attempts, out)
        assert out.stat().st_size > 10_000
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidParams, match=r"\.png or \.svg"):
        draw_report(payments, attempts, tmp_path / "r.pdf")


def test_cli_on_a_store_file_never_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "barq.sqlite3"
    fill_store(store)
    digest = hashlib.sha256(store.read_bytes()).hexdigest()
    assert main(["experiments", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("experiment  strategy") and "\na " in out and "by amount:" in out
    assert main(["experiments", str(store), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["experiments"]}
    assert rows["a"]["payments"] == 2 and rows["b"]["succeeded"] == 0
    assert main(["replay", str(store)]) == 0
    out = capsys.readouterr().out
    assert "recorded" in out and "uniform:half_life=3600" in out and "calibration" in out
    assert main(["replay", str(store), "--model", "constant:p=0.5", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    # 2-hop routes: p = 0.25; 4 failed (0.25^2 each), 2 succeeded (0.75^2 each)
    assert scores["constant:p=0.5"]["n"] == 6
    brier = (4 * 0.0625 + 2 * 0.5625) / 6
    assert scores["constant:p=0.5"]["brier"] == pytest.approx(brier, abs=1e-6)
    assert main(["report", str(store), "-o", str(tmp_path / "out" / "h.png")]) == 0
    assert (tmp_path / "out" / "h.png").exists()
    assert hashlib.sha256(store.read_bytes()).hexdigest() == digest
    assert main(["report", str(store), "-o", str(tmp_path / "h.pdf")]) == 2
    assert "the report is written as .png or .svg" in capsys.readouterr().err
    assert main(["replay", str(store), "--model", "magic"]) == 2
    assert main(["experiments", str(tmp_path / "missing.sqlite3")]) == 2
    assert "no such file" in capsys.readouterr().err
