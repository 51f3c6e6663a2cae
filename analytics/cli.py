"""The ``dissensus`` command: the service's front door."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dissensus.warehouse.db import DB_ENV_VAR, connect, default_db_path
from dissensus.warehouse.errors import DissensusError

if TYPE_CHECKING:
    import duckdb

app = typer.Typer(
    name="dissensus",
    help="Reviewer-disagreement and reward-modeling analytics for human preference data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


class State:
    db: Path = default_db_path()


@app.callback()
def main(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", help=f"Warehouse file (DuckDB). Default: ${DB_ENV_VAR} or ./dissensus.duckdb."
        ),
    ] = None,
) -> None:
    """Global options."""
    State.db = db if db is not None else default_db_path()


def fail(error: DissensusError) -> None:
    errors.print(f"[bold red]error:[/] {error.render()}", highlight=False)
    raise typer.Exit(code=2)


def open_warehouse(read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The warehouse of ``--db``; a failure to open it ends the command with the error in words."""
    try:
        return connect(State.db, read_only=read_only)
    except DissensusError as error:
        fail(error)
        raise  # unreachable: fail exits


def render_frame(frame, title: str | None = None, max_rows: int = 30) -> Table:
    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        table.add_column(name, overflow="fold")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    if frame.height > max_rows:
        table.caption = f"{max_rows} of {frame.height} rows shown"
    return table


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
        disable=not sys.stderr.isatty() and os.environ.get("DISSENSUS_PROGRESS") != "1",
    )


def ingest_and_report(paths: list[Path], fmt: str, strict: bool, salt: str | None) -> int:
    from dissensus.warehouse.ingest import ingest_file

    con = connect(State.db)
    problems = 0
    added = False
    try:
        for path in paths:
            with _progress() as progress:
                task = progress.add_task(f"ingest {path.name}", total=None)
                report = ingest_file(
                    con, path, fmt=fmt, strict=strict, salt=salt, refresh_index=False,
                    progress=lambda n, t=task: progress.advance(t, n),
                )
            added = added or report.accepted > 0
            console.print(
                f"[bold]{path}[/]: format [cyan]{report.format}[/] ({report.format_reason})"
            )
            if report.skipped:
                console.print(f"  nothing added: {report.skipped}")
                continue
            console.print(
                f"  batch {report.batch_id}: {report.rows_read:,} rows read, "
                f"[green]{report.accepted:,} accepted[/], {report.duplicates:,} duplicates, "
                f"[{'red' if report.quarantined else 'green'}]{report.quarantined:,} quarantined"
                f"[/] in {report.seconds:.1f} s"
            )
            for reason, count in report.reasons.most_common(5):
                console.print(f"    {count:,} × {reason}", highlight=False)
            if report.quarantined:
                problems += 1
                console.print("  see them with `dissensus quarantine --batch "
                              f"{report.batch_id}`")
            if report.unknown_columns:
                console.print(
                    "  [yellow]not stored[/] (not in the data contract): "
                    + ", ".join(report.unknown_columns)
                )
    finally:
        if added:  # once for all the files (also after a failure: earlier batches are stored)
            from dissensus.warehouse.vote_index import refresh_vote_index

            with console.status("indexing votes for the reviewer audit"):
                refresh_vote_index(con)
        con.close()
    return problems


@app.command()
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
    """Ingest comparison files: each row is accepted, a duplicate, or quarantined with a reason."""
    try:
        ingest_and_report(paths, fmt, strict, pseudonymise_salt)
    except DissensusError as error:
        fail(error)


@app.command()
def status() -> None:
    """Counts, ingest batches and a quarantine summary."""
    con = open_warehouse(read_only=True)
    try:
        print_status(con)
    finally:
        con.close()


def print_status(con) -> None:
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


@app.command()
def reindex() -> None:
    """Rebuild the stored vote index the reviewer audit reads (ingest keeps it fresh)."""
    from dissensus.warehouse.vote_index import index_status, refresh_vote_index

    con = open_warehouse()
    try:
        with console.status("indexing votes for the reviewer audit"):
            seconds = refresh_vote_index(con)
        console.print(f"vote index rebuilt in {seconds:.1f} s: {index_status(con)}")
    finally:
        con.close()


