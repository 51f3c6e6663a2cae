"""Ingest files into the warehouse: the job behind ``dissensus ingest`` and the demo.

Each file is one batch in one transaction (:func:`dissensus.warehouse.ingest.ingest_file`); the
vote index the reviewer audit reads is refreshed once after the last file, also when a later
file fails (the earlier files' batches are stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path

import duckdb

from dissensus.warehouse.errors import (
    DissensusError,
    InputFileError,
    StrictModeError,
    UnknownFormatError,
    WarehouseWriteError,
)
from dissensus.warehouse.ingest import BatchReport, ProgressCallback, ingest_file
from dissensus.warehouse.vote_index import index_is_stale, refresh_vote_index

#: Errors about one input file: with ``on_error`` the other files are still ingested.
FILE_ERRORS = (InputFileError, UnknownFormatError, StrictModeError)


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
    on_error: Callable[[Path, DissensusError], None] | None = None,
) -> list[BatchReport]:
    """Ingest ``paths`` in turn; the batch reports.

    ``progress(path)``: a context manager around one file's ingest giving a callback for rows
    read; ``on_report(path, report)``: called after each file; ``indexing()``: a context manager
    around the vote-index refresh (e.g. a spinner); ``on_error(path, error)``: called for a file
    that cannot be ingested (missing, damaged, ``--strict``), after which the other files are
    still ingested; without it the first such error ends the run.
    """
    reports: list[BatchReport] = []
    try:
        for path in paths:
            try:
                with progress(path) if progress is not None else nullcontext(None) as advance:
                    report = ingest_file(con, path, fmt=fmt, strict=strict, salt=salt,
                                         refresh_index=False, progress=advance)
            except FILE_ERRORS as error:
                if on_error is None:
                    raise
                on_error(path, error)
                continue
            reports.append(report)
            if on_report is not None:
                on_report(path, report)
    except BaseException:
        # The run failed: refresh the index for the batches that were stored, but let the
        # first error be the one reported (after a full disk the database is unusable).
        with suppress(duckdb.Error, DissensusError):
            _refresh(con, reports, indexing)
        raise
    _refresh(con, reports, indexing)
    return reports


def _refresh(
    con: duckdb.DuckDBPyConnection,
    reports: list[BatchReport],
    indexing: Callable[[], AbstractContextManager[object]] | None,
) -> None:
    """Rebuild the vote index when batches were added or it was found stale (a crash after an
    earlier commit); a write failure becomes an error in words."""
    try:
        if any(report.accepted > 0 for report in reports) or index_is_stale(con):
            with indexing() if indexing is not None else nullcontext():
                refresh_vote_index(con)
    except duckdb.Error as error:
        raise WarehouseWriteError(
            "The batches were stored, but rebuilding the vote index failed: "
            f"{str(error).splitlines()[0]}",
            fix="free disk space, then run `dissensus reindex` (the reviewer audit is correct "
            "without the index, only slower)",
        ) from error
