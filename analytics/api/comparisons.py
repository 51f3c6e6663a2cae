"""``POST /v1/comparisons``: posted bodies become ingest batches, through the write queue.

The body is read into JSON lines by the file reader of ``dissensus ingest``, in the request's own
thread, and handed to :func:`dissensus.warehouse.ingest.ingest_chunks`, the batch that
:func:`~dissensus.warehouse.ingest.ingest_file` runs once it has read a file: validation,
quarantine, idempotence (a row seen before is a duplicate; the same body again adds nothing) and
the all-or-nothing batch transaction are exactly the command line's. The one writer then only
validates and stores; reading the bodies (line splitting, UTF-8 checks, line numbers) happens
beside it, on the request threads. A JSON array is written one element per line, so a rejected
row's ``line`` is its position in the array (from 1), and an NDJSON row's is its line in the
body. Bodies that wait for the writer together are ingested as one batch (:class:`PostQueue`),
named as if they were one file of the bodies in turn; ``GET /v1/quarantine?batch=`` numbers
lines from the start of that batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic, sleep

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.service import Warehouse
from dissensus.warehouse.artefacts import api_folder
from dissensus.warehouse.contract import LINE_COLUMN
from dissensus.warehouse.errors import DissensusError
from dissensus.warehouse.ingest import ingest_chunks
from dissensus.warehouse.json_checks import json_kind
from dissensus.warehouse.readers import StagedChunk, read_jsonl

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/x-jsonlines")
MAX_REJECTED_LISTED = 1000
"""Rejected lines listed in one answer; the rest are in ``GET /v1/quarantine?batch=``."""
MERGE_BYTES = 64 * 1024 * 1024
"""Most bytes of waiting bodies ingested as one batch (one body larger than this goes alone)."""
MERGE_LINGER_SECONDS = 0.2
"""Longest a batch waits for the other concurrent posters' next bodies (see ``_linger``)."""
MERGE_IDLE_SECONDS = 0.02
"""A lingering batch stops waiting once no body has been on its way in for this long: the
clients that had answers resend within milliseconds, and after that nobody is coming."""
MERGE_ENOUGH_BYTES = 8 * 1024 * 1024
"""Bodies waiting that make a batch worth starting without lingering: about 6,000 demo rows,
whose time dwarfs a batch's fixed cost."""


@dataclass(frozen=True)
class Body:
    """A request body as JSONL bytes and as the reader's chunks of its lines (numbered from 1
    within the body; blank lines are numbered but are not rows)."""

    jsonl: bytes
    chunks: tuple[StagedChunk, ...]

    @classmethod
    def read(cls, jsonl: bytes) -> Body:
        """Split the lines as ``dissensus ingest`` reads a JSONL file (``jsonl`` ends in a
        newline)."""
        return cls(jsonl, tuple(read_jsonl(io.BytesIO(jsonl))))

    @property
    def rows(self) -> int:
        return sum(chunk.table.num_rows for chunk in self.chunks)

    @property
    def lines(self) -> int:
        """Physical lines, blank ones included: how far the next body's line numbers move."""
        return self.jsonl.count(b"\n")


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
        return Body.read(raw if raw.endswith(b"\n") else raw + b"\n")
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
                       f"The body is a JSON {json_kind(parsed)}, not an array of rows.",
                       expected="a JSON array of comparison objects (or one object)",
                       fix="wrap the rows in [...]; nothing was stored")
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in parsed)
    return Body.read(lines.encode())


