"""Drift of a reviewer's agreement over time: a change-point test and a calendar series.

Re-exported by :mod:`analytics.consistency` (their documented home; see its docstring for the
statistic). The ``*_from`` functions take a :class:`analytics.audit_votes.Votes` already read.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.stats import chi2

from analytics.audit_votes import Votes, load_votes, require_reviewers


def drift(
    con: duckdb.DuckDBPyConnection,
    min_segment: int = 10,
    alpha: float = 0.01,
    min_change: float = 0.15,
) -> pl.DataFrame:
    """Single change-point in each reviewer's leave-one-out agreement over time.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, created_at. Returns reviewers
    with at least 2 x ``min_segment`` compared votes: ``reviewer_id, n_compared,
    agreement_before, agreement_after, change_at, lr_stat, p_value, drifting, verdict``;
    ``drifting`` when the Bonferroni p < ``alpha`` and agreement moved by >= ``min_change``.
    """
    require_reviewers(con, "Drift", ["outcome", "created_at"])
    return drift_from(load_votes(con), min_segment, alpha, min_change)


def drift_from(
    votes: Votes, min_segment: int = 10, alpha: float = 0.01, min_change: float = 0.15
) -> pl.DataFrame:
    """:func:`drift` from ``votes``."""
    v = votes.unique.select("r", "created_at", pl.col("loo_agreement").alias("a")).filter(
        pl.col("a").is_not_null()
    )
    # rows come grouped by reviewer, in time order: counts and positions are integer arithmetic
    r = v["r"].to_numpy()
    n_r = np.bincount(r, minlength=votes.n_reviewers)
    start = np.cumsum(n_r) - n_r
    v = v.with_columns(
        t=pl.Series(np.arange(r.size) - start[r] + 1, dtype=pl.Int64),
        n=pl.Series(n_r[r], dtype=pl.Int64),
    ).filter(pl.col("n") >= 2 * int(min_segment))
    schema = {
        "reviewer_id": pl.String,
        "n_compared": pl.Int64,
        "agreement_before": pl.Float64,
        "agreement_after": pl.Float64,
        "change_at": pl.Datetime("us"),
        "lr_stat": pl.Float64,
        "p_value": pl.Float64,
        "drifting": pl.Boolean,
        "verdict": pl.String,
    }
    if v.height == 0:
        return pl.DataFrame(schema=schema)

    def loglik(s: pl.Expr, n: pl.Expr) -> pl.Expr:
        p = (s / n).clip(1e-9, 1 - 1e-9)
        return s * p.log() + (n - s) * (1 - p).log()

    m = int(min_segment)
    split = (
        v.with_columns(
            s1=pl.col("a").cum_sum().over("r"),
            s=pl.col("a").sum().over("r"),
        )
        .with_columns(
            lr=2
            * (
                loglik(pl.col("s1"), pl.col("t"))
                + loglik(pl.col("s") - pl.col("s1"), pl.col("n") - pl.col("t"))
                - loglik(pl.col("s"), pl.col("n"))
            )
        )
        .filter((pl.col("t") >= m) & (pl.col("t") <= pl.col("n") - m))
    )
    # the split with the largest statistic, the earliest among equals
    best = split.group_by("r").agg(pl.all().get(pl.col("lr").arg_max())).sort("r")
    out = best.select(
        votes.ids(best["r"]),
        pl.col("n").cast(pl.Int64).alias("n_compared"),
        (pl.col("s1") / pl.col("t")).alias("agreement_before"),
        ((pl.col("s") - pl.col("s1")) / (pl.col("n") - pl.col("t"))).alias("agreement_after"),
        pl.col("created_at").alias("change_at"),
        pl.col("lr").alias("lr_stat"),
        (pl.col("n") - 2 * m + 1).alias("tries"),
    )
    p = np.minimum(1.0, chi2.sf(out["lr_stat"].to_numpy(), 1) * out["tries"].to_numpy())
    out = (
        out.drop("tries")
        .with_columns(p_value=pl.Series(p, dtype=pl.Float64))
        .with_columns(
            drifting=(pl.col("p_value") < alpha)
            & ((pl.col("agreement_after") - pl.col("agreement_before")).abs() >= min_change)
        )
        .with_columns(
            verdict=pl.when(pl.col("drifting"))
            .then(
                pl.format(
                    "agreement moved from {} to {} around {}: drifting",
                    pl.col("agreement_before").round(2),
                    pl.col("agreement_after").round(2),
                    pl.col("change_at").dt.date(),
                )
            )
            .otherwise(pl.lit("no change-point in agreement"))
        )
    )
    return out.sort("reviewer_id").cast(schema)  # type: ignore[arg-type]


def drift_series(
    con: duckdb.DuckDBPyConnection, reviewer_id: str, every: str = "week"
) -> pl.DataFrame:
    """One reviewer's leave-one-out agreement per calendar ``every`` (day, week or month).

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, created_at. Returns
    ``period, n_votes, loo_agreement, pool_loo_agreement``.
    """
    require_reviewers(con, "Drift series", ["outcome", "created_at"])
    return drift_series_from(load_votes(con), reviewer_id, every)


def drift_series_from(votes: Votes, reviewer_id: str, every: str = "week") -> pl.DataFrame:
    """:func:`drift_series` from ``votes``."""
    if every not in ("day", "week", "month"):
        every = "week"
    step = {"day": "1d", "week": "1w", "month": "1mo"}[every]
    period = pl.col("created_at").dt.truncate(step).alias("period")
    u = votes.unique.select("r", period, "loo_agreement")
    pool = u.group_by("period").agg(pool_loo_agreement=pl.col("loo_agreement").mean())
    code = votes.code(reviewer_id)
    mine = u.filter(pl.col("r") == (-1 if code is None else code))
    return (
        mine.group_by("period")
        .agg(n_votes=pl.len().cast(pl.Int64), loo_agreement=pl.col("loo_agreement").mean())
        .join(pool.filter(pl.col("period").is_not_null()), on="period", how="left")
        .sort("period", nulls_last=True)
    )
