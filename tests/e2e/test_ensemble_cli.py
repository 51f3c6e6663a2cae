"""`dissensus train --ensemble N`, then `score --input/--output` writes `ensemble_spread`, as a
user runs them (the hashing encoder keeps it fast; tests/models/test_reward_ensemble.py trains
with the real one)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from dissensus.analytics.cli import app
from dissensus.warehouse.demo import WorldConfig, simulate_world


def run_cli(db: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["--db", str(db), *args], env={"COLUMNS": "200"})
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, output
    assert "Traceback" not in output
    return output


def test_train_with_an_ensemble_then_score_a_file(tmp_path: Path) -> None:
    world = simulate_world(WorldConfig(n_comparisons=600, seed=2))
    world.comparisons.write_parquet(tmp_path / "comparisons.parquet")
    db = tmp_path / "w.duckdb"
    run_cli(db, "ingest", str(tmp_path / "comparisons.parquet"))
    assert "--ensemble" in run_cli(db, "train", "--help")
    out = run_cli(db, "train", "--encoder", "hashing", "--epochs", "6", "--architecture", "mlp",
                  "--set", "hidden=16", "--ensemble", "2")
    assert "ensemble: 1 more copy of the reward head" in out
    run = re.findall(r"run (plain-\S+)", out)[-1]
    pl.DataFrame({"prompt": ["Can I book a check-up next week?", "Wie spät ist es?"],
                  "response": ["Yes, Tuesday at 10 is free.", "Es ist zehn Uhr."],
                  "ticket": ["T-1", "T-2"]}).write_csv(tmp_path / "rows.csv")
    run_cli(db, "score", run, "--input", str(tmp_path / "rows.csv"), "--output",
            str(tmp_path / "scored.csv"))
    scored = pl.read_csv(tmp_path / "scored.csv")
    assert scored["ticket"].to_list() == ["T-1", "T-2"]
    assert {"score_reward", "knn_percentile", "ensemble_spread"} <= set(scored.columns)
    assert (scored["ensemble_spread"] >= 0).all()
    bad = " ".join(run_cli(db, "train", "--encoder", "hashing", "--ensemble", "0",
                           code=2).split())  # the console wraps long lines
    assert "ensemble: Input should be greater than or equal to 1 (got 0)" in bad


def test_evaluate_reads_the_newest_run_as_tables_or_json(tmp_path: Path) -> None:
    import json

    world = simulate_world(WorldConfig(n_comparisons=600, seed=3))
    world.comparisons.write_parquet(tmp_path / "comparisons.parquet")
    db = tmp_path / "w.duckdb"
    run_cli(db, "ingest", str(tmp_path / "comparisons.parquet"))
    assert "no reward run to evaluate" in " ".join(run_cli(db, "evaluate", code=2).split())
    assert "no reward run to score with" in " ".join(run_cli(db, "score", code=2).split())
    out = run_cli(db, "train", "--encoder", "hashing", "--epochs", "4")
    run = re.findall(r"run (plain-\S+)", out)[-1]
    table = run_cli(db, "evaluate")  # no run named: the newest
    scored = " ".join(run_cli(db, "score").split())
    assert f"run {run} (the newest" in scored and f"head(s) for run {run}" in scored
    assert f"run {run} (the newest" in table
    assert "accuracy vs the consensus" in table and "calibration" in table
    result = CliRunner().invoke(app, ["--db", str(db), "evaluate", run, "--format", "json"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # stdout is the JSON alone; the log went to stderr
    assert 0.0 <= metrics["accuracy_consensus"] <= 1.0
    shown = re.search(r"accuracy vs the consensus\s*│\s*([0-9.]+)", table)
    assert shown and float(shown.group(1)) == round(metrics["accuracy_consensus"], 3)
    # `status` lists the run, so a user finds the id the other commands take
    status = run_cli(db, "status")
    assert run in status
    # (the table may fold its details column: the figure is checked on its own)
    assert "consensus" in status and f"{metrics['accuracy_consensus']:.3f}" in status
