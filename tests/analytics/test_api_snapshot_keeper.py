"""When the running API refreshes its read snapshot (analytics/api/snapshot_keeper.py).

A real :class:`Warehouse` (the API's writer queue) on a DuckDB file: the keeper copies on start
and after writes, at most once per interval, and a failed copy keeps the previous snapshot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from dissensus.analytics.api import snapshot_keeper
from dissensus.analytics.api.service import Warehouse
from dissensus.analytics.api.snapshot_keeper import SnapshotKeeper
from dissensus.warehouse.artefacts import snapshot_file
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.snapshot import Snapshot, connect_snapshot
from dissensus.warehouse.vote_index import index_status


def snapshot_rows(db: Path) -> int:
    con = connect_snapshot(Snapshot(snapshot_file(db), 0, 0, "http://test"))
    assert con is not None
    try:
        return int(con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0])
    finally:
        con.close()


def snapshot_index(db: Path) -> str:
    con = connect_snapshot(Snapshot(snapshot_file(db), 0, 0, "http://test"))
    assert con is not None
    try:
        return index_status(con)
    finally:
        con.close()


def wait_until(done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    yield warehouse
    warehouse.close()


def post(warehouse: Warehouse, tmp_path: Path, vote: Callable[..., dict],
         items: range) -> None:
    """Rows through the write queue, as ``POST /v1/comparisons`` sends them."""
    source = tmp_path / f"rows-{items.start}.jsonl"
    source.write_text("".join(json.dumps(vote(f"r{i % 4}", i, "a")) + "\n" for i in items))

    def task(con: duckdb.DuckDBPyConnection) -> None:
        ingest_file(con, source, refresh_index=False)
        warehouse.mark_index_dirty()
        warehouse.changed()

    warehouse.write(task).result(timeout=60)


def test_copies_on_start_and_after_writes(served: Warehouse, tmp_path: Path,
                                          vote: Callable[..., dict]) -> None:
    keeper = SnapshotKeeper(served, interval=0.2)
    try:
        wait_until(lambda: keeper.status()["version"] == 0)  # the first copy, of no rows
        assert snapshot_rows(served.path) == 0
        post(served, tmp_path, vote, range(10))
        wait_until(lambda: keeper.status()["version"] == served.version)
        assert snapshot_rows(served.path) == 10
        # the vote index is rebuilt once the writes pause: copied too (the audit reads it)
        wait_until(lambda: snapshot_index(served.path).startswith("fresh (10 votes"))
        status = keeper.status()
        assert status["error"] is None and status["taken_at"] and status["interval_seconds"] == 0.2
    finally:
        keeper.close()
    assert snapshot_file(served.path).exists()  # the server removes it, after its note


def test_a_stream_of_writes_is_copied_once_per_interval(served: Warehouse) -> None:
    keeper = SnapshotKeeper(served, interval=1.0)
    try:
        wait_until(lambda: keeper.refreshes == 1)
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # 50 changes in 2.5 s
            served.changed()
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        assert keeper.refreshes - 1 <= elapsed / 1.0 + 1
        wait_until(lambda: keeper.status()["version"] == served.version, timeout=10)
    finally:
        keeper.close()


def test_a_failed_copy_keeps_the_previous_snapshot(
    served: Warehouse, tmp_path: Path, vote: Callable[..., dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keeper = SnapshotKeeper(served, interval=0.1)
    try:
        wait_until(lambda: keeper.refreshes == 1)

        def disk_full(con: duckdb.DuckDBPyConnection, db: Path) -> float:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(snapshot_keeper, "write_snapshot", disk_full)
        post(served, tmp_path, vote, range(5))
        wait_until(lambda: keeper.status()["error"] is not None)
        assert "No space left" in keeper.status()["error"]
        assert snapshot_rows(served.path) == 0 and keeper.status()["version"] == 0
        # the writer is unaffected: posts go on
        post(served, tmp_path, vote, range(5, 8))
        with served.reader() as con:
            assert con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0] == 8
    finally:
        keeper.close()
