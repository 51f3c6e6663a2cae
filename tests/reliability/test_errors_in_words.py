"""Red-team inputs that gave a traceback (or a misleading word) now give a sentence."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reliability_helpers import cli, good_row, write_jsonl

from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import InputFileError, WarehouseWriteError
from dissensus.warehouse.ingest import ingest_file

ROOT = Path(__file__).resolve().parents[2]


def test_odd_reviewer_keys_are_reported_not_a_json_path_error(tmp_path: Path) -> None:
    line = json.dumps({**good_row(1), 'reviewer_"team': "x", "reviewer_": "y",
                       "reviewer_level": "senior"})
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write_jsonl(tmp_path / "in.jsonl", [line]))
    assert report.accepted == 1
    assert report.unknown_columns == ["reviewer_", 'reviewer_"team']
    assert con.execute("SELECT attribute, value FROM reviewer_attributes").fetchall() == [
        ("level", "senior")]


def _gzip_rows(n: int) -> bytes:
    return gzip.compress("".join(json.dumps(good_row(i)) + "\n" for i in range(n)).encode())


def test_damaged_gzip_is_named_and_the_other_files_are_still_ingested(tmp_path: Path) -> None:
    data = _gzip_rows(300)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "bad.jsonl.gz"
    corrupt.write_bytes(data[:20] + b"\xff" * 20 + data[40:])
    good = write_jsonl(tmp_path / "good.jsonl", [good_row(i) for i in range(1000, 1004)])
    db = tmp_path / "w.duckdb"
    result = cli("--db", str(db), "ingest", str(truncated), str(corrupt), str(good))
    assert result.exit_code == 2
    assert result.output.count("damaged gzip file") == 2
    assert "Aborted" not in result.output
    assert "2 of 3 files were not ingested" in result.output
    con = duckdb.connect(str(db))
    assert con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0] == 4


def test_parquet_struct_column_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"reviewer_id": ["r1", "r2"], "choice": ["a", "b"],
                             "prompt": [{"text": "p"}, None], "response_a": ["x", "x"],
                             "response_b": ["y", "y"]}), path)
    report = ingest_file(connect(tmp_path / "w.duckdb"), path)
    assert report.rows_read == 2 and report.quarantined == 2
    assert any("found a Parquet struct" in reason for reason in report.reasons)


def test_unknown_format_named_pipe_and_symlink_loop(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "in.jsonl", [good_row(1)])
    db = str(tmp_path / "w.duckdb")
    result = cli("--db", db, "ingest", "--format", "xml", str(good))
    assert result.exit_code == 2 and "Unknown format 'xml'" in result.output
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(InputFileError, match="named pipe"):
        ingest_file(connect(tmp_path / "x.duckdb"), pipe)
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    result = cli("--db", db, "ingest", str(loop))
    assert result.exit_code == 2 and "loops back on itself" in result.output
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "gone.jsonl")
    assert "is a symbolic link to" in cli("--db", db, "ingest", str(dangling)).output


def test_json_errors_name_the_character_once(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, write_jsonl(tmp_path / "in.jsonl", ['{"reviewer_id": "r1", "choice": "a']))
    reason = con.execute("SELECT reason FROM quarantine").fetchall()[0][0]
    assert " at at " not in reason and "starting at character 33 of the line" in reason


def test_a_json_error_reads_the_same_on_any_line(tmp_path: Path) -> None:
    """The line's own end is not part of its JSON: an unterminated string is called that on
    every line, not "invalid control character" where a newline follows it."""
    con = connect(tmp_path / "w.duckdb")
    bad = '{"reviewer_id": "r1", "choice": "a'
    ingest_file(con, write_jsonl(tmp_path / "in.jsonl", [bad, bad + "\r", bad]))
    reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY line").fetchall()]
    assert len(reasons) == 3
    assert all("Unterminated string starting at character 33" in r for r in reasons), reasons


def test_quarantine_export_into_a_missing_folder(tmp_path: Path) -> None:
    db = str(tmp_path / "w.duckdb")
    cli("--db", db, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [good_row(1, choice="?")])))
    result = cli("--db", db, "quarantine", "--export", str(tmp_path / "nowhere" / "bad.csv"))
    assert result.exit_code == 2 and "folder for the export does not exist" in result.output


def _limited(bytes_: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (bytes_, bytes_))


def _dissensus(db: Path, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dissensus.analytics.cli", "--db", str(db), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        preexec_fn=(lambda: _limited(limit)) if limit else None,
    )


def test_a_full_disk_at_commit_is_an_error_in_words_and_loses_nothing(tmp_path: Path) -> None:
    # A file-size limit makes writes fail the way a full disk does (EFBIG instead of ENOSPC).
    db = tmp_path / "w.duckdb"
    assert _dissensus(db, "ingest", str(write_jsonl(tmp_path / "small.jsonl",
                                                    [good_row(i) for i in range(10)]))
                      ).returncode == 0
    big = write_jsonl(tmp_path / "big.jsonl", [
        good_row(i, prompt=f"prompt {i} " + "x" * 400, response_a="a" * 400 + str(i))
        for i in range(20_000)])
    full = _dissensus(db, "ingest", str(big), limit=db.stat().st_size + 200_000)
    assert full.returncode == 2, full.stderr
    assert "Writing the warehouse failed" in full.stderr and "Traceback" not in full.stderr
    status = _dissensus(db, "status")
    assert status.returncode == 0 and "10 comparisons" in status.stdout
    # a create that fails leaves no empty file for later runs to trip over
    fresh = tmp_path / "fresh.duckdb"
    failed = _dissensus(fresh, "ingest", str(big), limit=4096)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert not fresh.exists() or fresh.stat().st_size > 0


def test_an_empty_file_left_by_a_failed_create_is_not_a_dead_end(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    db.touch()
    status = cli("--db", str(db), "status")
    assert status.exit_code == 2 and "empty file" in status.output
    assert cli("--db", str(db), "ingest",
               str(write_jsonl(tmp_path / "in.jsonl", [good_row(1)]))).exit_code == 0
    with pytest.raises(WarehouseWriteError, match="There is no warehouse"):
        connect(tmp_path / "other.duckdb", create=False)
