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


SNOW_TEMP = "temp.standardized.tsv"


@pytest.mark.parametrize("fmt", ["snow2008-temp", "auto"])
def test_snow2008_temp_counts_match_its_source(tmp_path: Path, fmt: str) -> None:
    con = connect(tmp_path / "w.duckdb")
    path = require("snow2008_mturk") / SNOW_TEMP
    report = ingest_file(con, path, fmt=fmt)
    assert report.format == "snow2008-temp"
    if fmt == "auto":
        assert "temporal ordering" in report.format_reason
    assert (report.rows_read, report.accepted, report.quarantined) == (4_620, 4_620, 0)
    counts = queries.counts(con)
    assert (counts.comparisons, counts.reviewers, counts.prompts) == (4_620, 76, 462)
    assert counts.comparisons_without_reviewer == 0
    tally = "SELECT {0}, count(*) FROM comparisons GROUP BY {0}"
    assert dict(con.execute(tally.format("choice")).fetchall()) == {"a": 2_178, "b": 2_442}
    gold = dict(con.execute(tally.format("gold_choice")).fetchall())
    assert gold == {"a": 2_590, "b": 2_030}  # gold on every row, none null
    assert ingest_file(con, path, fmt=fmt).skipped
    again = ingest_file(con, path, fmt=fmt, skip_seen_file=False)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 4_620, 0)
    assert queries.counts(con).comparisons == 4_620


def test_snow2008_temp_bad_rows_are_quarantined_and_the_rest_kept(tmp_path: Path) -> None:
    lines = (require("snow2008_mturk") / SNOW_TEMP).read_text().splitlines()[:31]
    fields = [line.split("\t") for line in lines]
    fields[4][3] = "3"  # line 5: a response that is neither 1 nor 2
    fields[9][1] = ""  # line 10: no worker id
    path = tmp_path / SNOW_TEMP
    path.write_text("".join("\t".join(row) + "\n" for row in fields))
    con = connect(tmp_path / "w.duckdb")
    report = ingest_file(con, path)
    assert report.format == "snow2008-temp"
    assert (report.rows_read, report.accepted, report.quarantined) == (30, 28, 2)
    rows = queries.quarantine_rows(con)
    assert rows["line"].to_list() == [5, 10]
    assert rows["raw"].to_list() == ["\t".join(fields[4]), "\t".join(fields[9])]
    first, second = rows["reason"].to_list()
    assert "response is '3'; expected 1 (before) or 2 (after)" in first
    assert "!amt_worker_ids is empty" in second
    assert queries.counts(con).comparisons == 28
