"""Ingest files into the warehouse: the job behind ``dissensus ingest`` and the demo.

Each file is one batch in one transaction (:func:`dissensus.warehouse.ingest.ingest_file`); the
vote index the reviewer audit reads is refreshed once after the last file, also when a later
file fails (the earlier files' batches are stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import duckdb

from dissensus.warehouse.ingest import BatchReport, ProgressCallback, ingest_file
from dissensus.warehouse.vote_index import refresh_vote_index


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[Path],
    *,
    fmt: str = "auto",
    strict: bool = False,
    salt: str | None = None,
    progress: Callable[[Path], AbstractContextManager[ProgressCallback | None]] | None = None,
    on_report: Callable[[Path, BatchReport], None] | None = None,
    indexing: Callable[[], AbstractContextManager[object]] | None = None,
) -> list[BatchReport]:
    """Ingest ``paths`` in turn; the batch reports.

    ``progress(path)``: a context manager around one file's ingest giving a callback for rows
    read; ``on_report(path, report)``: called after each file; ``indexing()``: a context manager
    around the vote-index refresh (e.g. a spinner).
    """
    reports: list[BatchReport] = []
    try:
        for path in paths:
            with progress(path) if progress is not None else nullcontext(None) as advance:
                report = ingest_file(con, path, fmt=fmt, strict=strict, salt=salt,
                                     refresh_index=False, progress=advance)
            reports.append(report)
            if on_report is not None:
                on_report(path, report)
    finally:
        if any(report.accepted > 0 for report in reports):
            with indexing() if indexing is not None else nullcontext():
                refresh_vote_index(con)
    return reports
