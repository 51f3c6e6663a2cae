"""Opening the warehouse: one writer per file, migrations on open, errors in words."""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic, sleep

import duckdb

from dissensus.warehouse.errors import DatabaseBusyError, SchemaVersionError, WarehouseWriteError
from dissensus.warehouse.schema import LATEST_VERSION, MIGRATIONS
from dissensus.warehouse.server_info import held_by_server_error

DEFAULT_DB_PATH = "dissensus.duckdb"
DB_ENV_VAR = "DISSENSUS_DB"


def default_db_path() -> Path:
    """``$DISSENSUS_DB`` if set, else ``./dissensus.duckdb``."""
    return Path(os.environ.get(DB_ENV_VAR, DEFAULT_DB_PATH))


#: Bytes 8-11 of every DuckDB database file (after an 8-byte checksum).
DUCKDB_MAGIC = b"DUCK"
LOCK_WAIT_ENV_VAR = "DISSENSUS_LOCK_WAIT"
#: Seconds a command waits for another process to let go of the file. Readers (status, the
#: dashboards) hold it only while one query runs, so a writer waits them out instead of failing.
DEFAULT_LOCK_WAIT = 15.0
#: A reader waits at most this long: only a writer can keep it out, and a writer usually holds
#: the file for a whole command, so a dashboard page says so soon instead of hanging.
READ_LOCK_WAIT = 2.0


def lock_wait_seconds() -> float:
    """``$DISSENSUS_LOCK_WAIT`` seconds (default :data:`DEFAULT_LOCK_WAIT`)."""
    try:
        return max(0.0, float(os.environ.get(LOCK_WAIT_ENV_VAR, DEFAULT_LOCK_WAIT)))
    except ValueError:
        return DEFAULT_LOCK_WAIT


def is_duckdb_file(path: Path) -> bool:
    """Whether ``path`` starts like a DuckDB database file (checked by its magic bytes)."""
    try:
        with path.open("rb") as handle:
            return handle.read(12)[8:12] == DUCKDB_MAGIC
    except OSError:
        return False


def check_warehouse_path(path: Path, *, must_exist: bool = False) -> None:
    """Refuse a ``--db`` that would lose or hide data, before DuckDB touches it.

    DuckDB opens some files that are not databases (a ``.jsonl``, for one) as an empty
    *in-memory* database: an ingest then reports rows accepted and stores nothing. So an
    existing file must carry DuckDB's magic bytes. ``must_exist``: commands that only read or
    add to a warehouse (status, fit, train, ...) must not create an empty one by accident.
    """
    if path.is_dir():
        raise WarehouseWriteError(
            f"--db names a folder, not a warehouse file: {path}",
            where=str(path),
            expected="a DuckDB file made by dissensus, or a new file path",
            fix=f"pass a file path, e.g. --db {path / 'dissensus.duckdb'}",
        )
    if not path.exists():
        if must_exist:
            raise WarehouseWriteError(
                f"There is no warehouse at {path}.",
                where=str(path),
                expected="a DuckDB file made by `dissensus ingest` or `dissensus demo`",
                fix="create one with `dissensus --db PATH ingest FILE` (or `dissensus demo`), "
                "or pass --db (or set $DISSENSUS_DB) to the warehouse you meant",
            )
        return
    size = path.stat().st_size
    if size == 0:
        if must_exist:
            raise WarehouseWriteError(
                f"{path} is an empty file, not a warehouse (an earlier create that failed, "
                "e.g. on a full disk, can leave one).",
                where=str(path),
                expected="a DuckDB file made by `dissensus ingest` or `dissensus demo`",
                fix=f"remove it (rm {path}) and ingest again, or pass another --db",
            )
        return  # a writer creates the warehouse in it: there is nothing to lose
    if not is_duckdb_file(path):
        raise WarehouseWriteError(
            f"{path} is not a DuckDB warehouse file (it does not start with DuckDB's "
            "signature); dissensus will not open, overwrite or replace it.",
            where=str(path),
            expected="a DuckDB file made by dissensus, or a path that does not exist yet",
            fix="pass --db a .duckdb path (a data file to load goes after `dissensus ingest`)",
        )


def _holder(message: str) -> str:
    """'process 123' from DuckDB's lock message, else 'another process'."""
    match = re.search(r"\(PID (\d+)\)", message)
    return f"another process (PID {match.group(1)})" if match else "another process"


def _is_lock_error(error: Exception) -> bool:
    return "lock" in str(error).lower()


def _translate_open_error(
    path: Path, error: Exception, read_only: bool, waited: float
) -> Exception:
    message = str(error)
    if _is_lock_error(error):
        held = held_by_server_error(path)  # the API holds it: name its URL and what to do
        if held is not None:
            return held
        holder = _holder(message)
        if read_only:
            # A read lock is refused only while a writer holds the file: say so, and do not
            # promise that read-only commands keep running, for DuckDB admits none then.
            return DatabaseBusyError(
                f"The warehouse {path} is being written by {holder} (an ingest, fit, train or "
                f"demo); DuckDB lets no other process read a file while one writes it. Waited "
                f"{waited:.0f} s.",
                where=str(path),
                expected="no command writing to this file while it is read",
                fix="run this again when the writing command has finished",
            )
        return DatabaseBusyError(
            f"The database is busy: {holder} has {path} open and did not let go within "
            f"{waited:.0f} s.",
            where=str(path),
            expected="no other command writing to this file; readers (status, dashboards) "
            "hold it only while a query runs",
            fix="wait for the other command to finish and run this again, set "
            f"{LOCK_WAIT_ENV_VAR} to wait longer, or point --db at another file",
        )
    if read_only and not path.exists():
        return WarehouseWriteError(
            f"There is no warehouse at {path}.",
            where=str(path),
            expected="a DuckDB file made by `dissensus ingest` or `dissensus demo`",
            fix="run `dissensus demo` or `dissensus ingest FILE` first, or pass --db",
        )
    return WarehouseWriteError(
        f"Could not open the warehouse {path}: {message}",
        where=str(path),
        expected="a writable DuckDB file made by dissensus (or a new path)",
        fix="check the path, its folder's permissions and free disk space",
    )


