"""Drift of a reviewer's agreement over time: a change-point test and a calendar series.

Re-exported by :mod:`analytics.consistency` (their documented home; see its docstring for the
statistic). The ``*_from`` functions take a :class:`analytics.audit_votes.Votes` already read.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.special import erfc

from dissensus.analytics.audit_votes import Votes, load_votes, require_reviewers


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
    u = votes.unique
    a_all = u["loo_agreement"]
    keep = a_all.is_not_null().to_numpy()
    # rows come grouped by reviewer, in time order: every per-reviewer sum is a cumulative sum
    # minus the reviewer's offset, and the best split a masked maximum
    r = u["r"].to_numpy()[keep]
    a = a_all.to_numpy()[keep]
    n_r = np.bincount(r, minlength=votes.n_reviewers)
    m = int(min_segment)
    eligible = n_r >= 2 * m
    sel = eligible[r]
    r, a = r[sel], a[sel]
    created = u["created_at"].filter(pl.Series(keep)).filter(pl.Series(sel))
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
    if r.size == 0:
        return pl.DataFrame(schema=schema)
    codes = np.flatnonzero(eligible)
    n_e = n_r[codes]
    start = np.cumsum(n_e) - n_e  # each eligible reviewer's first row in the kept rows
    group = np.repeat(np.arange(codes.size), n_e)
    t = np.arange(r.size) - start[group] + 1
    n = n_e[group].astype(float)
    cum = np.cumsum(a)
    s1 = cum - (cum[start] - a[start])[group]
    total = (np.add.reduceat(a, start))[group]

    def loglik(s: np.ndarray, k: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.clip(s / k, 1e-9, 1 - 1e-9)
            return s * np.log(p) + (k - s) * np.log1p(-p)

    # only the splits with at least m votes on each side are tried
    tried = (t >= m) & (t <= n - m)
    whole = loglik(np.add.reduceat(a, start), n_e.astype(float))  # one per reviewer
    lr = np.full(r.size, -np.inf)
    tt, nt, st, s1t = t[tried], n[tried], total[tried], s1[tried]
    stat = 2 * (loglik(s1t, tt) + loglik(st - s1t, nt - tt) - whole[group[tried]])
    # rounded so that splits equal up to floating error count as equal
    lr[tried] = np.round(stat, 9)
    # the split with the largest statistic, the earliest among equals
    best_lr = np.maximum.reduceat(lr, start)
    hit = np.flatnonzero(lr == best_lr[group])
    first_hit = hit[np.unique(group[hit], return_index=True)[1]]
    tb, nb, sb, s1b = t[first_hit], n_e, total[first_hit], s1[first_hit]
    out = pl.DataFrame(
        {
            "reviewer_id": votes.ids(codes),
            "n_compared": n_e.astype(np.int64),
            "agreement_before": s1b / tb,
            "agreement_after": (sb - s1b) / (nb - tb),
            "change_at": created.gather(first_hit),
            "lr_stat": lr[first_hit],
            "tries": (nb - 2 * m + 1).astype(np.int64),
        }
    )
    # chi-square with one degree of freedom: P(X > x) = erfc(sqrt(x / 2))
    p = np.minimum(1.0, erfc(np.sqrt(out["lr_stat"].to_numpy() / 2)) * out["tries"].to_numpy())
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