@app.command()
def quarantine(
    batch: Annotated[int | None, typer.Option(help="Only this batch.")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Write the rows to this file (.csv, .jsonl or .parquet).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """List or export rejected rows with file, line, field, reason and the raw text."""
    from dissensus.warehouse import queries

    con = open_warehouse(read_only=True)
    try:
        frame = queries.quarantine_rows(con, batch)
    finally:
        con.close()
    if export is not None:
        suffix = export.suffix.lower()
        if suffix == ".csv":
            frame.write_csv(export)
        elif suffix in (".jsonl", ".ndjson"):
            frame.write_ndjson(export)
        elif suffix == ".parquet":
            frame.write_parquet(export)
        else:
            fail(DissensusError(f"Cannot export to '{export.name}'.",
                                expected="a .csv, .jsonl or .parquet file name",
                                fix="choose one of those endings"))
        console.print(f"wrote {frame.height:,} quarantined rows to {export}")
        return
    if frame.height == 0:
        console.print("quarantine is empty: every row read was accepted or a duplicate")
        return
    console.print(render_frame(frame.drop("raw"), "quarantined rows", limit))


@app.command()
def simulate(
    out: Annotated[Path, typer.Argument(help="Folder to write the dataset and its truth into.")],
    n: Annotated[int, typer.Option("--n", help="Number of comparisons.")] = 5_000,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
    compress: Annotated[bool, typer.Option(help="gzip the comparisons file.")] = False,
    schools: Annotated[
        int, typer.Option(help="Number of reviewer schools (1 = no pluralism).")
    ] = 2,
    rushed_share: Annotated[float, typer.Option(help="Share of rushed reviewers.")] = 0.15,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write a demo-world dataset (comparisons plus ground truth) to files."""
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world

    if fmt not in ("jsonl", "csv", "parquet"):
        fail(DissensusError(f"Unknown format '{fmt}'.", expected="jsonl, csv or parquet",
                            fix="pass --format jsonl"))
    out.mkdir(parents=True, exist_ok=True)
    with console.status(f"simulating {n:,} comparisons"):
        world = simulate_world(WorldConfig(n_comparisons=n, n_schools=schools,
                                           rushed_share=rushed_share, seed=seed))
        paths = write_world(world, out, fmt=fmt, compress=compress)
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


@app.command()
def demo(
    n: Annotated[int, typer.Option("--n", help="Number of comparisons in the demo world.")] = 6_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fresh: Annotated[bool, typer.Option(help="Delete the warehouse file first.")] = True,
    fit: Annotated[bool, typer.Option(help="Fit the annotator model after ingest.")] = True,
    train: Annotated[
        bool, typer.Option(help="Train and score weighted and multi-head reward models.")
    ] = True,
    encoder: Annotated[
        str, typer.Option(help="Text encoder for the reward models: all-MiniLM-L6-v2 (offline "
                          "default), a local model folder, or 'hashing' (fast, no model).")
    ] = "all-MiniLM-L6-v2",
) -> None:
    """Build the demo warehouse: simulate the healthcare world, ingest, fit, train reward models."""
    from dissensus.warehouse.artefacts import (
        artefact_folders,
        demo_truth_folder,
        warehouse_files,
    )
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world

    if fresh:
        import shutil

        # A fresh warehouse also starts without the artefacts (fits, reward runs) kept beside it.
        for path in warehouse_files(State.db):
            path.unlink(missing_ok=True)
        for folder in artefact_folders(State.db):
            shutil.rmtree(folder, ignore_errors=True)
    truth_dir = demo_truth_folder(State.db)
    truth_dir.mkdir(parents=True, exist_ok=True)
    with console.status(f"simulating the demo world ({n:,} comparisons)"):
        world = simulate_world(WorldConfig(n_comparisons=n, seed=seed))
        paths = write_world(world, truth_dir, fmt="jsonl")
    console.print(f"demo world written to {truth_dir} (ground truth beside the data)")
    try:
        ingest_and_report([paths["comparisons"]], "jsonl", False, None)
        con = connect(State.db, read_only=True)
        try:
            print_status(con)
        finally:
            con.close()
    except DissensusError as error:
        fail(error)
    if fit:
        run_fit_command("auto", "auto", seed, 500)
        if train:
            train_demo_models(encoder)


def train_demo_models(encoder: str) -> None:
    """Train and score the weighted and multi-head reward models of the demo."""
    from dissensus.analytics.jobs.reward import score_run, train_run
    from dissensus.analytics.reward_cli import embedding_progress
    from dissensus.models.reward.config import make_config

    con = connect(State.db)
    try:
        for kind in ("weighted", "multihead"):
            console.print(f"training the {kind} reward model ({encoder})")
            with embedding_progress() as progress:
                run_id = train_run(con, kind, None, make_config(kind, encoder=encoder),
                                   log=lambda message: console.print(f"  {message}",
                                                                     highlight=False),
                                   progress=progress)
            score_run(con, run_id, log=lambda message: console.print(f"  {message}"))
    except DissensusError as error:
        fail(error)
    finally:
        con.close()


@app.command()
def fit(
    schools: Annotated[
        str, typer.Option(help="Number of reviewer schools: auto (chosen by model comparison), "
                          "1 (plain noise model), 2 or 3.")
    ] = "auto",
    method: Annotated[
        str, typer.Option(help="auto (picks by data size), em, nuts, advi or minibatch_advi.")
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    draws: Annotated[int, typer.Option(help="NUTS: posterior draws per chain.")] = 500,
    tune: Annotated[int, typer.Option(help="NUTS: warm-up steps per chain.")] = 500,
    chains: Annotated[int, typer.Option(help="NUTS: number of chains (run in parallel).")] = 2,
    tie_per_reviewer: Annotated[bool, typer.Option(
        help="EM: a tie threshold per reviewer (for reviewers who differ in how often they "
             "say 'equal'); off: one shared threshold, which catches rushed reviewers better.")
    ] = False,
    pool_responses: Annotated[bool, typer.Option(
        help="EM: pairs that share a response pool their consensus margins through a latent "
             "quality per response.")
    ] = True,
    response_features: Annotated[bool, typer.Option(
        help="EM: use the responses' tags (and tag within prompt category) to predict how each "
             "school's preference deviates; tags that predict nothing get no weight.")
    ] = True,
) -> None:
    """Fit the annotator model: reliability, schools, noise / pluralism / ambiguity per pair."""
    run_fit_command(schools, method, seed, draws, tie_per_reviewer, pool_responses,
                    tune=tune, chains=chains, response_features=response_features)


def run_fit_command(schools: str, method: str, seed: int, draws: int,
                    tie_per_reviewer: bool = False, pool_responses: bool = True,
                    tune: int = 500, chains: int = 2, response_features: bool = True) -> None:
    from dissensus.analytics.jobs.fit import fit_report_lines, run_fit
    from dissensus.models.annotator.config import AnnotatorConfig

    try:
        n_schools: str | int = "auto" if schools == "auto" else int(schools)
    except ValueError:
        fail(DissensusError(f"--schools {schools!r} is not a number of schools.",
                            expected="auto, 1, 2 or 3", fix="pass --schools auto"))
        return
    try:
        config = AnnotatorConfig(n_schools=n_schools, method=method, seed=seed, draws=draws,
                                 tune=tune, chains=chains, tie_per_reviewer=tie_per_reviewer,
                                 pool_responses=pool_responses,
                                 response_features=response_features)
    except ValueError as error:
        fail(DissensusError("The fit settings are not valid.", expected=str(error),
                            fix="see `dissensus fit --help`"))
        return
    con = open_warehouse()
    try:
        with console.status("fitting the annotator model"):
            outcome = run_fit(con, config, db_path=State.db)
    except DissensusError as error:
        fail(error)
        return
    finally:
        con.close()
    for line in fit_report_lines(outcome):
        console.print(line, highlight=False)


def _register_commands() -> None:
    from dissensus.analytics import audit_cli, reward_cli, serve

    audit_cli.register(app)
    reward_cli.register(app)
    serve.register(app)


_register_commands()

if __name__ == "__main__":
    app()
