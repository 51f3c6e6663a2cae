"""`dissensus train / evaluate / score`: call :func:`register` with the typer app."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dissensus.models.reward.config import KINDS


@contextmanager
def embedding_progress() -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr for texts being embedded; it appears only when some are missing from the
    cache, and only on a terminal (or with DISSENSUS_PROGRESS=1)."""
    from dissensus.analytics.cli import errors

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


def register(app: typer.Typer) -> None:
    """Add the reward-model commands to ``app``."""

    @app.command()
    def train(
        kind: Annotated[str, typer.Option(help="plain, weighted, multihead or distributional.")
                        ] = "plain",
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
            help="'mlp' (trunk over prompt and response) or 'linear' (ridge-regularised linear "
            "reward on the response; set its strength with --set l2=0.0006).")] = "mlp",
        length_features: Annotated[bool, typer.Option(
            help="Append log character and word counts to each embedding.")] = False,
        finetune_encoder: Annotated[bool, typer.Option(
            help="Also fine-tune the encoder's top layers with the head (meant for a GPU; "
            "see --set finetune_layers=, finetune_epochs=, finetune_lr=).")] = False,
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="Any other config field, as FIELD=JSON (e.g. --set lr=0.001).")] = None,
    ) -> None:
        """Train a reward model and record the run in reward_runs."""
        from dissensus.analytics.cli import State, console, fail
        from dissensus.analytics.jobs.reward import train_run
        from dissensus.models.reward.config import make_config
        from dissensus.warehouse.db import connect
        from dissensus.warehouse.errors import DissensusError

        if kind not in KINDS:
            fail(DissensusError(f"Unknown kind '{kind}'.", expected=", ".join(KINDS),
                                fix="pass --kind plain"))
        fields: dict[str, object] = {"encoder": encoder, "device": device, "epochs": epochs,
                                     "split_by": split_by, "ties": ties, "seed": seed,
                                     "finetune_encoder": finetune_encoder,
                                     "architecture": architecture,
                                     "length_features": length_features}
        for item in set_ or []:
            key, _, value = item.partition("=")
            try:
                fields[key] = json.loads(value)
            except json.JSONDecodeError:
                fields[key] = value
        try:
            config = make_config(kind, **fields)
        except ValueError as error:
            fail(DissensusError(f"Invalid settings: {error}", fix="check the --set fields"))
            return
        try:
            con = connect(State.db)
            try:
                with embedding_progress() as progress:
                    run_id = train_run(con, kind, fit, config, log=console.print,
                                       progress=progress)
            finally:
                con.close()
        except DissensusError as error:
            fail(error)
            return
        console.print(f"[bold green]run {run_id}[/]")

    @app.command()
    def evaluate(
        run: Annotated[str, typer.Argument(help="Run id from `dissensus train`.")],
    ) -> None:
        """Held-out accuracy (consensus, per school), calibration and proxy probes of a run."""
        from dissensus.analytics.cli import State, console, fail
        from dissensus.analytics.jobs.reward import evaluate_run
        from dissensus.warehouse.db import connect
        from dissensus.warehouse.errors import DissensusError

        try:
            con = connect(State.db, read_only=True)
            try:
                with embedding_progress() as progress:
                    metrics = evaluate_run(con, run, log=console.print, progress=progress)
            finally:
                con.close()
        except DissensusError as error:
            fail(error)
            return
        console.print_json(json.dumps(metrics))

    @app.command()
    def score(run: Annotated[str, typer.Argument(help="Run id from `dissensus train`.")]) -> None:
        """Write reward_scores for every response and head of a run."""
        from dissensus.analytics.cli import State, console, fail
        from dissensus.analytics.jobs.reward import score_run
        from dissensus.warehouse.db import connect
        from dissensus.warehouse.errors import DissensusError

        try:
            con = connect(State.db)
            try:
                with embedding_progress() as progress:
                    n = score_run(con, run, log=console.print, progress=progress)
            finally:
                con.close()
        except DissensusError as error:
            fail(error)
            return
        console.print(f"wrote {n:,} scores")
