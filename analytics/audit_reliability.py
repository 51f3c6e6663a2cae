"""Reviewer-level agreement: pairwise agreement, leave-one-out agreement and a model-free
reliability per reviewer, computed from one :class:`dissensus.analytics.audit_votes.Votes`.

Re-exported by :mod:`analytics.agreement` (their documented home). Each public function reads the
votes itself; the ``*_from`` functions take a :class:`Votes` already read, so that a chain of
checks (the audit, a report card) reads the warehouse once.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.special import betaincinv

from dissensus.analytics.audit_votes import Votes, load_votes, require_reviewers


def pairwise_from(
    votes: Votes, min_overlap: int = 10, reviewer: int | None = None
) -> pl.DataFrame:
    """:func:`pairwise_agreement` from ``votes``; ``reviewer`` (a code) keeps only the pairs of
    reviewers that include that one (computed on that reviewer's pairs only)."""
    first = votes.frame.filter(pl.col("k") == 1)
    r, p = first["r"].to_numpy(), first["p"].to_numpy()
    c = first["outcome"].to_numpy()
    if reviewer is not None:
        keep = np.zeros(votes.n_pairs, dtype=bool)
        keep[p[r == reviewer]] = True
        sel = keep[p]
        r, p, c = r[sel], p[sel], c[sel]
    # within a pair the votes are by distinct reviewers; sorted by (pair, reviewer), every
    # two votes i < j of one pair give reviewer_a = r[i] < reviewer_b = r[j] (codes follow
    # the ids' order, as the SQL's a.reviewer_id < b.reviewer_id)
    order = np.argsort(p * max(votes.n_reviewers, 1) + r)
    r, p, c = r[order], p[order], c[order]
    parts: list[tuple[np.ndarray, ...]] = []
    for d in range(1, p.size):
        i = np.flatnonzero(p[d:] == p[:-d])
        if i.size == 0:
            break
        parts.append((r[i], r[i + d], c[i], c[i + d]))
    cols = ("ra", "rb", "ca", "cb")
    j = pl.DataFrame(
        {n: np.concatenate([x[k] for x in parts]) if parts else np.zeros(0, np.int64)
         for k, n in enumerate(cols)}
    )
    if reviewer is not None:
        j = j.filter((pl.col("ra") == reviewer) | (pl.col("rb") == reviewer))
    # keep the reviewer pairs with enough overlap before aggregating (most share one pair)
    key = j["ra"] * max(votes.n_reviewers, 1) + j["rb"]
    n_shared = key.value_counts(name="n").filter(pl.col("n") >= min_overlap)
    j = j.filter(key.is_in(n_shared[key.name].implode()))
    ca, cb = pl.col("ca"), pl.col("cb")

    def share(x: pl.Expr) -> pl.Expr:
        return x.cast(pl.Float64).mean()

    out = (
        j.group_by("ra", "rb")
        .agg(
            n_shared=pl.len().cast(pl.Int64),
            agreement=share(ca == cb),
            chance_agreement=share(ca == 1) * share(cb == 1)
            + share(ca == 0) * share(cb == 0)
            + share(ca == -1) * share(cb == -1),
        )
        .sort(["n_shared", "ra", "rb"], descending=[True, False, False])
    )
    ch = pl.col("chance_agreement")
    return pl.DataFrame(
        {
            "reviewer_a": votes.ids(out["ra"]).alias("reviewer_a"),
            "reviewer_b": votes.ids(out["rb"]).alias("reviewer_b"),
        }
    ).with_columns(
        out.select(
            "n_shared",
            "agreement",
            "chance_agreement",
            cohen_kappa=pl.when(ch < 1).then((pl.col("agreement") - ch) / (1 - ch)),
        )
    )


def pairwise_agreement(con: duckdb.DuckDBPyConnection, min_overlap: int = 10) -> pl.DataFrame:
    """Agreement of every two reviewers who judged at least ``min_overlap`` pairs in common.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome. Returns ``reviewer_a,
    reviewer_b, n_shared, agreement, chance_agreement, cohen_kappa`` (Cohen's kappa from the two
    reviewers' own category shares on their shared pairs), most-overlapping first.
    """
    require_reviewers(con, "Pairwise agreement", ["outcome"])
    return pairwise_from(load_votes(con), min_overlap)


def loo_from(votes: Votes) -> pl.DataFrame:
    """:func:`leave_one_out_agreement` from ``votes``."""
    per = (
        votes.unique.group_by("r")
        .agg(
            n_votes=pl.len().cast(pl.Int64),
            n_compared=pl.col("loo_agreement").count().cast(pl.Int64),
            loo_agreement=pl.col("loo_agreement").mean(),
            majority_agreement=pl.col("majority_agreement").mean(),
        )
        .sort("r")
    )
    return per.select(votes.ids(per["r"]), pl.exclude("r"))


def leave_one_out_agreement(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per reviewer: mean share of the other reviewers on the same pair who voted the same.

    a_r = mean over r's pairs with other votes of (n_{u,v_r} - 1) / (m_u - 1). Also the raw
    agreement with the majority vote (self included; the usual crowd-work baseline). Needs
    comparisons.reviewer_id, has_reviewer, pair_id, outcome. Returns ``reviewer_id, n_votes,
    n_compared, loo_agreement, majority_agreement``.
    """
    require_reviewers(con, "Leave-one-out agreement", ["outcome"])
    return loo_from(load_votes(con))


def model_free_reliability(
    con: duckdb.DuckDBPyConnection,
    iterations: int = 2,
    prior_strength: float = 2.0,
    level: float = 0.9,
    start: float = 0.7,
) -> pl.DataFrame:
    """Reliability without the annotator model: leave-one-out agreement with a weighted consensus.

    A one-coin model (every reviewer r is right with probability q_r, wrong votes spread evenly
    over the C - 1 other categories; Dawid & Skene 1979 restricted to one parameter). Each
    round weighs reviewer s by the log-odds w_s = log(q_s (C - 1) / (1 - q_s)) (round 1: every
    q_s = ``start``, i.e. a soft majority of the others) and scores vote i of r on pair u by
    the posterior probability, from the *other* votes on u only, that u's answer is v_i. Then
    q_r = (sum_i a_i + k q̄) / (n_r + k), shrunk toward the pool mean q̄ with ``prior_strength``
    k, and the interval is the Beta(sum a + k q̄, n_r - sum a + k (1 - q̄)) quantiles.

    Two rounds (one re-weighting) by default: more rounds let a like-minded clique take the
    consensus over (on the bluebirds data, Welinder et al. 2010, the ranking gets worse with
    every further round). Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome.
    Returns ``reviewer_id, n_votes, reliability, reliability_low, reliability_high``.
    """
    require_reviewers(con, "Reliability", ["outcome"])
    return reliability_from(load_votes(con), iterations, prior_strength, level, start)


def reliability_from(
    votes: Votes,
    iterations: int = 2,
    prior_strength: float = 2.0,
    level: float = 0.9,
    start: float = 0.7,
) -> pl.DataFrame:
    """:func:`model_free_reliability` from ``votes``."""
    first = votes.unique
    r = first["r"].to_numpy()
    p = first["p"].to_numpy()
    c = first["outcome"].to_numpy().astype(np.int64) + 1
    n_rev, n_pair = votes.n_reviewers, votes.n_pairs
    present = np.bincount(c, minlength=3) > 0
    n_cat = max(int(present.sum()), 2)
    n_r = np.bincount(r, minlength=n_rev).astype(float)
    q = np.full(n_rev, start)
    cell = p * 3 + c
    others = np.bincount(p, minlength=n_pair)[p] > 1
    n_cmp = np.bincount(r, weights=others.astype(float), minlength=n_rev)
    # the two categories other than the vote's own, as flat indices into the score table
    other1, other2 = p * 3 + (c + 1) % 3, p * 3 + (c + 2) % 3
    a = np.zeros(c.size)
    pool = 0.0
    for round_ in range(max(iterations, 1)):
        qc = np.clip(q if round_ else np.full(n_rev, start), 1.0 / n_cat + 1e-3, 1 - 1e-3)
        w = np.log(qc * (n_cat - 1) / (1 - qc))
        score = np.bincount(cell, weights=w[r], minlength=3 * n_pair).reshape(n_pair, 3)
        score[:, ~present] = -np.inf
        # posterior of the vote's own category from the *others'* weighted votes (its own
        # weight w_r removed): e_own / (e_own + e_other1 + e_other2) with e_c = exp(S_c) and
        # e_own = exp(S_own - w_r). Per pair, exp(S_c - max_c S_c) <= 1 cannot overflow, and
        # the denominator is never 0 (the pair's largest score has e = 1, and w_r > 0).
        e = np.exp(score - score.max(axis=1, keepdims=True)).reshape(-1)
        e_own = e[cell] * np.exp(-w)[r]
        a = np.where(others, e_own / (e_own + e[other1] + e[other2]), 0.0)
        s = np.bincount(r, weights=a, minlength=n_rev)
        pool = s.sum() / max(n_cmp.sum(), 1.0)
        q = (s + prior_strength * pool) / (n_cmp + prior_strength)
    s = np.bincount(r, weights=a, minlength=n_rev)
    k = max(prior_strength, 1e-6)
    tail = (1 - level) / 2
    a_post, b_post = s + k * pool, n_cmp - s + k * (1 - pool)
    # A reviewer who shares no pair with another has no evidence either way: their figures are
    # unknown (null), not the pool's prior (with one reviewer the pool itself is 0 of 0).
    unknown = n_cmp == 0
    with np.errstate(invalid="ignore"):
        low, high = betaincinv(a_post, b_post, tail), betaincinv(a_post, b_post, 1 - tail)
    return pl.DataFrame(
        {
            "reviewer_id": votes.reviewer_ids,
            "n_votes": n_r.astype(np.int64),
            "reliability": np.where(unknown, np.nan, q),
            "reliability_low": np.where(unknown, np.nan, low),
            "reliability_high": np.where(unknown, np.nan, high),
        }
    ).with_columns(pl.col("reliability", "reliability_low", "reliability_high").fill_nan(None))
