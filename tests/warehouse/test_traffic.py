"""Traffic ingest: lossless, idempotent, one transaction per file, quarantine with reasons."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import InputFileError, StrictModeError
from dissensus.warehouse.traffic import ingest_traffic_file


def turn(i: int, **fields: object) -> dict[str, object]:
    """One valid turn; ``fields`` add or replace columns."""
    return {"prompt": f"prompt {i}", "response": f"reply {i}",
            "created_at": f"2026-06-{1 + i % 28:02d}T10:00:00Z", **fields}


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_row_is_accepted_duplicate_or_quarantined(tmp_path: Path) -> None:
    rows = [turn(0, category="billing", response_tags=["refusal", "hedge"], escalated=True,
                 model="v2", user_feedback="down", conversation_id="c0"),
            turn(0, category="billing", response_tags=["refusal", "hedge"], escalated=True,
                 model="v2", user_feedback="down", conversation_id="c0"),  # duplicate
            {"prompt": "p", "response": "r"},  # no created_at
            turn(3, response=""),
            turn(4, created_at="yesterday"),
            turn(5, escalated="maybe"),
            turn(6, traffic_id="t-6"),
            turn(7, traffic_id="t-6")]  # same id, other content: conflict
    path = write_jsonl(tmp_path / "live.jsonl", rows)
    (tmp_path / "live.jsonl").write_text(path.read_text() + "not json\n")
    con = connect(tmp_path / "w.duckdb")
    report = ingest_traffic_file(con, path)
    assert report.rows_read == 9
    assert (report.accepted, report.duplicates, report.quarantined) == (2, 1, 6)
    quarantine = con.sql("SELECT line, field, reason FROM quarantine ORDER BY line").pl()
    assert quarantine["line"].to_list() == [3, 4, 5, 6, 8, 9]
    assert quarantine["field"].to_list()[:4] == ["created_at", "response", "created_at",
                                                 "escalated"]
    assert "ISO-8601" in quarantine["reason"][0] and "'yesterday'" in quarantine["reason"][2]
    assert "line 7" in quarantine["reason"][4]
    stored = con.sql("SELECT * FROM traffic ORDER BY source_line").pl()
    assert stored["tags"][0].to_list() == ["refusal", "hedge"]
    assert stored["escalated"][0] is True and stored["model"][0] == "v2"
    texts = con.sql("SELECT body FROM texts ORDER BY body").pl()["body"].to_list()
    assert "prompt 0" in texts and "reply 6" in texts
    again = ingest_traffic_file(con, path)
    assert again.skipped and again.accepted == 0
    assert con.sql("SELECT count(*) FROM traffic").fetchall()[0][0] == 2
    con.close()


def test_csv_gzip_and_parquet_read_alike(tmp_path: Path) -> None:
    frame = pl.DataFrame([turn(i, category="scheduling") for i in range(5)])
    with gzip.open(tmp_path / "t.csv.gz", "wb") as handle:
        handle.write(frame.write_csv().encode())
    frame.with_columns(pl.col("created_at").str.to_datetime(time_zone="UTC")).write_parquet(
        tmp_path / "t.parquet")
    con = connect(tmp_path / "w.duckdb")
    first = ingest_traffic_file(con, tmp_path / "t.csv.gz")
    second = ingest_traffic_file(con, tmp_path / "t.parquet")
    assert first.accepted == 5 and first.format == "traffic-csv"
    # the same turns by content: identical rows in another file are duplicates
    assert second.accepted == 0 and second.duplicates == 5
    con.close()


def test_a_file_without_timestamps_is_refused_in_words(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "a", "response": "b"}] * 3)
    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(InputFileError, match="created_at") as error:
        ingest_traffic_file(con, path)
    assert "fix:" in error.value.render()
    assert con.sql("SELECT count(*) FROM ingest_batches").fetchall()[0][0] == 0
    con.close()


def test_strict_stores_nothing_from_a_file_with_a_bad_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [turn(1), turn(2, response="")])
    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(StrictModeError):
        ingest_traffic_file(con, path, strict=True)
    assert con.sql("SELECT count(*) FROM traffic").fetchall()[0][0] == 0
    assert con.sql("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0
    con.close()


@pytest.mark.parametrize("stage_rows", [1, None])
def test_turns_staged_together_give_what_each_block_alone_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage_rows: int | None) -> None:
    """Blocks of turns are staged together before validation, as comparisons are; the outcome
    must not depend on it."""
    from dissensus.warehouse import readers, stages, traffic

    rows = [turn(i, traffic_id=f"t-{i}") for i in range(30)]
    rows[20] = turn(3, traffic_id="t-3")  # repeats line 4
    rows[25] = turn(25, created_at="yesterday")
    path = write_jsonl(tmp_path / "live.jsonl", rows)
    monkeypatch.setattr(stages, "STAGE_ROWS", stage_rows)
    original = readers.read_jsonl
    monkeypatch.setattr(traffic.readers, "read_jsonl",
                        lambda stream: original(stream, chunk_bytes=600))
    con = connect(tmp_path / "w.duckdb")
    report = ingest_traffic_file(con, path)
    assert (report.accepted, report.duplicates, report.quarantined) == (28, 1, 1)
    assert con.sql("SELECT line FROM quarantine").fetchall() == [(26,)]
    lines = [r[0] for r in con.sql("SELECT source_line FROM traffic ORDER BY 1").fetchall()]
    assert lines == [n for n in range(1, 31) if n not in (21, 26)]
    con.close()
