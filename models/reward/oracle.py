"""ORACLE comparison weights from a simulated world's truth (benchmarks and tests only).

These are not estimates: weight = 0.95 for a judgment the simulator made carefully and 0.05 for
a lapse, school_weights = one-hot of the reviewer's true school. They stand in for an
annotator-model fit where none is available and are always stored under a fit id that says
``oracle``, so no report can mistake them for the annotator model's output.
"""

from __future__ import annotations

import duckdb
import polars as pl


def oracle_weights(
    judgments: pl.DataFrame, reviewers: pl.DataFrame, n_schools: int, fit_id: str = "oracle"
) -> pl.DataFrame:
    """comparison_weights rows (fit_id, comparison_id, weight, school_weights) from truth."""
    j = judgments.select("comparison_id", "reviewer_id", "careful").join(
        reviewers.select("reviewer_id", "school_index"), on="reviewer_id", how="left")
    return j.select(
        pl.lit(fit_id).alias("fit_id"), "comparison_id",
        pl.when(pl.col("careful")).then(0.95).otherwise(0.05).alias("weight"),
        pl.concat_list([(pl.col("school_index") == k).cast(pl.Float64)
                        for k in range(n_schools)]).alias("school_weights"),
    )


def write_oracle_fit(
    con: duckdb.DuckDBPyConnection, judgments: pl.DataFrame, reviewers: pl.DataFrame,
    n_schools: int, fit_id: str = "oracle",
) -> str:
    """Store an oracle 'fit' (method ``oracle-truth``) and its weights; returns the fit id."""
    rows = oracle_weights(judgments, reviewers, n_schools, fit_id)  # noqa: F841 (read by SQL)
    con.execute(
        "INSERT INTO fits (fit_id, created_at, method, n_schools, n_comparisons, seconds, "
        "diagnostics) VALUES (?, now(), 'oracle-truth', ?, ?, 0, ?)",
        [fit_id, n_schools, judgments.height, '{"note": "oracle weights from simulation truth"}'],
    )
    con.execute("INSERT INTO comparison_weights (fit_id, comparison_id, weight, school_weights) "
                "SELECT fit_id, comparison_id, weight, school_weights FROM rows")
    return fit_id
