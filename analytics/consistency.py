"""Per-reviewer consistency checks: each a number, an interval and a verdict in plain words.

- Position bias: among a reviewer's non-tie votes with a known display order, k of n picked the
  reply shown first, against the rate e that the other reviewers' picks on the same pairs
  predict (each vote: the others' share choosing the reply this reviewer saw first, shrunk
  toward 1/2; where the order is randomised e is about 1/2, where the better reply is usually
  shown first it is higher, and picking it is no bias); two-sided p-value
  min(1, 2 min(P(X <= k), P(X >= k))), X ~ Binomial(n, e), with a Benjamini-Hochberg q-value
  over reviewers and a Clopper-Pearson interval for k / n.
- Tie use: t ties in n votes against the tie rate e the other reviewers show on the same pairs;
  one-sided p = P(X >= t), X ~ Binomial(n, e).
- Self-consistency: every later judgment of a (reviewer, pair) compared with the first; also
  reported separately for repeats shown in the swapped order. Inconsistent only when also less
  consistent than the other reviewers' split on the same pairs predicts (on a pair the others
  split evenly, a careful reviewer's second answer matches the first about half the time).
- Gold accuracy: votes on pairs with a gold answer, Clopper-Pearson interval.
- Speed: median seconds per judgment against the pool median.
- Drift: per vote, the share of the other reviewers on the pair who agreed; for each split of a
  reviewer's time-ordered votes (at least ``min_segment`` each side) the Bernoulli
  likelihood-ratio statistic 2 [n1 H(p1) + n2 H(p2) - n H(p)] (H the log-likelihood of a rate),
  maximised over splits (a single change-point, Hinkley 1970), Bonferroni over the splits tried.

Each check is computed once, by its ``*_from`` function over a :class:`Votes` (what the audit
calls, with the votes read once); the plain name checks a connection's columns, reads the votes
and calls it. The defaults are :class:`~dissensus.analytics.audit_config.AuditConfig`'s: a check
called alone gives the audit's verdict.
"""

from __future__ import annotations

from functools import lru_cache

import duckdb
import numpy as np
import polars as pl
from scipy.special import bdtr, bdtrc, betaincinv

from dissensus.analytics.audit_config import AuditConfig
from dissensus.analytics.audit_drift import drift, drift_series
from dissensus.analytics.audit_votes import (
    VOTES_SQL,
    Votes,
    count_by,
    load_votes,
    require_reviewers,
)
from dissensus.analytics.same_pairs import (
    expected_consistency,
    expected_first_rate,
    expected_tie_rate,
)

_AUDIT = AuditConfig()  # the defaults of every check


def clopper_pearson(k: np.ndarray, n: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, ...]:
    """Exact (Clopper-Pearson) interval for k successes in n trials, vectorised (the beta
    quantiles are computed once per distinct (k, n): reviewers share most of them)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    if k.size == 0:
        return np.zeros(0), np.zeros(0)
    ki, ni = k.astype(np.int64), n.astype(np.int64)
    if np.array_equal(ki, k) and np.array_equal(ni, n) and ni.min() >= 0:
        span = int(ni.max()) + 1  # one integer key per (k, n): a 1-d unique, not a row sort
        keys, inverse = np.unique(ki * span + ni, return_inverse=True)
        k, n = (keys // span).astype(float), (keys % span).astype(float)
    else:
        kn, inverse = np.unique(np.stack([k, n], axis=1), axis=0, return_inverse=True)
        k, n = kn[:, 0], kn[:, 1]
    inverse = inverse.reshape(-1)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, betaincinv(k, n - k + 1, tail), 0.0)
        high = np.where(k < n, betaincinv(k + 1, n - k, 1 - tail), 1.0)
    return np.where(n > 0, low, np.nan)[inverse], np.where(n > 0, high, np.nan)[inverse]


def binom_cdf(k: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """P(X <= k) for X ~ Binomial(n, p) (0 for k < 0); scipy.special, not the slow-to-import
    scipy.stats."""
    k = np.asarray(k, dtype=float)
    return np.where(k < 0, 0.0, bdtr(np.maximum(k, 0), n, p))


def binom_sf(k: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """P(X > k) for X ~ Binomial(n, p) (1 for k < 0)."""
    k = np.asarray(k, dtype=float)
    return np.where(k < 0, 1.0, bdtrc(np.maximum(k, 0), n, p))


def spearman(a: pl.Series, b: pl.Series) -> float:
    """Spearman's rank correlation (average ranks for ties; NaN when either has a missing
    value, as scipy's ``spearmanr``)."""
    frame = pl.DataFrame({"a": a, "b": b}).fill_nan(None)
    if frame.null_count().sum_horizontal().item():
        return float("nan")
    value = frame.select(pl.corr("a", "b", method="spearman")).item()
    return float(value) if value is not None else float("nan")


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


