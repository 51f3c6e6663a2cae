"""Rows staged for validation: consecutive reader chunks gathered in the temp table ``chunk``.

DuckDB shares a table among its threads by row group (:data:`ROW_GROUP_ROWS`), so a statement
over one 64 MB block of JSON lines (about 51,000 demo rows) ran on one thread however many the
machine had. Comparison ingest and traffic ingest therefore gather blocks until each thread has
a row group (:func:`staged_chunks`) and validate them together; rows that fit one row group are
validated on one thread (:func:`threads_for`), since idle threads only cost coordination.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb

from dissensus.warehouse import staging
from dissensus.warehouse.readers import ChunkKind, StagedChunk
from dissensus.warehouse.sources import prefetched

#: Rows in one row group of a DuckDB table, the unit its threads share out.
ROW_GROUP_ROWS = 122_880
#: Most row groups staged at once, whatever the thread count: memory stays bounded.
MOST_STAGED_ROW_GROUPS = 4
#: Rows staged before validation, overriding :func:`stage_rows` (tests stage every chunk alone).
STAGE_ROWS: int | None = None


@dataclass
class Staged:
    """The rows loaded into the temp table ``chunk`` and not yet validated: one or more
    consecutive chunks of the reader."""

    kind: ChunkKind = "json_lines"
    rows: int = 0
    unknown_columns: list[str] = field(default_factory=list)

    def add(self, con: duckdb.DuckDBPyConnection, chunk: StagedChunk) -> None:
        staging.load_chunk(con, chunk.table, append=self.rows > 0)
        self.kind = chunk.kind
        self.rows += chunk.table.num_rows
        self.unknown_columns = sorted(set(self.unknown_columns) | set(chunk.unknown_columns))


def _threads(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


def stage_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows of JSON lines to stage before validating them together: one row group per DuckDB
    thread (at most :data:`MOST_STAGED_ROW_GROUPS`), or :data:`STAGE_ROWS` when set."""
    if STAGE_ROWS is not None:
        return STAGE_ROWS
    return ROW_GROUP_ROWS * max(1, min(_threads(con), MOST_STAGED_ROW_GROUPS))


def staged_chunks(con: duckdb.DuckDBPyConnection,
                  chunks: Iterator[StagedChunk]) -> Iterator[Staged]:
    """Load the reader's chunks (read ahead in a thread) into ``chunk``; yield each time enough
    rows are there to validate, and once more for the rest. Columnar chunks (CSV, Parquet,
    adapters) may differ in their columns, so each is yielded alone."""
    staged, enough = Staged(), stage_rows(con)
    for chunk in prefetched(chunks):
        staged.add(con, chunk)
        if staged.kind != "json_lines" or staged.rows >= enough:
            yield staged
            staged = Staged()
    if staged.rows:
        yield staged


@contextlib.contextmanager
def threads_for(con: duckdb.DuckDBPyConnection, rows: int) -> Iterator[None]:
    """One DuckDB thread for rows that fit one row group: no other thread can get a share of
    them, and coordinating the idle ones made the validation statements 25-40% slower
    (7,000- and 40,000-row posted batches). The setting is the database's, so it is put back,
    through a cursor of its own: after a failed statement this connection's transaction accepts
    nothing but a rollback, and the failure must reach the caller as it was."""
    threads = _threads(con)
    if rows >= ROW_GROUP_ROWS or threads == 1:
        yield
        return
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        with contextlib.closing(con.cursor()) as other:
            other.execute(f"SET threads = {threads}")
