"""Concurrency, access and the small edge cases of the red-team run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from reliability_helpers import cli, good_row, write_jsonl

from dissensus.analytics.cli import serve as serve_module
from dissensus.analytics.jobs.ingest import ingest_files
from dissensus.warehouse.db import connect
from dissensus.warehouse.errors import DatabaseBusyError
from dissensus.warehouse.vote_index import index_is_stale


def _hold(db: Path, read_only: bool, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({str(db)!r}, read_only={read_only})
            print("locked", flush=True)
            time.sleep({seconds})
            con.close()
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_writer_waits_out_a_reader_instead_of_failing(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    connect(db).close()
    holder = _hold(db, read_only=True, seconds=1.5)
    try:
        started = time.monotonic()
        con = connect(db)  # a dashboard's query holds the file: wait for it, do not fail
        assert time.monotonic() - started > 0.5
        con.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_reader_during_a_write_is_told_what_is_true(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "w.duckdb"
    connect(db).close()
    monkeypatch.setenv("DISSENSUS_LOCK_WAIT", "0.3")
    holder = _hold(db, read_only=False, seconds=30)
    try:
        with pytest.raises(DatabaseBusyError) as caught:
            connect(db, read_only=True)
        message = caught.value.render()
        assert "being written by another process (PID" in message
        assert "can keep running" not in message
        result = cli("--db", str(db), "status")
        assert result.exit_code == 2 and "being written" in result.output
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_vote_index_is_rebuilt_by_the_next_writer(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    source = write_jsonl(tmp_path / "in.jsonl", [good_row(i) for i in range(6)])
    con = connect(db)
    ingest_files(con, [source])
    # a crash between the batch's commit and the rebuild leaves the index behind the data
    con.execute("UPDATE vote_index_state SET n_votes = 0, n_comparisons = 0")
    assert index_is_stale(con)
    ingest_files(con, [source])  # the same file again: nothing added, the index repaired
    assert not index_is_stale(con)
    con.execute("UPDATE vote_index_state SET n_votes = 0, n_comparisons = 0")
    con.close()
    assert cli("--db", str(db), "ingest", str(source)).exit_code == 0
    assert "vote index: fresh" in cli("--db", str(db), "status").output


def test_serve_refuses_the_network_without_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = cli("--db", str(tmp_path / "w.duckdb"), "serve", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "--insecure-no-auth" in result.output
    serve_module.refuse_open_network("0.0.0.0", insecure_no_auth=True)  # said explicitly
    serve_module.refuse_open_network("127.0.0.1", insecure_no_auth=False)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        '[auth]\nredirect_uri = "http://x/oauth2callback"\n')
    assert serve_module.sign_in_configured()
    serve_module.refuse_open_network("0.0.0.0", insecure_no_auth=False)


def test_one_reviewer_is_not_judged_ok_on_no_evidence(tmp_path: Path) -> None:
    db = str(tmp_path / "w.duckdb")
    rows = [good_row(i, reviewer_id="solo") for i in range(12)]
    cli("--db", db, "ingest", str(write_jsonl(tmp_path / "in.jsonl", rows)))
    result = cli("--db", db, "reviewers", "--format", "json")
    assert result.exit_code == 0
    assert '"verdict": "cannot judge: no shared pairs"' in result.output
    assert "NaN" not in result.output


def test_only_ties_cannot_train_a_reward_model(tmp_path: Path) -> None:
    db = str(tmp_path / "w.duckdb")
    rows = [good_row(i % 10, reviewer_id=f"r{i}", choice="tie") for i in range(40)]
    cli("--db", db, "ingest", str(write_jsonl(tmp_path / "in.jsonl", rows)))
    result = cli("--db", db, "train", "--encoder", "hashing")
    assert result.exit_code == 2 and "are ties, so there is no preference" in result.output


def test_reviewers_options_out_of_range_say_so(tmp_path: Path) -> None:
    db = str(tmp_path / "w.duckdb")
    cli("--db", db, "ingest", str(write_jsonl(tmp_path / "in.jsonl",
                                              [good_row(i % 4) for i in range(12)])))
    school = cli("--db", db, "reviewers", "--school", "9")
    assert school.exit_code == 2 and "none is in school 9" in school.output
    limit = cli("--db", db, "reviewers", "--limit", "-1")
    assert limit.exit_code == 2 and "--limit" in limit.output
    assert "-1 of" not in limit.output
    assert cli("--db", db, "quarantine", "--limit", "0").exit_code == 2


def test_reviewers_school_names_the_schools_of_the_fit(
    tmp_path: Path, fake_fit
) -> None:
    db = tmp_path / "w.duckdb"
    cli("--db", str(db), "ingest", str(write_jsonl(tmp_path / "in.jsonl",
                                                   [good_row(i % 4) for i in range(12)])))
    con = duckdb.connect(str(db))
    import polars as pl

    fake_fit(con, "f1", reviewers=pl.DataFrame({
        "reviewer_id": ["r0", "r1", "r2"], "n_comparisons": [4, 4, 4],
        "reliability": [0.9, 0.9, 0.9], "reliability_low": [0.8] * 3,
        "reliability_high": [0.95] * 3, "school": [0, 1, 1], "flagged": [False] * 3}))
    con.close()
    result = cli("--db", str(db), "reviewers", "--school", "9")
    assert result.exit_code == 2 and "schools 0, 1" in result.output


def test_reingesting_the_same_file_repairs_a_stale_index(tmp_path: Path) -> None:
    from dissensus.warehouse.ingest import ingest_file

    source = write_jsonl(tmp_path / "in.jsonl", [good_row(i) for i in range(6)])
    con = connect(tmp_path / "w.duckdb")
    ingest_file(con, source)
    con.execute("UPDATE vote_index_state SET n_votes = 0, n_comparisons = 0")
    report = ingest_file(con, source)
    assert report.skipped and not index_is_stale(con)
    con.close()


def test_a_file_of_ratings_is_kept_in_quarantine_and_named_as_no_comparisons(
        tmp_path: Path) -> None:
    # a ratings file (one text, one score per row), as a new user might try first
    source = tmp_path / "ratings.csv"
    source.write_text("instance_id,user_id,text,offensiveness\n"
                      "1,u1,some text,3\n2,u2,other text,1\n")
    db = str(tmp_path / "w.duckdb")
    result = cli("--db", db, "ingest", str(source))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "2 quarantined" in said
    assert "no row of this file is a comparison" in said
    assert "--format" in said and "ukpconvarg1" in said
    # a file whose rows are comparisons, some of them bad, gets no such line
    rows = [good_row(0), {**good_row(1), "choice": "maybe", "extra": 1}]
    good = cli("--db", db, "ingest", str(write_jsonl(tmp_path / "in.jsonl", rows)))
    assert "no row of this file is a comparison" not in " ".join(good.output.split())
