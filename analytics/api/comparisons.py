"""``POST /v1/comparisons``: a request body becomes one ingest batch, through the write queue.

The body is spooled to a JSONL file beside the warehouse and handed to the same
:func:`dissensus.warehouse.ingest.ingest_file` that ``dissensus ingest`` uses, so validation,
quarantine, idempotence (a row seen before is a duplicate; the same body again adds nothing) and
the all-or-nothing batch transaction are exactly the command line's. A JSON array is written one
element per line, so a rejected row's ``line`` is its position in the array (from 1).
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.service import Warehouse
from dissensus.warehouse.artefacts import api_folder
from dissensus.warehouse.ingest import ingest_file

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/x-jsonlines")
MAX_REJECTED_LISTED = 1000
"""Rejected lines listed in one answer; the rest are in ``GET /v1/quarantine?batch=``."""


@dataclass(frozen=True)
class Body:
    """A request body as JSONL bytes, with the number of rows it holds."""

    jsonl: bytes
    rows: int


def to_jsonl(raw: bytes, content_type: str) -> Body:
    """The body as JSONL; :class:`ApiError` (400 / 415) for a body that is not what it says."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in NDJSON_TYPES:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ApiError(400, "body_not_utf8",
                           f"The body is not UTF-8 text (byte {error.start}).",
                           expected="UTF-8 encoded NDJSON, one comparison object per line",
                           fix="re-encode the rows as UTF-8; nothing was stored") from error
        rows = sum(1 for line in raw.splitlines() if line.strip())
        return Body(raw if raw.endswith(b"\n") else raw + b"\n", rows)
    if kind not in JSON_TYPES:
        raise ApiError(415, "unsupported_content_type",
                       f"Content type '{kind or '(none)'}' cannot be read as comparisons.",
                       expected="application/json (an array of comparison objects) or "
                       "application/x-ndjson (one object per line)",
                       fix="send the matching Content-Type header; nothing was stored")
    try:  # decoded first: json.loads(bytes) would guess UTF-16/32 from the first bytes
        parsed = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ApiError(400, "body_not_utf8", "The body is not UTF-8 text.",
                       expected="a UTF-8 JSON array of comparison objects",
                       fix="re-encode the rows as UTF-8; nothing was stored") from error
    except json.JSONDecodeError as error:
        raise ApiError(400, "malformed_json",
                       f"The body is not valid JSON: {error.msg} at line {error.lineno}, "
                       f"column {error.colno}.",
                       expected="a JSON array of comparison objects",
                       fix="fix the JSON (or send NDJSON, where one bad line is quarantined "
                       "and the rest are stored); nothing was stored") from error
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise ApiError(400, "not_an_array",
                       f"The body is a JSON {type(parsed).__name__}, not an array of rows.",
                       expected="a JSON array of comparison objects (or one object)",
                       fix="wrap the rows in [...]; nothing was stored")
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in parsed)
    return Body(lines.encode(), len(parsed))


def clear_spool(db_path: Path) -> int:
    """Remove bodies left by a server that was killed mid-request; how many. Their batch either
    committed before the kill or rolled back with it, so the client's retry decides."""
    folder = api_folder(db_path) / "incoming"
    stale = list(folder.glob("post-*.jsonl")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _spool(db_path: Path, body: Body) -> Path:
    """Write the body where the batch's ``file_path`` will point: it names the request."""
    folder = api_folder(db_path) / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"post-v1-comparisons-{stamp}-{secrets.token_hex(4)}.jsonl"
    path.write_bytes(body.jsonl)
    return path


def queue_body(warehouse: Warehouse, body: Body, *, strict: bool = False,
               salt: str | None = None) -> Future[dict[str, object]]:
    """Queue ``body``'s ingest as one batch on the write queue; a future of the answer's JSON.

    The caller awaits the future rather than a thread blocking on it: 32 clients waiting on the
    queue then hold no worker threads that reads need."""
    if body.rows == 0:
        raise ApiError(400, "no_rows", "The body holds no rows.",
                       expected="at least one comparison object",
                       fix="send the rows as a JSON array or NDJSON lines")
    spooled = _spool(warehouse.path, body)

    def task(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
        try:
            report = ingest_file(con, spooled, fmt="jsonl", strict=strict, salt=salt,
                                 refresh_index=False)
        finally:
            spooled.unlink(missing_ok=True)  # its rows live in the warehouse (or nowhere)
        if report.accepted:
            warehouse.mark_index_dirty()
        rejected: list[dict[str, object]] = []
        if report.quarantined and report.batch_id is not None:
            rejected = [
                {"line": int(line), "field": field, "reason": reason}
                for line, field, reason in con.execute(
                    "SELECT line, field, reason FROM quarantine WHERE batch_id = ? "
                    "ORDER BY line LIMIT ?", [report.batch_id, MAX_REJECTED_LISTED]).fetchall()
            ]
        return {
            "batch_id": report.batch_id,
            "rows": report.rows_read,
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "quarantined": report.quarantined,
            "rejected": rejected,
            "rejected_listed": len(rejected),
            "more_rejected_at": (f"/v1/quarantine?batch={report.batch_id}"
                                 if report.quarantined > len(rejected) else None),
            "skipped": report.skipped,
            "unknown_columns": report.unknown_columns,
            "seconds": round(report.seconds, 3),
        }

    return warehouse.write(task)
