"""`dissensus export`: preferences that reward-model trainers load as they are."""

from __future__ import annotations

import json
import math
from datetime import datetime

import datasets
import polars as pl
import pytest
from typer.testing import CliRunner

from dissensus.analytics.cli import app

RUNNER = CliRunner()


@pytest.fixture
def exported(tmp_path, warehouse, vote, fake_fit):
    """A warehouse of 3 reviewers x 4 prompts (one tie) and a fake fit whose weights are known;
    returns ``(db path, run(*args) -> result)``."""
    rows = []
    for i in range(4):
        item = {"response_a": f"long careful reply {i}", "response_b": f"short {i}"}
        rows.append(vote("r1", i, "a", **item))
        rows.append(vote("r2", i, "a" if i else "tie", **item))
        rows.append(vote("r3", i, "b", **item))
    con = warehouse(rows)
    db = str(tmp_path / "w.duckdb")  # where the warehouse fixture puts it
    ids = con.sql("SELECT comparison_id, reviewer_id, pair_id FROM comparisons").pl()
    weights = ids.select("comparison_id", weight=pl.when(pl.col("reviewer_id") == "r3")
                         .then(0.2).otherwise(0.9),
                         school_weights=pl.when(pl.col("reviewer_id") == "r3")
                         .then(pl.lit([0.0, 0.2])).otherwise(pl.lit([0.9, 0.0])))
    # the pool is sure that reply a is better (p_first follows the canonical orientation)
    pairs = con.sql("""
        SELECT DISTINCT pair_id, prompt_id, 3 AS n_votes,
               CASE WHEN a_is_response_1 THEN 0.9 ELSE 0.1 END AS p_first, 'clear' AS verdict
        FROM comparisons""").pl()
    fake_fit(con, "fit-1", created_at=datetime(2026, 3, 1), n_schools=2, weights=weights,
             pairs=pairs)
    con.close()

    def run(*args: str):
        return RUNNER.invoke(app, ["--db", db, "export", *args])

    return run


def test_trl_export_loads_with_datasets_as_the_trainers_do(exported, tmp_path) -> None:
    out = tmp_path / "prefs.jsonl"
    result = exported(str(out))
    assert result.exit_code == 0, result.output
    assert "11 preferences written" in result.output and "1 ties left out" in result.output
    # TRL's RewardTrainer and OpenRLHF load JSON lines with the datasets library
    data = datasets.load_dataset("json", data_files=str(out), split="train")
    assert set(data.column_names) == {"prompt", "chosen", "rejected", "margin"}
    assert data.num_rows == 11
    for row in data:
        if row["chosen"].startswith("long careful"):
            assert row["rejected"].startswith("short")
            assert row["margin"] == pytest.approx(math.log(0.9 / 0.1))
        else:  # r3 went against a sure consensus
            assert row["margin"] == pytest.approx(math.log(0.1 / 0.9))


def test_weights_schools_and_min_weight_in_parquet(exported, tmp_path) -> None:
    out = tmp_path / "prefs.parquet"
    result = exported(str(out), "--format", "parquet", "--min-weight", "0.5")
    assert result.exit_code == 0, result.output
    data = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert set(data["reviewer_id"]) == {"r1", "r2"}  # r3's likely lapses left out
    assert set(data["weight"]) == {0.9}
    assert "4 below --min-weight 0.5" in result.output
    school = tmp_path / "school1.jsonl"
    result = exported(str(school), "--format", "jsonl", "--school", "1")
    rows = [json.loads(line) for line in school.read_text().splitlines()]
    assert {r["reviewer_id"]: r["weight"] for r in rows}["r3"] == pytest.approx(0.2)
    assert {r["weight"] for r in rows if r["reviewer_id"] == "r1"} == {0.0}


def test_export_refuses_in_words(exported, tmp_path) -> None:
    out = tmp_path / "prefs.jsonl"
    out.write_text("keep me\n")
    result = exported(str(out))
    assert result.exit_code == 2 and "exists" in result.output
    assert out.read_text() == "keep me\n"  # nothing replaced
    for args, words in ((["--school", "5"], "has no school 5"),
                        (["--fit", "nope"], "no fit 'nope'"),
                        (["--format", "xml"], "Unknown format")):
        result = exported(str(tmp_path / "other.jsonl"), *args)
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output
    plain = tmp_path / "plain.jsonl"
    result = exported(str(plain), "--no-fit")
    assert result.exit_code == 0 and "no fit" in result.output
    assert set(json.loads(plain.read_text().splitlines()[0])) == {"prompt", "chosen", "rejected"}
