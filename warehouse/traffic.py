"""Logged assistant turns (``traffic``): lossless, idempotent ingest with quarantine.

One row is one served reply: required ``prompt``, ``response`` and ``created_at`` (ISO-8601);
optional ``traffic_id``, ``category``, ``model`` (version), ``response_tags`` (list or
comma-separated), ``user_feedback`` (e.g. ``up`` / ``down``), ``escalated`` (true/false) and
``conversation_id``. JSONL, CSV/TSV or Parquet, each optionally gzip-compressed.

The promises are those of comparison ingest (:mod:`dissensus.warehouse.ingest`), and so is the
machinery: the same readers, the same JSON extraction in one vectorised pass, the same
``ingest_batches`` and ``quarantine`` tables (``dissensus quarantine --batch N`` shows rejected
turns with file, line, field and reason). One file is one transaction; the same file content
twice adds nothing; a row without ``traffic_id`` is identified by its content, so an identical
row seen again is a duplicate; the same ``traffic_id`` with different content is a conflict and
goes to quarantine. Texts are stored once, by content hash, in ``texts``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Final

import duckdb

from dissensus.warehouse import readers, staging
from dissensus.warehouse.errors import InputFileError, StrictModeError
from dissensus.warehouse.ids import sql_text_id
from dissensus.warehouse.ingest import BatchReport, tally_chunk
from dissensus.warehouse.json_checks import json_error_detail
from dissensus.warehouse.readers import StagedChunk
from dissensus.warehouse.stages import Staged, staged_chunks, threads_for

REQUIRED: Final = ("prompt", "response", "created_at")
OPTIONAL: Final = ("traffic_id", "category", "model", "response_tags", "user_feedback",
                   "escalated", "conversation_id")
TRAFFIC_COLUMNS: Final = REQUIRED + OPTIONAL
LIST_FIELDS: Final = ("response_tags",)
FORMAT_PREFIX: Final = "traffic-"
_TRUE: Final = ("true", "1", "yes", "y", "t")
_FALSE: Final = ("false", "0", "no", "n", "f")


def format_of(path: Path) -> str:
    """jsonl, csv or parquet from the name (``.gz`` looked through); JSON lines by default."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".tsv"):
        return "csv"
    if last in (".parquet", ".pq"):
        return "parquet"
    return "jsonl"


def _chunks(
    path: Path, fmt: str, chunk_rows: int
) -> tuple[Iterator[StagedChunk], Callable[[], tuple[str, int]]]:
    """The staged chunks of a traffic file and a function giving (sha256, bytes) afterwards."""
    if fmt == "parquet":
        digest = readers.HashingReader(readers.open_maybe_gzip(path))
        while digest.read(8 * 1024 * 1024):
            pass
        done = (digest.sha256.hexdigest(), digest.bytes_read)
        return readers.read_parquet(path, chunk_rows, TRAFFIC_COLUMNS), lambda: done
    hashing = readers.HashingReader(readers.open_maybe_gzip(path))
    stream: Iterator[StagedChunk] = (
        readers.read_csv(hashing, chunk_rows, str(path), columns=TRAFFIC_COLUMNS)  # type: ignore[arg-type]
        if fmt == "csv" else readers.read_jsonl(hashing))  # type: ignore[arg-type]

    def finished() -> tuple[str, int]:
        while hashing.read(8 * 1024 * 1024):
            pass
        return hashing.sha256.hexdigest(), hashing.bytes_read

    return stream, finished


def _checked_sql() -> str:
    """Normalise and validate ``fields``: each row gets ``_reason`` (null when valid)."""
    def has_text(col: str) -> str:
        return f"({col} IS NOT NULL AND trim({col}) <> '')"

    def given(col: str) -> str:
        return f"({col} IS NOT NULL AND trim({col}) <> '')"

    true_list = ", ".join(f"'{v}'" for v in _TRUE)
    false_list = ", ".join(f"'{v}'" for v in _FALSE)
    return f"""
    WITH normal AS (
        SELECT *,
            CASE WHEN {has_text('prompt')} THEN {sql_text_id('prompt')} END AS _prompt_tid,
            CASE WHEN {has_text('response')} THEN {sql_text_id('response')} END AS _response_tid,
            (TRY_CAST(created_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC') AS _created_at,
            CASE WHEN lower(trim(escalated)) IN ({true_list}) THEN true
                 WHEN lower(trim(escalated)) IN ({false_list}) THEN false END AS _escalated,
            CASE WHEN {given('response_tags')} THEN list_filter(list_transform(
                string_split_regex(response_tags, '[,;|]'), lambda t: trim(t)), lambda t: t <> '')
            END AS _tags,
            nullif(trim(traffic_id), '') AS _given_id
        FROM fields
    )
    SELECT *,
        CASE
            WHEN _error IS NOT NULL THEN _error
            WHEN prompt IS NULL THEN 'prompt: missing; give the text the user sent'
            WHEN _prompt_tid IS NULL THEN 'prompt: the text is empty'
            WHEN response IS NULL THEN 'response: missing; give the reply the assistant served'
            WHEN _response_tid IS NULL THEN 'response: the text is empty'
            WHEN NOT {given('created_at')} THEN
                'created_at: missing; every turn needs the time it was served (ISO-8601, e.g. '
                || '2026-03-01T14:05:00Z): drift is measured over time'
            WHEN _created_at IS NULL THEN
                'created_at: expected an ISO-8601 timestamp such as 2026-03-01T14:05:00Z, got '''
                || left(created_at, 40) || ''''
            WHEN {given('escalated')} AND _escalated IS NULL THEN
                'escalated: expected true or false (also 1/0, yes/no), got '''
                || left(escalated, 40) || ''''
        END AS _reason
    FROM normal
    """


