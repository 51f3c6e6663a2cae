"""``dissensus train``, ``evaluate`` and ``score``: reward models on the warehouse.

The work is :mod:`dissensus.analytics.jobs.reward` (``train_run``, ``evaluate_run``,
``score_run``) over :mod:`dissensus.models.reward` (``pipeline``, ``train``, ``evaluate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dissensus.analytics.cli.common import (
    build_config,
    console,
    embedding_progress,
    errors,
    fail,
    log,
    open_warehouse,
    parse_settings,
    require_choice,
    row_progress,
    run_or_fail,
)
from dissensus.models.reward.config import KINDS

if TYPE_CHECKING:
    import duckdb


def train(
    kind: Annotated[str, typer.Option(
        help="plain, weighted, multihead, distributional or mixture (schools learned with the "
        "heads; see --set n_schools=, em_rounds=).")] = "plain",
    fit: Annotated[str | None, typer.Option(
        "--fit", help="Annotator fit to take weights from (default: the newest).")] = None,
    encoder: Annotated[str, typer.Option(
        help="'all-MiniLM-L6-v2' (offline default), a local model folder, or 'hashing'.")
    ] = "all-MiniLM-L6-v2",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping).")] = 60,
    split_by: Annotated[str, typer.Option(help="Hold out whole 'pair's or 'prompt's.")
                        ] = "pair",
    ties: Annotated[str, typer.Option(help="'half' or 'davidson'.")] = "half",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    architecture: Annotated[str, typer.Option(
        help="'auto' (the MLP and the linear head with length features at three ridge "
        "strengths, the lowest validation loss kept), 'mlp' (trunk over prompt and response) or "
        "'linear' (ridge-regularised linear reward on the response; set its strength with "
        "--set l2=0.0006).")] = "auto",
    length_features: Annotated[bool, typer.Option(
        help="Append log character and word counts to each embedding.")] = False,
    finetune_encoder: Annotated[bool, typer.Option(
        help="Also fine-tune the encoder's top layers with the head (meant for a GPU; "
        "see --set finetune_layers=, finetune_epochs=, finetune_lr=).")] = False,
    ensemble: Annotated[int, typer.Option(
        help="Members of a small deep ensemble of the main reward head (1: none; 2-16: also "
        "train N-1 copies on bootstrap resamples, so scoring reports their spread as "
        "`ensemble_spread`; training takes about N times as long).")] = 1,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any other config field, as FIELD=JSON (e.g. --set lr=0.001).")] = None,
) -> None:
    """Train a reward model and record the run in reward_runs."""
    from dissensus.analytics.jobs.reward import train_run
    from dissensus.models.reward.config import CONFIG_CLASSES, make_config

    require_choice(kind, KINDS, "kind", "--kind")
    fields: dict[str, object] = {"encoder": encoder, "device": device, "epochs": epochs,
                                 "split_by": split_by, "ties": ties, "seed": seed,
                                 "finetune_encoder": finetune_encoder,
                                 "architecture": architecture,
                                 "length_features": length_features, "ensemble": ensemble}
    fields |= parse_settings(set_)
    config = build_config(CONFIG_CLASSES[kind], lambda **f: make_config(kind, **f), fields,
                          "train")
    with open_warehouse() as con, embedding_progress() as progress:
        run_id = train_run(con, kind, fit, config, log=console.print, progress=progress)
    console.print(f"[bold green]run {run_id}[/]")


def _newest_run(con: duckdb.DuckDBPyConnection, what: str, say: bool = True) -> str:
    """The newest reward run (said on the console when ``say``), or a failure in words."""
    from dissensus.warehouse.errors import DissensusError
    from dissensus.warehouse.fits import latest_run

    return run_or_fail(
        latest_run(con),
        DissensusError(f"The warehouse holds no reward run to {what}.",
                       expected="a run made by `dissensus train`",
                       fix="run `dissensus train` first"),
        f"the newest; name another to {what} it" if say else None)


def evaluate(
    run: Annotated[str | None, typer.Argument(
        help="Run id from `dissensus train` (default: the newest run).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Held-out accuracy (consensus, per school), calibration and proxy probes of a run."""
    from dissensus.analytics.jobs.reward import evaluate_run

    require_choice(fmt, ("table", "json"), "format", "--format")
    with open_warehouse(read_only=True) as con, embedding_progress() as progress:
        run = run or _newest_run(con, "evaluate", say=fmt == "table")
        # with --format json the log goes to stderr, so that stdout is the JSON alone
        metrics = evaluate_run(con, str(run), progress=progress, log=console.print
                               if fmt == "table" else lambda m: errors.print(m, highlight=False))
    if fmt == "json":
        console.print_json(json.dumps(metrics))
        return
    for table in evaluation_tables(metrics):
        console.print(table)


def _figure(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits}f}"  # NaN: no figure
    return "" if value is None else str(value)


