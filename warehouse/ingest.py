"""Lossless ingest: every row read is accepted, counted as a duplicate, or quarantined.

One file is one batch and one transaction: a failure anywhere (a crash, a full disk, ``--strict``
finding bad rows) rolls the whole batch back and leaves the warehouse as it was. Chunks stream from
the reader through Arrow into DuckDB; validation and storage are set-based SQL
(:mod:`dissensus.warehouse.staging`, :mod:`dissensus.warehouse.store`).

Identity rules: a row with a ``comparison_id`` is that judgment; a row without one is identified
by its content (reviewer, the two replies, choice, display order, strength, time, and the other
fields), so an identical row seen again is a duplicate. Give ids (or ``created_at``) to keep
deliberate repeats apart. The same ``comparison_id`` with different content is a conflict and is
quarantined with the place where the first version was seen, unless the ingest is told that
its rows are revisions (``revise``, the Label Studio webhook's updates): the stored row is then
replaced and kept in ``comparison_withdrawals`` (:mod:`dissensus.warehouse.withdrawals`). A
comparison withdrawn as deleted is never stored again under its id.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

import duckdb
import pyarrow as pa

from dissensus.warehouse import readers, staging, store, withdrawals
from dissensus.warehouse.contract import CONTRACT_COLUMNS, is_attribute_key
from dissensus.warehouse.errors import (
    DissensusError,
    InputFileError,
    StrictModeError,
    WarehouseWriteError,
)
from dissensus.warehouse.json_checks import json_error_detail, mark_duplicate_keys
from dissensus.warehouse.readers import StagedChunk
from dissensus.warehouse.salting import check_pseudonymisation, salt_literal
from dissensus.warehouse.sources import (
    CANONICAL_FORMATS,
    check_input_path,
    chunks_for,
    resolve_format,
)
from dissensus.warehouse.stages import Staged, staged_chunks, threads_for
from dissensus.warehouse.vote_index import index_is_stale, refresh_vote_index

__all__ = ["CANONICAL_FORMATS", "BatchReport", "ProgressCallback", "ingest_chunks", "ingest_file",
           "resolve_format"]

ProgressCallback = Callable[[int], None]
#: Errors DuckDB raises when it cannot write (a full disk at commit invalidates the database).
_WRITE_ERRORS = (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.FatalException,
                 duckdb.TransactionException)
#: DuckDB's memory budget during ingest; it spills to disk beyond it (env DISSENSUS_INGEST_MEMORY).
INGEST_MEMORY_LIMIT = os.environ.get("DISSENSUS_INGEST_MEMORY", "1GB")
#: How DuckDB shows a memory limit once set ('1GB' reads back as '953.6 MiB').
_SHOWN_LIMIT: dict[str, str] = {}


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
    revised: int = 0
    """Of ``accepted``: new versions that replaced a stored row (``revise``)."""
    seconds: float = 0.0
    index_seconds: float = 0.0
    skipped: str | None = None
    unknown_columns: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def seen_before(self, batch_id: int) -> None:
        """Report the whole file as a repeat of batch ``batch_id`` (its content was ingested
        then): every row read is a duplicate, nothing is added."""
        self.skipped = f"the same file content was ingested before as batch {batch_id}"
        self.batch_id = batch_id
        self.accepted = self.quarantined = 0
        self.duplicates = self.rows_read
        self.reasons.clear()


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def _process_staged(
    con: duckdb.DuckDBPyConnection,
    staged: Staged,
    batch_id: int,
    file_path: str,
    salt: str | None,
    report: BatchReport,
    revise: str | None = None,
) -> None:
    """Validate and store the rows staged in the temp table ``chunk``."""
    with threads_for(con, staged.rows):
        _validate_and_store(con, staged, batch_id, file_path, salt, report, revise)


def _validate_and_store(
    con: duckdb.DuckDBPyConnection,
    staged: Staged,
    batch_id: int,
    file_path: str,
    salt: str | None,
    report: BatchReport,
    revise: str | None,
) -> None:
    if staged.kind == "json_lines":
        con.execute(f"CREATE OR REPLACE TEMP TABLE key_templates AS "
                    f"{staging.key_templates_sql()}")
        keys = [row[0] for row in con.execute(
            "SELECT DISTINCT unnest(keys) FROM key_templates").fetchall()]
        foreign = [k for k in keys if k not in CONTRACT_COLUMNS]
        extra = sorted(k for k in foreign if is_attribute_key(k))
        unknown = [k for k in foreign if not is_attribute_key(k)]
        report.unknown_columns = sorted(set(report.unknown_columns) | set(unknown))
        con.execute(f"CREATE OR REPLACE TEMP TABLE fields AS {staging.extract_sql(extra)}")
        mark_duplicate_keys(con)
    else:
        report.unknown_columns = sorted(set(report.unknown_columns) | set(staged.unknown_columns))
        con.execute("CREATE OR REPLACE TEMP TABLE fields AS SELECT * EXCLUDE (_raw) FROM chunk")
    uses_ids = con.execute(
        "SELECT count(*) FROM fields WHERE _error IS NULL AND (trim(prompt_id) <> '' "
        "OR trim(response_a_id) <> '' OR trim(response_b_id) <> '')"
    ).fetchall()[0][0] > 0
    if uses_ids:
        _build_chunk_aliases(con)
    checked = staging.checked_sql(salt_literal(salt), uses_ids)
    con.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {checked}")
    bad_json = con.execute(
        "SELECT c._line, r._raw FROM checked c JOIN chunk r ON r._line = c._line "
        "WHERE c._reason = 'not valid JSON'"
    ).fetchall()
    if bad_json:
        details = pa.table({
            "line": pa.array([line for line, _ in bad_json], pa.int64()),
            "detail": pa.array([json_error_detail(raw) for _, raw in bad_json], pa.string()),
        })
        con.register("json_details", details)
        con.execute("""
            UPDATE checked SET _reason = d.detail FROM json_details d WHERE checked._line = d.line
        """)
        con.unregister("json_details")
    withdrawals.refuse_withdrawn(con)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE final AS SELECT *, {bool(salt)} AS _pseudonymised "
        f"FROM ({staging.final_sql()})"
    )
    moment = datetime.now(UTC).replace(tzinfo=None)
    now = moment.isoformat()
    if revise is not None:
        report.revised += withdrawals.revise_stored(con, batch_id, revise, moment)
    store.store_new_rows(con, batch_id, staged.rows)
    if _count(con, "SELECT count(*) FROM checked WHERE _reason IS NOT NULL") or _count(
        con, "SELECT count(*) FROM final WHERE _status = 'conflict'"
    ):
        store.store_quarantine(con, batch_id, file_path, now, salted=bool(salt))
    tally_chunk(con, report, file_path, "comparison_id")


def tally_chunk(con: duckdb.DuckDBPyConnection, report: BatchReport, file_path: str,
                id_column: str) -> None:
    """Add one staged chunk's counts and quarantine reasons (from the ``fields``, ``checked``
    and ``final`` temp tables) to ``report``; rows that balance nowhere stop the batch, which is
    rolled back. ``id_column`` names the id whose conflicting content quarantines a row."""
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
    for reason, count in con.execute(f"""
        SELECT regexp_replace(_reason, '''[^'']*''', '''…''', 'g'), count(*) FROM checked
        WHERE _reason IS NOT NULL GROUP BY 1
        UNION ALL SELECT '{id_column}: conflicting content', count(*) FROM final
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
    revise: str | None = None,
    skip_seen_file: bool = True,
) -> BatchReport:
    """Ingest one file as one batch (one transaction). See the module docstring for the rules.

    ``refresh_index``: rebuild the vote index (:mod:`dissensus.warehouse.vote_index`) in the batch's
    transaction. Turn it off when ingesting many files in a row and call
    :func:`dissensus.warehouse.vote_index.refresh_vote_index` once after the last.
    ``revise``: the rows are revisions; one whose ``comparison_id`` is stored with other content
    replaces the stored row, which is kept as withdrawn with this text as its source.
    ``skip_seen_file``: a file whose bytes were ingested before is reported as all duplicates
    without judging its rows. Webhook deliveries turn it off: the same event bytes can follow a
    different one ("changed back"), and each delivery's answer must say what became of its rows.
    """
    path = Path(path)
    check_input_path(path)
    fmt, reason = resolve_format(path, fmt)
    chunks, finished = chunks_for(path, fmt, chunk_rows)
    return ingest_chunks(con, path, chunks, finished, fmt=fmt, format_reason=reason,
                         strict=strict, salt=salt, progress=progress,
                         refresh_index=refresh_index, revise=revise,
                         skip_seen_file=skip_seen_file)


