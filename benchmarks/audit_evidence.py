"""Whether the audit's "ok" is a verdict the votes support: rushed reviewers among "ok", before
and after "cannot tell from their votes", on the demo world through the real product path.

``python benchmarks/audit_evidence.py --seeds 3`` simulates the demo world (6,000 comparisons per
seed, 15% rushed), ingests it into a fresh warehouse, runs the fit job as ``dissensus fit``
does (default settings, reply content off so no encoder is needed) and the reviewer audit as
``dissensus reviewers`` does, then scores the verdicts against the simulator's truth. "Before"
is what the audit said until the fit stored ``lapse_evidence``: every unflagged reviewer with
enough votes was "ok".

``python benchmarks/audit_evidence.py --real`` does the same on the real label sets with expert
gold (RTE, temporal ordering, bluebirds; ../shared/data), with the gold hidden from the fit and
the audit (so no verdict reads it), and prints each verdict's workers with their mean accuracy
against the gold.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import polars as pl

from dissensus.analytics.audit import MINORITY_VIEW, UNSETTLED, AuditConfig, reviewer_audit
from dissensus.analytics.audit_words import COPYING
from dissensus.analytics.jobs.fit import run_fit
from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world
from dissensus.warehouse.ingest import ingest_file


def one_seed(seed: int, n: int, folder: Path, settled: float) -> dict[str, float]:
    world = simulate_world(WorldConfig(n_comparisons=n, seed=seed))
    files = write_world(world, folder / f"seed{seed}", fmt="jsonl")
    con = connect(folder / f"seed{seed}.duckdb")
    try:
        ingest_file(con, files["comparisons"])
        run_fit(con, AnnotatorConfig(features="tags"), db_path=folder / f"seed{seed}.duckdb")
        audit = reviewer_audit(con, AuditConfig(settled_bayes_factor=settled))
    finally:
        con.close()
    truth = world.reviewers.select("reviewer_id", "is_rushed", "school_index")
    j = audit.join(truth, on="reviewer_id")
    judged = j.filter(pl.col("verdict") != "too few votes")
    before = judged.filter(~pl.col("flagged"))
    ok = judged.filter(pl.col("verdict") == "ok")
    unsettled = judged.filter(pl.col("verdict") == UNSETTLED)
    return {
        "seed": seed, "reviewers": judged.height, "rushed": int(judged["is_rushed"].sum()),
        "flagged": int(judged["flagged"].sum()),
        "ok_before": before.height, "rushed_in_ok_before": int(before["is_rushed"].sum()),
        "ok_now": ok.height, "rushed_in_ok_now": int(ok["is_rushed"].sum()),
        "cannot_tell": unsettled.height, "rushed_in_cannot_tell": int(unsettled["is_rushed"].sum()),
        "minority_view": int((judged["verdict"] == MINORITY_VIEW).sum()),
        "minority_view_unconfirmed": int(((judged["verdict"] == MINORITY_VIEW)
                                          & judged["reasons"].str.contains(COPYING)).sum()),
        "minority_view_truly_minority": int(((judged["verdict"] == MINORITY_VIEW)
                                             & (judged["school_index"] > 0)
                                             & ~judged["is_rushed"]).sum()),
        "true_minority_careful": int(((judged["school_index"] > 0) & ~judged["is_rushed"]).sum()),
    }


def real_verdicts(folder: Path) -> pl.DataFrame:
    """Mean gold accuracy of the workers behind each audit verdict, gold hidden from both."""
    from gold_sets import gold_warehouses

    from dissensus.warehouse.vote_index import refresh_vote_index

    tables = []
    for fmt, con in gold_warehouses(folder):
        accuracy = con.sql("""
            SELECT reviewer_id, avg((outcome = gold_outcome)::INT) AS accuracy
            FROM comparisons WHERE gold_outcome IS NOT NULL GROUP BY ALL""").pl()
        con.execute("UPDATE comparisons SET gold_outcome = NULL, gold_choice = NULL")
        refresh_vote_index(con)
        run_fit(con, AnnotatorConfig(features="none"), db_path=folder / f"{fmt}.duckdb")
        audit = reviewer_audit(con).join(accuracy, on="reviewer_id")
        tables.append(audit.group_by("verdict").agg(
            pl.len().alias("workers"), pl.col("n_votes").median().alias("median_votes"),
            pl.col("accuracy").mean().round(3).alias("gold_accuracy"),
        ).sort("gold_accuracy").with_columns(pl.lit(fmt).alias("data")))
    return pl.concat(tables).select("data", "verdict", "workers", "median_votes",
                                    "gold_accuracy")


def main(argv: list[str] | None = None) -> pl.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="demo worlds to draw")
    parser.add_argument("--comparisons", type=int, default=6000, help="comparisons per world")
    parser.add_argument("--settled", type=float, default=AuditConfig().settled_bayes_factor,
                        help="the audit's settled_bayes_factor")
    parser.add_argument("--real", action="store_true",
                        help="the real label sets with gold instead of the demo world")
    args = parser.parse_args(argv)
    if args.real:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real = real_verdicts(Path(tmp))
        with pl.Config(tbl_rows=30, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
            print(real)
        return real
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [one_seed(s, args.comparisons, Path(tmp), args.settled)
                for s in range(args.seeds)]
    table = pl.DataFrame(rows)
    total = table.sum().with_columns(pl.lit(None, pl.Int64).alias("seed"))
    table = pl.concat([table, total]).with_columns(
        rushed_share_ok_before=pl.col("rushed_in_ok_before") / pl.col("ok_before"),
        rushed_share_ok_now=pl.col("rushed_in_ok_now") / pl.col("ok_now"))
    with pl.Config(tbl_cols=20, tbl_width_chars=250, tbl_hide_dataframe_shape=True):
        print(table)
    return table


if __name__ == "__main__":
    main()