def _final_sql() -> str:
    """Valid rows with ``_status`` new / duplicate / conflict (as :func:`staging.final_sql`)."""
    row_hash = """md5(concat_ws(chr(31), _prompt_tid, _response_tid, CAST(_created_at AS VARCHAR),
        coalesce(category, ''), coalesce(model, ''), coalesce(array_to_string(_tags, ','), ''),
        coalesce(user_feedback, ''), coalesce(CAST(_escalated AS VARCHAR), ''),
        coalesce(conversation_id, '')))"""
    return f"""
    WITH hashed AS (
        SELECT *, {row_hash} AS _row_hash FROM checked WHERE _reason IS NULL
    ), identified AS (
        SELECT *, coalesce(_given_id, 't-' || left(_row_hash, 24)) AS _traffic_id FROM hashed
    ), repeated AS (
        SELECT _traffic_id AS id, arg_min(_row_hash, _line) AS first_hash,
               min(_line) AS first_line
        FROM identified GROUP BY 1 HAVING count(*) > 1
    )
    SELECT i.*,
        {staging.status_sql("t", "traffic_id")},
        {staging.conflict_sql("t", "traffic_id", "turn")}
    FROM identified i
    LEFT JOIN repeated r ON r.id = i._traffic_id
    LEFT JOIN (SELECT DISTINCT ON (traffic_id) traffic_id, row_hash, batch_id, source_line
               FROM traffic) t ON t.traffic_id = i._traffic_id
    """


def _store(con: duckdb.DuckDBPyConnection, batch_id: int, file_path: str) -> None:
    """New texts, new turns and the quarantined rows of the chunk in ``fields``/``final``."""
    con.execute(f"""
        INSERT INTO texts
        SELECT DISTINCT ON (tid) tid, body, length(body), {batch_id} FROM (
            SELECT _prompt_tid AS tid, f.prompt AS body, f._line FROM final n
            JOIN fields f USING (_line) WHERE _status = 'new'
            UNION ALL
            SELECT _response_tid, f.response, f._line FROM final n
            JOIN fields f USING (_line) WHERE _status = 'new'
        ) WHERE tid NOT IN (SELECT text_id FROM texts) ORDER BY tid, _line
    """)
    con.execute(f"""
        INSERT INTO traffic
        SELECT _traffic_id, _given_id IS NOT NULL, _row_hash, {batch_id}, _line, _created_at,
               _prompt_tid, _response_tid, nullif(trim(category), ''), nullif(trim(model), ''),
               _tags, nullif(trim(user_feedback), ''), _escalated,
               nullif(trim(conversation_id), '')
        FROM final WHERE _status = 'new'
    """)
    pairs = ", ".join(f"'{name}', f.{name}" for name in TRAFFIC_COLUMNS)
    raw = f"coalesce(rtrim(r._raw, chr(13) || chr(10)), CAST(json_object({pairs}) AS VARCHAR))"
    field = "nullif(regexp_extract(_reason, '^([a-z_, ]+):', 1), '')"
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(f"""
        INSERT INTO quarantine
        SELECT {batch_id}, ?, c._line, {field}, _reason, {raw}, ?
        FROM checked c JOIN fields f ON f._line = c._line JOIN chunk r ON r._line = c._line
        WHERE _reason IS NOT NULL
        UNION ALL
        SELECT {batch_id}, ?, c._line, 'traffic_id', _conflict, {raw}, ?
        FROM final c JOIN fields f ON f._line = c._line JOIN chunk r ON r._line = c._line
        WHERE _status = 'conflict'
    """, [file_path, now, file_path, now])


def _process(con: duckdb.DuckDBPyConnection, staged: Staged, batch_id: int, file_path: str,
             report: BatchReport) -> None:
    """Validate and store the turns staged in the temp table ``chunk``."""
    with threads_for(con, staged.rows):
        _validate_and_store(con, staged, batch_id, file_path, report)


