"""Lossless ingest: every row read is accepted, counted as a duplicate, or quarantined.

One file is one batch and one transaction: a failure anywhere (a crash, a full disk, ``--strict``
finding bad rows) rolls the whole batch back and leaves the warehouse as it was. Chunks stream from
the reader through Arrow into DuckDB; validation and storage are set-based SQL
(:mod:`dissensus.warehouse.staging`, :mod:`dissensus.warehouse.store`).

Identity rules: a row with a ``comparison_id`` is that judgment; a row without one is identified
by its content (reviewer, the two replies, choice, display order, strength, time, and the other
fields), so an identical row seen again is a duplicate. Give ids (or ``created_at``) to keep
deliberate repeats apart. The same ``comparison_id`` with different content is a conflict and is
quarantined with the place where the first version was seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

import duckdb
import pyarrow as pa

from dissensus.warehouse import readers, staging, store
from dissensus.warehouse.contract import CONTRACT_COLUMNS
from dissensus.warehouse.errors import (
    DissensusError,
    InputFileError,
    PseudonymisationError,
    StrictModeError,
    WarehouseWriteError,
)
from dissensus.warehouse.readers import StagedChunk
from dissensus.warehouse.vote_index import refresh_vote_index

ProgressCallback = Callable[[int], None]
CANONICAL_FORMATS = ("jsonl", "csv", "parquet")
#: DuckDB's memory budget during ingest; it spills to disk beyond it (env DISSENSUS_INGEST_MEMORY).
INGEST_MEMORY_LIMIT = os.environ.get("DISSENSUS_INGEST_MEMORY", "1GB")


@dataclass
class BatchReport:
    """What one file's ingest did. ``accepted + quarantined + duplicates == rows_read``."""

    file: str
    format: str
    format_reason: str
    batch_id: int | None = None
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    index_seconds: float = 0.0
    skipped: str | None = None
    unknown_columns: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)


def _salt_fingerprint(salt: str) -> str:
    return hashlib.sha256(f"dissensus-salt-check:{salt}".encode()).hexdigest()[:16]


def _check_pseudonymisation(con: duckdb.DuckDBPyConnection, salt: str | None) -> None:
    rows = con.execute("SELECT value FROM settings WHERE key = 'pseudonymisation'").fetchall()
    stored = rows[0][0] if rows else None
    has_rows = con.execute("SELECT count(*) FROM reviewers").fetchall()[0][0] > 0  # type: ignore[index]
    wanted = _salt_fingerprint(salt) if salt else "off"
    if stored is None:
        if has_rows and wanted != "off":
            raise PseudonymisationError(
                "This warehouse already holds raw reviewer ids; pseudonymising new ones would "
                "split the same reviewer in two.",
                expected="the same pseudonymisation setting for every batch of a warehouse",
                fix="ingest without --pseudonymise-salt, or start a new warehouse (--db)",
            )
        con.execute("INSERT OR REPLACE INTO settings VALUES ('pseudonymisation', ?)", [wanted])
        return
    if stored != wanted:
        raise PseudonymisationError(
            "The reviewer-id pseudonymisation does not match this warehouse: it was built "
            + ("with raw ids" if stored == "off" else "with a salt")
            + (" and this ingest has no salt" if wanted == "off" else " and this ingest uses "
               + ("a salt" if stored == "off" else "a different salt")),
            expected="the same salt (or none) for every batch of a warehouse",
            fix="pass the salt used before (--pseudonymise-salt or DISSENSUS_SALT), "
            "or ingest into a new warehouse",
        )


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def _json_error_detail(raw: str) -> str:
    try:
        json.loads(raw)
    except json.JSONDecodeError as error:
        return f"not valid JSON: {error.msg} at column {error.colno}; fix or remove this line"
    return "not valid JSON; fix or remove this line"


