"""Inter-reviewer agreement over the warehouse: Krippendorff's alpha, Fleiss' kappa, pairwise and
leave-one-out agreement, and a model-free reliability per reviewer.

Every vote is a nominal value in {+1 (response_1 preferred), 0 (tie), -1 (response_2)}, in the
pair's canonical orientation, so ties are a category of their own. A reviewer who judged the same
pair more than once contributes only the first judgment here (repeats are for
:func:`analytics.consistency.self_consistency`).

Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"), nominal:
with n_uc the number of votes of value c on unit (pair) u, m_u = sum_c n_uc, only units with
m_u >= 2 (pairable values), n_c = sum_u n_uc and n = sum_c n_c,

    D_o ∝ sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1)      (observed disagreement)
    D_e ∝ (n^2 - sum_c n_c^2) / (n - 1)                  (expected disagreement)
    alpha = 1 - D_o / D_e

Units depend on the data only through their count pattern (n_u+, n_u0, n_u-), so DuckDB reduces
a million votes to a few hundred patterns and the bootstrap (resampling units, Hayes &
Krippendorff 2007) is a multinomial draw over patterns.

Fleiss' kappa (Fleiss 1971) needs the same number of raters per unit; it is computed on the
units with the most common number of raters and says how many units it left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np
import polars as pl

from warehouse.errors import DissensusError, EmptyDataError

GROUPINGS: dict[str, str] = {
    "category": "coalesce(category, '(none)')",
    "batch": "coalesce(batch, '(none)')",
    "guideline_version": "coalesce(guideline_version, '(none)')",
    "week": "coalesce(strftime(created_at, '%G-W%V'), '(no date)')",
}
"""Groupings for :func:`krippendorff_alpha`: name -> SQL expression over the votes."""

VOTES_SQL = """
    SELECT comparison_id, reviewer_id, pair_id, outcome, first_shown, created_at, seconds_spent,
           category, batch, guideline_version, gold_outcome
    FROM comparisons WHERE has_reviewer
    QUALIFY row_number() OVER (PARTITION BY reviewer_id, pair_id
                               ORDER BY created_at NULLS LAST, comparison_id) = 1
