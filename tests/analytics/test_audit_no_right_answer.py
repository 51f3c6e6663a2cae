"""Verdicts where the labels have no right answer: POPQUORN offensiveness ratings as labels.

POPQUORN (Pei & Jurgens, LAW-XVII @ ACL 2023; licence unstated, the paper is cited) is read from
the shared data folder beside the repository; the test skips where it is absent. Each rating
becomes the label "offensive" at 3 or more (26% of the ratings). The raters' graded ratings,
which the fit never sees, show who reads the comments: their rank correlation with the other
raters' mean rating on the same comments.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from dissensus.analytics import audit
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file

RATINGS = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "popquorn"
           / "offensiveness_raw_data.csv")


def test_strict_raters_who_read_the_comments_are_not_called_unreliable(tmp_path: Path) -> None:
    from dissensus.analytics.jobs.fit import run_fit
    from dissensus.models.annotator import AnnotatorConfig

    if not RATINGS.is_file():
        pytest.skip(f"{RATINGS} is not here (shared data folder absent)")
    ratings = pl.read_csv(RATINGS)
    source = tmp_path / "popquorn.jsonl"
    source.write_text("".join(json.dumps({
        "comparison_id": f"{r['user_id']}:{r['instance_id']}", "reviewer_id": str(r["user_id"]),
        "prompt": f"Is this comment offensive? {r['text']}",
        "response_a": "Yes, the comment is offensive.",
        "response_b": "No, the comment is not offensive.",
        "choice": "a" if r["offensiveness"] >= 3 else "b"}) + "\n"
        for r in ratings.iter_rows(named=True)))
    con = connect(tmp_path / "popquorn.duckdb")
    ingest_file(con, source)
    run_fit(con, AnnotatorConfig(features="none"))
    items = ratings.group_by("instance_id").agg(total=pl.col("offensiveness").sum(), n=pl.len())
    graded = (ratings.join(items, on="instance_id").filter(pl.col("n") > 1)
              .with_columns(others=(pl.col("total") - pl.col("offensiveness")) / (pl.col("n") - 1))
              .group_by(reviewer_id=pl.col("user_id").cast(pl.String))
              .agg(graded=pl.corr("offensiveness", "others", method="spearman")))
    out = audit.reviewer_audit(con).join(graded, on="reviewer_id")
    by_verdict = {v: frame for (v,), frame in out.group_by("verdict")}
    unreliable = by_verdict["unreliable: frequent lapses"]["graded"]
    one_label = by_verdict["one label on nearly every item"]["graded"]
    ok = by_verdict["ok"]["graded"]
    # before: 39 raters "unreliable" at a median of 0.38, most of them strict raters who call
    # few comments offensive; now that verdict is kept for raters whose grades track no one's
    assert unreliable.len() <= 12 and unreliable.median() < 0.2, unreliable.to_list()
    assert one_label.len() >= 20 and one_label.median() > 0.3
    assert ok.median() > 0.5
    notes = audit.audit_notes(con, out)
    assert any("lean credibly toward one label" in n for n in notes), notes
    assert any("a rater whose line sits far from everyone else's" in n for n in notes), notes