@lru_cache(maxsize=65536)
def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _votes_arrays(votes: Votes, *names: str) -> list[np.ndarray]:
    """Columns of ``votes.frame`` as numpy arrays, nulls as NaN (floats)."""
    return [votes.frame[n].cast(pl.Float64).fill_null(np.nan).to_numpy() for n in names]


def position_bias(
    con: duckdb.DuckDBPyConnection,
    alpha: float = _AUDIT.position_alpha,
    min_effect: float = _AUDIT.position_min_effect,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """Does the reviewer pick the reply shown first more (or less) often than the others'
    picks on the same pairs predict?

    A display order that follows quality (the better reply usually first) makes every careful
    reviewer pick the first-shown reply more often than half the time; held to 1/2 they would
    all read as biased. Each decided vote's expected chance of picking the first-shown reply is
    the other reviewers' share choosing that reply on the pair (their decided votes, whatever
    order they saw), shrunk toward 1/2 (:mod:`.same_pairs`); a pair nobody else decided
    expects 1/2. Needs comparisons.reviewer_id, has_reviewer, outcome, first_shown. Returns
    ``reviewer_id, n_decided, n_first, first_rate, first_rate_low, first_rate_high,
    expected_first_rate, p_value, q_value, position_biased, verdict``; ``position_biased``
    when q < ``alpha`` and |rate - expected| >= ``min_effect``.
    """
    require_reviewers(con, "Position bias", ["outcome", "first_shown"])
    return position_bias_from(load_votes(con), alpha, min_effect, level)


def position_bias_from(
    votes: Votes,
    alpha: float = _AUDIT.position_alpha,
    min_effect: float = _AUDIT.position_min_effect,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """:func:`position_bias` from ``votes`` (every vote with a known display order counts)."""
    o, fs = _votes_arrays(votes, "outcome", "first_shown")
    decided = (o != 0) & ~np.isnan(fs)
    n = count_by(votes, decided)
    k = count_by(votes, ((o == 1) & (fs == 1)) | ((o == -1) & (fs == 2)))
    df = pl.DataFrame({"reviewer_id": votes.reviewer_ids, "n_decided": n, "n_first": k})
    expected = expected_first_rate(votes, o, fs, decided)
    e = np.clip(expected, 1e-9, 1 - 1e-9)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        p = np.where(
            n > 0,
            np.minimum(1.0, 2 * np.minimum(binom_cdf(k, n, e), binom_sf(k - 1, n, e))),
            np.nan,
        )
    q = benjamini_hochberg(p)
    low, high = clopper_pearson(k, n, level)
    biased = (q < alpha) & (np.abs(rate - expected) >= min_effect)
    verdict = [
        "display order unknown"
        if ni == 0
        else (
            f"picks the first-shown reply {_pct(r)} of the time, where the others' picks on "
            f"the same pairs predict {_pct(x)} (q={qi:.2g}): position-biased"
            if b
            else f"picks the first-shown reply {_pct(r)} of the time (the others' picks on the "
            f"same pairs predict {_pct(x)}): no clear position bias"
        )
        for ni, r, x, qi, b in zip(n, rate, expected, q, biased, strict=True)
    ]
    return df.with_columns(
        first_rate=pl.Series(rate),
        first_rate_low=pl.Series(low),
        first_rate_high=pl.Series(high),
        expected_first_rate=pl.Series(expected, dtype=pl.Float64),
        p_value=pl.Series(p),
        q_value=pl.Series(q),
        position_biased=pl.Series(biased),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def tie_use(
    con: duckdb.DuckDBPyConnection,
    alpha: float = _AUDIT.tie_alpha,
    overuse_ratio: float = _AUDIT.tie_overuse_ratio,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """Tie rate per reviewer against the others' on the same pairs, with a one-sided binomial
    test.

    Close pairs draw "tie" from careful reviewers too, so a reviewer who works mostly close
    pairs (a queue of near-ties) says it more often than the pool without overusing it. Each
    vote's expected tie chance is therefore the other reviewers' tie share on that pair,
    shrunk toward the pool's rate (:mod:`.same_pairs`; a pair nobody else judged
    expects the pool's rate); the reviewer's expected rate is its mean over their votes, and
    their ties are tested against a binomial at that rate (conservative: the votes' chances
    differ, and a sum of unequal chances varies less). Every reviewer is tested, so, as for
    position bias, overuse needs the Benjamini-Hochberg q-value below ``alpha`` and the rate
    ``overuse_ratio`` times the expected one. Needs comparisons.reviewer_id, has_reviewer,
    outcome and the pair. Returns ``reviewer_id, n_votes, n_ties, tie_rate, tie_rate_low,
    tie_rate_high, expected_tie_rate, pool_tie_rate, tie_ratio, p_value, q_value,
    tie_overuse, verdict``.
    """
    require_reviewers(con, "Tie use", ["outcome"])
    return tie_use_from(load_votes(con), alpha, overuse_ratio, level)


def tie_use_from(
    votes: Votes,
    alpha: float = _AUDIT.tie_alpha,
    overuse_ratio: float = _AUDIT.tie_overuse_ratio,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """:func:`tie_use` from ``votes`` (every vote counts, repeats included)."""
    is_tie = votes.frame["outcome"].to_numpy() == 0
    n = count_by(votes)
    t = count_by(votes, is_tie)
    df = pl.DataFrame({"reviewer_id": votes.reviewer_ids, "n_votes": n, "n_ties": t})
    pool = t.sum() / max(n.sum(), 1)
    expected = expected_tie_rate(votes, is_tie, pool)
    rate = t / np.maximum(n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, rate / np.maximum(expected, 1e-300),
                         np.where(t > 0, np.inf, 1.0))
    p = np.where(expected > 0, binom_sf(t - 1, n, np.clip(expected, 1e-12, 1.0)),
                 np.where(t > 0, 0.0, 1.0))
    low, high = clopper_pearson(t, n, level)
    q = benjamini_hochberg(np.asarray(p, dtype=float))
    over = (q < alpha) & (ratio >= overuse_ratio)
    verdict = [
        f"says 'tie' {_pct(r)} of the time, {x:.1f}x the {_pct(e)} the others say on the same "
        "pairs: overuses ties"
        if o
        else f"says 'tie' {_pct(r)} of the time (others on the same pairs {_pct(e)}, pool "
        f"{_pct(pool)})"
        for r, x, e, o in zip(rate, ratio, expected, over, strict=True)
    ]
    return df.with_columns(
        tie_rate=pl.Series(rate),
        tie_rate_low=pl.Series(low),
        tie_rate_high=pl.Series(high),
        expected_tie_rate=pl.Series(expected, dtype=pl.Float64),
        pool_tie_rate=pl.lit(float(pool)),
        tie_ratio=pl.Series(ratio, dtype=pl.Float64),
        p_value=pl.Series(p, dtype=pl.Float64),
        q_value=pl.Series(q, dtype=pl.Float64),
        tie_overuse=pl.Series(over),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def self_consistency(
    con: duckdb.DuckDBPyConnection,
    min_consistency: float = _AUDIT.min_self_consistency,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """Did the reviewer give the same answer when shown the same pair again?

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, first_shown, created_at.
    Every later judgment of a (reviewer, pair) is compared with the first. A repeat of a close
    pair says little: each repeat's expected chance of the same answer is ``sum_y p_y^2`` with
    ``p`` the other reviewers' answers on the pair (shrunk toward the pool's by
    two votes, :mod:`.same_pairs`), and ``expected_consistency`` is its mean over the reviewer's
    repeats. Inconsistent when the upper end of the interval is below both
    ``min_consistency`` and that expectation. Returns only reviewers with repeats:
    ``reviewer_id, n_repeats, n_consistent, consistency, consistency_low, consistency_high,
    expected_consistency, n_swapped, n_swapped_consistent, swapped_consistency,
    inconsistent, verdict``.
    """
    require_reviewers(con, "Self-consistency", ["outcome", "first_shown", "created_at"])
    return self_consistency_from(load_votes(con), min_consistency, level)


def self_consistency_from(
    votes: Votes,
    min_consistency: float = _AUDIT.min_self_consistency,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """:func:`self_consistency` from ``votes``."""
    o, fo, fs, ffs = _votes_arrays(votes, "outcome", "first_outcome", "first_shown",
                                   "first_first_shown")
    rep = votes.frame["k"].to_numpy() > 1
    same, swapped = o == fo, fs != ffs  # NaN != x is True: exclude unknown orders
    swapped &= ~np.isnan(fs) & ~np.isnan(ffs)
    counts = {
        "n_repeats": count_by(votes, rep),
        "n_consistent": count_by(votes, rep & same),
        "n_swapped": count_by(votes, rep & swapped),
        "n_swapped_consistent": count_by(votes, rep & swapped & same),
    }
    df = pl.DataFrame({"reviewer_id": votes.reviewer_ids, **counts}).filter(
        pl.col("n_repeats") > 0
    )
    n, k = df["n_repeats"].to_numpy(), df["n_consistent"].to_numpy()
    ns, ks = df["n_swapped"].to_numpy(), df["n_swapped_consistent"].to_numpy()
    rate = k / np.maximum(n, 1)
    low, high = clopper_pearson(k, n, level)
    expected = expected_consistency(votes, o, rep)[counts["n_repeats"] > 0]
    bad = (high < min_consistency) & (high < expected)
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
        expected_consistency=pl.Series(expected, dtype=pl.Float64),
        swapped_consistency=pl.Series(
            np.where(ns > 0, ks / np.maximum(ns, 1), np.nan), dtype=pl.Float64
        ),
        inconsistent=pl.Series(bad, dtype=pl.Boolean),
        verdict=pl.Series(verdict, dtype=pl.String),
    )


def gold_accuracy(
    con: duckdb.DuckDBPyConnection,
    min_accuracy: float = _AUDIT.min_gold_accuracy,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """Accuracy on gold questions (comparisons with ``gold_outcome``), per reviewer.

    Needs comparisons.reviewer_id, has_reviewer, outcome, gold_outcome. Returns only reviewers
    who answered gold questions (an empty frame when the data has none): ``reviewer_id,
    n_gold, n_correct, gold_accuracy, gold_accuracy_low, gold_accuracy_high, fails_gold,
    verdict``; ``fails_gold`` when the upper end of the interval is below ``min_accuracy``.
    """
    require_reviewers(con, "Gold accuracy", ["outcome", "gold_outcome"])
    return gold_accuracy_from(load_votes(con), min_accuracy, level)


def gold_accuracy_from(
    votes: Votes,
    min_accuracy: float = _AUDIT.min_gold_accuracy,
    level: float = _AUDIT.level,
) -> pl.DataFrame:
    """:func:`gold_accuracy` from ``votes`` (every vote on a gold pair counts)."""
    o, g = _votes_arrays(votes, "outcome", "gold_outcome")
    df = pl.DataFrame(
        {
            "reviewer_id": votes.reviewer_ids,
            "n_gold": count_by(votes, ~np.isnan(g)),
            "n_correct": count_by(votes, o == g),
        }
    ).filter(pl.col("n_gold") > 0)
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


def speed(con: duckdb.DuckDBPyConnection, fast_ratio: float = _AUDIT.fast_ratio) -> pl.DataFrame:
    """Median seconds per judgment against the pool's median of reviewer medians.

    Needs comparisons.reviewer_id, has_reviewer, seconds_spent. Returns reviewers with timings:
    ``reviewer_id, n_timed, median_seconds, seconds_p25, seconds_p75, pool_median_seconds,
    speed_ratio, fast, verdict``. Combine with reliability in
    :func:`dissensus.analytics.audit.speed_vs_reliability`.
    """
    require_reviewers(con, "Speed", ["seconds_spent"])
    return speed_from(load_votes(con), fast_ratio)


def speed_from(votes: Votes, fast_ratio: float = _AUDIT.fast_ratio) -> pl.DataFrame:
    """:func:`speed` from ``votes`` (every timed vote counts)."""
    sec = pl.col("seconds_spent")
    # interpolation "linear" is DuckDB's quantile_cont: lo (1 - d) + hi d at (n - 1) q
    per = (
        votes.frame.select("r", "seconds_spent")
        .filter(sec.is_not_null())
        .group_by("r")
        .agg(
            n_timed=pl.len().cast(pl.Int64),
            median_seconds=sec.quantile(0.5, "linear"),
            seconds_p25=sec.quantile(0.25, "linear"),
            seconds_p75=sec.quantile(0.75, "linear"),
        )
        .sort("r")
    )
    df = per.select(votes.ids(per["r"]), pl.exclude("r"))
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


__all__ = [  # drift and drift_series live in analytics.audit_drift
    "VOTES_SQL",
    "benjamini_hochberg",
    "clopper_pearson",
    "drift",
    "drift_series",
    "gold_accuracy",
    "gold_accuracy_from",
    "position_bias",
    "position_bias_from",
    "self_consistency",
    "self_consistency_from",
    "speed",
    "speed_from",
    "tie_use",
    "tie_use_from",
]