def _open_with_retry(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried while another process holds a conflicting lock."""
    wait = min(lock_wait_seconds(), READ_LOCK_WAIT) if read_only else lock_wait_seconds()
    started = monotonic()
    pause = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.Error) as error:
            waited = monotonic() - started
            if not _is_lock_error(error) or waited >= wait:
                raise _translate_open_error(path, error, read_only, waited) from error
        sleep(min(pause, max(0.0, wait - (monotonic() - started))))
        pause = min(pause * 2, 0.5)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Version recorded in the file; 0 for an empty file."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()[0]
    if exists[0] == 0:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    return int(row[0]) if row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection, path: Path | str = "<memory>") -> int:
    """Bring the file up to :data:`LATEST_VERSION`; refuse files from a newer dissensus."""
    current = schema_version(con)
    if current > LATEST_VERSION:
        raise SchemaVersionError(
            f"The warehouse {path} has schema version {current}; this dissensus knows up to "
            f"{LATEST_VERSION}.",
            where=str(path),
            expected=f"schema version <= {LATEST_VERSION}",
            fix="upgrade dissensus (pip install -U dissensus) before opening this file",
        )
    if current == LATEST_VERSION:
        return current
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [migration.version, migration.description, datetime.now(UTC)],
            )
        if 1 <= current < 3:  # an upgraded file with comparisons: index them once, now
            from dissensus.warehouse.vote_index import refresh_vote_index

            refresh_vote_index(con, in_transaction=True)
        if 2 <= current < 4:  # fits stored before their per-pair school votes were
            from dissensus.warehouse.pair_votes import backfill_pair_school_votes

            backfill_pair_school_votes(con)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return LATEST_VERSION


def connect(
    path: Path | str | None = None, *, read_only: bool = False, create: bool = True
) -> duckdb.DuckDBPyConnection:
    """Open (and for writers, create or upgrade) the warehouse at ``path``.

    Read-only connections never migrate; they refuse files newer than this dissensus and
    files that need an upgrade (open them once for writing to upgrade). An existing file that
    is not a DuckDB database is refused (:func:`check_warehouse_path`); with ``create=False`` a
    missing warehouse is too. While another process holds the file, the open is retried for
    :func:`lock_wait_seconds`. A create that fails (a full disk) leaves no file behind.
    """
    db_path = Path(path) if path is not None else default_db_path()
    if not read_only and db_path.parent and not db_path.parent.is_dir():
        raise WarehouseWriteError(
            f"The folder for the warehouse does not exist: {db_path.parent}",
            where=str(db_path),
            expected="an existing folder",
            fix=f"create it (mkdir -p {db_path.parent}) or choose another --db",
        )
    check_warehouse_path(db_path, must_exist=read_only or not create)
    new_file = not db_path.exists() or db_path.stat().st_size == 0
    if new_file and not read_only:
        db_path.unlink(missing_ok=True)  # empty: DuckDB cannot open it, and it holds nothing
    try:
        con = _open_with_retry(db_path, read_only)
    except WarehouseWriteError:
        if new_file and not read_only:
            _remove_failed_create(db_path)
        raise
    if read_only:
        version = schema_version(con)
        if version > LATEST_VERSION:
            con.close()
            raise SchemaVersionError(
                f"The warehouse {db_path} has schema version {version}; this dissensus knows up "
                f"to {LATEST_VERSION}.",
                where=str(db_path),
                fix="upgrade dissensus before opening this file",
            )
        return con
    try:
        migrate(con, db_path)
        _repair_stale_index(con)
    except duckdb.Error as error:
        con.close()
        if new_file:
            _remove_failed_create(db_path)
        raise WarehouseWriteError(
            f"Could not prepare the warehouse {db_path}: {error}",
            where=str(db_path),
            fix="check free disk space and that the file is writable",
        ) from error
    return con


def _remove_failed_create(path: Path) -> None:
    """Remove what a failed create left (an empty or partial file and its log): later runs
    would otherwise call the path 'not a valid DuckDB database file'."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(OSError):
            leftover.unlink(missing_ok=True)


def _repair_stale_index(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the vote index when a writer finds it stale: a crash between a batch's commit
    and the rebuild (the index is rebuilt after the last file of a command) leaves it so."""
    from dissensus.warehouse.vote_index import index_is_stale, refresh_vote_index

    if index_is_stale(con):
        refresh_vote_index(con)


def database_path(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The file behind ``con``; ``None`` for an in-memory warehouse."""
    rows = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return Path(rows[0][0]) if rows and rows[0][0] else None


def connect_memory() -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with the full schema (tests, previews)."""
    con = duckdb.connect(":memory:")
    migrate(con)
    return con
