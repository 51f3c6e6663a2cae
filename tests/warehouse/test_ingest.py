"""Ingest: every row accepted, duplicate or quarantined; batches atomic; clear errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from dissensus.warehouse import queries, stages
from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import (
    DatabaseBusyError,
    InputFileError,
    PseudonymisationError,
    SchemaVersionError,
    StrictModeError,
)
from dissensus.warehouse.ingest import ingest_file

GOOD = {
    "reviewer_id": "rev-1",
    "choice": "a",
    "prompt": "I have chest pain, can I see someone today?",
    "response_a": "Chest pain can be serious: please call emergency services now.",
    "response_b": "The earliest appointment is Thursday at 9:00.",
    "shown_first": "b",
    "comparison_id": "c-1",
    "reviewer_pool": "vendor-north",
    "reviewer_tenure_months": 7,
    "response_a_tags": ["escalation"],
    "created_at": "2026-03-02T09:30:00Z",
    "seconds_spent": 41.5,
}


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def table_count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_good_row_is_stored_canonically(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [GOOD]), fmt="jsonl")
    assert (report.rows_read, report.accepted, report.quarantined) == (1, 1, 0)
    row = con.execute(
        "SELECT choice, outcome, first_shown, a_is_response_1, created_at::VARCHAR, seconds_spent "
        "FROM comparisons"
    ).fetchall()[0]
    choice, outcome, first_shown, a_is_1, created_at, seconds = row
    assert choice == "a"
    assert outcome == (1 if a_is_1 else -1)
    assert first_shown == (2 if a_is_1 else 1)  # b was shown first
    assert created_at == "2026-03-02 09:30:00"
    assert seconds == pytest.approx(41.5)
    attributes = dict(con.execute(
        "SELECT attribute, value FROM reviewer_attributes WHERE reviewer_id = 'rev-1'"
    ).fetchall())
    assert attributes == {"pool": "vendor-north", "tenure_months": "7"}
    tags = con.execute("SELECT tags FROM responses WHERE len(tags) > 0").fetchall()
    assert tags == [(["escalation"],)]


def test_a_reviewer_attribute_keeps_its_latest_value(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from dissensus.warehouse import readers

    original = readers.read_jsonl
    monkeypatch.setattr(readers, "read_jsonl", lambda stream: original(stream, chunk_bytes=2000))
    con = connect(tmp_path / "w.duckdb")

    def row(i: int, pool: str) -> dict[str, object]:
        return {**GOOD, "comparison_id": f"c-{i}", "reviewer_pool": pool}

    def pool() -> list[tuple[str, int]]:
        return con.execute("SELECT value, batch_id FROM reviewer_attributes "
                           "WHERE reviewer_id = 'rev-1' AND attribute = 'pool'").fetchall()

    # one file in chunks of a few rows: the latest line wins across chunks
    rows = [row(i, pool) for i, pool in enumerate(["north"] * 6 + ["south"] * 6 + ["north"] * 3)]
    first = ingest_file(con, write_jsonl(tmp_path / "a.jsonl", rows), fmt="jsonl")
    assert pool() == [("north", first.batch_id)]
    same = ingest_file(con, write_jsonl(tmp_path / "b.jsonl", [row(100, "north")]), fmt="jsonl")
    assert same.accepted == 1 and pool() == [("north", first.batch_id)]  # set by the first batch
    moved = ingest_file(con, write_jsonl(tmp_path / "c.jsonl", [row(101, "west")]), fmt="jsonl")
    assert pool() == [("west", moved.batch_id)]


@pytest.mark.parametrize("small_rows", [0, 1_000_000], ids=["anti-join", "insert-or-ignore"])
def test_both_ways_of_leaving_out_stored_keys_store_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_rows: int) -> None:
    from dissensus.warehouse import store

    monkeypatch.setattr(store, "SMALL_CHUNK_ROWS", small_rows)
    con = connect(tmp_path / "w.duckdb")
    first = [{**GOOD, "comparison_id": f"c-{i}", "reviewer_id": f"rev-{i % 3}"} for i in range(6)]
    # the second file repeats every text, pair and reviewer, and adds one of each
    second = [{**GOOD, "comparison_id": "c-10", "reviewer_id": "rev-9"},
              {**GOOD, "comparison_id": "c-11", "reviewer_id": "rev-1",
               "response_b": "Something else entirely."}]
    ingest_file(con, write_jsonl(tmp_path / "a.jsonl", first), fmt="jsonl")
    report = ingest_file(con, write_jsonl(tmp_path / "b.jsonl", second), fmt="jsonl")
    assert report.accepted == 2
    counts = {t: table_count(con, t) for t in ("texts", "prompts", "responses", "pairs",
                                               "reviewers", "comparisons")}
    assert counts == {"texts": 4, "prompts": 1, "responses": 3, "pairs": 2, "reviewers": 4,
                      "comparisons": 8}


def test_pair_is_unordered_and_texts_stored_once(tmp_path: Path) -> None:
    swapped = {**GOOD, "comparison_id": "c-2", "reviewer_id": "rev-2",
               "response_a": GOOD["response_b"], "response_b": GOOD["response_a"], "choice": "b"}
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [GOOD, swapped]), fmt="jsonl")
    assert table_count(con, "pairs") == 1
    assert table_count(con, "texts") == 3
    outcomes = {r[0] for r in con.execute("SELECT outcome FROM comparisons").fetchall()}
    assert len(outcomes) == 1  # both preferred the same reply


def test_every_kind_of_bad_row_is_quarantined_with_field_and_line(tmp_path: Path) -> None:
    rows: list[dict | str] = [
        GOOD,
        "{not json",
        "[1, 2, 3]",
        {**GOOD, "comparison_id": "c-3", "choice": "maybe"},
        {**GOOD, "comparison_id": "c-4", "choice": None},
        {**GOOD, "comparison_id": "c-5", "prompt": "   "},
        {**GOOD, "comparison_id": "c-6", "response_b": GOOD["response_a"]},
        {**GOOD, "comparison_id": "c-7", "strength": "very"},
        {**GOOD, "comparison_id": "c-8", "created_at": "last tuesday"},
        {**GOOD, "comparison_id": "c-9", "shown_first": "left"},
        {**GOOD, "comparison_id": "c-10", "prompt": {"text": "nested"}},
        {**GOOD, "comparison_id": "c-11", "seconds_spent": -3},
        {**GOOD, "comparison_id": "c-1", "choice": "b"},  # same id, different content
        {**GOOD, "comparison_id": "c-12", "prompt": None, "prompt_id": "never-seen"},
        '"a comparison, as a sentence"',
        "true",
    ]
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write_jsonl(tmp_path / "bad.jsonl", rows), fmt="jsonl")
    assert report.rows_read == len(rows)
    assert report.accepted == 1
    assert report.quarantined == len(rows) - 1
    q = queries.quarantine_rows(con)
    by_line = {line: (field, reason) for line, field, reason in
               q.select("line", "field", "reason").iter_rows()}
    assert "not valid JSON" in by_line[2][1] and "character" in by_line[2][1]
    assert "JSON array" in by_line[3][1]
    assert by_line[4] == ("choice", by_line[4][1]) and "'maybe'" in by_line[4][1]
    assert "missing" in by_line[5][1]
    assert by_line[6][0] == "prompt" and "empty" in by_line[6][1]
    assert "same text" in by_line[7][1]
    assert by_line[8][0] == "strength"
    assert by_line[9][0] == "created_at" and "ISO-8601" in by_line[9][1]
    assert by_line[10][0] == "shown_first"
    assert by_line[11][0] == "prompt" and "JSON object" in by_line[11][1]
    assert by_line[12][0] == "seconds_spent"
    assert by_line[13][0] == "comparison_id" and "line 1" in by_line[13][1]
    assert by_line[14][0] == "prompt_id" and "never-seen" in by_line[14][1]
    # JSON's words for what the line holds, not DuckDB's type names ("a JSON varchar")
    assert by_line[15][1].endswith("found a JSON string")
    assert by_line[16][1].endswith("found a JSON boolean")
    assert all(raw for raw in q["raw"].to_list())


def test_reingest_adds_nothing_and_overlap_counts_duplicates(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    first = write_jsonl(tmp_path / "a.jsonl", [GOOD, {**GOOD, "comparison_id": "c-2"}])
    ingest_file(con, first, fmt="jsonl")
    again = ingest_file(con, first, fmt="jsonl")
    assert again.skipped and again.duplicates == 2
    overlap = write_jsonl(tmp_path / "b.jsonl", [{**GOOD, "comparison_id": "c-2"},
                                                  {**GOOD, "comparison_id": "c-3"}])
    report = ingest_file(con, overlap, fmt="jsonl")
    assert (report.accepted, report.duplicates) == (1, 1)
    assert table_count(con, "comparisons") == 3
    assert table_count(con, "ingest_batches") == 2


def test_rows_without_ids_dedupe_by_content(tmp_path: Path) -> None:
    row = {k: v for k, v in GOOD.items() if k != "comparison_id"}
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [row, row, {**row, "choice": "b"}]),
                         fmt="jsonl")
    assert (report.accepted, report.duplicates) == (2, 1)


def test_rows_without_reviewer_are_accepted_and_marked(tmp_path: Path) -> None:
    row = {k: v for k, v in GOOD.items() if k != "reviewer_id"}
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [row]), fmt="jsonl")
    assert con.execute("SELECT has_reviewer FROM comparisons").fetchall() == [(False,)]
    with pytest.raises(Exception, match="none has a reviewer id"):
        queries.model_frame(con)


def test_text_ids_resolve_across_batches(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    with_ids = {**GOOD, "prompt_id": "p-1", "response_a_id": "r-a", "response_b_id": "r-b"}
    ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [with_ids]), fmt="jsonl")
    ids_only = {"reviewer_id": "rev-9", "choice": "tie", "prompt_id": "p-1",
                "response_a_id": "r-b", "response_b_id": "r-a", "comparison_id": "c-9"}
    report = ingest_file(con, write_jsonl(tmp_path / "b.jsonl", [ids_only]), fmt="jsonl")
    assert report.accepted == 1
    assert table_count(con, "pairs") == 1


def test_csv_parquet_and_gzip_give_the_same_rows(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "comparison_id": "c-2", "choice": "tie", "reviewer_id": "rev-2"}]
    frame = pl.DataFrame(rows).with_columns(
        pl.col("response_a_tags").list.join(","), pl.col("reviewer_tenure_months").cast(pl.Utf8)
    )
    frame.write_csv(tmp_path / "a.csv")
    frame.write_parquet(tmp_path / "a.parquet")
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows))
    results = []
    for name, fmt in [("a.csv", "csv"), ("a.parquet", "parquet"), ("a.jsonl.gz", "jsonl")]:
        con = connect(tmp_path / f"{name}.duckdb")
        report = ingest_file(con, tmp_path / name, fmt=fmt)
        assert report.accepted == 2, (name, report.reasons)
        results.append(con.execute(
            "SELECT comparison_id, reviewer_id, pair_id, outcome, first_shown, seconds_spent "
            "FROM comparisons ORDER BY 1").fetchall())
    assert results[0] == results[1] == results[2]


def test_csv_ragged_row_and_bad_encoding(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"reviewer_id,choice,prompt,response_a,response_b\n"
        b"r1,a,Hello?,Hi there,Go away\n"
        b"r2,b,Hello?,Hi there\n"
        b'r3,tie,"multi\nline prompt",x,y\n'
    )
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, path, fmt="csv")
    assert (report.accepted, report.quarantined) == (2, 1)
    assert queries.quarantine_rows(con)["line"].to_list() == [3]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"prompt": "caf\xe9"}'.encode("latin-1"))
    report = ingest_file(con, latin, fmt="jsonl")
    assert report.quarantined == 1
    assert "UTF-8" in queries.quarantine_rows(con, report.batch_id)["reason"][0]


def test_strict_mode_stores_nothing(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    path = write_jsonl(tmp_path / "a.jsonl", [GOOD, {**GOOD, "comparison_id": "x", "choice": "?"}])
    with pytest.raises(StrictModeError, match="1 of 2 rows"):
        ingest_file(con, path, fmt="jsonl", strict=True)
    assert table_count(con, "comparisons") == 0
    assert table_count(con, "ingest_batches") == 0
    assert table_count(con, "quarantine") == 0


def test_crash_mid_batch_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    con = connect(tmp_path / "w.duckdb")
    rows = [{**GOOD, "comparison_id": f"c-{i}"} for i in range(50)]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    from dissensus.warehouse import ingest as ingest_module

    real = ingest_module._process_staged
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_process_staged", crash_on_second)
    monkeypatch.setattr(stages, "STAGE_ROWS", 1)  # each block validated on its own
    monkeypatch.setattr(ingest_module.readers, "BLOCK_BYTES", 2000)
    from dissensus.warehouse import readers

    original = readers.read_jsonl
    monkeypatch.setattr(ingest_module.readers, "read_jsonl",
                        lambda stream: original(stream, chunk_bytes=2000))
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest_file(con, path, fmt="jsonl")
    assert calls["n"] == 2
    assert table_count(con, "comparisons") == 0
    assert table_count(con, "texts") == 0
    assert table_count(con, "ingest_batches") == 0


def test_pseudonymisation_is_stable_and_cannot_mix(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [GOOD]), fmt="jsonl", salt="s3cret")
    ids = [r[0] for r in con.execute("SELECT reviewer_id FROM reviewers").fetchall()]
    assert ids[0].startswith("r-") and "rev-1" not in ids[0]
    ingest_file(con, write_jsonl(tmp_path / "b.jsonl", [{**GOOD, "comparison_id": "c-2"}]),
                fmt="jsonl", salt="s3cret")
    assert table_count(con, "reviewers") == 1
    with pytest.raises(PseudonymisationError, match="different salt"):
        ingest_file(con, write_jsonl(tmp_path / "c.jsonl", [{**GOOD, "comparison_id": "c-3"}]),
                    fmt="jsonl", salt="other")
    with pytest.raises(PseudonymisationError, match="no salt"):
        ingest_file(con, write_jsonl(tmp_path / "d.jsonl", [{**GOOD, "comparison_id": "c-4"}]),
                    fmt="jsonl")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(InputFileError, match="No such file"):
        ingest_file(con, tmp_path / "nope.jsonl", fmt="jsonl")
    with pytest.raises(InputFileError, match="folder"):
        ingest_file(con, tmp_path, fmt="jsonl")


def test_second_writer_gets_busy_in_words(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    connect(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(db)!r})
            print("locked", flush=True)
            time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DatabaseBusyError, match="busy"):
            connect(db)
    finally:
        holder.kill()
        holder.wait()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    con = connect(db)
    con.execute("INSERT INTO schema_version VALUES (999, 'from the future', now())")
    con.close()
    with pytest.raises(SchemaVersionError, match="999"):
        connect(db)


def test_unwritable_or_foreign_target_gives_clear_error(tmp_path: Path) -> None:
    from dissensus.warehouse.errors import WarehouseWriteError

    not_a_folder = tmp_path / "plain.txt"
    not_a_folder.write_text("x")
    with pytest.raises(WarehouseWriteError, match="folder"):
        connect(not_a_folder / "w.duckdb")
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("this is not a database\n" * 100)
    with pytest.raises(WarehouseWriteError, match="not a DuckDB warehouse"):
        connect(foreign)


def test_model_frame_carries_each_canonical_response_tags_and_the_category(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "w.duckdb")
    row = {**GOOD, "category": "urgent_symptoms", "response_b_tags": ["appointment_offer"]}
    ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [row]), fmt="jsonl")
    frame = queries.model_frame(con).row(0, named=True)
    a_is_1 = con.execute("SELECT a_is_response_1 FROM comparisons").fetchall()[0][0]
    tags_a, tags_b = ["escalation"], ["appointment_offer"]
    assert frame["response_1_tags"] == (tags_a if a_is_1 else tags_b)
    assert frame["response_2_tags"] == (tags_b if a_is_1 else tags_a)
    assert frame["category"] == "urgent_symptoms"


@pytest.mark.parametrize("stage_rows", [1, None])
def test_blocks_staged_together_give_what_each_block_alone_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage_rows: int | None) -> None:
    """Small blocks are staged together before validation (one DuckDB thread per row group);
    the outcome must not depend on it: the same counts, line numbers and stored rows."""
    from dissensus.warehouse import ingest as ingest_module
    from dissensus.warehouse import readers

    rows: list[dict | str] = [{**GOOD, "comparison_id": f"c-{i}", "response_a": f"A {i}"}
                              for i in range(40)]
    rows[25] = {**GOOD, "comparison_id": "c-3", "response_a": "A 3"}  # repeats line 4
    rows[30] = {**GOOD, "comparison_id": "c-30", "choice": "maybe"}
    rows[10] = rows[35] = "  "  # blank lines hold no row, and still count as lines
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    body = path.read_bytes().split(b"\n")
    body[17] = body[17].replace(b"A 17", b"A \xff17")  # not UTF-8: its block is decoded per line
    path.write_bytes(b"\n".join(body))
    monkeypatch.setattr(stages, "STAGE_ROWS", stage_rows)
    original = readers.read_jsonl
    monkeypatch.setattr(ingest_module.readers, "read_jsonl",
                        lambda stream: original(stream, chunk_bytes=1500))
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, path, fmt="jsonl")
    assert (report.accepted, report.duplicates, report.quarantined) == (35, 1, 2)
    quarantined = con.execute("SELECT line FROM quarantine ORDER BY line").fetchall()
    assert quarantined == [(18,), (31,)]
    lines = [r[0] for r in con.execute(
        "SELECT source_line FROM comparisons ORDER BY source_line").fetchall()]
    assert lines == [n for n in range(1, 41) if n not in (11, 18, 26, 31, 36)]


def test_a_failure_in_a_small_stage_keeps_its_error_and_the_thread_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small stage runs on one DuckDB thread; when it fails, the caller gets the failure
    itself (not the aborted transaction's refusal to restore the setting), nothing is stored,
    and the database has its threads back."""
    import duckdb

    from dissensus.warehouse import ingest as ingest_module

    con = connect(tmp_path / "w.duckdb")
    con.execute("SET threads = 2")

    def broken(con: duckdb.DuckDBPyConnection, *args: object) -> None:
        con.execute("SELECT json_keys('{broken')")  # fails, and aborts the transaction

    monkeypatch.setattr(ingest_module.store, "store_new_rows", broken)
    with pytest.raises(duckdb.InvalidInputException, match="Malformed JSON"):
        ingest_file(con, write_jsonl(tmp_path / "a.jsonl", [GOOD]), fmt="jsonl")
    assert con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 2
    assert table_count(con, "comparisons") == 0
