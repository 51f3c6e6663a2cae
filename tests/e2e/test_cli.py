"""The `dissensus` command end to end, as a user runs it (a real subprocess, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]


def dissensus(*args: str, db: Path, check: bool = True,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "DISSENSUS_DB": str(db), **(extra_env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "dissensus.analytics.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_ingest_status_quarantine_round_trip(tmp_path: Path) -> None:
    rows = [
        {"reviewer_id": "r1", "choice": "a", "prompt": "Can I move my appointment?",
         "response_a": "Yes, I can move it to Friday.", "response_b": "Please call the clinic."},
        {"reviewer_id": "r2", "choice": "sideways", "prompt": "Can I move my appointment?",
         "response_a": "Yes, I can move it to Friday.", "response_b": "Please call the clinic."},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    db = tmp_path / "w.duckdb"
    out = dissensus("ingest", str(source), db=db)
    assert "format jsonl" in out.stdout
    assert "1 accepted" in out.stdout and "1 quarantined" in out.stdout
    assert "sideways" not in out.stdout  # reasons are grouped with values folded
    status = dissensus("status", db=db)
    assert "1 comparisons" in status.stdout and "choice" in status.stdout
    export = tmp_path / "bad.csv"
    dissensus("quarantine", "--export", str(export), db=db)
    exported = export.read_text()
    assert "sideways" in exported and "in.jsonl" in exported
    again = dissensus("ingest", str(source), db=db)
    assert "nothing added" in again.stdout
    assert "vote index: fresh (1 votes" in status.stdout
    # an index gone stale (a library caller skipping the refresh) is reported and rebuilt
    con = duckdb.connect(str(db))
    con.execute("UPDATE vote_index_state SET n_votes = 0")
    con.close()
    assert "vote index: stale" in dissensus("status", db=db).stdout
    assert "vote index rebuilt" in dissensus("reindex", db=db).stdout
    assert "vote index: fresh" in dissensus("status", db=db).stdout


def test_errors_are_words_not_tracebacks(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    missing = dissensus("ingest", str(tmp_path / "nope.jsonl"), db=db, check=False)
    assert missing.returncode == 2
    assert "No such file" in missing.stderr and "Traceback" not in missing.stderr
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    no_rows = dissensus("--db", str(empty), "fit", db=db, check=False)
    assert no_rows.returncode == 2 and "no comparisons" in no_rows.stderr
    assert "Traceback" not in no_rows.stderr
    no_db = dissensus("status", db=tmp_path / "absent.duckdb", check=False)
    assert no_db.returncode == 2 and "dissensus demo" in no_db.stderr
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({str(db)!r})
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        source = tmp_path / "in.jsonl"
        source.write_text('{"reviewer_id": "r", "choice": "a"}\n')
        busy = dissensus("ingest", str(source), db=db, check=False)
        assert busy.returncode == 2
        assert "busy" in busy.stderr and "Traceback" not in busy.stderr
    finally:
        holder.kill()
        holder.wait()


def test_simulate_then_ingest_and_demo(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    dissensus("simulate", str(tmp_path / "world"), "--n", "800", "--format", "csv", db=db)
    assert (tmp_path / "world" / "comparisons.csv").exists()
    assert (tmp_path / "world" / "truth_reviewers.parquet").exists()
    out = dissensus("ingest", str(tmp_path / "world" / "comparisons.csv"), db=db)
    assert "800 accepted" in out.stdout
    demo_db = tmp_path / "demo.duckdb"
    demo = dissensus("--db", str(demo_db), "demo", "--n", "1200", "--encoder", "hashing", db=db)
    assert "1,200 comparisons" in demo.stdout
    assert "pairs by verdict" in demo.stdout and "schools compared" in demo.stdout
    assert "training the weighted reward model" in demo.stdout
    assert "training the multihead reward model" in demo.stdout
    runs = duckdb.connect(str(demo_db), read_only=True).sql(
        "SELECT kind, (SELECT count(*) FROM reward_scores s WHERE s.run_id = r.run_id) "
        "FROM reward_runs r ORDER BY kind").fetchall()
    assert [kind for kind, _ in runs] == ["multihead", "weighted"]
    assert all(scores > 0 for _, scores in runs)
    assert (tmp_path / "demo_truth" / "truth_pairs.parquet").exists()


def test_fit_with_a_tie_threshold_per_reviewer(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    dissensus("simulate", str(data), "--n", "1500", db=tmp_path / "unused.duckdb")
    db = tmp_path / "w.duckdb"
    dissensus("ingest", str(data / "comparisons.jsonl"), db=db)
    out = dissensus("fit", "--schools", "1", "--tie-per-reviewer", db=db)
    assert "schools: 1" in out.stdout
    con = duckdb.connect(str(db), read_only=True)
    config, diagnostics = con.execute("SELECT config, diagnostics FROM fits").fetchall()[0]
    con.close()
    assert json.loads(config)["tie_per_reviewer"] is True
    assert json.loads(diagnostics)["tie_threshold_spread"] > 0


def test_train_a_linear_head_with_length_features(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    dissensus("simulate", str(data), "--n", "900", db=tmp_path / "unused.duckdb")
    db = tmp_path / "w.duckdb"
    dissensus("ingest", str(data / "comparisons.jsonl"), db=db)
    progress_on = {"DISSENSUS_PROGRESS": "1"}
    out = dissensus("train", "--encoder", "hashing", "--epochs", "5", "--architecture", "linear",
                    "--length-features", "--set", "l2=0.001", db=db, extra_env=progress_on)
    assert "run " in out.stdout
    assert "embedding texts" in out.stderr  # the bar, forced on although stderr is a pipe
    again = dissensus("train", "--encoder", "hashing", "--epochs", "2", db=db,
                      extra_env=progress_on)
    assert "embedding texts" not in again.stderr  # every text came from the cache
    con = duckdb.connect(str(db), read_only=True)
    config = json.loads(con.execute(
        "SELECT config FROM reward_runs ORDER BY created_at").fetchall()[0][0])
    con.close()
    assert config["architecture"] == "linear" and config["length_features"] is True
    assert config["l2"] == 0.001
    bad = dissensus("train", "--encoder", "hashing", "--architecture", "deep", db=db,
                    check=False)
    assert bad.returncode == 2 and "architecture" in bad.stderr and "Traceback" not in bad.stderr


def test_schools_from_reply_content_then_a_mixture_reward_model(tmp_path: Path) -> None:
    """A warehouse without tags: `fit` embeds the replies (the real MiniLM, cached beside the
    warehouse), finds the schools from what they say and names them by example replies; a
    mixture reward model then learns its schools from the same cache."""
    import polars as pl

    data = tmp_path / "demo"
    dissensus("simulate", str(data), "--n", "1500", "--format", "parquet",
              db=tmp_path / "unused.duckdb")
    untagged = tmp_path / "untagged.parquet"
    pl.read_parquet(data / "comparisons.parquet").drop(
        "response_a_tags", "response_b_tags").write_parquet(untagged)
    db = tmp_path / "w.duckdb"
    dissensus("ingest", str(untagged), db=db)
    out = dissensus("fit", "--schools", "2", db=db)
    assert "reply-content features" in out.stdout, out.stdout
    assert out.stdout.count("prefers replies close to") == 2
    assert (tmp_path / "w.duckdb.embeddings").is_dir()
    con = duckdb.connect(str(db), read_only=True)
    diagnostics = json.loads(con.execute("SELECT diagnostics FROM fits").fetchall()[0][0])
    con.close()
    assert diagnostics["feature_source"] == "embeddings"
    assert diagnostics["content"]["components"] == 32
    assert diagnostics["content"]["unit"] == "replies"
    # replies read as sums of their sentences, and a content axis learnt from the placed
    # reviewers' votes: the fit runs again with the axis as a 33rd feature
    axis = dissensus("fit", "--schools", "2", "--set", "content_unit=sentences", "--set",
                     "content_axis=true", db=db)
    assert "replies as sums of their sentences" in axis.stdout, axis.stdout
    assert "content axis learnt from the votes on" in axis.stdout, axis.stdout
    con = duckdb.connect(str(db), read_only=True)
    latest = json.loads(con.execute(
        "SELECT diagnostics FROM fits ORDER BY created_at DESC LIMIT 1").fetchall()[0][0])
    con.close()
    assert latest["content"]["unit"] == "sentences"
    assert latest["content"]["components"] == 33 and latest["content"]["content_axis_pairs"] >= 30
    tags_only = dissensus("fit", "--schools", "2", "--features", "tags", db=db)
    assert "reply-content" not in tags_only.stdout  # no tags: nothing to explain the schools
    bad = dissensus("fit", "--features", "words", db=db, check=False)
    assert bad.returncode != 0 and "features" in bad.stderr and "Traceback" not in bad.stderr
    mixture = dissensus("train", "--kind", "mixture", "--split-by", "prompt", "--set",
                        "em_rounds=2", "--set", "round_epochs=3", db=db)
    assert "mixture round 1" in mixture.stdout and "run mixture-" in mixture.stdout
    con = duckdb.connect(str(db), read_only=True)
    metrics = json.loads(con.execute(
        "SELECT metrics FROM reward_runs WHERE kind = 'mixture'").fetchall()[0][0])
    con.close()
    assert metrics["mixture"]["initialised_from"].startswith("fit ")
    assert metrics["mixture"]["n_schools"] == 2
    assert 0 <= metrics["disagreement"]["calibration"]["ece"] <= 1
