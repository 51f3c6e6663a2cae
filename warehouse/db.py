"""Opening the warehouse: one writer per file, migrations on open, errors in words."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dissensus.warehouse.errors import DatabaseBusyError, SchemaVersionError, WarehouseWriteError
from dissensus.warehouse.schema import LATEST_VERSION, MIGRATIONS
from dissensus.warehouse.server_info import held_by_server_error

DEFAULT_DB_PATH = "dissensus.duckdb"
DB_ENV_VAR = "DISSENSUS_DB"


def default_db_path() -> Path:
    """``$DISSENSUS_DB`` if set, else ``./dissensus.duckdb``."""
    return Path(os.environ.get(DB_ENV_VAR, DEFAULT_DB_PATH))


def _translate_open_error(path: Path, error: Exception, read_only: bool) -> Exception:
    message = str(error)
    if "lock" in message.lower() or "Conflicting lock" in message:
        held = held_by_server_error(path)  # the API holds it: name its URL and what to do
        if held is not None:
            return held
        return DatabaseBusyError(
            f"The database is busy: another process has {path} open for writing.",
            where=str(path),
            expected="no other dissensus command (ingest, fit, demo) writing to this file",
            fix="wait for the other command to finish, or point --db at another file; "
            "dashboards and read-only queries can keep running",
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
    path: Path | str | None = None, *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open (and for writers, create or upgrade) the warehouse at ``path``.

    Read-only connections never migrate; they refuse files newer than this dissensus and
    files that need an upgrade (open them once for writing to upgrade).
    """
    db_path = Path(path) if path is not None else default_db_path()
    if not read_only and db_path.parent and not db_path.parent.exists():
        raise WarehouseWriteError(
            f"The folder for the warehouse does not exist: {db_path.parent}",
            where=str(db_path),
            expected="an existing folder",
            fix=f"create it (mkdir -p {db_path.parent}) or choose another --db",
        )
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except (duckdb.IOException, duckdb.Error) as error:
        raise _translate_open_error(db_path, error, read_only) from error
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
    except duckdb.Error as error:
        con.close()
        raise WarehouseWriteError(
            f"Could not prepare the warehouse {db_path}: {error}",
            where=str(db_path),
            fix="check free disk space and that the file is writable",
        ) from error
    return con


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
