"""What every command module shares: consoles, the ``--db`` state, errors, the warehouse, output.

The command modules (:mod:`.ingest`, :mod:`.demo`, :mod:`.fit`, :mod:`.audit`, :mod:`.reward`,
:mod:`.serve`) import this module and library code only: never the entry module
(:mod:`dissensus.analytics.cli`) nor one another.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dissensus.warehouse.db import connect, default_db_path
from dissensus.warehouse.errors import DissensusError
from dissensus.warehouse.snapshot import connect_reader

if TYPE_CHECKING:
    import duckdb
    import polars as pl
    from pydantic import BaseModel

    from dissensus.warehouse.ingest import BatchReport

console = Console()
errors = Console(stderr=True)

T = TypeVar("T")


class State:
    """The global options, set by the entry module's callback before any command runs."""

    db: Path = default_db_path()


# --- errors -------------------------------------------------------------------------------------


def fail(error: DissensusError) -> NoReturn:
    """Print ``error`` in words on stderr and end the command with exit code 2."""
    # escaped: a path or value in the message ("[auth]", "data[1].csv") is text, not markup
    errors.print(f"[bold red]error:[/] {escape(error.render())}", highlight=False)
    raise typer.Exit(code=2)


@contextmanager
def errors_in_words() -> Iterator[None]:
    """End the command with :func:`fail` on a :class:`DissensusError` raised in the block, and
    put a DuckDB or file-system failure (a full disk, a file that vanished) in words too: the
    command line shows sentences, never a traceback."""
    import duckdb

    try:
        yield
    except DissensusError as error:
        fail(error)
    except duckdb.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        fail(DissensusError(
            f"The warehouse could not be read or written: {first}",
            where=str(State.db),
            expected="a writable DuckDB warehouse and free disk space",
            fix="free disk space or memory and run the command again; `dissensus status` says "
            "what the warehouse holds (a failed write stores nothing)",
        ))
    except OSError as error:
        fail(DissensusError(
            f"Could not read or write {error.filename or 'a file'}: "
            f"{error.strerror or error}.",
            where=str(error.filename) if error.filename else None,
            fix="check the path, its permissions and free disk space",
        ))


@contextmanager
def open_warehouse(
    read_only: bool = False, create: bool = False, snapshot_ok: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse of ``--db``, closed after the block. A failure to open it, or a
    :class:`DissensusError` in the block, ends the command with the error in words.

    Every command opens the warehouse here, so every command refuses a ``--db`` that is not a
    DuckDB file (:func:`dissensus.warehouse.db.check_warehouse_path`). Only ``create`` commands
    (ingest, demo) make a new warehouse; the others say there is none and how to make one.

    ``snapshot_ok`` (with ``read_only``): while ``dissensus api`` holds the file, read the
    server's snapshot instead, with a one-line note on stderr. Only for commands that read
    tables alone: one that reads the artefacts beside the file (checkpoints, saved fits) would
    look for them beside the snapshot.
    """
    with errors_in_words():
        if read_only and snapshot_ok:
            con, snapshot = connect_reader(State.db)
            if snapshot is not None:  # stderr: csv / json output stays machine-readable
                errors.print(f"[yellow]note:[/] {escape(snapshot.note())}", highlight=False)
        else:
            con = connect(State.db, read_only=read_only, create=create)
        try:
            yield con
        finally:
            con.close()


def require_choice(value: str, choices: Sequence[str], what: str, option: str) -> None:
    """Fail in words unless ``value`` is one of ``choices`` (``what``: e.g. 'format')."""
    if value not in choices:
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
        fail(DissensusError(f"Unknown {what} '{value}'.", expected=listed,
                            fix=f"pass {option} {choices[0]}"))


# --- settings: --set FIELD=VALUE --------------------------------------------------------------


def parse_settings(items: Sequence[str] | None) -> dict[str, object]:
    """``--set FIELD=VALUE`` options as a dict; a VALUE that parses as JSON is read as JSON
    (numbers, true/false, null, lists), anything else as text."""
    fields: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(DissensusError(f"--set {item!r} is not FIELD=VALUE.",
                                expected="FIELD=VALUE, e.g. --set seed=3",
                                fix="write the field name, '=' and its value"))
        try:
            fields[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            fields[key.strip()] = value
    return fields


def build_config(model: type[BaseModel], build: Callable[..., T], fields: dict[str, object],
                 command: str) -> T:
    """``build(**fields)``, or fail in words naming the valid fields of ``model`` when a field is
    unknown, or the fields and what they expect when a value is invalid."""
    from pydantic import ValidationError

    valid = sorted(model.model_fields)
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        fail(DissensusError(
            f"Unknown setting{'s' if len(unknown) > 1 else ''} for `dissensus {command}`: "
            + ", ".join(unknown) + ".",
            expected="one of " + ", ".join(valid),
            fix=f"check the spelling; `dissensus {command} --help` says what each option sets",
        ))
    try:
        return build(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            + (f" (got {e['input']!r})" if "input" in e and e["loc"] else "")
            for e in error.errors()
        )
        fail(DissensusError(f"The {command} settings are not valid: {problems}",
                            expected="values of the types and ranges the fields take",
                            fix=f"see `dissensus {command} --help`"))
    except ValueError as error:
        fail(DissensusError(f"The {command} settings are not valid: {error}",
                            fix=f"see `dissensus {command} --help`"))


# --- progress -----------------------------------------------------------------------------------


def _bars_shown() -> bool:
    """Bars go to stderr: on a terminal, or wherever ``DISSENSUS_PROGRESS=1`` is set."""
    return sys.stderr.isatty() or os.environ.get("DISSENSUS_PROGRESS") == "1"


@contextmanager
def row_progress(description: str) -> Iterator[Callable[[int], None]]:
    """A bar on stderr counting rows; the block gets ``advance(n_rows)``."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
        disable=not _bars_shown(),
    )
    with bar:
        task = bar.add_task(description, total=None)
        yield lambda n: bar.advance(task, n)