def _validate_and_store(con: duckdb.DuckDBPyConnection, staged: Staged, batch_id: int,
                        file_path: str, report: BatchReport) -> None:
    if staged.kind == "json_lines":
        keys = [row[0] for row in con.execute(
            f"SELECT DISTINCT unnest(keys) FROM ({staging.key_templates_sql()})").fetchall()]
        unknown = [k for k in keys if k not in TRAFFIC_COLUMNS]
        report.unknown_columns = sorted(set(report.unknown_columns) | set(unknown))
        extract = staging.extract_sql([], TRAFFIC_COLUMNS, LIST_FIELDS)
        con.execute(f"CREATE OR REPLACE TEMP TABLE fields AS {extract}")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE fields AS SELECT * EXCLUDE (_raw) FROM chunk")
    con.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {_checked_sql()}")
    for line, raw in con.execute(
        "SELECT c._line, r._raw FROM checked c JOIN chunk r USING (_line) "
        "WHERE c._reason = 'not valid JSON'"
    ).fetchall():
        con.execute("UPDATE checked SET _reason = ? WHERE _line = ?",
                    [json_error_detail(raw), line])
    con.execute(f"CREATE OR REPLACE TEMP TABLE final AS {_final_sql()}")
    _store(con, batch_id, file_path)
    tally_chunk(con, report, file_path, "traffic_id")


def ingest_traffic_file(
    con: duckdb.DuckDBPyConnection, path: Path | str, *, strict: bool = False,
    chunk_rows: int = 100_000, progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Ingest one traffic file as one batch in one transaction (see the module docstring)."""
    path = Path(path)
    fmt = format_of(path)
    readers.open_maybe_gzip(path).close()  # a missing file or a folder fails in words here
    report = BatchReport(file=str(path), format=FORMAT_PREFIX + fmt,
                         format_reason="traffic, from the file name", reasons=Counter())
    started = perf_counter()
    chunks, finished = _chunks(path, fmt, chunk_rows)
    if fmt == "csv":
        report.unknown_columns = csv_unknown_columns(path)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        report.unknown_columns = [c for c in pq.ParquetFile(path).schema_arrow.names
                                  if c not in TRAFFIC_COLUMNS]
    con.execute("SET TimeZone = 'UTC'")
    con.execute("BEGIN TRANSACTION")
    try:
        batch_id = int(con.execute(
            "SELECT coalesce(max(batch_id), 0) + 1 FROM ingest_batches").fetchall()[0][0])  # type: ignore[index]
        report.batch_id = batch_id
        con.execute(
            "INSERT INTO ingest_batches (batch_id, file_path, file_name, file_sha256, file_bytes, "
            "format, started_at, pseudonymised) VALUES (?, ?, ?, '', 0, ?, ?, false)",
            [batch_id, str(path.resolve()), path.name, report.format,
             datetime.now(UTC).replace(tzinfo=None)])
        for staged in staged_chunks(con, chunks):
            _process(con, staged, batch_id, str(path), report)
            if progress:
                progress(staged.rows)
        sha256, size = finished()
        earlier = con.execute(
            "SELECT batch_id FROM ingest_batches WHERE file_sha256 = ? AND batch_id <> ? "
            "AND format LIKE 'traffic-%'", [sha256, batch_id]).fetchall()
        if earlier:
            con.execute("ROLLBACK")
            report.seen_before(int(earlier[0][0]))
            report.seconds = perf_counter() - started
            return report
        if report.rows_read and report.quarantined == report.rows_read \
                and report.reasons and all(r.startswith("created_at: missing")
                                           for r in report.reasons):
            raise InputFileError(
                f"No row of {path.name} has a created_at timestamp; nothing was stored.",
                where=str(path), expected="a created_at column (ISO-8601) on every turn",
                fix="export the time each reply was served as created_at and ingest again")
        if strict and report.quarantined:
            raise StrictModeError(
                f"--strict: {report.quarantined} of {report.rows_read} rows would be "
                "quarantined; nothing from this file was stored.", where=str(path),
                expected="every row valid",
                fix="run without --strict and inspect `dissensus quarantine`; reasons: "
                + "; ".join(f"{r} ({n})" for r, n in report.reasons.most_common(3)))
        report.seconds = perf_counter() - started
        notes = ("columns not in the traffic contract, not stored: "
                 + ", ".join(report.unknown_columns)) if report.unknown_columns else None
        con.execute(
            """UPDATE ingest_batches SET file_sha256 = ?, file_bytes = ?, finished_at = ?,
               seconds = ?, rows_read = ?, rows_accepted = ?, rows_quarantined = ?,
               rows_duplicate = ?, notes = ? WHERE batch_id = ?""",
            [sha256, size, datetime.now(UTC).replace(tzinfo=None), report.seconds,
             report.rows_read, report.accepted, report.quarantined, report.duplicates, notes,
             batch_id])
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return report


def csv_unknown_columns(path: Path) -> list[str]:
    """Columns of a traffic CSV that the traffic contract does not know (reported, not stored)."""
    return [c for c in readers.csv_header(path) if c and c not in TRAFFIC_COLUMNS]
