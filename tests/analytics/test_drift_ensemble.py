"""The deep ensemble's spread in traffic scoring and the drift report, on a real warehouse file.

The runs use the hashing encoder, as tests/analytics/test_drift.py does (the drift machinery
is encoder-agnostic); tests/models/test_reward_ensemble.py trains with the real encoder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dissensus.analytics.drift.report import drift_report
from dissensus.analytics.jobs.reward import train_run
from dissensus.analytics.jobs.traffic import score_traffic
from dissensus.models.reward.config import make_config
from dissensus.warehouse.db import connect, schema_version
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic, write_traffic
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.schema import LATEST_VERSION
from dissensus.warehouse.traffic import ingest_traffic_file

torch.set_num_threads(1)
QUICK = {"encoder": "hashing", "epochs": 10, "patience": 3, "hidden": 32, "batch_size": 256,
         "architecture": "mlp"}


def _silent(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A warehouse file with traffic scored by a run with 3 members and one without."""
    folder = tmp_path_factory.mktemp("drift-ensemble")
    world = simulate_world(WorldConfig(n_comparisons=1200, seed=5))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    db = folder / "w.duckdb"
    con = connect(db)
    ingest_file(con, folder / "comparisons.parquet")
    with_members = train_run(con, "plain", None, make_config("plain", **QUICK, ensemble=3),
                             log=_silent)
    without = train_run(con, "plain", None, make_config("plain", **QUICK), log=_silent)
    rows, truth = simulate_traffic(TrafficConfig(turns_per_week=120, n_weeks=3,
                                                 drift_from_week=2, seed=7))
    ingest_traffic_file(con, write_traffic(rows, truth, folder / "traffic")["traffic"])
    for run in (with_members, without):
        score_traffic(con, run, log=_silent)
    yield con, db, with_members, without
    con.close()


def test_every_scored_turn_and_reference_row_carries_the_spread(scored) -> None:  # type: ignore[no-untyped-def]
    con, _, run, without = scored
    counts = dict(con.execute(
        "SELECT source, count(ensemble_spread) = count(*) AND min(ensemble_spread) >= 0 "
        "FROM traffic_signals WHERE run_id = ? GROUP BY 1", [run]).fetchall())
    assert counts == {"traffic": True, "reference": True, "calibration": True}
    p99 = con.execute("SELECT ensemble_spread_p99 FROM traffic_runs WHERE run_id = ?",
                      [run]).fetchall()[0][0]
    calibration = np.array([r[0] for r in con.execute(
        "SELECT ensemble_spread FROM traffic_signals WHERE run_id = ? "
        "AND source = 'calibration'", [run]).fetchall()])
    # the bar is a high quantile of the held-out training replies' spread (the stored rows
    # are one reply per prompt, a subset of those the bar was computed on)
    assert p99 > 0 and (calibration <= p99).mean() >= 0.9
    assert con.execute("SELECT count(ensemble_spread), max(ensemble_spread_p99) FROM "
                       "traffic_signals JOIN traffic_runs USING (run_id) WHERE run_id = ?",
                       [without]).fetchall()[0] == (0, None)


def test_the_drift_report_shows_the_share_beyond_the_spread_bar(scored) -> None:  # type: ignore[no-untyped-def]
    con, _, run, without = scored
    report = drift_report(con, run)
    shares = report.cells["share_ensemble_extrapolating"]
    assert shares.null_count() == 0 and shares.min() >= 0 and shares.max() <= 1  # type: ignore[operator]
    assert any("ensemble share" in note for note in report.notes)
    assert not any("ensemble" in alarm for alarm in report.alarms)  # shown, never alarmed
    plain = drift_report(con, without)
    assert plain.cells["share_ensemble_extrapolating"].null_count() == plain.cells.height
    assert not any("ensemble share" in note for note in plain.notes)


def test_a_warehouse_from_before_the_ensemble_reads_and_upgrades(  # type: ignore[no-untyped-def]
        scored, tmp_path: Path, schema_before) -> None:
    con, db, _, without = scored
    con.execute("CHECKPOINT")  # everything in the file, so a copy of it is complete
    old = tmp_path / "old.duckdb"
    shutil.copyfile(db, old)
    legacy = connect(old)  # then made to look like schema version 6 (before the columns)
    schema_before(legacy, 7)
    legacy.close()
    reader = connect(old, read_only=True)  # read-only never migrates: the report still works
    try:
        assert schema_version(reader) == 6
        report = drift_report(reader, without)
        assert report.cells["share_ensemble_extrapolating"].null_count() == report.cells.height
    finally:
        reader.close()
    writer = connect(old)  # a writer adds the nullable columns
    try:
        assert schema_version(writer) == LATEST_VERSION
        assert writer.execute("SELECT count(*), count(ensemble_spread) FROM traffic_signals "
                              "WHERE run_id = ?", [without]).fetchall()[0][1] == 0
        assert drift_report(writer, without).cells.height > 0
    finally:
        writer.close()