@contextmanager
def embedding_progress() -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr for texts being embedded; it appears only when some are missing from the
    cache, and only on a terminal (or with DISSENSUS_PROGRESS=1)."""
    bar = Progress(
        TextColumn("embedding texts"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=errors,
        disable=not errors.is_terminal and os.environ.get("DISSENSUS_PROGRESS") != "1",
    )
    task: TaskID | None = None

    def advance(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("embed", total=total)
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()  # before training logs its epochs on the other stream

    try:
        yield advance
    finally:
        bar.stop()


# --- output -------------------------------------------------------------------------------------


def log(message: str) -> None:
    """One indented line of a job's log on stdout (what the demo prints under each step)."""
    console.print(f"  {message}", highlight=False)


def render_frame(frame: pl.DataFrame, title: str | None = None, max_rows: int = 30) -> Table:
    """A rich table of the first ``max_rows`` rows of ``frame``, saying how many were left out."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")  # the commands' options refuse it first
    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        # ids are copied whole: folded across lines they cannot be
        table.add_column(name, overflow="fold", no_wrap=name == "id" or name.endswith("_id"))
    for row in frame.head(max_rows).iter_rows():
        # an unknown figure (None, or NaN from a check with no data) is a blank cell
        table.add_row(*("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                        for v in row))
    if frame.height > max_rows:
        table.caption = f"{max_rows} of {frame.height} rows shown"
    return table


def _finite(value: object) -> object:
    """``value`` with NaN and infinities as null: JSON has no NaN (``NaN`` breaks parsers), and
    an unknown figure is what they mean here."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(payload: object) -> None:
    """``payload`` as indented JSON on stdout (values JSON cannot hold written as text, NaN
    as null)."""
    sys.stdout.write(json.dumps(_finite(payload), default=str, indent=1) + "\n")


def write_records(frame: pl.DataFrame, fmt: str) -> None:
    """``frame`` on stdout as CSV (``fmt='csv'``) or a JSON list of rows (``'json'``)."""
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    else:
        write_json(frame.to_dicts())


def run_or_fail(found: str | None, missing: DissensusError, note: str | None = None) -> str:
    """``found``, the run a command takes when none is named (said on the console with
    ``note`` when given), or a failure in words (``missing``) when there is none."""
    if found is None:
        fail(missing)
    if note is not None:
        console.print(f"run {found} ({note})", highlight=False)
    return str(found)


def print_ingest_report(path: Path, report: BatchReport) -> None:
    """What one file's ingest did: format, counts, the commonest reasons, columns not stored."""
    console.print(f"[bold]{path}[/]: format [cyan]{report.format}[/] ({report.format_reason})")
    if report.skipped:
        console.print(f"  nothing added: {report.skipped}")
        return
    console.print(
        f"  batch {report.batch_id}: {report.rows_read:,} rows read, "
        f"[green]{report.accepted:,} accepted[/], {report.duplicates:,} duplicates, "
        f"[{'red' if report.quarantined else 'green'}]{report.quarantined:,} quarantined"
        f"[/] in {report.seconds:.1f} s"
    )
    for reason, count in report.reasons.most_common(5):
        console.print(f"    {count:,} × {reason}", highlight=False)
    if report.quarantined:
        console.print(f"  see them with `dissensus quarantine --batch {report.batch_id}`")
    if report.unknown_columns:
        console.print(
            "  [yellow]not stored[/] (not in the data contract): "
            + ", ".join(report.unknown_columns)
        )
    if report.rows_read and report.quarantined == report.rows_read and report.unknown_columns:
        from dissensus.warehouse.sources import known_formats

        # every row rejected and columns the contract does not know: most likely not a
        # comparison file at all, or one whose columns carry other names
        console.print(
            "  [yellow]no row of this file is a comparison[/]: a row needs reviewer_id, "
            "choice (a, b or tie) and the prompt and two replies (prompt, response_a, "
            "response_b, or their ids). Rename the file's columns to those names (README, "
            "\"Input: one comparison per row\"), or name its format if an adapter reads it: "
            "--format "
            + ", ".join(f for f in known_formats() if f != "auto"), highlight=False)


def print_status(con: duckdb.DuckDBPyConnection) -> None:
    """Counts, ingest batches, the quarantine by reason and the vote index's state."""
    from dissensus.warehouse import queries

    c = queries.counts(con)
    console.print(f"[bold]warehouse[/] {State.db}")
    console.print(
        f"  {c.comparisons:,} comparisons "
        f"({c.comparisons_without_reviewer:,} without reviewer id), "
        f"{c.pairs:,} pairs, {c.prompts:,} prompts, {c.responses:,} responses, "
        f"{c.texts:,} texts, {c.reviewers:,} reviewers, {c.batches} batches, "
        f"{c.quarantined:,} rows in quarantine"
    )
    if c.batches:
        batch_frame = queries.batches(con)
        console.print(render_frame(batch_frame.drop("notes"), "ingest batches", 10))
        for batch, note in batch_frame.select("batch", "notes").drop_nulls().iter_rows():
            console.print(f"  batch {batch}: {note}")
    if c.quarantined:
        console.print(render_frame(queries.quarantine_summary(con), "quarantine by reason", 10))
    if c.comparisons:
        from dissensus.warehouse.vote_index import index_status

        console.print(f"  vote index: {index_status(con)}")
        made = queries.fits_and_runs(con)
        if made.height:
            console.print(render_frame(made, "newest fits and reward runs", 10))
