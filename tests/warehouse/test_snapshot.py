"""The read snapshot a running API keeps (warehouse/snapshot.py), on real DuckDB files.

A refresh copies what is committed, in one transaction (never half a write), to a temporary
file renamed over the previous snapshot: a reader holding the old snapshot keeps reading it, a
reader opening the path gets a whole snapshot, old or new, and a failed refresh leaves the old
one in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from dissensus.warehouse import snapshot as snap
from dissensus.warehouse.artefacts import api_folder, snapshot_file
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.server_info import clear_server_info, write_server_info


def count(path: Path, table: str = "comparisons") -> int:
    """Rows of ``table`` in the snapshot at ``path``, opened as the dashboards open it."""
    con = snap.connect_snapshot(snap.Snapshot(path, 0, 0, "http://test"))
    assert con is not None
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    finally:
        con.close()


def ingest_more(con: duckdb.DuckDBPyConnection, tmp_path: Path, rows: list[dict]) -> None:
    source = tmp_path / f"more-{len(rows)}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest_file(con, source)


def test_a_refresh_holds_the_new_rows_and_the_old_snapshot_stays_readable(
    warehouse: Callable[..., duckdb.DuckDBPyConnection], vote: Callable[..., dict],
    tmp_path: Path,
) -> None:
    con = warehouse([vote(f"r{i % 3}", i, "a") for i in range(6)])
    db = tmp_path / "w.duckdb"
    cursor = con.cursor()
    snap.write_snapshot(cursor, db)
    target = snapshot_file(db)
    assert target.parent == api_folder(db)
    assert count(target) == 6
    # every table of the warehouse, with its rows, and no write-ahead log beside the copy
    tables = "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    copy = snap.connect_snapshot(snap.Snapshot(target, 0, 0, "http://test"))
    assert copy is not None
    assert {r[0] for r in copy.execute(tables).fetchall()} == {
        r[0] for r in con.execute(tables + " AND NOT temporary").fetchall()}
    assert copy.execute("SELECT count(*) FROM vote_index").fetchall()[0][0] == 6
    copy.close()
    assert not target.with_name(target.name + ".wal").exists()

    old_reader = duckdb.connect(str(target), read_only=True)  # e.g. a dashboard mid-query
    old_inode = target.stat().st_ino
    ingest_more(con, tmp_path, [vote(f"r{i % 3}", i, "b") for i in range(6, 10)])
    snap.write_snapshot(cursor, db)
    assert target.stat().st_ino != old_inode  # a new file renamed into place, not rewritten
    assert count(target) == 10
    # the reader of the old snapshot is undisturbed: same rows, still readable; and while it
    # is open, a new reader in the same process (another dashboard session) gets the new file
    assert old_reader.execute("SELECT count(*) FROM comparisons").fetchall()[0][0] == 6
    assert count(target) == 10
    old_reader.close()
    assert not list(api_folder(db).glob(snap.TEMP_GLOB))
    # the copy was detached: the warehouse's connection lists only its own database again
    assert con.execute("SELECT count(*) FROM duckdb_databases() WHERE NOT internal"
                       ).fetchall()[0][0] == 1


def test_a_failed_refresh_leaves_the_previous_snapshot(
    warehouse: Callable[..., duckdb.DuckDBPyConnection], vote: Callable[..., dict],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    con = warehouse([vote("r1", i, "a") for i in range(4)])
    db = tmp_path / "w.duckdb"
    snap.write_snapshot(con.cursor(), db)
    ingest_more(con, tmp_path, [vote("r2", i, "a") for i in range(4, 7)])

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snap.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        snap.write_snapshot(con.cursor(), db)
    assert count(snapshot_file(db)) == 4
    assert not list(api_folder(db).glob(snap.TEMP_GLOB))
    monkeypatch.undo()
    snap.write_snapshot(con.cursor(), db)  # the next refresh works
    assert count(snapshot_file(db)) == 7


READER = """
import sys, time, duckdb
path, seconds = sys.argv[1], float(sys.argv[2])
opened = bad = 0
last = -1
end = time.monotonic() + seconds
while time.monotonic() < end:
    con = duckdb.connect(path, read_only=True)  # raises on a partial or missing file
    a, b = con.execute("SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)").fetchall()[0]
    con.close()
    opened += 1
    bad += a != b or a < last
    last = a
print(opened, bad, last)
"""


def test_refreshes_beside_a_committing_writer_are_whole_and_consistent(tmp_path: Path) -> None:
    """Tables ``a`` and ``b`` gain a row each in every transaction: a copy that caught half a
    transaction, or a reader that opened a partial file, would see them differ (or fail)."""
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE a (i INTEGER PRIMARY KEY, pad VARCHAR); CREATE TABLE b (i INTEGER)")
    con.execute("INSERT INTO a SELECT i, repeat('x', 50) FROM range(200000) t(i)")
    con.execute("INSERT INTO b SELECT i FROM range(200000) t(i)")
    snap.write_snapshot(con.cursor(), db)
    stop = threading.Event()

    def writer() -> None:
        cursor = con.cursor()
        n = 200_000
        while not stop.is_set():
            cursor.execute("BEGIN TRANSACTION")
            cursor.execute("INSERT INTO a VALUES (?, 'y')", [n])
            cursor.execute("INSERT INTO b VALUES (?)", [n])
            cursor.execute("COMMIT")
            n += 1
        cursor.close()

    reader = subprocess.Popen([sys.executable, "-c", READER, str(snapshot_file(db)), "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = 0
        cursor = con.cursor()
        while reader.poll() is None:
            snap.write_snapshot(cursor, db)
            copies += 1
            assert count(snapshot_file(db), "a") == count(snapshot_file(db), "b")
    finally:
        stop.set()
        thread.join()
    out, err = reader.communicate()
    assert reader.returncode == 0, err
    opened, bad, last = (int(x) for x in out.split())
    assert copies >= 2 and opened >= copies and bad == 0
    assert last > 200_000 or copies < 3  # the writer's rows reached the snapshots
    con.close()


def test_only_a_live_servers_snapshot_is_read(
    warehouse: Callable[..., duckdb.DuckDBPyConnection], vote: Callable[..., dict],
    tmp_path: Path,
) -> None:
    con = warehouse([vote("r1", 1, "a")])
    db = tmp_path / "w.duckdb"
    assert snap.serving_snapshot(db) is None  # no server, no snapshot
    snap.write_snapshot(con.cursor(), db)
    assert snap.serving_snapshot(db) is None  # a snapshot without a live server: never read
    write_server_info(db, "http://127.0.0.1:9")  # this process plays the server
    try:
        found = snap.serving_snapshot(db)
        assert found is not None and found.path == snapshot_file(db)
        assert "http://127.0.0.1:9" in found.note() and found.when() in found.note()
        reader, used = snap.connect_reader(db)
        assert used == found
        reader.close()
        snap.remove_snapshot(db)  # the server stopped between the look and the open
        assert snap.connect_snapshot(found) is None
    finally:
        clear_server_info(db)
    assert not snapshot_file(db).exists() and not os.listdir(api_folder(db))
