"""``dissensus simulate`` and ``dissensus demo``: the simulated healthcare-scheduling world.

``simulate`` writes a world to files (:mod:`dissensus.warehouse.demo`); ``demo`` builds a whole
warehouse from one through the jobs: :mod:`dissensus.analytics.jobs.ingest`,
:mod:`dissensus.analytics.jobs.fit` and :mod:`dissensus.analytics.jobs.reward`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from dissensus.analytics.cli.common import (
    State,
    console,
    embedding_progress,
    fail,
    log,
    open_warehouse,
    print_ingest_report,
    print_status,
    require_choice,
    row_progress,
)
from dissensus.warehouse.artefacts import artefact_folders, demo_truth_folder, warehouse_files
from dissensus.warehouse.errors import DissensusError

DEMO_REWARD_KINDS = ("weighted", "multihead")


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

    require_choice(fmt, ("jsonl", "csv", "parquet"), "format", "--format")
    out.mkdir(parents=True, exist_ok=True)
    with console.status(f"simulating {n:,} comparisons"):
        world = simulate_world(WorldConfig(n_comparisons=n, n_schools=schools,
                                           rushed_share=rushed_share, seed=seed))
        paths = write_world(world, out, fmt=fmt, compress=compress)
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


def demo(
    n: Annotated[int, typer.Option("--n", help="Number of comparisons in the demo world.")] = 6_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    fresh: Annotated[
        bool, typer.Option(help="Delete the warehouse file and the folders kept beside it first "
                           "(only a warehouse the demo built, unless --force).")
    ] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --db file and the folders kept beside "
                           "it even when the demo did not make them (their data are lost).")
    ] = False,
    fit: Annotated[bool, typer.Option(help="Fit the annotator model after ingest.")] = True,
    train: Annotated[
        bool, typer.Option(help="Train and score weighted and multi-head reward models.")
    ] = True,
    encoder: Annotated[
        str, typer.Option(help="Text encoder for the reward models: all-MiniLM-L6-v2 (offline "
                          "default), a local model folder, or 'hashing' (fast, no model).")
    ] = "all-MiniLM-L6-v2",
    traffic: Annotated[bool, typer.Option(
        help="Also simulate live traffic (a baseline period, then drift), ingest and score it "
        "with the multi-head model, and show the drift alarms.")] = True,
) -> None:
    """Build the demo warehouse: simulate the healthcare world, ingest, fit, train reward models."""
    from dissensus.analytics.jobs.ingest import ingest_files
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world

    if not force:
        refuse_foreign_targets(State.db, fresh)
    if fresh:  # a fresh warehouse also starts without the artefacts (fits, runs) kept beside it
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
    with open_warehouse(create=True) as con:
        ingest_files(
            con, [paths["comparisons"]], fmt="jsonl",
            progress=lambda path: row_progress(f"ingest {path.name}"),
            on_report=print_ingest_report,
            indexing=lambda: console.status("indexing votes for the reviewer audit"),
        )
        print_status(con)
        if fit:
            fit_demo_model(con, seed)
            if train:
                runs = train_demo_models(con, encoder)
                if traffic:
                    demo_traffic(con, runs["multihead"], seed)


def made_by_demo(db: Path) -> bool:
    """Whether ``db`` is a warehouse the demo built: a DuckDB file whose every ingest batch
    came from the demo world written beside it (data a user ingested there is theirs)."""
    from dissensus.warehouse.db import connect, is_duckdb_file

    if not is_duckdb_file(db):
        return False
    truth = demo_truth_folder(db).resolve()
    try:
        con = connect(db, read_only=True)
    except DissensusError:
        return False
    try:
        files = [Path(row[0]) for row in con.execute(
            "SELECT file_path FROM ingest_batches").fetchall()]
    except duckdb.Error:  # not a dissensus warehouse
        return False
    finally:
        con.close()
    return bool(files) and all(file.resolve().is_relative_to(truth) for file in files)


def refuse_foreign_targets(db: Path, fresh: bool = True) -> None:
    """Fail in words, deleting nothing, when ``demo`` would delete or overwrite a file or folder
    it did not make (the user's data named by --db, or a folder of theirs beside it). Without
    ``fresh`` only the demo-world folder is written into (the warehouse is added to)."""
    targets = (*warehouse_files(db), *artefact_folders(db)) if fresh else (demo_truth_folder(db),)
    present = [p for p in targets if p.exists()]
    if not present or made_by_demo(db):
        return
    fail(DissensusError(
        "dissensus demo builds a new warehouse and would delete or overwrite "
        + ", ".join(str(p) for p in present) + ", which the demo did not make.",
        where=str(db),
        expected="a --db path that does not exist yet, or a warehouse an earlier demo built",
        fix="pass another --db (e.g. --db demo.duckdb), or add --force to replace them "
        "(what they hold is lost)",
    ))


def fit_demo_model(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """The annotator model with its default settings (K chosen by model comparison)."""
    from dissensus.analytics.jobs.fit import fit_report_lines, run_fit
    from dissensus.models.annotator.config import AnnotatorConfig

    with console.status("fitting the annotator model"):
        outcome = run_fit(con, AnnotatorConfig(seed=seed), db_path=State.db)
    for line in fit_report_lines(outcome):
        console.print(line, highlight=False)


def train_demo_models(con: duckdb.DuckDBPyConnection, encoder: str) -> dict[str, str]:
    """Train and score the weighted and multi-head reward models of the demo; run ids by kind."""
    from dissensus.analytics.jobs.reward import score_run, train_run
    from dissensus.models.reward.config import make_config

    runs = {}
    for kind in DEMO_REWARD_KINDS:
        console.print(f"training the {kind} reward model ({encoder})")
        with embedding_progress() as progress:
            run_id = train_run(con, kind, None, make_config(kind, encoder=encoder), log=log,
                               progress=progress)
        score_run(con, run_id, log=log)
        runs[kind] = run_id
    return runs


def demo_traffic(con: duckdb.DuckDBPyConnection, run_id: str, seed: int) -> None:
    """Simulate live traffic (baseline, then drift), ingest and score it, print the alarms."""
    from dissensus.analytics.drift.report import drift_report
    from dissensus.analytics.jobs.traffic import score_traffic
    from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic, write_traffic
    from dissensus.warehouse.traffic import ingest_traffic_file

    config = TrafficConfig(seed=seed)
    rows, truth = simulate_traffic(config)
    paths = write_traffic(rows, truth, demo_truth_folder(State.db))
    print_ingest_report(paths["traffic"], ingest_traffic_file(con, paths["traffic"]))
    console.print(f"scoring the traffic with {run_id} (drift from week "
                  f"{config.drift_from_week} of {config.n_weeks})")
    with embedding_progress() as progress:
        score_traffic(con, run_id, progress=progress, log=log)
    report = drift_report(con, run_id)
    for alarm in report.alarms:
        console.print(f"[bold red]ALARM[/] {alarm}", highlight=False)
    if not report.alarms:
        console.print("no drift alarm")
    console.print(f"  see `dissensus drift --run {run_id}` and the Deployment drift page")


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``demo`` to ``app``."""
    for command in (simulate, demo):
        app.command()(command)
