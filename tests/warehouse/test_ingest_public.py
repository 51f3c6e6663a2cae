"""Public datasets ingest with the counts their SOURCE.md gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from dissensus.warehouse import queries
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def require(folder: str) -> Path:
    path = DATA / folder
    if not path.exists():
        pytest.skip(f"public dataset {folder} is not next to the repository ({path})")
    return path


def test_ukpconvarg1_counts_match_its_source(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, require("ukpconvarg1_convincingness"), fmt="auto")
    assert report.format == "ukpconvarg1"
    assert (report.rows_read, report.accepted, report.quarantined) == (84_445, 84_445, 0)
    counts = queries.counts(con)
    assert (counts.comparisons, counts.pairs, counts.reviewers) == (84_445, 16_927, 3_815)
    stances = con.execute(
        "SELECT count(DISTINCT reviewer_id) FROM reviewer_attributes WHERE attribute = 'stance'"
    ).fetchall()[0][0]
    assert stances > 1000
    assert ingest_file(con, require("ukpconvarg1_convincingness")).skipped


def test_hh_rlhf_has_no_reviewers_and_quarantines_empty_replies(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    path = require("hh_rlhf_harmless_base_test") / "harmless-base_test.jsonl.gz"
    report = ingest_file(con, path)
    assert report.format == "hh-rlhf"
    assert report.rows_read == 2_312
    assert report.accepted + report.quarantined == 2_312
    assert report.quarantined == 4  # four chosen replies are empty in the source
    reasons = queries.quarantine_rows(con)["reason"].to_list()
    assert all("empty" in reason for reason in reasons)
    assert queries.counts(con).comparisons_without_reviewer == report.accepted
