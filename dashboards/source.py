"""Which file the dashboards read, the cache key that names it, and how it is opened.

The database path comes from ``--db PATH`` after ``--`` on the ``streamlit run`` command line
(what ``dissensus serve`` passes), else ``$DISSENSUS_DB``, else ``./dissensus.duckdb``.

While `dissensus api` serves the warehouse it holds the file, and DuckDB lets no other process
open it, not even read-only. The queries then read the server's snapshot
(:mod:`dissensus.warehouse.snapshot`), and the key's version names the snapshot's modification
time: each refresh of it is a new cache key, so a stale snapshot is never served from the cache
once a newer one exists. Every page says so on top (``views/_common.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from dissensus.warehouse.artefacts import snapshot_file, warehouse_files
from dissensus.warehouse.db import DB_ENV_VAR, connect, default_db_path
from dissensus.warehouse.server_info import server_info
from dissensus.warehouse.snapshot import Snapshot, connect_snapshot, serving_snapshot

Key = tuple[str, str]
"""(warehouse path, version): the cache key of every query."""
SNAPSHOT_VERSION = "snapshot:"
"""How a key's version starts when the queries read the API server's snapshot."""


def db_path() -> Path:
    """``--db PATH`` from the script arguments, else ``$DISSENSUS_DB``, else the default."""
    argv = sys.argv[1:]
    if "--db" in argv and argv.index("--db") + 1 < len(argv):
        return Path(argv[argv.index("--db") + 1])
    if os.environ.get(DB_ENV_VAR):
        return Path(os.environ[DB_ENV_VAR])
    return default_db_path()


def key(path: Path | None = None) -> Key:
    """The cache key of the warehouse: its path and a version that changes with its content.
    While an API server holds the file, the version names the server's snapshot (time, size,
    server URL) instead: the file itself cannot be opened then."""
    p = Path(path) if path is not None else db_path()
    snapshot = serving_snapshot(p)
    if snapshot is not None:
        return str(p), (f"{SNAPSHOT_VERSION}{snapshot.mtime_ns}:{snapshot.size}:"
                        f"{snapshot.server_url}")
    parts = []
    for f in warehouse_files(p):
        if f.exists():
            s = f.stat()
            parts.append(f"{s.st_mtime_ns}:{s.st_size}")
    return str(p), "|".join(parts) or "missing"


def snapshot_of(k: Key) -> Snapshot | None:
    """The API server's snapshot that ``k`` reads; ``None`` when it reads the warehouse."""
    if not k[1].startswith(SNAPSHOT_VERSION):
        return None
    mtime_ns, size, url = k[1].removeprefix(SNAPSHOT_VERSION).split(":", 2)
    return Snapshot(path=snapshot_file(k[0]), mtime_ns=int(mtime_ns), size=int(size),
                    server_url=url)


def held_by_server(k: Key) -> str | None:
    """The URL of the API server holding the warehouse of ``k``, if one does."""
    info = server_info(k[0])
    return None if info is None else info.url


@contextmanager
def open_read(k: Key) -> Iterator[duckdb.DuckDBPyConnection]:
    """What ``k`` reads, opened read-only for one query and closed after it."""
    snapshot = snapshot_of(k)
    con = connect_snapshot(snapshot) if snapshot is not None else None
    if con is None:  # no server holds the file, or it stopped just now (and removed its snapshot)
        con = connect(k[0], read_only=True)
    try:
        yield con
    finally:
        con.close()