"""
"""First vote of each (reviewer, pair): the unit of every agreement statistic."""


def require_columns(
    con: duckdb.DuckDBPyConnection, table: str, columns: Iterable[str], purpose: str
) -> None:
    """Raise a :class:`DissensusError` naming the missing columns of ``table``."""
    have = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
    }
    missing = [c for c in columns if c not in have]
    if missing:
        raise DissensusError(
            f"{purpose} needs the column(s) {', '.join(missing)} of table '{table}'.",
            where=f"table {table}",
            expected=", ".join(columns),
            fix="open a warehouse made by `dissensus ingest` (the file may be older or foreign)",
        )


def require_reviewers(
    con: duckdb.DuckDBPyConnection, purpose: str, columns: Iterable[str] = ()
) -> int:
    """Check the columns, then that some comparisons name their reviewer; return that count.

    Raises :class:`EmptyDataError` with words when the warehouse is empty or anonymous.
    """
    require_columns(
        con, "comparisons", ("reviewer_id", "has_reviewer", "pair_id", *columns), purpose
    )
    total, named = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE has_reviewer) FROM comparisons"
    ).fetchall()[0]
    if total == 0:
        raise EmptyDataError(
            f"{purpose}: the warehouse holds no comparisons.",
            fix="run `dissensus ingest FILE` or `dissensus demo` first",
        )
    if named == 0:
        raise EmptyDataError(
            f"{purpose}: none of the {total:,} comparisons has a reviewer id, so there is no "
            "reviewer to judge and no way to tell two votes by one person from votes by two.",
            expected="comparisons with reviewer_id",
            fix="ingest data that names its reviewers (a reviewer_id column, pseudonymised if "
            "need be)",
        )
    return int(named)


# --------------------------------------------------------------------------- alpha and kappa


def _alpha_from_patterns(
    counts: np.ndarray, weight: np.ndarray, symmetric: bool = False
) -> float:
    """Nominal alpha from unit count patterns ``counts`` (k x C) occurring ``weight`` times.

    ``symmetric``: columns 0 and 2 are the two directions of a preference; pool them in the
    expected disagreement so that alpha does not depend on the pairs' canonical orientation.
    """
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, weight, m = counts[keep], weight[keep], m[keep]
    n_c = (counts * weight[:, None]).sum(axis=0)
    if symmetric:
        n_c = np.array([(n_c[0] + n_c[2]) / 2, n_c[1], (n_c[0] + n_c[2]) / 2])
    n = n_c.sum()
    if n < 2:
        return float("nan")
    d_o = (weight * (m**2 - (counts**2).sum(axis=1)) / (m - 1)).sum()
    d_e = (n**2 - (n_c**2).sum()) / (n - 1)
    return float(1.0 - d_o / d_e) if d_e > 0 else float("nan")


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _unit_patterns(con: duckdb.DuckDBPyConnection, group_sql: str) -> pl.DataFrame:
    return con.sql(f"""
        WITH v AS ({VOTES_SQL}),
        u AS (
            SELECT {group_sql} AS grp, pair_id,
                   count(*) FILTER (WHERE outcome = 1) AS n_pos,
                   count(*) FILTER (WHERE outcome = 0) AS n_tie,
                   count(*) FILTER (WHERE outcome = -1) AS n_neg
            FROM v GROUP BY ALL
        )
        SELECT grp, n_pos, n_tie, n_neg, count(*) AS units FROM u GROUP BY ALL
    """).pl()


def krippendorff_alpha(
    con: duckdb.DuckDBPyConnection,
    by: str | None = None,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
    symmetric: bool = True,
) -> pl.DataFrame:
    """Krippendorff's alpha (nominal, ties their own category) with bootstrap intervals.

    A pair's orientation (which reply is response_1) is arbitrary, and nominal alpha's expected
    disagreement depends on the pooled category shares. With ``symmetric`` (the default) the
    two preference directions are pooled in D_e (as if every pair were seen in both
    orientations), so alpha does not change when pairs are flipped; ``symmetric=False`` gives
    the textbook alpha of the canonical outcomes (what the ``krippendorff`` package computes).

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome (and category, batch,
    guideline_version or created_at for ``by``). ``by``: None (overall) or one of
    :data:`GROUPINGS`. Returns columns ``group, n_pairs, n_votes, alpha, alpha_low,
    alpha_high``; ``n_pairs`` counts pairs with at least two reviewers (the others carry no
    information on agreement). Intervals resample pairs (``n_boot`` draws).
    """
    extra = {
        "category": ["category"],
        "batch": ["batch"],
        "week": ["created_at"],
        "guideline_version": ["guideline_version"],
    }
    if by is not None and by not in GROUPINGS:
        raise DissensusError(
            f"Cannot group agreement by '{by}'.",
            expected=", ".join(GROUPINGS),
            fix="choose one of those",
        )
    require_reviewers(con, "Krippendorff's alpha", ["outcome", *extra.get(by or "", [])])
    patterns = _unit_patterns(con, GROUPINGS[by] if by else "'all'")
    rng = np.random.default_rng(seed)
    rows = []
    for (grp,), part in patterns.sort("grp").group_by(["grp"], maintain_order=True):
        counts = part.select("n_pos", "n_tie", "n_neg").to_numpy().astype(float)
        units = part["units"].to_numpy().astype(float)
        pairable = counts.sum(axis=1) >= 2
        n_pairs = int(units[pairable].sum())
        alpha = _alpha_from_patterns(counts, units, symmetric)
        low = high = float("nan")
        if n_pairs >= 2 and n_boot > 0:
            draws = rng.multinomial(int(units.sum()), units / units.sum(), size=n_boot)
            boot = np.array(
                [_alpha_from_patterns(counts, d.astype(float), symmetric) for d in draws]
            )
            low, high = _interval(boot, level)
        rows.append(
            {
                "group": str(grp),
                "n_pairs": n_pairs,
                "n_votes": int((counts[pairable].sum(axis=1) * units[pairable]).sum()),
                "alpha": alpha,
                "alpha_low": low,
                "alpha_high": high,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "group": pl.String,
            "n_pairs": pl.Int64,
            "n_votes": pl.Int64,
            "alpha": pl.Float64,
            "alpha_low": pl.Float64,
            "alpha_high": pl.Float64,
        },
    )


def _fleiss(counts: np.ndarray, weight: np.ndarray) -> float:
    m = counts.sum(axis=1)[0]
    n_units = weight.sum()
    p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_bar = (weight * p_i).sum() / n_units
    p_j = (counts * weight[:, None]).sum(axis=0) / (n_units * m)
    p_e = (p_j**2).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def fleiss_kappa(
    con: duckdb.DuckDBPyConnection, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> pl.DataFrame:
    """Fleiss' kappa (Fleiss 1971) on the pairs rated by the most common number of reviewers.

    kappa = (P̄ - P_e) / (1 - P_e), P_i = (sum_c n_ic^2 - m) / (m (m - 1)), P_e = sum_c p_c^2.
    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome. Returns one row:
    ``raters_per_pair, n_pairs, n_pairs_left_out, kappa, kappa_low, kappa_high, note``.
    """
    require_reviewers(con, "Fleiss' kappa", ["outcome"])
    patterns = _unit_patterns(con, "'all'")
    counts = patterns.select("n_pos", "n_tie", "n_neg").to_numpy().astype(float)
    units = patterns["units"].to_numpy().astype(float)
    m = counts.sum(axis=1)
    by_m = {int(k): units[m == k].sum() for k in np.unique(m) if k >= 2}
    schema = {
        "raters_per_pair": pl.Int64,
        "n_pairs": pl.Int64,
        "n_pairs_left_out": pl.Int64,
        "kappa": pl.Float64,
        "kappa_low": pl.Float64,
        "kappa_high": pl.Float64,
        "note": pl.String,
    }
    if not by_m:
        return pl.DataFrame(
            [
                {
                    "raters_per_pair": 0,
                    "n_pairs": 0,
                    "n_pairs_left_out": 0,
                    "kappa": None,
                    "kappa_low": None,
                    "kappa_high": None,
                    "note": "no pair has two or more reviewers",
                }
            ],
            schema=schema,
        )
    mode = max(by_m, key=lambda k: (by_m[k], k))
    sel = m == mode
    kappa = _fleiss(counts[sel], units[sel])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(int(units[sel].sum()), units[sel] / units[sel].sum(), size=n_boot)
    low, high = _interval(np.array([_fleiss(counts[sel], d.astype(float)) for d in draws]), level)
    left = int(sum(by_m.values()) - by_m[mode])
    note = (
        f"all pairs have {mode} reviewers"
        if left == 0
        else f"Fleiss' kappa needs a fixed number of raters: computed on the {int(by_m[mode]):,} "
        f"pairs with {mode} reviewers, {left:,} pairs with another count left out; "
        "Krippendorff's alpha uses them all"
    )
    return pl.DataFrame(
        [
            {
                "raters_per_pair": mode,
                "n_pairs": int(by_m[mode]),
                "n_pairs_left_out": left,
                "kappa": kappa,
                "kappa_low": low,
                "kappa_high": high,
                "note": note,
            }
        ],
        schema=schema,
    )


# ------------------------------------------------------------------ reviewer-level agreement


def pairwise_agreement(con: duckdb.DuckDBPyConnection, min_overlap: int = 10) -> pl.DataFrame:
    """Agreement of every two reviewers who judged at least ``min_overlap`` pairs in common.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome. Returns ``reviewer_a,
    reviewer_b, n_shared, agreement, chance_agreement, cohen_kappa`` (Cohen's kappa from the two
    reviewers' own category shares on their shared pairs), most-overlapping first.
    """
    require_reviewers(con, "Pairwise agreement", ["outcome"])
    return con.sql(
        f"""
        WITH v AS (SELECT reviewer_id, pair_id, outcome FROM ({VOTES_SQL})),
        j AS (
            SELECT a.reviewer_id AS reviewer_a, b.reviewer_id AS reviewer_b,
                   count(*) AS n_shared,
                   avg((a.outcome = b.outcome)::DOUBLE) AS agreement,
                   avg((a.outcome = 1)::DOUBLE) * avg((b.outcome = 1)::DOUBLE)
                   + avg((a.outcome = 0)::DOUBLE) * avg((b.outcome = 0)::DOUBLE)
                   + avg((a.outcome = -1)::DOUBLE) * avg((b.outcome = -1)::DOUBLE)
                     AS chance_agreement
            FROM v a JOIN v b ON a.pair_id = b.pair_id AND a.reviewer_id < b.reviewer_id
            GROUP BY ALL HAVING count(*) >= ?
        )
        SELECT *, CASE WHEN chance_agreement < 1
                  THEN (agreement - chance_agreement) / (1 - chance_agreement) END AS cohen_kappa
        FROM j ORDER BY n_shared DESC, reviewer_a, reviewer_b
    """,
        params=[min_overlap],
    ).pl()


LOO_SQL = f"""
    WITH v AS ({VOTES_SQL}),
    pc AS (SELECT pair_id, outcome, count(*) AS n_same FROM v GROUP BY ALL),
    p AS (SELECT pair_id, sum(n_same) AS n_pair, arg_max(outcome, n_same) AS top,
                 max(n_same) AS top_n FROM pc GROUP BY ALL),
    pt AS (SELECT pair_id, count(*) AS n_top FROM pc JOIN p USING (pair_id)
           WHERE pc.n_same = p.top_n GROUP BY ALL)
    SELECT v.*, p.n_pair - 1 AS n_others,
           CASE WHEN p.n_pair > 1 THEN (pc.n_same - 1) / (p.n_pair - 1) END AS loo_agreement,
           CASE WHEN p.n_pair > 1 THEN
               (pc.n_same = p.top_n)::DOUBLE / pt.n_top END AS majority_agreement
    FROM v JOIN pc USING (pair_id, outcome) JOIN p USING (pair_id) JOIN pt USING (pair_id)
"""
"""Per vote: the share of the other reviewers on the pair who voted the same
(``loo_agreement``) and agreement with the pair's majority including the vote itself
(``majority_agreement``; a k-way tie for the majority counts 1/k)."""


def leave_one_out_agreement(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per reviewer: mean share of the other reviewers on the same pair who voted the same.

    a_r = mean over r's pairs with other votes of (n_{u,v_r} - 1) / (m_u - 1). Also the raw
    agreement with the majority vote (self included; the usual crowd-work baseline). Needs
    comparisons.reviewer_id, has_reviewer, pair_id, outcome. Returns ``reviewer_id, n_votes,
    n_compared, loo_agreement, majority_agreement``.
    """
    require_reviewers(con, "Leave-one-out agreement", ["outcome"])
    return con.sql(f"""
        SELECT reviewer_id, count(*) AS n_votes, count(loo_agreement) AS n_compared,
               avg(loo_agreement) AS loo_agreement, avg(majority_agreement) AS majority_agreement
        FROM ({LOO_SQL}) GROUP BY ALL ORDER BY reviewer_id
    """).pl()


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
    from scipy.stats import beta

    require_reviewers(con, "Reliability", ["outcome"])
    votes = con.sql(f"SELECT reviewer_id, pair_id, outcome FROM ({VOTES_SQL})").pl()
    rid = votes["reviewer_id"].cast(pl.Categorical)
    r = rid.to_physical().to_numpy().astype(np.int64)
    p = votes["pair_id"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    c = votes["outcome"].to_numpy().astype(np.int64) + 1
    n_rev, n_pair = int(r.max()) + 1, int(p.max()) + 1
    present = np.bincount(c, minlength=3) > 0
    n_cat = max(int(present.sum()), 2)
    n_r = np.bincount(r, minlength=n_rev).astype(float)
    q = np.full(n_rev, start)
    idx = np.arange(c.size)
    a = np.zeros(c.size)
    others = np.zeros(c.size, dtype=bool)
    for round_ in range(max(iterations, 1)):
        qc = np.clip(q if round_ else np.full(n_rev, start), 1.0 / n_cat + 1e-3, 1 - 1e-3)
        w = np.log(qc * (n_cat - 1) / (1 - qc))
        score = np.zeros((n_pair, 3))
        np.add.at(score, (p, c), w[r])
        loo = score[p]
        loo[idx, c] -= w[r]
        count = np.bincount(p, minlength=n_pair)[p]
        others = count > 1
        loo[:, ~present] = -np.inf
        loo -= loo.max(axis=1, keepdims=True)
        post = np.exp(loo)
        post /= post.sum(axis=1, keepdims=True)
        a = np.where(others, post[idx, c], 0.0)
        s = np.bincount(r, weights=a, minlength=n_rev)
        n_cmp = np.bincount(r, weights=others.astype(float), minlength=n_rev)
        pool = s.sum() / max(n_cmp.sum(), 1.0)
        q = (s + prior_strength * pool) / (n_cmp + prior_strength)
    s = np.bincount(r, weights=a, minlength=n_rev)
    n_cmp = np.bincount(r, weights=others.astype(float), minlength=n_rev)
    k = max(prior_strength, 1e-6)
    tail = (1 - level) / 2
    a_post, b_post = s + k * pool, n_cmp - s + k * (1 - pool)
    order = pl.DataFrame({"i": r, "reviewer_id": votes["reviewer_id"]}).unique("i").sort("i")
    i = order["i"].to_numpy()
    return pl.DataFrame(
        {
            "reviewer_id": order["reviewer_id"],
            "n_votes": n_r[i].astype(np.int64),
            "reliability": q[i],
            "reliability_low": beta.ppf(tail, a_post, b_post)[i],
            "reliability_high": beta.ppf(1 - tail, a_post, b_post)[i],
        }
    ).sort("reviewer_id")
