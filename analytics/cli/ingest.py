"""``dissensus ingest``, ``status``, ``reindex``, ``quarantine`` and ``withdrawals``: data in, and
what became of it.

The work is :func:`dissensus.analytics.jobs.ingest.ingest_files` (one batch per file, then the vote
index) over :mod:`dissensus.warehouse.ingest`; the reads are :mod:`dissensus.warehouse.queries`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dissensus.analytics.cli.common import (
    console,
    errors,
    errors_in_words,
    fail,
    open_warehouse,
    print_ingest_report,
    print_status,
    render_frame,
    require_choice,
    row_progress,
)
from dissensus.warehouse.errors import DissensusError


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files (or dataset folders) to ingest.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="auto, jsonl, csv, parquet, ukpconvarg1, hh-rlhf, ..."),
    ] = "auto",
    strict: Annotated[
        bool, typer.Option(help="Store nothing from a file that has any invalid row.")
    ] = False,
    pseudonymise_salt: Annotated[
        str | None,
        typer.Option(
            envvar="DISSENSUS_SALT",
            help="Replace reviewer ids by a salted hash (keep the salt secret and the same).",
        ),
    ] = None,
) -> None:
    """Ingest comparison files: each row is accepted, a duplicate, or quarantined with a reason.

    A file that cannot be read (missing, damaged, refused by --strict) is reported and the
    other files are still ingested; the command then exits with code 2."""
    from dissensus.analytics.jobs.ingest import ingest_files
    from dissensus.warehouse.sources import known_formats

    require_choice(fmt, known_formats(), "format", "--format")
    failed: list[DissensusError] = []

    def report_error(path: Path, error: DissensusError) -> None:
        errors.print(f"[bold red]error:[/] {escape(error.render())}", highlight=False)
        failed.append(error)

    with open_warehouse(create=True) as con:
        ingest_files(
            con, paths, fmt=fmt, strict=strict, salt=pseudonymise_salt,
            progress=lambda path: row_progress(f"ingest {path.name}"),
            on_report=print_ingest_report,
            indexing=lambda: console.status("indexing votes for the reviewer audit"),
            on_error=report_error,
        )
    if failed:
        rest = "; the others were" if len(failed) < len(paths) else ""
        errors.print(f"{len(failed)} of {len(paths)} files were not ingested (see above){rest}.",
                     highlight=False)
        raise typer.Exit(code=2)


def status() -> None:
    """Counts, ingest batches and a quarantine summary."""
    with open_warehouse(read_only=True, snapshot_ok=True) as con:
        print_status(con)


def reindex() -> None:
    """Rebuild the stored vote index the reviewer audit reads (ingest keeps it fresh)."""
    from dissensus.warehouse.vote_index import index_status, refresh_vote_index

    with open_warehouse() as con:
        with console.status("indexing votes for the reviewer audit"):
            seconds = refresh_vote_index(con)
        console.print(f"vote index rebuilt in {seconds:.1f} s: {index_status(con)}")


EXPORTS = (".csv", ".jsonl", ".ndjson", ".parquet")


def quarantine(
    batch: Annotated[int | None, typer.Option(help="Only this batch.")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Write the rows to this file (.csv, .jsonl or .parquet).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to print.")] = 20,
) -> None:
    """List or export rejected rows with file, line, field, reason and the raw text."""
    from dissensus.warehouse import queries

    with open_warehouse(read_only=True, snapshot_ok=True) as con:
        frame = queries.quarantine_rows(con, batch)
    if export is not None:
        suffix = export.suffix.lower()
        if suffix not in EXPORTS:
            fail(DissensusError(f"Cannot export to '{export.name}'.",
                                expected="a .csv, .jsonl or .parquet file name",
                                fix="choose one of those endings"))
        if not export.parent.is_dir():
            fail(DissensusError(f"The folder for the export does not exist: {export.parent}",
                                where=str(export), expected="an existing folder",
                                fix=f"create it (mkdir -p {export.parent}) or choose another "
                                "path"))
        with errors_in_words():
            if suffix == ".csv":
                frame.write_csv(export)
            elif suffix == ".parquet":
                frame.write_parquet(export)
            else:
                frame.write_ndjson(export)
        console.print(f"wrote {frame.height:,} quarantined rows to {export}")
        return
    if frame.height == 0:
        console.print("quarantine is empty: every row read was accepted or a duplicate")
        return
    console.print(render_frame(frame.drop("raw"), "quarantined rows", limit))


def withdrawals(
    reason: Annotated[
        str | None, typer.Option(help="Only 'deleted' or only 'revised' comparisons.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to print.")] = 20,
) -> None:
    """List comparisons no longer current: deleted at the source, or revised (old versions).

    A revision's new version is current; models, the audit and export read current ones only.
    """
    import polars as pl

    from dissensus.warehouse.vote_index import table_columns
    from dissensus.warehouse.withdrawals import DELETED, REVISED, withdrawal_rows

    if reason is not None:
        require_choice(reason, (DELETED, REVISED), "reason", "--reason")
    with open_warehouse(read_only=True, snapshot_ok=True) as con:
        if not table_columns(con, "comparison_withdrawals"):  # a file not yet upgraded
            console.print("no withdrawals: this warehouse predates them (any write upgrades it)")
            return
        total, frame = withdrawal_rows(con, reason=reason, limit=limit)
    if total == 0:
        console.print(f"no {reason} comparisons" if reason else
                      "no withdrawals: every comparison stored is current")
        return
    shown = frame.select(  # the full rows stay in the table comparison_withdrawals
        pl.col("withdrawal_id").alias("id"),
        pl.col("withdrawn_at").dt.strftime("%Y-%m-%d %H:%M"), "reason", "comparison_id",
        pl.col("reviewer_id").alias("reviewer"), "choice",
        pl.col("current_choice").alias("now"), "source")
    console.print(render_frame(shown, f"{total:,} withdrawn comparisons", limit))


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``status``, ``reindex``, ``quarantine`` and ``withdrawals`` to ``app``."""
    for command in (ingest, status, reindex, quarantine, withdrawals):
        app.command()(command)
