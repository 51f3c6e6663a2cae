"""Per-reviewer consistency checks: each a number, an interval and a verdict in plain words.

- Position bias: among a reviewer's non-tie votes with a known display order, k of n picked the
  reply shown first. Under no bias k ~ Binomial(n, 1/2); the exact two-sided p-value is
  min(1, 2 min(P(X <= k), P(X >= k))) (exact because Binomial(n, 1/2) is symmetric), with a
  Benjamini-Hochberg q-value over reviewers and a Clopper-Pearson interval for k / n.
- Tie use: t ties in n votes against the pool tie rate pi; one-sided exact p = P(X >= t),
  X ~ Binomial(n, pi).
- Self-consistency: every later judgment of a (reviewer, pair) compared with the first; also
  reported separately for repeats shown in the swapped order.
- Gold accuracy: votes on pairs with a gold answer, Clopper-Pearson interval.
- Speed: median seconds per judgment against the pool median.
- Drift: per vote, the share of the other reviewers on the pair who agreed; for each split of a
  reviewer's time-ordered votes (at least ``min_segment`` each side) the Bernoulli
  likelihood-ratio statistic 2 [n1 H(p1) + n2 H(p2) - n H(p)] (H the log-likelihood of a rate),
  maximised over splits (a single change-point, Hinkley 1970), Bonferroni over the splits tried.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.stats import beta, binom, chi2

from analytics.agreement import LOO_SQL, VOTES_SQL, require_reviewers


def clopper_pearson(k: np.ndarray, n: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, ...]:
    """Exact (Clopper-Pearson) interval for k successes in n trials, vectorised."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - tail, k + 1, n - k), 1.0)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (NaN p-values stay NaN and are not counted)."""
    p = np.asarray(p, float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        pv = p[ok]
        order = np.argsort(pv)
        ranked = pv[order] * pv.size / np.arange(1, pv.size + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty_like(pv)
        out[order] = np.minimum(ranked, 1.0)
        q[ok] = out
    return q


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def position_bias(
    con: duckdb.DuckDBPyConnection,
    alpha: float = 0.01,
    min_effect: float = 0.1,
    level: float = 0.9,
) -> pl.DataFrame:
    """Does the reviewer pick the reply shown first more (or less) often than chance?

    Needs comparisons.reviewer_id, has_reviewer, outcome, first_shown. Returns ``reviewer_id,
    n_decided, n_first, first_rate, first_rate_low, first_rate_high, p_value, q_value,
    position_biased, verdict``; ``position_biased`` when q < ``alpha`` and |rate - 1/2| >=
    ``min_effect``.
    """
    require_reviewers(con, "Position bias", ["outcome", "first_shown"])
    df = con.sql("""
        SELECT reviewer_id,
               count(*) FILTER (WHERE outcome <> 0 AND first_shown IS NOT NULL) AS n_decided,
               count(*) FILTER (WHERE (outcome = 1 AND first_shown = 1)
                                   OR (outcome = -1 AND first_shown = 2)) AS n_first
        FROM comparisons WHERE has_reviewer GROUP BY ALL ORDER BY reviewer_id
    """).pl()
    n, k = df["n_decided"].to_numpy(), df["n_first"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        p = np.where(
            n > 0,
            np.minimum(1.0, 2 * np.minimum(binom.cdf(k, n, 0.5), binom.sf(k - 1, n, 0.5))),
            np.nan,
        )
    q = benjamini_hochberg(p)
    low, high = clopper_pearson(k, n, level)
    biased = (q < alpha) & (np.abs(rate - 0.5) >= min_effect)
    verdict = [
        "display order unknown"
        if ni == 0
        else (
            f"picks the first-shown reply {_pct(r)} of the time (q={qi:.2g}): position-biased"
            if b
            else f"picks the first-shown reply {_pct(r)} of the time: no clear position bias"
        )
        for ni, r, qi, b in zip(n, rate, q, biased, strict=True)
    ]
    return df.with_columns(
        first_rate=pl.Series(rate),
        first_rate_low=pl.Series(low),
        first_rate_high=pl.Series(high),
        p_value=pl.Series(p),
        q_value=pl.Series(q),
        position_biased=pl.Series(biased),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def tie_use(
    con: duckdb.DuckDBPyConnection,
    alpha: float = 0.01,
    overuse_ratio: float = 2.0,
    level: float = 0.9,
) -> pl.DataFrame:
    """Tie rate per reviewer against the pool's, with an exact one-sided binomial test.

    Needs comparisons.reviewer_id, has_reviewer, outcome. Returns ``reviewer_id, n_votes,
    n_ties, tie_rate, tie_rate_low, tie_rate_high, pool_tie_rate, tie_ratio, p_value,
    tie_overuse, verdict``.
    """
    require_reviewers(con, "Tie use", ["outcome"])
    df = con.sql("""
        SELECT reviewer_id, count(*) AS n_votes, count(*) FILTER (WHERE outcome = 0) AS n_ties
        FROM comparisons WHERE has_reviewer GROUP BY ALL ORDER BY reviewer_id
    """).pl()
    n, t = df["n_votes"].to_numpy(), df["n_ties"].to_numpy()
    pool = t.sum() / max(n.sum(), 1)
    rate = t / np.maximum(n, 1)
    ratio = rate / pool if pool > 0 else np.where(t > 0, np.inf, 1.0)
    p = binom.sf(t - 1, n, pool) if pool > 0 else np.where(t > 0, 0.0, 1.0)
    low, high = clopper_pearson(t, n, level)
    over = (p < alpha) & (ratio >= overuse_ratio)
    verdict = [
        f"says 'tie' {_pct(r)} of the time, {x:.1f}x the pool's {_pct(pool)}: overuses ties"
        if o
        else f"says 'tie' {_pct(r)} of the time (pool {_pct(pool)})"
        for r, x, o in zip(rate, ratio, over, strict=True)
    ]
    return df.with_columns(
        tie_rate=pl.Series(rate),
        tie_rate_low=pl.Series(low),
        tie_rate_high=pl.Series(high),
        pool_tie_rate=pl.lit(float(pool)),
        tie_ratio=pl.Series(ratio, dtype=pl.Float64),
        p_value=pl.Series(p, dtype=pl.Float64),
        tie_overuse=pl.Series(over),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def self_consistency(
    con: duckdb.DuckDBPyConnection, min_consistency: float = 0.7, level: float = 0.9
) -> pl.DataFrame:
    """Did the reviewer give the same answer when shown the same pair again?

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, first_shown, created_at.
    Every later judgment of a (reviewer, pair) is compared with the first. Returns only
    reviewers with repeats: ``reviewer_id, n_repeats, n_consistent, consistency,
    consistency_low, consistency_high, n_swapped, n_swapped_consistent, swapped_consistency,
    inconsistent, verdict``.
    """
    require_reviewers(con, "Self-consistency", ["outcome", "first_shown", "created_at"])
    df = con.sql("""
        WITH r AS (
            SELECT reviewer_id, outcome, first_shown,
                   first_value(outcome) OVER w AS first_outcome,
                   first_value(first_shown) OVER w AS first_first_shown,
                   row_number() OVER w AS k
            FROM comparisons WHERE has_reviewer
            WINDOW w AS (PARTITION BY reviewer_id, pair_id
                         ORDER BY created_at NULLS LAST, comparison_id)
        )
        SELECT reviewer_id, count(*) AS n_repeats,
               count(*) FILTER (WHERE outcome = first_outcome) AS n_consistent,
               count(*) FILTER (WHERE first_shown <> first_first_shown) AS n_swapped,
               count(*) FILTER (WHERE first_shown <> first_first_shown
                                  AND outcome = first_outcome) AS n_swapped_consistent
        FROM r WHERE k > 1 GROUP BY ALL ORDER BY reviewer_id
    """).pl()
    n, k = df["n_repeats"].to_numpy(), df["n_consistent"].to_numpy()
    ns, ks = df["n_swapped"].to_numpy(), df["n_swapped_consistent"].to_numpy()
    rate = k / np.maximum(n, 1)
    low, high = clopper_pearson(k, n, level)
    bad = high < min_consistency
    verdict = [
        f"same answer on {ki} of {ni} repeated pairs"
        + (f" ({ksi} of {nsi} with the order swapped)" if nsi else "")
        + (": inconsistent" if b else "")
        for ki, ni, ksi, nsi, b in zip(k, n, ks, ns, bad, strict=True)
    ]
    return df.with_columns(
        consistency=pl.Series(rate, dtype=pl.Float64),
        consistency_low=pl.Series(low, dtype=pl.Float64),
        consistency_high=pl.Series(high, dtype=pl.Float64),
        swapped_consistency=pl.Series(
            np.where(ns > 0, ks / np.maximum(ns, 1), np.nan), dtype=pl.Float64
        ),
        inconsistent=pl.Series(bad, dtype=pl.Boolean),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def gold_accuracy(
    con: duckdb.DuckDBPyConnection, min_accuracy: float = 0.7, level: float = 0.9
) -> pl.DataFrame:
    """Accuracy on gold questions (comparisons with ``gold_outcome``), per reviewer.

    Needs comparisons.reviewer_id, has_reviewer, outcome, gold_outcome. Returns only reviewers
    who answered gold questions (an empty frame when the data has none): ``reviewer_id,
    n_gold, n_correct, gold_accuracy, gold_accuracy_low, gold_accuracy_high, fails_gold,
    verdict``; ``fails_gold`` when the upper end of the interval is below ``min_accuracy``.
    """
    require_reviewers(con, "Gold accuracy", ["outcome", "gold_outcome"])
    df = con.sql("""
        SELECT reviewer_id, count(*) AS n_gold,
               count(*) FILTER (WHERE outcome = gold_outcome) AS n_correct
        FROM comparisons WHERE has_reviewer AND gold_outcome IS NOT NULL
        GROUP BY ALL ORDER BY reviewer_id
    """).pl()
    n, k = df["n_gold"].to_numpy(), df["n_correct"].to_numpy()
    low, high = clopper_pearson(k, n, level)
    fails = high < min_accuracy
    verdict = [
        f"right on {ki} of {ni} gold questions" + (": fails gold" if f else "")
        for ki, ni, f in zip(k, n, fails, strict=True)
    ]
    return df.with_columns(
        gold_accuracy=pl.Series(k / np.maximum(n, 1), dtype=pl.Float64),
        gold_accuracy_low=pl.Series(low, dtype=pl.Float64),
        gold_accuracy_high=pl.Series(high, dtype=pl.Float64),
        fails_gold=pl.Series(fails, dtype=pl.Boolean),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def speed(con: duckdb.DuckDBPyConnection, fast_ratio: float = 0.4) -> pl.DataFrame:
    """Median seconds per judgment against the pool's median of reviewer medians.

    Needs comparisons.reviewer_id, has_reviewer, seconds_spent. Returns reviewers with timings:
    ``reviewer_id, n_timed, median_seconds, seconds_p25, seconds_p75, pool_median_seconds,
    speed_ratio, fast, verdict``. Combine with reliability in
    :func:`analytics.audit.speed_vs_reliability`.
    """
    require_reviewers(con, "Speed", ["seconds_spent"])
    df = con.sql("""
        SELECT reviewer_id, count(seconds_spent) AS n_timed,
               median(seconds_spent) AS median_seconds,
               quantile_cont(seconds_spent, 0.25) AS seconds_p25,
               quantile_cont(seconds_spent, 0.75) AS seconds_p75
        FROM comparisons WHERE has_reviewer AND seconds_spent IS NOT NULL
        GROUP BY ALL ORDER BY reviewer_id
    """).pl()
    if df.height == 0:
        return df.with_columns(
            pool_median_seconds=pl.lit(None, pl.Float64),
            speed_ratio=pl.lit(None, pl.Float64),
            fast=pl.lit(None, pl.Boolean),
            verdict=pl.lit(None, pl.String),
        )
    pool = float(df["median_seconds"].median())  # type: ignore[arg-type]
    return (
        df.with_columns(
            pool_median_seconds=pl.lit(pool),
            speed_ratio=pl.col("median_seconds") / pool if pool > 0 else pl.lit(None, pl.Float64),
        )
        .with_columns(fast=pl.col("speed_ratio") < fast_ratio)
        .with_columns(
            verdict=pl.format(
                "median {} s per judgment (pool {} s)",
                pl.col("median_seconds").round(1),
                round(pool, 1),
            )
            + pl.when(pl.col("fast")).then(pl.lit(": fast")).otherwise(pl.lit(""))
        )
    )


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
    v = con.sql(f"""
        SELECT reviewer_id, created_at, loo_agreement AS a FROM ({LOO_SQL})
        WHERE loo_agreement IS NOT NULL
        QUALIFY count(*) OVER (PARTITION BY reviewer_id) >= {2 * int(min_segment)}
        ORDER BY reviewer_id, created_at NULLS LAST, comparison_id
    """).pl()
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
            t=pl.int_range(1, pl.len() + 1).over("reviewer_id"),
            s1=pl.col("a").cum_sum().over("reviewer_id"),
            n=pl.len().over("reviewer_id"),
            s=pl.col("a").sum().over("reviewer_id"),
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
    best = split.sort("lr", descending=True).group_by("reviewer_id").first()
    out = best.select(
        "reviewer_id",
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
    if every not in ("day", "week", "month"):
        every = "week"
    return con.sql(
        f"""
        WITH l AS ({LOO_SQL}),
        pool AS (SELECT date_trunc('{every}', created_at) AS period,
                        avg(loo_agreement) AS pool_loo_agreement FROM l GROUP BY ALL)
        SELECT date_trunc('{every}', created_at) AS period, count(*) AS n_votes,
               avg(loo_agreement) AS loo_agreement, any_value(pool.pool_loo_agreement)
                 AS pool_loo_agreement
        FROM l LEFT JOIN pool ON date_trunc('{every}', l.created_at) = pool.period
        WHERE reviewer_id = ? GROUP BY ALL ORDER BY period
    """,
        params=[reviewer_id],
    ).pl()


__all__ = [
    "VOTES_SQL",
    "benjamini_hochberg",
    "clopper_pearson",
    "drift",
    "drift_series",
    "gold_accuracy",
    "position_bias",
    "self_consistency",
    "speed",
    "tie_use",
]
