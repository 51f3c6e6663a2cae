"""Deployment drift end to end on a real warehouse file: score traffic, report, audit sample.

The reward run uses the hashing encoder (the drift machinery is encoder-agnostic and this keeps
the test fast); tests/e2e/test_traffic_cli.py runs the same path with the real encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch

from dissensus.analytics.drift.audit import audit_sample, write_audit_sample
from dissensus.analytics.drift.report import DriftSettings, drift_report
from dissensus.analytics.jobs.reward import train_run
from dissensus.analytics.jobs.traffic import load_scorer, score_rows, score_traffic
from dissensus.models.reward.config import make_config
from dissensus.models.reward.data import load_preferences
from dissensus.models.reward.oracle import write_oracle_fit
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic, write_traffic
from dissensus.warehouse.errors import DissensusError
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.traffic import ingest_traffic_file

torch.set_num_threads(1)
QUICK = {"encoder": "hashing", "epochs": 12, "patience": 4, "hidden": 64, "batch_size": 256}
TRAFFIC = {"turns_per_week": 150, "n_weeks": 4}


def _silent(_: str) -> None:
    pass


def _load_traffic(con, folder: Path, config: TrafficConfig) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    con.execute("DELETE FROM traffic")
    rows, truth = simulate_traffic(config)
    paths = write_traffic(rows, truth, folder / f"traffic-{config.seed}")
    assert ingest_traffic_file(con, paths["traffic"]).accepted == rows.height
    return truth


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("drift")
    world = simulate_world(WorldConfig(n_comparisons=1500, seed=3))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    con = connect(folder / "w.duckdb")
    ingest_file(con, folder / "comparisons.parquet")
    write_oracle_fit(con, world.judgments, world.reviewers, len(world.schools))
    run = train_run(con, "multihead", None, make_config("multihead", **QUICK), log=_silent)
    _load_traffic(con, folder, TrafficConfig(**TRAFFIC, drift_from_week=99, seed=11))
    score_traffic(con, run, log=_silent)
    calm = drift_report(con, run)
    truth = _load_traffic(con, folder, TrafficConfig(**TRAFFIC, drift_from_week=3, seed=12))
    score_traffic(con, run, log=_silent)
    drifted = drift_report(con, run)
    yield con, run, calm, drifted, truth, folder
    con.close()


def test_no_drift_raises_no_alarm(scored) -> None:  # type: ignore[no-untyped-def]
    _, _, calm, _, _, _ = scored
    assert calm.alarms == []
    assert not calm.cells["alarm"].any()
    # beyond the 99th percentile: a few percent (served replies are not exactly the judged
    # ones, and this small world's held-out set has ~50 replies), far from the drifted 50%+
    share = calm.cells["beyond"].sum() / calm.cells["n"].sum()
    assert share < 0.15


def test_drift_fires_on_the_drifted_weeks_and_names_the_categories(scored) -> None:  # type: ignore[no-untyped-def]
    _, _, _, drifted, truth, _ = scored
    first_drift = truth.filter(pl.col("period") == "drift")["week"].min()
    alarms = drifted.cells.filter(pl.col("alarm"))
    assert alarms.height >= 3
    weeks = sorted(drifted.cells["window"].unique().to_list())
    drift_windows = set(weeks[first_drift - 1:])
    assert set(alarms["window"].to_list()) <= drift_windows  # never in the baseline weeks
    named = set(alarms["category"].to_list())
    assert "prescription_refill" in named
    refill = drifted.cells.filter(pl.col("category") == "prescription_refill")
    assert refill["share_extrapolating"].min() > 0.5
    words = " ".join(drifted.alarms)
    assert "prescription_refill" in words and "outside what the reward model was trained on" \
        in words


def test_training_replies_define_the_reference(scored) -> None:  # type: ignore[no-untyped-def]
    con, run, _, _, _, _ = scored
    counts = dict(con.execute(
        "SELECT source, count(*) FROM traffic_signals WHERE run_id = ? GROUP BY 1",
        [run]).fetchall())
    assert counts["traffic"] == con.sql("SELECT count(*) FROM traffic").fetchall()[0][0]
    assert counts["reference"] > counts["calibration"] > 10
    heads = con.execute("SELECT heads FROM traffic_runs WHERE run_id = ?", [run]).fetchall()
    assert heads[0][0] == ["school_0", "school_1", "consensus"]
    n_scores = con.execute("SELECT count(*) FROM traffic_scores WHERE run_id = ?",
                           [run]).fetchall()[0][0]
    assert n_scores == 3 * counts["traffic"]


def test_baseline_window_and_errors_in_words(scored) -> None:  # type: ignore[no-untyped-def]
    con, run, _, drifted, _, _ = scored
    first = sorted(drifted.cells["window"].unique().to_list())[0]
    against = drift_report(con, run, DriftSettings(baseline=first))
    assert any("prescription_refill" in a for a in against.alarms) or against.alarms
    with pytest.raises(DissensusError, match="holds no scored traffic") as error:
        drift_report(con, run, DriftSettings(baseline="1999-W01"))
    assert first in error.value.render()
    with pytest.raises(DissensusError, match="no reward run"):
        drift_report(con, "no-such-run")


def test_audit_sample_picks_the_extrapolated_turns_with_reasons(scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, run, _, _, _, _ = scored
    sample = audit_sample(con, run, n=40, strategy="extrapolating")
    assert sample.pairs.height + sample.singles.height == 40
    assert sample.batch.startswith("audit-")
    categories = pl.concat([sample.pairs["category"], sample.singles["category"]])
    assert (categories == "prescription_refill").mean() > 0.8
    reasons = sample.singles["audit_reason"].to_list()
    assert all("distance" in r and "training" in r for r in reasons)
    paths = write_audit_sample(sample, tmp_path / "audit.jsonl")
    first = json.loads(paths["singles"].read_text().splitlines()[0])
    assert {"prompt", "response", "batch", "audit_reason", "traffic_id"} <= set(first)
    stratified = audit_sample(con, run, n=40, strategy="stratified")
    cells = pl.concat([stratified.pairs, stratified.singles.rename({"response": "response_a"})],
                      how="diagonal")["category"].n_unique()
    assert cells >= 5


def test_reviewed_audit_pairs_ingest_and_their_weight_is_capped(scored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, run, _, _, _, _ = scored
    sample = audit_sample(con, run, n=200, strategy="contested")
    assert sample.pairs.height > 5  # the demo's A/B tests give alternatives
    reviewed = sample.pairs.with_columns(pl.lit("auditor-1").alias("reviewer_id"),
                                         pl.lit("a").alias("choice"))
    write_audit_sample(type(sample)(sample.batch, reviewed, sample.singles.head(0), []),
                       tmp_path / "reviewed.jsonl")
    report = ingest_file(con, tmp_path / "reviewed.jsonl")
    assert report.accepted == reviewed.height
    capped = load_preferences(con, None, audit_batch_cap=0.01)
    audit = capped.comparisons.filter(pl.col("batch") == sample.batch)
    rest = capped.comparisons.filter(pl.col("batch") != sample.batch)
    weight = (audit["weight"] * audit["cap"]).sum()
    assert weight == pytest.approx(0.01 * rest["weight"].sum(), rel=1e-6)
    uncapped = load_preferences(con, None)
    assert uncapped.comparisons["cap"].min() == 1.0


def test_scoring_a_file_keeps_its_columns(scored) -> None:  # type: ignore[no-untyped-def]
    con, run, _, _, _, _ = scored
    scorer = load_scorer(con, run, log=_silent)
    rows = pl.DataFrame({"prompt": ["Can I book a flu shot?", "Refill my metformin please"],
                         "response": ["Yes, Tuesday at 9.", "Sent to your pharmacy."],
                         "id": [1, 2]})
    out = score_rows(scorer, rows)
    assert out["id"].to_list() == [1, 2]
    assert {"score_consensus", "score_school_0", "knn_percentile", "extrapolating",
            "schools_disagree"} <= set(out.columns)


def test_untagged_traffic_gets_its_rates_from_the_tag_classifier(scored) -> None:  # type: ignore[no-untyped-def]
    con, run, _, drifted, _, _ = scored
    assert drifted.cells["refusal_rate"].null_count() == 0  # the demo traffic is tagged
    accuracy = json.loads(con.execute("SELECT tag_model FROM traffic_runs WHERE run_id = ?",
                                      [run]).fetchall()[0][0])
    assert accuracy["refusal"]["held_out_accuracy"] > 0.8
    observed = drifted.cells["refusal_rate"].mean()
    con.execute("CREATE TEMP TABLE kept AS SELECT traffic_id, tags FROM traffic")
    con.execute("UPDATE traffic SET tags = NULL")
    try:
        untagged = drift_report(con, run)
    finally:
        con.execute("UPDATE traffic SET tags = k.tags FROM kept k "
                    "WHERE traffic.traffic_id = k.traffic_id")
    assert any("tag classifier" in note and "refusal" in note for note in untagged.notes)
    predicted = untagged.cells["refusal_rate"].mean()
    assert abs(predicted - observed) < 0.1
    # the embedding tests do not read the tags; only the rates' own tests do
    embedding = ["alarm_support", "alarm_mmd"]
    assert untagged.cells.select(embedding).equals(drifted.cells.select(embedding))


def test_a_fall_in_escalations_under_pressure_raises_its_own_alarm(scored) -> None:  # type: ignore[no-untyped-def]
    con, run, _, _, _, folder = scored
    # only pressure: urgent messages that ask to skip urgent care, half of the replies comply
    pressure = TrafficConfig(turns_per_week=300, n_weeks=4, drift_from_week=3,
                             drifted_urgent_share=0.4, new_type_share=0.0, pressure_share=1.0,
                             seed=13)
    con.execute("CREATE OR REPLACE TEMP TABLE fixture_traffic AS SELECT * FROM traffic")
    try:
        truth = _load_traffic(con, folder, pressure)
        score_traffic(con, run, log=_silent)
        report = drift_report(con, run)
    finally:  # the module's other tests read the fixture's traffic
        con.execute("DELETE FROM traffic")
        con.execute("INSERT INTO traffic SELECT * FROM fixture_traffic")
        score_traffic(con, run, log=_silent)
    weeks = sorted(report.cells["window"].unique().to_list())
    first_drift = truth.filter(pl.col("period") == "drift")["week"].min()
    fell = report.cells.filter(pl.col("rate_changes").list.join(" ").str.contains(
        "escalation on urgent symptoms fell"))
    assert fell.height >= 1
    assert set(fell["category"].to_list()) == {"urgent_symptoms"}
    assert set(fell["window"].to_list()) <= set(weeks[first_drift - 1:])
    assert any("escalation on urgent symptoms fell to" in a for a in report.alarms)
    calm = report.cells.filter(pl.col("window").is_in(weeks[:first_drift - 1]))
    # no rate moves in the calm weeks (this small world's out-of-support test, with about 50
    # held-out replies, is another matter: see test_no_drift_raises_no_alarm)
    assert calm["rate_changes"].list.len().sum() == 0
    assert any("observability rates tested against the window" in n for n in report.notes)
