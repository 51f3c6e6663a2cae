"""Verdicts on a matter of judgement: POPQUORN offensiveness ratings as a label task.

POPQUORN (Pei & Jurgens, LAW-XVII @ ACL 2023; ../shared/data/popquorn, licence unstated, cite
the paper) has 13,036 ratings of 1,500 Reddit comments, 1 (not offensive) to 5 (very), by 262
raters with their gender, race and age. There is no right answer: raters differ in where they
draw the line, and the paper shows the line moves with who the rater is. So the data test the
product's promise from the other side of the gold sets: a careful rater with a view of their own
must not be called noise, whatever group they belong to.

``python benchmarks/popquorn_verdicts.py [--threshold 2]`` turns each rating into a label
("offensive" when the rating is at least ``--threshold``), ingests the labels into a fresh
warehouse, runs the fit job and the reviewer audit as ``dissensus fit`` and ``dissensus
reviewers`` do (defaults, reply content off), and prints:

* each verdict's raters with the rank correlation (Spearman) of their *graded* ratings with the
  mean rating the other raters gave the same comments: a rater who reads the comments tracks
  the others' ordering whatever their threshold; one who clicks at random does not. The fit
  never sees the grades, so this is evidence it could not use;
* the verdicts and flags by race, gender and age group;
* side by side, how well each method's per-rater figure tracks that graded agreement (Spearman
  over raters): the fit's reliability and ``agreement``, majority agreement, Dawid-Skene, GLAD
  and MACE on the same labels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import polars as pl
from robustness import PEERS, label_votes, series_frame
from scipy.stats import spearmanr

from dissensus.analytics.audit import reviewer_audit
from dissensus.analytics.jobs.fit import run_fit
from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.queries import model_frame

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "popquorn"
RATINGS = "offensiveness_raw_data.csv"
YES = "Yes, the comment is offensive."
NO = "No, the comment is not offensive."
GROUPS = ("race", "gender", "age")


def label_rows(ratings: pl.DataFrame, threshold: int) -> list[dict[str, str]]:
    """One canonical comparison per rating: the label "offensive" (a) or not (b)."""
    return [{"comparison_id": f"popquorn:{r['user_id']}:{r['instance_id']}",
             "reviewer_id": str(r["user_id"]),
             "prompt": f"Is this Reddit comment offensive? {r['text']}",
             "response_a": YES, "response_b": NO,
             "choice": "a" if r["offensiveness"] >= threshold else "b",
             "category": "popquorn"}
            for r in ratings.iter_rows(named=True)]


def graded_agreement(ratings: pl.DataFrame) -> pl.DataFrame:
    """Per rater: Spearman of their ratings with the other raters' mean on the same comments."""
    items = ratings.group_by("instance_id").agg(total=pl.col("offensiveness").sum(), n=pl.len())
    others = (ratings.join(items, on="instance_id")
              .filter(pl.col("n") > 1)
              .with_columns(others=(pl.col("total") - pl.col("offensiveness"))
                            / (pl.col("n") - 1)))
    return others.group_by("user_id").agg(
        graded_spearman=pl.corr("offensiveness", "others", method="spearman"),
        **{g: pl.col(g).first() for g in GROUPS})


def run(path: Path, threshold: int, folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The audit of the labels joined with each rater's graded agreement, and each method's
    Spearman with that agreement."""
    ratings = pl.read_csv(path / RATINGS)
    source = folder / "popquorn.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in label_rows(ratings, threshold)))
    db = folder / "popquorn.duckdb"
    con = connect(db)
    try:
        ingest_file(con, source)
        outcome = run_fit(con, AnnotatorConfig(features="none"), db_path=db)
        for note in outcome.model.fit_summary_["diagnostics"].get("verdict_notes", []):
            print("fit note:", note)
        audit = reviewer_audit(con)
        votes = label_votes(model_frame(con))
    finally:
        con.close()
    graded = graded_agreement(ratings).with_columns(pl.col("user_id").cast(pl.String))
    audit = audit.join(graded, left_on="reviewer_id", right_on="user_id", how="left")
    figures = {"dissensus reliability": audit.select("reviewer_id", "reliability"),
               "dissensus agreement": audit.select("reviewer_id", reliability="agreement")}
    figures.update({peer: series_frame(fn(votes)) for peer, fn in PEERS.items()})
    rows = []
    for method, figure in figures.items():
        j = figure.join(audit.select("reviewer_id", "graded_spearman"), on="reviewer_id")
        rows.append({"method": method, "spearman_vs_graded": round(float(spearmanr(
            j["reliability"], j["graded_spearman"], nan_policy="omit")[0]), 3)})
    return audit, pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> pl.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, default=DATA)
    parser.add_argument("--threshold", type=int, default=2,
                        help="ratings at or above this are the label 'offensive' (1-5)")
    args = parser.parse_args(argv)
    if not (args.path / RATINGS).is_file():
        raise SystemExit(f"no {RATINGS} under {args.path}: point --path at the POPQUORN folder")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audit, methods = run(args.path, args.threshold, Path(tmp))
    with pl.Config(tbl_rows=60, tbl_width_chars=160, fmt_str_lengths=40):
        print(audit.group_by("verdict").agg(
            raters=pl.len(), flagged=pl.col("flagged").sum(),
            graded_spearman=pl.col("graded_spearman").median().round(3),
            graded_spearman_q10=pl.col("graded_spearman").quantile(0.1).round(3),
            reliability=pl.col("reliability").median().round(3),
        ).sort("graded_spearman"))
        for group in GROUPS:
            print(audit.group_by(group).agg(
                raters=pl.len(), flagged=pl.col("flagged").mean().round(3),
                lapses=(pl.col("verdict") == "unreliable: frequent lapses").sum(),
                one_label=(pl.col("verdict") == "one label on nearly every item").sum(),
                leans=(pl.col("verdict") == "leans toward one label").sum(),
            ).sort(group))
        print(methods)
    return audit


if __name__ == "__main__":
    main()
