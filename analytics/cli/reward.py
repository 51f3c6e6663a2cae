"""``dissensus train``, ``evaluate`` and ``score``: reward models on the warehouse.

The work is :mod:`dissensus.analytics.jobs.reward` (``train_run``, ``evaluate_run``,
``score_run``) over :mod:`dissensus.models.reward` (``pipeline``, ``train``, ``evaluate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dissensus.analytics.cli.common import (
    build_config,
    console,
    embedding_progress,
    fail,
    log,
    open_warehouse,
    parse_settings,
    require_choice,
    row_progress,
)
from dissensus.models.reward.config import KINDS


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


def evaluate(
    run: Annotated[str, typer.Argument(help="Run id from `dissensus train`.")],
) -> None:
    """Held-out accuracy (consensus, per school), calibration and proxy probes of a run."""
    from dissensus.analytics.jobs.reward import evaluate_run

    with open_warehouse(read_only=True) as con, embedding_progress() as progress:
        metrics = evaluate_run(con, run, log=console.print, progress=progress)
    console.print_json(json.dumps(metrics))


def score(
    run: Annotated[str, typer.Argument(help="Run id from `dissensus train`.")],
    traffic: Annotated[bool, typer.Option(
        "--traffic", help="Score every traffic turn (stored with drift signals).")] = False,
    input_file: Annotated[Path | None, typer.Option(
        "--input", help="Score a file of prompt/response rows without storing it.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Where --input's scores go (.jsonl, .csv or .parquet).")] = None,
) -> None:
    """Write reward_scores for every response and head of a run (or score traffic / a file)."""
    from dissensus.analytics.jobs.reward import score_run

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