def evaluation_tables(metrics: dict) -> list[Table]:
    """``dissensus evaluate``'s figures as tables a person reads: the held-out summary, accuracy
    per school where the run has schools, and the calibration bins."""
    comparisons = metrics.get("comparisons") or {}
    rows = [
        ("held-out split", metrics.get("split"), "the part of the data the run did not train on"),
        ("pairs", metrics.get("n_pairs"), f"{_figure(metrics.get('n_labelled_pairs'))} with a "
                                         "consensus label"),
        ("accuracy vs the consensus", metrics.get("accuracy_consensus"),
         "share of pairs whose consensus side the reward ranks higher"),
        ("length-only baseline", metrics.get("length_baseline_accuracy"),
         "the same pairs, the longer reply taken as better"),
        ("worst school's accuracy", metrics.get("worst_school_accuracy"),
         "the lowest of the per-school figures below"),
        ("comparisons: accuracy", comparisons.get("accuracy"),
         f"{_figure(comparisons.get('n'))} held-out judgments"),
        ("comparisons: ROC AUC", comparisons.get("roc_auc"), ""),
        ("comparisons: cross-entropy", comparisons.get("cross_entropy"), "lower is better"),
        ("calibration error (ECE)", metrics.get("ece"), "predicted against observed, binned"),
        ("contested pairs: ROC AUC", metrics.get("contested_auc"),
         "how well the run's disagreement signal finds the contested pairs"),
        ("reward vs length (Spearman)", metrics.get("reward_length_spearman"),
         "near 0: the reward is not a length proxy"),
    ]
    summary = Table(title="held-out evaluation")
    for name in ("figure", "value", "what it is"):
        summary.add_column(name, overflow="fold")
    for name, value, what in rows:
        if value is not None:
            summary.add_row(name, _figure(value), what)
    tables = [summary]
    per_school = metrics.get("accuracy_per_school") or {}
    if per_school:
        schools = Table(title="accuracy against each school's own side")
        schools.add_column("school")
        schools.add_column("accuracy")
        for school, value in per_school.items():
            schools.add_row(str(school), _figure(value))
        tables.append(schools)
    bins = metrics.get("reliability") or []
    if bins:
        calibration = Table(title="calibration (held-out judgments by predicted probability)")
        for name in ("predicted", "n", "mean predicted", "observed"):
            calibration.add_column(name)
        for b in bins:
            calibration.add_row(f"{b['low']:.1f}-{b['high']:.1f}", str(b["n"]),
                                _figure(b.get("mean_predicted")), _figure(b.get("observed")))
        tables.append(calibration)
    return tables


def score(
    run: Annotated[str | None, typer.Argument(
        help="Run id from `dissensus train` (default: the newest run).")] = None,
    traffic: Annotated[bool, typer.Option(
        "--traffic", help="Score every traffic turn (stored with drift signals).")] = False,
    input_file: Annotated[Path | None, typer.Option(
        "--input", help="Score a file of prompt/response rows without storing it.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Where --input's scores go (.jsonl, .csv or .parquet).")] = None,
) -> None:
    """Write reward_scores for every response and head of a run (or score traffic / a file)."""
    from dissensus.analytics.jobs.reward import score_run

    if run is None:
        with open_warehouse(read_only=True) as con:
            run = _newest_run(con, "score with")
    if traffic or input_file is not None:
        _score_live(run, traffic, input_file, output)
        return
    with open_warehouse() as con, embedding_progress() as progress:
        n = score_run(con, run, log=console.print, progress=progress)
    console.print(f"wrote {n:,} scores")


def _score_live(run: str, traffic: bool, input_file: Path | None, output: Path | None) -> None:
    """``score --traffic`` (stored) or ``score --input FILE --output FILE`` (not stored)."""
    from dissensus.analytics.jobs import traffic as jobs
    from dissensus.warehouse.errors import DissensusError

    if input_file is not None and output is None:
        fail(DissensusError("--input needs --output: where should the scores go?",
                            expected="--output FILE (.jsonl, .csv or .parquet)",
                            fix=f"dissensus score {run} --input {input_file} "
                            "--output scores.jsonl"))
    if traffic:
        with open_warehouse() as con, embedding_progress() as progress, \
                row_progress("scoring traffic") as advance:
            jobs.score_traffic(con, run, progress=progress, turns_done=advance, log=log)
    if input_file is not None and output is not None:
        with open_warehouse(read_only=True) as con, embedding_progress() as progress:
            rows = jobs.read_rows(input_file)
            scorer = jobs.load_scorer(con, run, progress=progress, log=log)
            scored = jobs.score_rows(scorer, rows, progress)
            jobs.write_rows(scored, output)
        console.print(f"scored {scored.height:,} rows -> {output}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``evaluate`` and ``score`` to ``app``."""
    for command in (train, evaluate, score):
        app.command()(command)