def _process_chunk(
    con: duckdb.DuckDBPyConnection,
    chunk: StagedChunk,
    batch_id: int,
    file_path: str,
    salt: str | None,
    report: BatchReport,
) -> None:
    """Validate and store one chunk; the Arrow table stays registered as ``chunk`` meanwhile."""
    con.register("chunk", chunk.table)
    try:
        _process_registered(con, chunk, batch_id, file_path, salt, report)
    finally:
        con.unregister("chunk")


def _process_registered(
    con: duckdb.DuckDBPyConnection,
    chunk: StagedChunk,
    batch_id: int,
    file_path: str,
    salt: str | None,
    report: BatchReport,
) -> None:
    if chunk.kind == "json_lines":
        keys = [row[0] for row in con.execute(staging.keys_sql()).fetchall()]
        foreign = [k for k in keys if k not in CONTRACT_COLUMNS]
        extra = sorted(k for k in foreign if k.startswith("reviewer_"))
        unknown = [k for k in foreign if not k.startswith("reviewer_")]
        report.unknown_columns = sorted(set(report.unknown_columns) | set(unknown))
        con.execute(f"CREATE OR REPLACE TEMP TABLE fields AS {staging.extract_sql(extra)}")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE fields AS SELECT * EXCLUDE (_raw) FROM chunk")
    uses_ids = con.execute(
        "SELECT count(*) FROM fields WHERE _error IS NULL AND (trim(prompt_id) <> '' "
        "OR trim(response_a_id) <> '' OR trim(response_b_id) <> '')"
    ).fetchall()[0][0] > 0
    if uses_ids:
        _build_chunk_aliases(con)
    salt_sql = "'" + salt.replace("'", "''") + "'" if salt else None
    checked = staging.checked_sql(salt_sql, uses_ids)
    con.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {checked}")
    bad_json = con.execute(
        "SELECT c._line, r._raw FROM checked c JOIN chunk r ON r._line = c._line "
        "WHERE c._reason = 'not valid JSON'"
    ).fetchall()
    if bad_json:
        details = pa.table({
            "line": pa.array([line for line, _ in bad_json], pa.int64()),
            "detail": pa.array([_json_error_detail(raw) for _, raw in bad_json], pa.string()),
        })
        con.register("json_details", details)
        con.execute("""
            UPDATE checked SET _reason = d.detail FROM json_details d WHERE checked._line = d.line
        """)
        con.unregister("json_details")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE final AS SELECT *, {bool(salt)} AS _pseudonymised "
        f"FROM ({staging.final_sql()})"
    )
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    store.store_new_rows(con, batch_id)
    if _count(con, "SELECT count(*) FROM checked WHERE _reason IS NOT NULL") or _count(
        con, "SELECT count(*) FROM final WHERE _status = 'conflict'"
    ):
        store.store_quarantine(con, batch_id, file_path, now)
    counts = con.execute("""
        SELECT (SELECT count(*) FROM fields),
               (SELECT count(*) FROM final WHERE _status = 'new'),
               (SELECT count(*) FROM final WHERE _status = 'duplicate'),
               (SELECT count(*) FROM checked WHERE _reason IS NOT NULL)
                 + (SELECT count(*) FROM final WHERE _status = 'conflict')
    """).fetchall()[0]
    read, accepted, duplicates, quarantined = (int(v) for v in counts)
    if accepted + duplicates + quarantined != read:
        raise DissensusError(
            f"Internal accounting error: {read} rows read but {accepted} accepted + "
            f"{duplicates} duplicates + {quarantined} quarantined.",
            where=file_path,
            fix="the batch was rolled back; please report this with the file",
        )
    for reason, count in con.execute("""
        SELECT regexp_replace(_reason, '''[^'']*''', '''…''', 'g'), count(*) FROM checked
        WHERE _reason IS NOT NULL GROUP BY 1
        UNION ALL SELECT 'comparison_id: conflicting content', count(*) FROM final
        WHERE _status = 'conflict' GROUP BY 1
    """).fetchall():
        report.reasons[reason] += int(count)
    report.rows_read += read
    report.accepted += accepted
    report.duplicates += duplicates
    report.quarantined += quarantined


