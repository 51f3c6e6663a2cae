"""Inter-reviewer agreement over the warehouse: Krippendorff's alpha, Fleiss' kappa, pairwise and
leave-one-out agreement, and a model-free reliability per reviewer.

Every vote is a nominal value in {+1 (response_1 preferred), 0 (tie), -1 (response_2)}, in the
pair's canonical orientation, so ties are a category of their own. A reviewer who judged the same
pair more than once contributes only the first judgment here (repeats are for
:func:`dissensus.analytics.consistency.self_consistency`).

Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"), nominal:
with n_uc the number of votes of value c on unit (pair) u, m_u = sum_c n_uc, only units with
m_u >= 2 (pairable values), n_c = sum_u n_uc and n = sum_c n_c,

    D_o ∝ sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1)      (observed disagreement)
    D_e ∝ (n^2 - sum_c n_c^2) / (n - 1)                  (expected disagreement)
    alpha = 1 - D_o / D_e

Units depend on the data only through their count pattern (n_u+, n_u0, n_u-), so a million votes
(read once into an :class:`analytics.audit_votes.Votes`) reduce to a few hundred patterns and the
bootstrap (resampling units, Hayes & Krippendorff 2007) is a multinomial draw over patterns, in
a fixed pattern order (so the intervals are reproducible for a given seed).

Pairwise and leave-one-out agreement and the model-free reliability live in
:mod:`dissensus.analytics.audit_reliability` and are importable from here.

Fleiss' kappa (Fleiss 1971) needs the same number of raters per unit; it is computed on the
units with the most common number of raters and says how many units it left out.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from dissensus.analytics.audit_reliability import (
    leave_one_out_agreement,
    model_free_reliability,
    pairwise_agreement,
)
from dissensus.analytics.audit_votes import (
    LOO_SQL,
    VOTES_SQL,
    Votes,
    load_votes,
    require_columns,
    require_reviewers,
)
from dissensus.warehouse.errors import DissensusError

GROUPINGS: dict[str, str] = {
    "category": "coalesce(category, '(none)')",
    "batch": "coalesce(batch, '(none)')",
    "guideline_version": "coalesce(guideline_version, '(none)')",
    "week": "coalesce(strftime(created_at, '%G-W%V'), '(no date)')",
}
"""Groupings for :func:`krippendorff_alpha`: name -> SQL expression over the votes."""


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


def unit_patterns(votes: Votes, names: pl.Series | None = None) -> pl.DataFrame:
    """Count patterns of the units (pairs, or (group, pair) when ``names`` are given: the
    votes' extra column ``grp`` then holds indices into ``names``): ``grp, n_pos, n_tie,
    n_neg, units``, in a fixed order."""
    first = votes.frame.filter(pl.col("k") == 1)
    p = first["p"].to_numpy()
    c = first["outcome"].to_numpy().astype(np.int64) + 1
    if names is not None:
        g = first["grp"].to_numpy().astype(np.int64)
    else:
        g, names = np.zeros(p.size, dtype=np.int64), pl.Series(["all"])
    unit = g * votes.n_pairs + p
    if names.len() * votes.n_pairs <= 4_000_000:  # count per unit with a dense table
        cnt = np.bincount(unit * 3 + c, minlength=3 * names.len() * votes.n_pairs)
        cnt = cnt.reshape(-1, 3)
        seen = cnt.sum(axis=1) > 0
        cnt, ug = cnt[seen], np.flatnonzero(seen) // votes.n_pairs
    else:
        units, inverse = np.unique(unit, return_inverse=True)
        cnt = np.zeros((units.size, 3), dtype=np.int64)
        np.add.at(cnt, (inverse.reshape(-1), c), 1)
        ug = units // votes.n_pairs
    m = int(cnt.max()) + 1
    key = ((ug * m + cnt[:, 0]) * m + cnt[:, 1]) * m + cnt[:, 2]
    keys, n_units = np.unique(key, return_counts=True)
    out = pl.DataFrame(
        {
            "g": keys // m**3,
            "n_pos": keys // m**2 % m,
            "n_tie": keys // m % m,
            "n_neg": keys % m,
            "units": n_units.astype(np.int64),
        }
    )
    return out.select(
        grp=names.gather(out["g"]), n_pos="n_pos", n_tie="n_tie", n_neg="n_neg", units="units"
    ).sort("grp", "n_pos", "n_tie", "n_neg")


def _grouped_votes(con: duckdb.DuckDBPyConnection, by: str) -> tuple[Votes, pl.Series]:
    """Votes with the grouping ``by`` as ``grp``, an index into the (sorted) group names.

    DuckDB sends a 64-bit hash of the group per vote (not a million strings) and the few
    distinct groups with their hashes; a hash collision falls back to the strings.
    """
    if by == "week":  # ISO weeks from the timestamps already read, as DuckDB's '%G-W%V'
        votes = load_votes(con)
        t = votes.frame["created_at"]
        key = (t.dt.iso_year().cast(pl.Int64) * 100 + t.dt.week().cast(pl.Int64)).fill_null(-1)
        keys = key.unique().sort()
        names = pl.Series(
            [f"{k // 100:04d}-W{k % 100:02d}" if k >= 0 else "(no date)" for k in keys]
        )
        by_name = names.arg_sort()
        code = np.empty(names.len(), dtype=np.int64)
        code[by_name.to_numpy()] = np.arange(names.len())
        grp = key.replace_strict(keys, pl.Series(code), return_dtype=pl.Int64)
        frame = votes.frame.with_columns(grp=grp)
        return Votes(frame, votes.reviewer_ids, votes.n_pairs), names.gather(by_name)
    expr = GROUPINGS[by]
    groups = con.sql(
        f"SELECT DISTINCT {expr} AS name, hash({expr}) AS h FROM comparisons WHERE has_reviewer"
    ).pl().sort("name")
    if groups["h"].n_unique() == groups.height:
        votes = load_votes(con, {"grp": f"hash({expr})"})
        code = pl.Series(np.arange(groups.height))
        grp = votes.frame["grp"].replace_strict(groups["h"], code, return_dtype=pl.Int64)
    else:
        votes = load_votes(con, {"grp": expr})
        grp = votes.frame["grp"].replace_strict(
            groups["name"], pl.Series(np.arange(groups.height)), return_dtype=pl.Int64
        )
    frame = votes.frame.with_columns(grp=grp)
    return Votes(frame, votes.reviewer_ids, votes.n_pairs), groups["name"].cast(pl.String)


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
    if by is None:
        patterns = unit_patterns(load_votes(con))
    else:
        patterns = unit_patterns(*_grouped_votes(con, by))
    rng = np.random.default_rng(seed)
    rows = []
    for (grp,), part in patterns.group_by(["grp"], maintain_order=True):
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
    patterns = unit_patterns(load_votes(con))
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


__all__ = [
    "GROUPINGS",
    "LOO_SQL",
    "VOTES_SQL",
    "fleiss_kappa",
    "krippendorff_alpha",
    "leave_one_out_agreement",
    "model_free_reliability",
    "pairwise_agreement",
    "require_columns",
    "require_reviewers",
    "unit_patterns",
]