def ingest_chunks(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    chunks: Iterable[StagedChunk],
    finished: Callable[[], tuple[str, int]],
    *,
    fmt: str = "jsonl",
    format_reason: str = "read before the batch",
    strict: bool = False,
    salt: str | None = None,
    progress: ProgressCallback | None = None,
    refresh_index: bool = True,
    revise: str | None = None,
    skip_seen_file: bool = True,
) -> BatchReport:
    """Ingest rows already read into chunks as one batch, exactly as :func:`ingest_file` ingests
    a file's (which reads its file and calls this). ``path`` names where the rows came from (it
    need not exist: the HTTP API names its posted bodies so); ``finished()`` gives the
    (sha256, bytes) of the source once the chunks are consumed. The API reads each posted body
    into its chunk in the request's own thread, so the one writer only validates and stores."""
    report = BatchReport(file=str(path), format=fmt, format_reason=format_reason)
    started = perf_counter()
    con.execute("SET TimeZone = 'UTC'")
    _bound_memory(con)
    con.execute("SET preserve_insertion_order = false")
    con.execute("BEGIN TRANSACTION")
    try:
        check_pseudonymisation(con, salt)
        batch_id = int(con.execute(
            "SELECT coalesce(max(batch_id), 0) + 1 FROM ingest_batches").fetchall()[0][0])  # type: ignore[index]
        report.batch_id = batch_id
        con.execute(
            "INSERT INTO ingest_batches (batch_id, file_path, file_name, file_sha256, file_bytes, "
            "format, started_at, pseudonymised) VALUES (?, ?, ?, '', 0, ?, ?, ?)",
            [batch_id, str(path.resolve()), path.name, fmt,
             datetime.now(UTC).replace(tzinfo=None), bool(salt)],
        )
        for staged in staged_chunks(con, iter(chunks)):
            _process_staged(con, staged, batch_id, str(path), salt, report, revise)
            if progress:
                progress(staged.rows)
        sha256, size = finished()
        earlier = con.execute(
            "SELECT batch_id FROM ingest_batches WHERE file_sha256 = ? AND batch_id <> ?",
            [sha256, batch_id],
        ).fetchall()
        if earlier and skip_seen_file:
            con.execute("ROLLBACK")
            report.seen_before(int(earlier[0][0]))
            if refresh_index and index_is_stale(con):  # a re-ingest after a crash repairs it
                report.index_seconds = refresh_vote_index(con)
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
        # Also when nothing was added: a crash after an earlier batch's commit can have left the
        # index stale, and a writer that finds it so repairs it.
        if refresh_index and (report.accepted or index_is_stale(con)):
            con.execute("SET preserve_insertion_order = true")
            report.index_seconds = refresh_vote_index(con, in_transaction=True)
        con.execute("COMMIT")
    except BaseException as error:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        if isinstance(error, _WRITE_ERRORS):
            raise WarehouseWriteError(
                f"Writing the warehouse failed: {_first_line(error)}. Nothing from this file "
                "was stored: the batch was rolled back (the warehouse keeps what it held "
                "before).",
                where=str(path),
                expected="free disk space and memory, and a writable database file",
                fix="free disk space or memory (or check the file's permissions), then run "
                "the same ingest again",
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


def _bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Bounded memory: DuckDB spills to disk beyond :data:`INGEST_MEMORY_LIMIT` instead of
    growing with the file. Set only when the connection has another limit: setting it costs
    the buffer manager a pass over its pool (6-30 ms on a 500,000-row warehouse), which a
    writer ingesting small posted batches would pay on every one."""
    def shown() -> str:
        return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])

    if _SHOWN_LIMIT.get(INGEST_MEMORY_LIMIT) == shown():
        return
    con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
    _SHOWN_LIMIT[INGEST_MEMORY_LIMIT] = shown()


def _first_line(error: BaseException) -> str:
    """DuckDB's message without its trailing advice lines."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def csv_unknown_columns(path: Path) -> list[str]:
    """Columns of a CSV that the contract does not know (reported, not stored)."""
    return readers.unknown_columns(readers.csv_header(path))