def clear_spool(db_path: Path) -> int:
    """Remove request bodies left on disk by a server that was killed mid-request; how many.
    Their batch either committed before the kill or rolled back with it, so the client's retry
    decides. Webhook events are spooled as Label Studio exports (``.json``,
    analytics/api/label_studio.py); posted comparisons are read in memory, but servers before
    that spooled them as ``.jsonl``."""
    folder = api_folder(db_path) / "incoming"
    stale = [p for pattern in ("post-*.jsonl", "post-*.json") for p in folder.glob(pattern)
             ] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _batch_name(db_path: Path) -> Path:
    """What the batch's ``file_path`` says: where the rows came from (no file is written)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return api_folder(db_path) / "incoming" / (
        f"post-v1-comparisons-{stamp}-{secrets.token_hex(4)}.jsonl")


def _batch_chunks(bodies: list[Body], starts: list[int]) -> list[StagedChunk]:
    """The bodies' chunks in turn, each body's line numbers moved past the lines before it."""
    out = []
    for body, start in zip(bodies, starts, strict=True):
        for chunk in body.chunks:
            table = chunk.table
            if start:
                index = table.schema.get_field_index(LINE_COLUMN)
                table = table.set_column(index, LINE_COLUMN,
                                         pc.add(table[LINE_COLUMN], pa.scalar(start, pa.int64())))
            out.append(StagedChunk(table, chunk.kind, chunk.unknown_columns))
    return out


@dataclass
class _Posted:
    body: Body
    strict: bool
    future: Future[dict[str, object]] = field(default_factory=Future)


class PostQueue:
    """Posted bodies waiting for the writer; those that wait together are ingested together.

    Each post queues a *drain* task on the warehouse's write queue. A drain takes every body
    waiting at that moment (up to :data:`MERGE_BYTES`) and ingests them as **one batch**, so the
    fixed cost of a batch (its transaction, staging tables, dedupe against the warehouse) is paid
    once per burst rather than once per request: with many clients the front door runs near the
    command line's rows/s. Each request still gets its own counts and rejected lines (its rows
    are told apart by their line ranges in the batch); a later drain finding nothing is a no-op.
    A ``strict`` body is ingested alone: its all-or-nothing rule must not cover other clients'
    rows. A batch that fails (disk full, ...) fails every request in it, and none is stored.
    """

    def __init__(self, warehouse: Warehouse, salt: str | None) -> None:
        self.warehouse = warehouse
        self.salt = salt
        self._waiting: deque[_Posted] = deque()
        self._last_group = 1
        self._receiving = 0  # posts whose bodies are on their way in (not yet submitted)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """Around reading a post's body: while any body is on its way in, a batch may wait
        for it (see :meth:`_linger`)."""
        with self._lock:
            self._receiving += 1
        try:
            yield
        finally:
            with self._lock:
                self._receiving -= 1

    def submit(self, body: Body, strict: bool = False) -> Future[dict[str, object]]:
        """Queue ``body``; a future of the answer's JSON (awaited, not blocked on, by the
        route: 32 waiting clients then hold no worker threads that reads need)."""
        if body.rows == 0:
            raise ApiError(400, "no_rows", "The body holds no rows.",
                           expected="at least one comparison object",
                           fix="send the rows as a JSON array or NDJSON lines")
        posted = _Posted(body, strict)
        with self._lock:
            self._waiting.append(posted)
        self.warehouse.write(self._drain)
        return posted.future

    def _take(self) -> list[_Posted]:
        with self._lock:
            if not self._waiting:
                return []
            if self._waiting[0].strict:
                return [self._waiting.popleft()]
            group: list[_Posted] = []
            size = 0
            while (self._waiting and not self._waiting[0].strict
                   and (not group or size + len(self._waiting[0].body.jsonl) <= MERGE_BYTES)):
                group.append(self._waiting.popleft())
                size += len(group[-1].body.jsonl)
            return group

    def _linger(self) -> None:
        """With concurrent posters, wait briefly until as many bodies wait as joined the last
        batch: their clients resend within milliseconds of their answers, and one batch of all
        of them costs one batch's fixed cost instead of several. A lone client never waits, nor
        does a drain that finds nothing waiting or :data:`MERGE_ENOUGH_BYTES` waiting already,
        and the wait ends once no body has been on its way in for :data:`MERGE_IDLE_SECONDS`
        (the last posts of a burst: waiting longer stores them later, and nothing joins)."""
        started = monotonic()
        deadline, idle_since = started + MERGE_LINGER_SECONDS, started
        while (self._last_group > 1 and 0 < len(self._waiting) < self._last_group
               and self._waiting_bytes() < MERGE_ENOUGH_BYTES):
            now = monotonic()
            if self._receiving:
                idle_since = now
            if now >= deadline or now - idle_since >= MERGE_IDLE_SECONDS:
                return
            sleep(0.002)

    def _waiting_bytes(self) -> int:
        with self._lock:
            return sum(len(p.body.jsonl) for p in self._waiting)

    def _drain(self, con: duckdb.DuckDBPyConnection) -> None:
        while True:
            self._linger()
            group = self._take()
            if not group:
                return
            # how many post at once, forgotten by halves when fewer do
            self._last_group = max(len(group), self._last_group // 2)
            try:
                answers = self._ingest(con, group)
            except BaseException as error:  # each waiting request gets the failure
                for posted in group:
                    posted.future.set_exception(error)
                continue
            for posted, answer in zip(group, answers, strict=True):
                posted.future.set_result(answer)

    def _ingest(self, con: duckdb.DuckDBPyConnection,
                group: list[_Posted]) -> list[dict[str, object]]:
        # line ranges: request i holds the batch's physical lines starts[i] + 1 .. starts[i + 1]
        starts = np.cumsum([0] + [p.body.lines for p in group])
        bodies = [p.body for p in group]

        def finished() -> tuple[str, int]:  # as if the bodies were one file, in turn
            digest = hashlib.sha256()
            for body in bodies:
                digest.update(body.jsonl)
            return digest.hexdigest(), sum(len(body.jsonl) for body in bodies)

        report = ingest_chunks(con, _batch_name(self.warehouse.path),
                               _batch_chunks(bodies, [int(v) for v in starts[:-1]]), finished,
                               fmt="jsonl", format_reason="posted to /v1/comparisons",
                               strict=group[0].strict, salt=self.salt, refresh_index=False)
        if report.accepted:
            self.warehouse.mark_index_dirty()
            self.warehouse.changed()  # before the answers go out: a read after them sees the rows
        accepted = np.zeros(len(group), dtype=np.int64)
        rejected: list[list[dict[str, object]]] = [[] for _ in group]
        quarantined = np.zeros(len(group), dtype=np.int64)
        if report.skipped is None and report.batch_id is not None:
            lines = np.asarray([r[0] for r in con.execute(
                "SELECT source_line FROM comparisons WHERE batch_id = ?",
                [report.batch_id]).fetchall()], dtype=np.int64)
            accepted = np.bincount(np.searchsorted(starts, lines, side="left") - 1,
                                   minlength=len(group))
            for line, fld, reason in con.execute(
                "SELECT line, field, reason FROM quarantine WHERE batch_id = ? ORDER BY line",
                [report.batch_id]).fetchall():
                i = int(np.searchsorted(starts, line, side="left")) - 1
                quarantined[i] += 1
                if len(rejected[i]) < MAX_REJECTED_LISTED:
                    rejected[i].append({"line": int(line - starts[i]), "field": fld,
                                        "reason": reason})
        if (int(accepted.sum()), int(quarantined.sum())) != (
                (0, 0) if report.skipped else (report.accepted, report.quarantined)):
            raise DissensusError(
                "Internal accounting error splitting a batch among its requests.",
                where=f"batch {report.batch_id}",
                fix="the rows are stored; please report this with the server's log")
        answers = []
        for i, posted in enumerate(group):
            dupes = posted.body.rows - int(accepted[i]) - int(quarantined[i])
            answers.append({
                "batch_id": report.batch_id,
                "requests_in_batch": len(group),
                "rows": posted.body.rows,
                "accepted": int(accepted[i]),
                "duplicates": dupes,
                "quarantined": int(quarantined[i]),
                "rejected": rejected[i],
                "rejected_listed": len(rejected[i]),
                "more_rejected_at": (f"/v1/quarantine?batch={report.batch_id}"
                                     if quarantined[i] > len(rejected[i]) else None),
                "skipped": report.skipped,
                "unknown_columns": report.unknown_columns,
                "seconds": round(report.seconds, 3),
            })
        return answers
