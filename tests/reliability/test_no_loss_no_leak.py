"""Items 1-6 of the red-team findings: nothing lost, nothing leaked.

Each test would fail without its fix: a ``--db`` that is not a DuckDB file, ``demo`` replacing a
user's file, a UTF-8 byte-order mark, raw reviewer ids in the quarantine of a pseudonymised
warehouse, NaN / infinity / white-space texts accepted, unknown CSV columns and duplicate JSON
keys passed over in silence.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reliability_helpers import cli, good_row, write_jsonl

from dissensus.warehouse import queries
from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import WarehouseWriteError
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.salting import WITHHELD_RAW


def test_a_db_that_is_not_duckdb_is_refused_by_every_command(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [good_row(i) for i in range(5)])
    before = data.read_bytes()
    for args in (["ingest", str(data)], ["status"], ["fit"], ["reviewers"], ["reindex"],
                 ["quarantine"], ["train", "--encoder", "hashing"], ["serve"]):
        result = cli("--db", str(data), *args)
        assert result.exit_code == 2, (args, result.output)
        assert "not a DuckDB warehouse file" in result.output, (args, result.output)
    assert data.read_bytes() == before
    with pytest.raises(WarehouseWriteError, match="not a DuckDB warehouse"):
        connect(data)


def test_read_only_commands_do_not_create_a_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "absent.duckdb"
    for args in (["status"], ["fit"], ["reviewers"], ["train", "--encoder", "hashing"],
                 ["reindex"]):
        result = cli("--db", str(db), *args)
        assert result.exit_code == 2 and "There is no warehouse at" in result.output, args
        assert "ingest FILE" in result.output
        assert not db.exists(), args


def test_demo_never_replaces_a_file_it_did_not_make(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [good_row(i) for i in range(5)])
    before = data.read_bytes()
    result = cli("--db", str(data), "demo", "--n", "200", "--no-fit")
    assert result.exit_code == 2 and "--force" in result.output
    assert data.read_bytes() == before
    # a warehouse holding the user's own batch is theirs too
    own = tmp_path / "own.duckdb"
    assert cli("--db", str(own), "ingest", str(data)).exit_code == 0
    assert cli("--db", str(own), "demo", "--n", "200", "--no-fit").exit_code == 2
    assert connect(own, read_only=True).execute(
        "SELECT count(*) FROM comparisons").fetchall()[0][0] == 5


def test_demo_rebuilds_its_own_warehouse_and_force_replaces(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    assert cli("--db", str(db), "demo", "--n", "200", "--no-fit").exit_code == 0
    assert cli("--db", str(db), "demo", "--n", "200", "--no-fit").exit_code == 0
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    assert cli("--db", str(other), "demo", "--n", "200", "--no-fit", "--force").exit_code == 0
    assert other.read_bytes()[8:12] == b"DUCK"


def test_csv_with_a_byte_order_mark_keeps_its_first_column(tmp_path: Path) -> None:
    source = tmp_path / "bom.csv"
    source.write_bytes(b"\xef\xbb\xbfreviewer_id,choice,prompt,response_a,response_b\n"
                       b"alice,a,p1,x,y\nbob,b,p2,x,y\n")
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, source)
    assert report.accepted == 2
    assert sorted(r[0] for r in con.execute("SELECT reviewer_id FROM comparisons").fetchall()) \
        == ["alice", "bob"]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(good_row(7)).encode() + b"\n")
    assert ingest_file(con, jsonl).accepted == 1


def test_pseudonymised_quarantine_keeps_no_raw_reviewer_id(tmp_path: Path) -> None:
    rows: list[dict | str] = [
        good_row(1, reviewer_id="alice.smith@clinic.example"),
        good_row(2, reviewer_id="alice.smith@clinic.example", choice="sideways"),
        '{"reviewer_id": "alice.smith@clinic.example", "choice": ',
    ]
    csv = tmp_path / "in.csv"
    csv.write_text("reviewer_id,choice,prompt,response_a,response_b\n"
                   "alice.smith@clinic.example,maybe,p,x,y\n")
    db = tmp_path / "w.duckdb"
    con = connect(db)
    ingest_file(con, write_jsonl(tmp_path / "in.jsonl", rows), salt="s3cret")
    ingest_file(con, csv, salt="s3cret")
    raw = [r[0] for r in con.execute("SELECT raw FROM quarantine ORDER BY line").fetchall()]
    assert len(raw) == 3
    assert not any("alice" in text for text in raw)
    assert WITHHELD_RAW in raw
    pseudonym = con.execute("SELECT DISTINCT reviewer_id FROM comparisons").fetchall()[0][0]
    assert any(pseudonym in text for text in raw)  # the rebuilt row names the pseudonym
    con.execute("CHECKPOINT")
    con.close()
    assert b"alice" not in db.read_bytes()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_nan_infinity_and_white_space_texts_are_quarantined(tmp_path: Path, fmt: str) -> None:
    bad = [good_row(1, strength="NaN"), good_row(2, seconds_spent="Infinity"),
           good_row(3, strength="-inf"), good_row(4, seconds_spent="nan"),
           good_row(5, prompt="\t\n"), good_row(6, response_a="\u00a0\u2003"),
           good_row(7, response_b=" \u3000 ")]
    rows = [good_row(0), *bad]
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
        with path.open("a") as handle:  # a number too large for a double: infinity
            handle.write(json.dumps(good_row(8)).replace('"choice"', '"strength": 1e400, "choice"')
                         + "\n")
        expected_bad = len(bad) + 1
    elif fmt == "csv":
        names = sorted({k for r in rows for k in r})
        pa_table = pa.table({n: [None if r.get(n) is None else str(r.get(n)) for r in rows]
                             for n in names})
        import pyarrow.csv as pacsv

        pacsv.write_csv(pa_table, path)
        expected_bad = len(bad)
    else:
        table = pa.table({
            **{n: [r.get(n) for r in rows] for n in ("reviewer_id", "choice", "prompt",
                                                      "response_a", "response_b")},
            "strength": pa.array([None, float("nan"), None, float("-inf"), None, None, None,
                                  None], pa.float64()),
            "seconds_spent": pa.array([None, None, float("inf"), None, float("nan"), None,
                                       None, None], pa.float64()),
        })
        pq.write_table(table, path)
        expected_bad = len(bad)
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, path)
    assert report.accepted == 1 and report.quarantined == expected_bad, report.reasons
    stored = con.execute("SELECT count(*) FROM comparisons WHERE NOT isfinite(strength) "
                         "OR NOT isfinite(seconds_spent)").fetchall()[0][0]
    assert stored == 0
    reasons = " ".join(report.reasons)
    assert "finite number" in reasons and "only white space" in reasons


def test_unknown_csv_and_parquet_columns_are_reported(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text("reviewer_id,choice,prompt,response_a,response_b,annotator_mood\n"
                   "r1,a,p,x,y,calm\n")
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, csv)
    assert report.unknown_columns == ["annotator_mood"]
    notes = con.execute("SELECT notes FROM ingest_batches").fetchall()[0][0]
    assert "annotator_mood" in notes
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({**{k: [v] for k, v in good_row(3).items()}, "extra": [1]}), parquet)
    assert ingest_file(con, parquet).unknown_columns == ["extra"]
    result = cli("--db", str(tmp_path / "cli.duckdb"), "ingest", str(csv))
    assert "not stored" in result.output and "annotator_mood" in result.output


def test_duplicate_json_keys_with_different_values_are_quarantined(tmp_path: Path) -> None:
    same = json.dumps(good_row(1))[:-1] + ', "choice": "b"}'  # row 1 chose b; a repeat says b
    differs = json.dumps(good_row(2))[:-1] + ', "choice": "b"}'  # row 2 chose a, then b
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write_jsonl(tmp_path / "in.jsonl", [same, differs]))
    assert report.accepted == 1 and report.quarantined == 1
    q = queries.quarantine_rows(con)
    assert q["field"][0] == "choice" and "appears 2 times" in q["reason"][0]
    assert q["line"][0] == 2


def test_only_the_lines_that_repeat_a_key_are_quarantined_among_many_key_lists(
        tmp_path: Path) -> None:
    """Key lists are checked once per distinct list: lines that share a list with a repeated
    key are each judged on their own values, lines with other lists are not touched."""
    rows: list[dict | str] = [good_row(i) for i in range(4)]
    rows += [good_row(i, category="billing") for i in range(4, 8)]  # a second key list
    rows.append(json.dumps(good_row(8))[:-1] + ', "choice": "a"}')  # repeat, same value
    rows.append(json.dumps(good_row(9))[:-1] + ', "choice": "a"}')  # repeat, other value
    rows.append('{"reviewer_id": "r1", "choice": ')  # not JSON: no key list at all
    rows.append(json.dumps(good_row(10, reviewer_team="red"))[:-1] + ', "reviewer_team": "blue"}')
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, write_jsonl(tmp_path / "in.jsonl", rows))
    assert (report.accepted, report.quarantined) == (9, 3)
    q = queries.quarantine_rows(con).sort("line")
    assert q["line"].to_list() == [10, 11, 12]
    assert "appears 2 times" in q["reason"][0] and q["field"][0] == "choice"
    assert "not valid JSON" in q["reason"][1]
    assert q["field"][2] == "reviewer_team" and "appears 2 times" in q["reason"][2]


def test_a_repeated_csv_column_refuses_the_file_in_words(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text("reviewer_id,choice,prompt,response_a,response_b,choice\nr1,a,p,x,y,b\n")
    result = cli("--db", str(tmp_path / "w.duckdb"), "ingest", str(csv))
    assert result.exit_code == 2 and "'choice' more than once" in result.output
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0] == 0


def test_demo_does_not_write_into_a_folder_of_the_user(tmp_path: Path) -> None:
    folder = tmp_path / "study_truth"  # what the demo would name its world beside study.duckdb
    folder.mkdir()
    (folder / "comparisons.jsonl").write_text("mine\n")
    for extra in ([], ["--no-fresh"]):
        result = cli("--db", str(tmp_path / "study.duckdb"), "demo", "--n", "200", "--no-fit",
                     *extra)
        assert result.exit_code == 2 and "--force" in result.output
    assert (folder / "comparisons.jsonl").read_text() == "mine\n"
