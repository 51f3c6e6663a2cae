"""`dissensus traffic ingest`, `score --traffic`, `score --input`, `drift` and `audit-sample`
as a user runs them, with the errors a user meets said in words (never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from dissensus.analytics.cli import app
from dissensus.analytics.jobs.reward import train_run
from dissensus.models.reward.config import make_config
from dissensus.models.reward.oracle import write_oracle_fit
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic, write_traffic
from dissensus.warehouse.ingest import ingest_file

QUICK = {"encoder": "hashing", "epochs": 8, "patience": 3, "hidden": 32}


def run_cli(db: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["--db", str(db), *args], env={"COLUMNS": "200"})
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, output
    assert "Traceback" not in output
    return output


def build(folder: Path, encoder: dict[str, object], turns: int, seed: int) -> tuple[Path, str]:
    """A warehouse file with the demo world, an oracle fit and a multi-head run; the traffic
    file written beside it (drift from week 3 of 4)."""
    world = simulate_world(WorldConfig(n_comparisons=1500, seed=seed))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    db = folder / "w.duckdb"
    con = connect(db)
    ingest_file(con, folder / "comparisons.parquet")
    write_oracle_fit(con, world.judgments, world.reviewers, len(world.schools))
    run = train_run(con, "multihead", None, make_config("multihead", **encoder),
                    log=lambda _: None)
    con.close()
    rows, truth = simulate_traffic(TrafficConfig(turns_per_week=turns, n_weeks=4,
                                                 drift_from_week=3, seed=seed))
    write_traffic(rows, truth, folder)
    return db, run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build(tmp_path_factory.mktemp("traffic-cli"), QUICK, 160, 4)


def test_the_whole_loop_with_errors_in_words(built: tuple[Path, str], tmp_path: Path) -> None:
    db, run = built
    folder = db.parent
    out = run_cli(db, "traffic", "ingest", str(folder / "traffic.jsonl"))
    assert "0 quarantined" in out
    again = run_cli(db, "traffic", "ingest", str(folder / "traffic.jsonl"))
    assert "nothing added" in again
    (tmp_path / "no_time.jsonl").write_text('{"prompt": "a", "response": "b"}\n')
    bad = run_cli(db, "traffic", "ingest", str(tmp_path / "no_time.jsonl"), code=2)
    assert "created_at" in bad and "fix:" in bad
    assert "has not scored the traffic yet" in run_cli(db, "drift", "--run", run, code=2)
    assert "No reward run has scored the live traffic yet" in run_cli(db, "drift", code=2)
    assert "no reward run 'nope'" in run_cli(db, "score", "nope", "--traffic", code=2)
    run_cli(db, "score", run, "--traffic")
    assert "no reward run 'nope'" in run_cli(db, "drift", "--run", "nope", code=2)
    report = json.loads(run_cli(db, "drift", "--run", run, "--format", "json"))
    assert any("prescription_refill" in a for a in report["alarms"]), (
        report["alarms"], [(c["window"], c["category"], c["n"], c["p_support"], c["p_mmd"])
                           for c in report["cells"]])
    weeks = sorted({c["window"] for c in report["cells"]})
    assert not any(a.startswith(tuple(weeks[:2])) for a in report["alarms"])
    table = run_cli(db, "drift", "--run", run, "--baseline", weeks[0])
    assert "ALARM" in table
    # no --run: the run that scored the traffic last, named, with the same report
    newest = run_cli(db, "drift", "--baseline", weeks[0])
    assert f"run {run} (the one that scored the traffic last" in newest
    assert newest.count("ALARM") == table.count("ALARM")
    empty = run_cli(db, "drift", "--run", run, "--baseline", "1999-W01", code=2)
    assert "holds no scored traffic" in empty and weeks[0] in empty
    out = run_cli(db, "audit-sample", "--run", run, "--n", "30", "--out",
                  str(tmp_path / "audit.jsonl"))
    assert "audit batch audit-" in out
    written = [json.loads(line) for path in tmp_path.glob("audit*.jsonl")
               for line in path.read_text().splitlines()]
    assert len(written) == 30 and all(r["audit_reason"] for r in written)
    pl.DataFrame({"prompt": ["Can I get a refill of my inhaler?"], "response": ["Sent."],
                  "ticket": ["T-1"]}).write_csv(tmp_path / "rows.csv")
    run_cli(db, "score", run, "--input", str(tmp_path / "rows.csv"), "--output",
            str(tmp_path / "scored.csv"))
    scored = pl.read_csv(tmp_path / "scored.csv")
    assert scored["ticket"].to_list() == ["T-1"] and "score_consensus" in scored.columns
    assert "--output" in run_cli(db, "score", run, "--input", str(tmp_path / "rows.csv"),
                                 code=2)


def test_a_run_whose_encoder_is_gone_fails_in_words(built: tuple[Path, str]) -> None:
    db, run = built
    # on its own (another worker, or -k) the traffic is not in yet; a second ingest is a no-op
    run_cli(db, "traffic", "ingest", str(db.parent / "traffic.jsonl"))
    folder = Path(duckdb.connect(str(db), read_only=True).execute(
        "SELECT checkpoint_path FROM reward_runs WHERE run_id = ?", [run]).fetchall()[0][0])
    meta_path = folder / "reward_model.json"
    original = meta_path.read_text()
    meta = json.loads(original)
    meta["config"]["encoder"] = str(db.parent / "moved-encoder")
    meta_path.write_text(json.dumps(meta))
    try:
        out = run_cli(db, "score", run, "--traffic", code=2)
        assert "Unknown encoder" in out and "moved-encoder" in out
    finally:
        meta_path.write_text(original)


@pytest.mark.slow
def test_the_real_encoder_finds_the_drifted_weeks_only(tmp_path: Path) -> None:
    db, run = build(tmp_path, {"encoder": "all-MiniLM-L6-v2", "max_seq_length": 64,
                               "epochs": 8, "patience": 3, "hidden": 64}, 160, 6)
    run_cli(db, "traffic", "ingest", str(tmp_path / "traffic.jsonl"))
    run_cli(db, "score", run, "--traffic")
    report = json.loads(run_cli(db, "drift", "--run", run, "--format", "json"))
    weeks = sorted({c["window"] for c in report["cells"]})
    alarmed = {(c["window"], c["category"]) for c in report["cells"] if c["alarm"]}
    assert alarmed, report["notes"]
    assert {w for w, _ in alarmed} <= set(weeks[2:])
    assert any(c == "prescription_refill" for _, c in alarmed)
