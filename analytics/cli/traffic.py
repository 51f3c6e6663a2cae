"""``dissensus traffic ingest``, ``drift`` and ``audit-sample``: live traffic and its drift.

The work is :mod:`dissensus.warehouse.traffic` (ingest), :mod:`dissensus.analytics.drift`
(``report``, ``audit``); scoring the traffic is ``dissensus score RUN --traffic``
(:mod:`dissensus.analytics.jobs.traffic`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dissensus.analytics.cli.common import (
    console,
    errors_in_words,
    open_warehouse,
    print_ingest_report,
    render_frame,
    require_choice,
    row_progress,
    run_or_fail,
    write_json,
)
from dissensus.warehouse.errors import DissensusError

if TYPE_CHECKING:
    import duckdb

traffic_app = typer.Typer(help="Logged assistant turns (live traffic).", no_args_is_help=True)


@traffic_app.command("ingest")
def ingest(
    files: Annotated[list[Path], typer.Argument(help="JSONL, CSV or Parquet files (.gz too).")],
    strict: Annotated[bool, typer.Option(help="Store nothing from a file with a bad row.")
                      ] = False,
) -> None:
    """Ingest traffic: prompt, response, created_at per turn (plus optional fields)."""
    from dissensus.warehouse.traffic import ingest_traffic_file

    with open_warehouse() as con:
        for path in files:
            with row_progress(f"ingest {path.name}") as advance:
                report = ingest_traffic_file(con, path, strict=strict, progress=advance)
            print_ingest_report(path, report)


def _newest_scoring_run(con: duckdb.DuckDBPyConnection, say: bool) -> str:
    """The run that scored the traffic last (said on the console when ``say``), or a failure in
    words when none has."""
    from dissensus.warehouse.fits import latest_traffic_run

    return run_or_fail(
        latest_traffic_run(con),
        DissensusError(
            "No reward run has scored the live traffic yet, so there is nothing to compare.",
            expected="traffic scored by a reward run",
            fix="`dissensus traffic ingest FILE`, `dissensus train`, then `dissensus score RUN "
                "--traffic` (or name a run with --run)"),
        "the one that scored the traffic last; --run picks another" if say else None)


def drift(
    run: Annotated[str | None, typer.Option(
        "--run", help="Reward run that scored the traffic (default: the one that scored it "
        "last).")] = None,
    window: Annotated[str, typer.Option(help="day or week.")] = "week",
    baseline: Annotated[str | None, typer.Option(
        help="Compare with this traffic window (e.g. 2026-W23) instead of the training data.")
    ] = None,
    fdr: Annotated[float, typer.Option("--fdr", help="False-discovery rate of the alarms.")
                   ] = 0.05,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Drift of live traffic per window and category, with alarms in words."""
    from dissensus.analytics.drift.report import DriftSettings, drift_report, report_json

    require_choice(window, ("week", "day"), "window", "--window")
    require_choice(fmt, ("table", "json"), "format", "--format")
    with open_warehouse(read_only=True) as con:
        run = run or _newest_scoring_run(con, fmt == "table")
        report = drift_report(con, run, DriftSettings(window=window, baseline=baseline, q=fdr))
    if fmt == "json":
        write_json(report_json(report))
        return
    import polars as pl

    heads = [c for c in report.cells.columns if c.startswith("shift_")]
    # the ensemble column only for runs trained with an ensemble (null everywhere otherwise)
    ensemble = [c for c in ("share_ensemble_extrapolating",)
                if report.cells[c].null_count() < report.cells.height]
    shown = report.cells.select(
        "window", "category", "n", "share_extrapolating", "baseline_share", "p_support",
        "p_mmd", "contested_share", *ensemble, *heads, "alarm",
    ).with_columns(
        [(pl.col(c) * 100).round(1).alias(c)
         for c in ("share_extrapolating", "baseline_share", "contested_share", *ensemble)]
        + [pl.col(c).round(4) for c in ("p_support", "p_mmd")]
        + [pl.col(c).round(2) for c in heads])
    console.print(render_frame(shown, f"drift of run {run} (shares in %)", 60))
    for note in report.notes:
        console.print(f"  note: {note}", highlight=False)
    if not report.alarms:
        console.print("[green]no alarm[/]: no window and category differs from the reference "
                      "beyond chance")
    for alarm in report.alarms:
        console.print(f"[bold red]ALARM[/] {alarm}", highlight=False)


def audit_sample(
    run: Annotated[str | None, typer.Option(
        "--run", help="Reward run that scored the traffic (default: the one that scored it "
        "last).")] = None,
    n: Annotated[int, typer.Option("--n", help="Number of turns to pick.")] = 200,
    strategy: Annotated[str, typer.Option(help="extrapolating, contested or stratified.")
                        ] = "extrapolating",
    out: Annotated[Path, typer.Option(help="Comparison file to write (.jsonl or .csv); single "
                                      "turns go beside it as <name>.single.jsonl.")
                   ] = Path("audit_sample.jsonl"),
) -> None:
    """Pick live turns for human review, with the reason for each, in the comparison format."""
    from dissensus.analytics.drift.audit import STRATEGIES, audit_sample, write_audit_sample

    require_choice(strategy, STRATEGIES, "strategy", "--strategy")
    with open_warehouse(read_only=True) as con:
        run = run or _newest_scoring_run(con, True)
        sample = audit_sample(con, run, n, strategy)
    with errors_in_words():
        paths = write_audit_sample(sample, out)
    console.print(f"audit batch [bold]{sample.batch}[/]: {sample.pairs.height} pairs against "
                  f"another model's reply, {sample.singles.height} single turns for rating")
    for note in sample.notes:
        console.print(f"  note: {note}", highlight=False)
    for name, path in paths.items():
        console.print(f"  {name}: {path}")
    console.print("  reviewers add reviewer_id and choice; then `dissensus ingest` the pairs "
                  "(training caps each audit batch's weight: --set audit_batch_cap=0.1)")


def register(app: typer.Typer) -> None:
    """Add ``traffic`` (ingest), ``drift`` and ``audit-sample`` to ``app``."""
    app.add_typer(traffic_app, name="traffic")
    app.command()(drift)
    app.command("audit-sample")(audit_sample)