def _build_chunk_aliases(con: duckdb.DuckDBPyConnection) -> None:
    """Aliases stored before plus those this chunk defines (rows giving both an id and a text)."""
    text_id = staging.sql_text_id
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE chunk_aliases AS
        SELECT kind, external_id, text_id FROM text_aliases
        UNION ALL
        SELECT * FROM (
            SELECT DISTINCT ON (kind, external_id) kind, external_id, text_id FROM (
                SELECT 'prompt' AS kind, trim(prompt_id) AS external_id,
                       {text_id('prompt')} AS text_id, _line
                FROM fields WHERE _error IS NULL AND trim(prompt_id) <> '' AND trim(prompt) <> ''
                UNION ALL
                SELECT 'response', trim(response_a_id), {text_id('response_a')}, _line
                FROM fields WHERE _error IS NULL AND trim(response_a_id) <> ''
                     AND trim(response_a) <> ''
                UNION ALL
                SELECT 'response', trim(response_b_id), {text_id('response_b')}, _line
                FROM fields WHERE _error IS NULL AND trim(response_b_id) <> ''
                     AND trim(response_b) <> ''
            ) ORDER BY kind, external_id, _line
        ) n WHERE NOT EXISTS (
            SELECT 1 FROM text_aliases a WHERE a.kind = n.kind AND a.external_id = n.external_id
        )
    """)


def _hash_path(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                digest.update(block)
                total += len(block)
    return digest.hexdigest(), total


def _chunks_for(
    path: Path, fmt: str, chunk_rows: int
) -> tuple[Iterator[StagedChunk], Callable[[], tuple[str, int]]]:
    """The chunk stream of a file and a function giving (sha256, bytes) once it is consumed."""
    if fmt in ("jsonl", "csv"):
        hashing = readers.HashingReader(readers.open_maybe_gzip(path))
        if fmt == "jsonl":
            stream: Iterator[StagedChunk] = readers.read_jsonl(hashing)  # type: ignore[arg-type]
        else:
            stream = readers.read_csv(hashing, chunk_rows)  # type: ignore[arg-type]

        def finished() -> tuple[str, int]:
            while hashing.read(8 * 1024 * 1024):
                pass
            return hashing.sha256.hexdigest(), hashing.bytes_read

        return stream, finished
    if not path.exists():
        readers.open_maybe_gzip(path)  # raises the missing-file error
    digest = _hash_path(path)
    if fmt == "parquet":
        return readers.read_parquet(path, chunk_rows), lambda: digest
    from dissensus.warehouse.adapters import ADAPTERS

    adapter = ADAPTERS[fmt]
    return (
        (StagedChunk(table, "columns") for table in adapter.read(path, chunk_rows)),
        lambda: digest,
    )


def _prefetched(chunks: Iterator[StagedChunk]) -> Iterator[StagedChunk]:
    """Read the next chunk in a thread while DuckDB works on the current one.

    Both the reader (numpy, Arrow, file I/O) and DuckDB release the GIL, so on two cores this
    hides most of the reading time. Errors in the reader are re-raised here, in order.
    """
    pending: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(message: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                pending.put(message, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", chunk)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(("error", error))

    thread = threading.Thread(target=produce, name="dissensus-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = pending.get()
            if kind == "done":
                break
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def resolve_format(path: Path, fmt: str) -> tuple[str, str]:
    """(format, why): the format asked for, or the detected one with the reason."""
    if fmt != "auto":
        return fmt, "as requested with --format"
    from dissensus.warehouse.adapters.detect import detect_format

    return detect_format(path)


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    *,
    fmt: str = "auto",
    strict: bool = False,
    salt: str | None = None,
    chunk_rows: int = 100_000,
    progress: ProgressCallback | None = None,
    refresh_index: bool = True,
) -> BatchReport:
    """Ingest one file as one batch (one transaction). See the module docstring for the rules.

    ``refresh_index``: rebuild the vote index (:mod:`dissensus.warehouse.vote_index`) in the batch's
    transaction. Turn it off when ingesting many files in a row and call
    :func:`dissensus.warehouse.vote_index.refresh_vote_index` once after the last.
    """
    path = Path(path)
    if not path.exists():
        readers.open_maybe_gzip(path)
    fmt, reason = resolve_format(path, fmt)
    report = BatchReport(file=str(path), format=fmt, format_reason=reason)
    started = perf_counter()
    chunks, finished = _chunks_for(path, fmt, chunk_rows)
    con.execute("SET TimeZone = 'UTC'")
    # Bounded memory: DuckDB spills to disk beyond this instead of growing with the file.
    con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("BEGIN TRANSACTION")
    try:
        _check_pseudonymisation(con, salt)
        batch_id = int(con.execute(
            "SELECT coalesce(max(batch_id), 0) + 1 FROM ingest_batches").fetchall()[0][0])  # type: ignore[index]
        report.batch_id = batch_id
        con.execute(
            "INSERT INTO ingest_batches (batch_id, file_path, file_name, file_sha256, file_bytes, "
            "format, started_at, pseudonymised) VALUES (?, ?, ?, '', 0, ?, ?, ?)",
            [batch_id, str(path.resolve()), path.name, fmt,
             datetime.now(UTC).replace(tzinfo=None), bool(salt)],
        )
        for chunk in _prefetched(chunks):
            _process_chunk(con, chunk, batch_id, str(path), salt, report)
            if progress:
                progress(chunk.table.num_rows)
        sha256, size = finished()
        earlier = con.execute(
            "SELECT batch_id FROM ingest_batches WHERE file_sha256 = ? AND batch_id <> ?",
            [sha256, batch_id],
        ).fetchall()
        if earlier:
            con.execute("ROLLBACK")
            report.skipped = f"the same file content was ingested before as batch {earlier[0][0]}"
            report.batch_id = int(earlier[0][0])
            report.accepted = report.quarantined = 0
            report.duplicates = report.rows_read
            report.reasons.clear()
            report.seconds = perf_counter() - started
            return report
        if strict and report.quarantined:
            raise StrictModeError(
                f"--strict: {report.quarantined} of {report.rows_read} rows would be quarantined; "
                "nothing from this file was stored.",
                where=str(path),
                expected="every row valid",
                fix="run without --strict to keep the valid rows and inspect `dissensus "
                "quarantine`; reasons: " + "; ".join(
                    f"{r} ({n})" for r, n in report.reasons.most_common(3)),
            )
        report.seconds = perf_counter() - started
        notes = (
            "columns not in the data contract, not stored: " + ", ".join(report.unknown_columns)
            if report.unknown_columns else None
        )
        con.execute(
            """UPDATE ingest_batches SET file_sha256 = ?, file_bytes = ?, finished_at = ?,
               seconds = ?, rows_read = ?, rows_accepted = ?, rows_quarantined = ?,
               rows_duplicate = ?, notes = ? WHERE batch_id = ?""",
            [sha256, size, datetime.now(UTC).replace(tzinfo=None), report.seconds,
             report.rows_read, report.accepted, report.quarantined, report.duplicates, notes,
             batch_id],
        )
        if refresh_index and report.accepted:
            con.execute("SET preserve_insertion_order = true")
            report.index_seconds = refresh_vote_index(con, in_transaction=True)
        con.execute("COMMIT")
    except BaseException as error:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        if isinstance(error, duckdb.IOException | duckdb.OutOfMemoryException):
            raise WarehouseWriteError(
                f"Writing the warehouse failed: {error}. The batch was rolled back.",
                where=str(path),
                fix="free disk space or memory, or check that the database file is writable",
            ) from error
        if isinstance(error, UnicodeDecodeError):
            raise InputFileError(
                f"{path} is not valid UTF-8 text ({error.reason} at byte {error.start}).",
                where=str(path),
                expected="UTF-8 encoded text",
                fix="re-save the file as UTF-8; nothing from it was stored",
            ) from error
        raise
    return report


def csv_unknown_columns(path: Path) -> list[str]:
    """Columns of a CSV that the contract does not know (reported, not stored)."""
    return readers.unknown_columns(readers.csv_header(path))
