"""Withdrawn comparisons: moved whole out of ``comparisons``, never lost, never read by models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb

from dissensus.warehouse.db import connect, schema_version
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.queries import model_frame
from dissensus.warehouse.schema import LATEST_VERSION, MIGRATIONS
from dissensus.warehouse.vote_index import index_is_stale, read_vote_index
from dissensus.warehouse.withdrawals import withdraw, withdrawal_rows

Build = Callable[..., duckdb.DuckDBPyConnection]


def rows(vote: Callable[..., dict], n: int = 6) -> list[dict]:
    return [vote(f"r{i % 3}", i, "a" if i % 2 else "b", comparison_id=f"c{i}") for i in range(n)]


def columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'comparisons' "
        "ORDER BY ordinal_position").fetchall()]


def write(path: Path, data: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


def test_model_frame_leaves_out_withdrawn_comparisons(warehouse: Build, vote: Callable) -> None:
    con = warehouse(rows(vote))
    names = ", ".join(columns(con))
    before = con.execute(f"SELECT {names} FROM comparisons WHERE comparison_id = 'c3'").fetchall()
    assert "c3" in model_frame(con)["comparison_id"].to_list()
    assert withdraw(con, ["c3", "nowhere"], "test: deleted at the source") == {"c3": 1}
    frame = model_frame(con)
    assert "c3" not in frame["comparison_id"].to_list() and frame.height == 5
    # the full row as it was, with when, why and who asked
    kept = con.execute(f"SELECT {names} FROM comparison_withdrawals").fetchall()
    assert kept == before
    total, listed = withdrawal_rows(con)
    assert total == 1 and listed["reason"].to_list() == ["deleted"]
    assert listed["source"].to_list() == ["test: deleted at the source"]
    # a withdrawal changes what the vote index was built from, so the index is stale now
    assert index_is_stale(con) and read_vote_index(con) is None
    assert withdraw(con, ["c3"], "again") == {}  # nothing current left to withdraw


def test_a_revision_replaces_the_row_and_keeps_the_old_one(
    tmp_path: Path, warehouse: Build, vote: Callable
) -> None:
    con = warehouse(rows(vote))
    changed = [vote("r1", 1, "b", comparison_id="c1")]  # c1 was "a"
    plain = ingest_file(con, write(tmp_path / "plain.jsonl", changed))
    assert (plain.accepted, plain.quarantined) == (0, 1)  # without `revise`: a conflict
    revised = ingest_file(con, write(tmp_path / "rev.jsonl", changed), revise="test: edited",
                          skip_seen_file=False)
    assert (revised.accepted, revised.revised, revised.quarantined) == (1, 1, 0)
    assert con.execute("SELECT choice, batch_id FROM comparisons WHERE comparison_id = 'c1'"
                       ).fetchall() == [("b", revised.batch_id)]
    assert con.execute("SELECT reason, choice, replaced_in_batch FROM comparison_withdrawals"
                       ).fetchall() == [("revised", "a", revised.batch_id)]
    assert model_frame(con).height == 6  # still one current version per comparison
    assert not index_is_stale(con)  # ingest rebuilt it in the batch's transaction
    # the same content again is a duplicate, also as a revision
    again = ingest_file(con, write(tmp_path / "rev2.jsonl", changed), revise="test: edited",
                        skip_seen_file=False)
    assert (again.accepted, again.duplicates) == (0, 1)


def test_a_deleted_comparison_is_not_stored_again(
    tmp_path: Path, warehouse: Build, vote: Callable
) -> None:
    data = rows(vote)
    con = warehouse(data)
    withdraw(con, ["c2"], "test: deleted")
    # an older export with the deleted row and a new one: the new one is stored, c2 is not
    report = ingest_file(con, write(tmp_path / "old.jsonl", [data[2], vote("r9", 9, "a")]))
    assert (report.accepted, report.quarantined) == (1, 1)
    field, reason = con.execute("SELECT field, reason FROM quarantine").fetchall()[0]
    assert field == "comparison_id" and "withdrawn" in reason and "test: deleted" in reason
    assert "c2" not in model_frame(con)["comparison_id"].to_list()


def test_an_existing_warehouse_gets_the_withdrawal_table(
    tmp_path: Path, vote: Callable, schema_before: Callable
) -> None:
    db = tmp_path / "w.duckdb"
    con = connect(db)
    ingest_file(con, write(tmp_path / "a.jsonl", rows(vote)))
    # make the file look like one written before withdrawals existed: undo that migration and
    # any later one, newest first
    added = next(m.version for m in MIGRATIONS
                 if any("CREATE TABLE comparison_withdrawals" in s for s in m.statements))
    schema_before(con, added)
    con.close()
    reader = connect(db, read_only=True)  # an older file is read as it is
    assert read_vote_index(reader) is not None and not index_is_stale(reader)
    reader.close()
    con = connect(db)  # a writer upgrades it
    assert schema_version(con) == LATEST_VERSION
    assert con.execute("SELECT count(*) FROM comparison_withdrawals").fetchall()[0][0] == 0
    assert not index_is_stale(con)  # the index built before counts no withdrawals
    assert withdraw(con, ["c0"], "after the upgrade") == {"c0": 1}
    assert model_frame(con).height == 5 and index_is_stale(con)
    con.close()
