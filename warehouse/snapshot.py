"""The read snapshot: a copy of the warehouse that readers open while the API holds the file.

While ``dissensus api`` runs it holds the warehouse read-write, and DuckDB admits no other
process to that file, not even read-only. So the server keeps a copy beside it
(:func:`dissensus.warehouse.artefacts.snapshot_file`), refreshed after writes, and the
dashboards and the read commands open the copy instead (:func:`serving_snapshot`).

How the copy is made, and why it is safe to read:

* **DuckDB copies, not the file system.** A byte copy of a live database file can catch pages
  from before and after a checkpoint (and misses what is still only in the WAL). The server
  ATTACHes a new file and runs ``COPY FROM DATABASE``, which writes tables, views, sequences and
  their rows through DuckDB.
* **One transaction.** ``COPY FROM DATABASE`` runs as several statements (schema, then each
  table); inside one explicit transaction they all read the same MVCC snapshot of committed
  data, so the copy never holds half an ingest batch or a fit's tables from two moments.
* **Written aside, then renamed.** The copy goes to a temporary file, which is detached (and so
  checkpointed: no WAL is left) and then renamed over the previous snapshot. A rename is atomic
  on one file system: a reader opens the old snapshot or the new one, never a partial file, and
  a reader that has the old one open keeps reading it undisturbed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from time import monotonic

import duckdb

from dissensus.warehouse.artefacts import snapshot_file
from dissensus.warehouse.db import connect, schema_version
from dissensus.warehouse.errors import SchemaVersionError, WarehouseWriteError
from dissensus.warehouse.schema import LATEST_VERSION
from dissensus.warehouse.server_info import server_info

TEMP_GLOB = "snapshot.*.tmp.duckdb*"
"""Copies being written (or left by a server killed mid-copy), with their WAL."""
READ_ALIAS = "dissensus_snapshot"
"""The name a reader's connection gives the attached snapshot."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot that a live API server keeps for the warehouse it holds."""

    path: Path
    mtime_ns: int
    size: int
    server_url: str

    @property
    def taken_at(self) -> datetime:
        """When the copy was written (local time: the server and its readers share a clock)."""
        return datetime.fromtimestamp(self.mtime_ns / 1e9)

    def when(self) -> str:
        """``HH:MM:SS``, with the date in front when it is not today's."""
        at = self.taken_at
        return f"{at:%H:%M:%S}" if at.date() == datetime.now().date() else f"{at:%Y-%m-%d %H:%M:%S}"

    def note(self) -> str:
        """One sentence for a reader of the snapshot: whose copy it is, and how fresh."""
        return (f"Reading the API server's snapshot from {self.when()} (the server at "
                f"{self.server_url} holds the warehouse; the snapshot refreshes after writes).")


def serving_snapshot(db_path: str | Path) -> Snapshot | None:
    """The snapshot to read instead of ``db_path``: only while a live API server holds the
    file (its note names the process), and only once the server has written one. ``None``
    otherwise: then the warehouse itself is the one to open (a snapshot left by a server that
    was killed is older than the file, and is never read)."""
    info = server_info(db_path)
    if info is None:
        return None
    path = snapshot_file(db_path)
    try:
        st = path.stat()
    except OSError:  # none yet: the server writes its first one just after it starts
        return None
    return Snapshot(path=path, mtime_ns=st.st_mtime_ns, size=st.st_size, server_url=info.url)


def connect_snapshot(snapshot: Snapshot) -> duckdb.DuckDBPyConnection | None:
    """``snapshot`` opened read-only; ``None`` when it is gone (the server stopped and removed
    it: the warehouse itself is free to open now).

    It is ATTACHed (read-only) to an in-memory database of its own rather than opened with
    ``duckdb.connect(path)``: that call reuses a database this process already has open on the
    same path, which after a refresh is the *previous* file (the path names a new one now), so
    a dashboard would serve old rows under the new snapshot's cache key.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {_quote_literal(str(snapshot.path))} AS {READ_ALIAS} (READ_ONLY)")
        con.execute(f"USE {READ_ALIAS}")  # unqualified table names resolve to the snapshot
        version = schema_version(con)
    except duckdb.Error as error:
        con.close()
        if not snapshot.path.exists():
            return None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WarehouseWriteError(
            f"Could not read the API server's snapshot {snapshot.path}: {first}",
            where=str(snapshot.path),
            expected="the copy of the warehouse the server at "
            f"{snapshot.server_url} refreshes after writes",
            fix="try again after the server's next write (it replaces the snapshot), or stop "
            "the server to read the warehouse itself") from error
    if version > LATEST_VERSION:
        con.close()
        raise SchemaVersionError(
            f"The API server's snapshot {snapshot.path} has schema version {version}; this "
            f"dissensus knows up to {LATEST_VERSION}.",
            where=str(snapshot.path), fix="upgrade dissensus before reading it")
    return con


def connect_reader(db_path: str | Path) -> tuple[duckdb.DuckDBPyConnection, Snapshot | None]:
    """``db_path`` opened read-only, or, while a live API server holds it, the server's
    snapshot (returned with the connection, so the caller can say what it reads)."""
    snapshot = serving_snapshot(db_path)
    if snapshot is not None:
        con = connect_snapshot(snapshot)
        if con is not None:
            return con, snapshot
    return connect(db_path, read_only=True), None


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unlink(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def write_snapshot(con: duckdb.DuckDBPyConnection, db_path: str | Path) -> float:
    """Copy the warehouse open on ``con`` (a cursor not inside a transaction) to its snapshot
    file; the seconds it took. On any failure the previous snapshot is left as it was and the
    temporary copy is removed; the error is raised."""
    started = monotonic()
    target = snapshot_file(db_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    temp = target.with_name(f"snapshot.{token}.tmp.duckdb")
    alias = f"dissensus_snapshot_{token}"
    source = str(con.execute("SELECT current_database()").fetchall()[0][0])
    # Attached databases are visible to every cursor of this instance while the copy runs. That
    # is harmless: queries name tables without a catalog (they resolve to the warehouse), the
    # checks that list information_schema only ask whether a table or column exists (a copy of
    # the warehouse's own tables never changes the answer), and the copy's tables are
    # uncommitted, so invisible to other cursors, until just before it is detached.
    con.execute(f"ATTACH {_quote_literal(str(temp))} AS {alias}")
    try:
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"COPY FROM DATABASE {_quote_name(source)} TO {alias}")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        finally:
            con.execute(f"DETACH {alias}")  # checkpoints the copy into its file
        if temp.with_name(temp.name + ".wal").exists():
            raise WarehouseWriteError(
                f"The snapshot copy {temp} kept a write-ahead log after it was closed.",
                where=str(temp), fix="check free disk space; the next refresh tries again")
        # no more readable than the warehouse itself: the copy holds the same data
        with contextlib.suppress(OSError):
            os.chmod(temp, stat.S_IMODE(Path(db_path).stat().st_mode))
        os.replace(temp, target)
    except BaseException:
        _unlink(temp)
        raise
    return monotonic() - started


def remove_snapshot(db_path: str | Path) -> None:
    """Remove the snapshot and any copy left half-written (a server killed mid-copy)."""
    target = snapshot_file(db_path)
    _unlink(target)
    if target.parent.is_dir():
        for leftover in target.parent.glob(TEMP_GLOB):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
