"""The reviewer audit: flags with reasons, and report cards, for labeling leads.

Combines the annotator model's ``reviewer_estimates`` (latest fit, when there is one: reliability
= 1 - lapse rate, school) with the model-free checks of :mod:`analytics.consistency` and
:mod:`analytics.agreement`. The point of the combination: a reviewer who disagrees with the
majority is not automatically a bad reviewer. A careful member of a minority school is reported as
"minority view, consistent"; a rushed reviewer as "fast and inconsistent". Without a fit,
disagreement and carelessness are told apart by the evidence that does not depend on the majority
(repeats, gold questions, display order, speed).

All thresholds live in :class:`AuditConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
from pydantic import BaseModel, Field
from scipy.stats import spearmanr

from analytics import consistency as cs
from analytics.agreement import (
    VOTES_SQL,
    leave_one_out_agreement,
    model_free_reliability,
    pairwise_agreement,
    require_reviewers,
)


class AuditConfig(BaseModel):
    """Thresholds of the reviewer audit (defaults suit a few dozen votes per reviewer)."""

    min_votes: int = Field(
        5,
        ge=1,
        description="Reviewers with fewer votes are listed, not "
        "flagged: too little evidence either way.",
    )
    min_model_reliability: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Annotator-model "
        "reliability (1 - lapse rate) below which, with the whole "
        "interval below, a reviewer is unreliable.",
    )
    relative_reliability: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Model-free reliability: "
        "unreliable when the interval's upper end is below this "
        "fraction of the pool median.",
    )
    reliability_iterations: int = Field(
        2,
        ge=1,
        le=50,
        description="Rounds of the model-free "
        "reliability (1 = soft majority, 2 = one re-weighting).",
    )
    reliability_prior_strength: float = Field(
        2.0,
        ge=0,
        description="Pseudo-votes shrinking the model-free reliability toward the pool mean.",
    )
    position_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Benjamini-Hochberg level of the exact binomial test for first-shown picks.",
    )
    position_min_effect: float = Field(
        0.1, ge=0, le=0.5, description="Smallest |first-pick rate - 1/2| worth a flag."
    )
    tie_alpha: float = Field(0.01, gt=0, lt=1, description="Level of the tie-overuse test.")
    tie_overuse_ratio: float = Field(
        2.0, ge=1, description="Tie rate this many times the pool's counts as overuse."
    )
    min_self_consistency: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Inconsistent when the upper end of the repeat-agreement interval is below.",
    )
    min_repeats: int = Field(
        3, ge=1, description="Repeats needed before consistency counts as evidence of care."
    )
    min_gold_accuracy: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Fails gold when the upper end of the gold-accuracy interval is below.",
    )
    min_gold: int = Field(
        3, ge=1, description="Gold answers needed before gold counts as evidence of care."
    )
    fast_ratio: float = Field(
        0.4,
        gt=0,
        le=1,
        description="Fast when the median seconds per "
        "judgment is below this fraction of the pool's median.",
    )
    drift_alpha: float = Field(0.01, gt=0, lt=1, description="Level of the change-point test.")
    drift_min_change: float = Field(
        0.15, ge=0, le=1, description="Smallest change in agreement worth a drift flag."
    )
    drift_min_segment: int = Field(
        10, ge=3, description="Votes needed on each side of a change-point."
    )
    level: float = Field(0.9, gt=0, lt=1, description="Coverage of every interval.")


def latest_fit_estimates(con: duckdb.DuckDBPyConnection) -> tuple[str | None, pl.DataFrame]:
    """The newest fit's id and its ``reviewer_estimates`` (empty frame when there is no fit).

    Needs tables fits(fit_id, created_at) and reviewer_estimates(fit_id, reviewer_id,
    reliability, reliability_low, reliability_high, school, school_probability, position_bias).
    """
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if not {"fits", "reviewer_estimates"} <= tables:
        return None, pl.DataFrame()
    rows = con.execute(
        "SELECT fit_id FROM fits WHERE fit_id IN (SELECT fit_id FROM reviewer_estimates) "
        "ORDER BY created_at DESC, fit_id DESC LIMIT 1"
    ).fetchall()
    if not rows:
        return None, pl.DataFrame()
    fit_id = str(rows[0][0])
    est = con.sql(
        """
        SELECT reviewer_id, reliability, reliability_low, reliability_high, school,
               school_probability, position_bias AS model_position_bias
        FROM reviewer_estimates WHERE fit_id = ?""",
        params=[fit_id],
    ).pl()
    return fit_id, est


def speed_vs_reliability(
    con: duckdb.DuckDBPyConnection, config: AuditConfig | None = None
) -> pl.DataFrame:
    """Median seconds per judgment beside model-free reliability, with the pool's Spearman rho.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, seconds_spent. Returns
    ``reviewer_id, median_seconds, speed_ratio, fast, reliability, spearman_rho, verdict``
    (``spearman_rho`` is one value for the pool: > 0 means slower reviewers are more reliable).
    """
    cfg = config or AuditConfig()
    sp = cs.speed(con, cfg.fast_ratio)
    rel = model_free_reliability(con, cfg.reliability_iterations, cfg.reliability_prior_strength)
    df = sp.select("reviewer_id", "median_seconds", "speed_ratio", "fast").join(
        rel.select("reviewer_id", "reliability"), on="reviewer_id", how="inner"
    )
    rho = float(spearmanr(df["median_seconds"], df["reliability"])[0]) if df.height > 2 else None
    pool = float(df["reliability"].median()) if df.height else 0.0  # type: ignore[arg-type]
    return df.with_columns(spearman_rho=pl.lit(rho, pl.Float64)).with_columns(
        verdict=pl.when(pl.col("fast") & (pl.col("reliability") < pool))
        .then(pl.lit("fast and below the pool's reliability"))
        .when(pl.col("fast"))
        .then(pl.lit("fast, but as reliable as the pool"))
        .otherwise(pl.lit("normal pace"))
    )


def _join_all(con: duckdb.DuckDBPyConnection, cfg: AuditConfig) -> tuple[pl.DataFrame, str]:
    rel = model_free_reliability(
        con, cfg.reliability_iterations, cfg.reliability_prior_strength, cfg.level
    )
    loo = leave_one_out_agreement(con).select("reviewer_id", "loo_agreement", "majority_agreement")
    fit_id, est = latest_fit_estimates(con)
    if fit_id is not None and est.height:
        base = rel.select("reviewer_id", "n_votes").join(est, on="reviewer_id", how="left")
        source = f"annotator model (fit {fit_id})"
    else:
        base = rel.with_columns(
            school=pl.lit(None, pl.Int32), school_probability=pl.lit(None, pl.Float64)
        )
        source = "model-free (leave-one-out agreement with a weighted consensus)"
    pb = cs.position_bias(con, cfg.position_alpha, cfg.position_min_effect, cfg.level).select(
        "reviewer_id",
        "first_rate",
        "first_rate_low",
        "first_rate_high",
        pl.col("q_value").alias("position_q"),
        "position_biased",
    )
    ti = cs.tie_use(con, cfg.tie_alpha, cfg.tie_overuse_ratio, cfg.level).select(
        "reviewer_id",
        "tie_rate",
        "tie_rate_low",
        "tie_rate_high",
        "pool_tie_rate",
        "tie_ratio",
        "tie_overuse",
    )
    sc = cs.self_consistency(con, cfg.min_self_consistency, cfg.level).select(
        "reviewer_id",
        "n_repeats",
        "consistency",
        "consistency_low",
        "consistency_high",
        "swapped_consistency",
        "inconsistent",
    )
    gd = cs.gold_accuracy(con, cfg.min_gold_accuracy, cfg.level).select(
        "reviewer_id",
        "n_gold",
        "gold_accuracy",
        "gold_accuracy_low",
        "gold_accuracy_high",
        "fails_gold",
    )
    sp = cs.speed(con, cfg.fast_ratio).select(
        "reviewer_id", "median_seconds", "pool_median_seconds", "speed_ratio", "fast"
    )
    dr = cs.drift(con, cfg.drift_min_segment, cfg.drift_alpha, cfg.drift_min_change).select(
        "reviewer_id", "drifting", "agreement_before", "agreement_after", "change_at"
    )
    out = base
    for part in (loo, pb, ti, sc, gd, sp, dr):
        out = out.join(part, on="reviewer_id", how="left")
    return out.with_columns(reliability_source=pl.lit(source)), source


def _f(x: float | None, digits: int = 2) -> str:
    return "?" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _judge(
    row: dict, cfg: AuditConfig, pool_rel: float, model: bool, majority_school: int | None
) -> tuple[str, bool, list[str]]:
    """Verdict, flagged, reasons for one reviewer (see the module docstring)."""
    reasons: list[str] = []
    if row["n_votes"] < cfg.min_votes:
        return "too few votes", False, [f"only {row['n_votes']} votes"]
    rel, high = row["reliability"], row["reliability_high"]
    if model:
        unreliable = high is not None and high < cfg.min_model_reliability
    else:
        unreliable = high is not None and high < cfg.relative_reliability * pool_rel
    if unreliable:
        reasons.append(
            f"reliability {_f(rel)} ({_f(row['reliability_low'])}–{_f(high)})"
            f" below {'the threshold' if model else 'the pool'}"
        )
    biased = bool(row.get("position_biased"))
    if biased:
        reasons.append(
            f"picks the first-shown reply {100 * row['first_rate']:.0f}% of the time"
            f" (q={row['position_q']:.2g})"
        )
    fast = bool(row.get("fast"))
    if fast:
        reasons.append(
            f"median {_f(row['median_seconds'], 0)} s per judgment vs pool "
            f"{_f(row['pool_median_seconds'], 0)} s"
        )
    inconsistent = bool(row.get("inconsistent"))
    if inconsistent:
        reasons.append(
            f"same answer on only {100 * row['consistency']:.0f}% of "
            f"{row['n_repeats']} repeated pairs"
        )
    fails_gold = bool(row.get("fails_gold"))
    if fails_gold:
        reasons.append(f"gold accuracy {100 * row['gold_accuracy']:.0f}% on {row['n_gold']}")
    ties = bool(row.get("tie_overuse"))
    if ties:
        reasons.append(f"says 'tie' {row['tie_ratio']:.1f}x as often as the pool")
    drifting = bool(row.get("drifting")) and (row["agreement_after"] or 0) < (
        row["agreement_before"] or 0
    )
    if drifting:
        reasons.append(
            f"agreement fell from {_f(row['agreement_before'])} to "
            f"{_f(row['agreement_after'])} around {str(row['change_at'])[:10]}"
        )
    careful_evidence = (
        (row.get("n_repeats") or 0) >= cfg.min_repeats
        and not inconsistent
        and (row.get("consistency") or 0) >= cfg.min_self_consistency
    ) or (
        (row.get("n_gold") or 0) >= cfg.min_gold
        and not fails_gold
        and (row.get("gold_accuracy") or 0) >= cfg.min_gold_accuracy
    )
    below_pool = rel is not None and rel < pool_rel
    if fast and (unreliable or inconsistent or fails_gold or below_pool):
        if below_pool and not unreliable:
            reasons.append(f"reliability {_f(rel)} below the pool median {_f(pool_rel)}")
        return "fast and inconsistent", True, reasons
    if biased:
        return "position-biased", True, reasons
    if fails_gold:
        return "fails gold questions", True, reasons
    if inconsistent:
        return "inconsistent on repeats", True, reasons
    if unreliable and model:
        return "unreliable: frequent lapses", True, reasons
    if unreliable and careful_evidence:
        reasons.append(
            "but consistent on repeats/gold: disagreement looks like a view, not noise"
            " (fit the annotator model to confirm)"
        )
        return "disagrees with the majority, consistent", False, reasons
    if unreliable:
        return "unreliable: disagrees with the others", True, reasons
    if ties:
        return "overuses ties", True, reasons
    if drifting:
        return "drifting", True, reasons
    school = row.get("school")
    if model and school is not None and majority_school is not None and school != majority_school:
        reasons.append(
            f"school {school} (p={_f(row.get('school_probability'))}), reliability "
            f"{_f(rel)}: careful, holds a minority view"
        )
        return "minority view, consistent", False, reasons
    if fast:
        return "fast, but reliable", False, reasons
    return "ok", False, reasons


def reviewer_audit(
    con: duckdb.DuckDBPyConnection, config: AuditConfig | None = None
) -> pl.DataFrame:
    """One row per reviewer with every figure, a verdict, flagged and the reasons; ranked.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, first_shown, created_at,
    seconds_spent, gold_outcome (and the output tables for a fit). Rank 1 is the most
    concerning: flagged reviewers first, then by reliability, lowest first.
    """
    cfg = config or AuditConfig()
    require_reviewers(
        con,
        "The reviewer audit",
        ["outcome", "first_shown", "created_at", "seconds_spent", "gold_outcome"],
    )
    df, source = _join_all(con, cfg)
    model = source.startswith("annotator")
    pool_rel = float(
        df.filter(pl.col("n_votes") >= cfg.min_votes)["reliability"].drop_nulls().median() or 0.0
    )  # type: ignore[arg-type]
    majority_school = None
    if model and df["school"].drop_nulls().len():
        majority_school = df["school"].drop_nulls().mode().sort()[0]
    judged = [
        _judge(row, cfg, pool_rel, model, majority_school) for row in df.iter_rows(named=True)
    ]
    df = df.with_columns(
        verdict=pl.Series([j[0] for j in judged], dtype=pl.String),
        flagged=pl.Series([j[1] for j in judged], dtype=pl.Boolean),
        reasons=pl.Series(["; ".join(j[2]) for j in judged], dtype=pl.String),
    ).sort(["flagged", "reliability"], descending=[True, False], nulls_last=True)
    df = df.with_columns(rank=pl.int_range(1, df.height + 1))
    first = [
        "rank",
        "reviewer_id",
        "verdict",
        "flagged",
        "reasons",
        "n_votes",
        "reliability",
        "reliability_low",
        "reliability_high",
        "school",
        "school_probability",
    ]
    return df.select(first + [c for c in df.columns if c not in first])


def school_disagreements(
    con: duckdb.DuckDBPyConnection, reviewer_id: str, limit: int = 50
) -> pl.DataFrame:
    """The reviewer's votes that go against the consensus of their school, with the texts.

    The school comes from the latest fit; without one, the consensus is that of all the other
    reviewers. Consensus = an answer given by more than half of the other reviewers (of the
    school) on the pair. Needs comparisons, pairs, responses, texts. Returns ``pair_id, prompt,
    response_1, response_2, reviewer_answer, consensus, n_others, consensus_share, created_at``.
    """
    require_reviewers(con, "School disagreements", ["outcome", "created_at"])
    fit_id, _ = latest_fit_estimates(con)
    school_sql = (
        "SELECT reviewer_id, school FROM reviewer_estimates WHERE fit_id = ?"
        if fit_id
        else "SELECT NULL::VARCHAR AS reviewer_id, NULL::INTEGER AS school"
    )
    params: list[object] = [fit_id] if fit_id else []
    label = "CASE {x} WHEN 1 THEN 'response_1' WHEN -1 THEN 'response_2' ELSE 'tie' END"
    return con.sql(
        f"""
        WITH v AS ({VOTES_SQL}), s AS ({school_sql}),
        me AS (SELECT v.pair_id, v.outcome, v.created_at, s.school FROM v
               LEFT JOIN s USING (reviewer_id) WHERE v.reviewer_id = ?),
        o AS (SELECT v.pair_id, v.outcome, count(*) AS n FROM v JOIN me USING (pair_id)
              LEFT JOIN s ON s.reviewer_id = v.reviewer_id
              WHERE v.reviewer_id <> ? AND (me.school IS NULL OR s.school = me.school)
              GROUP BY ALL),
        c AS (SELECT pair_id, arg_max(outcome, n) AS consensus, max(n) AS top,
                     sum(n) AS n_others FROM o GROUP BY ALL)
        SELECT me.pair_id, tp.body AS prompt, t1.body AS response_1, t2.body AS response_2,
               {label.format(x="me.outcome")} AS reviewer_answer,
               {label.format(x="c.consensus")} AS consensus, c.n_others::BIGINT AS n_others,
               c.top / c.n_others AS consensus_share, me.created_at
        FROM me JOIN c USING (pair_id)
        JOIN pairs p ON p.pair_id = me.pair_id
        LEFT JOIN texts tp ON tp.text_id = p.prompt_id
        LEFT JOIN responses r1 ON r1.response_id = p.response_1_id
        LEFT JOIN texts t1 ON t1.text_id = r1.text_id
        LEFT JOIN responses r2 ON r2.response_id = p.response_2_id
        LEFT JOIN texts t2 ON t2.text_id = r2.text_id
        WHERE 2 * c.top > c.n_others AND me.outcome <> c.consensus
        ORDER BY consensus_share DESC, c.n_others DESC, me.pair_id LIMIT {int(limit)}
    """,
        params=[*params, reviewer_id, reviewer_id],
    ).pl()


@dataclass
class ReportCard:
    """Everything about one reviewer: the audit row, figures with intervals, partners, drift."""

    reviewer_id: str
    summary: dict
    figures: pl.DataFrame
    partners: pl.DataFrame
    drift: pl.DataFrame
    disagreements: pl.DataFrame


def report_card(
    con: duckdb.DuckDBPyConnection,
    reviewer_id: str,
    config: AuditConfig | None = None,
    limit: int = 20,
) -> ReportCard:
    """The report card of one reviewer (raises :class:`EmptyDataError` for an unknown id)."""
    from warehouse.errors import EmptyDataError

    cfg = config or AuditConfig()
    audit = reviewer_audit(con, cfg)
    row = audit.filter(pl.col("reviewer_id") == reviewer_id)
    if row.height == 0:
        raise EmptyDataError(
            f"There is no reviewer '{reviewer_id}' in the warehouse.",
            expected="an id listed by `dissensus reviewers`",
            fix="check the spelling; ids are case-sensitive",
        )
    summary = row.row(0, named=True)
    verdicts = {}
    for name, fn in (
        (
            "position bias",
            lambda: cs.position_bias(con, cfg.position_alpha, cfg.position_min_effect),
        ),
        ("tie use", lambda: cs.tie_use(con, cfg.tie_alpha, cfg.tie_overuse_ratio)),
        ("self-consistency", lambda: cs.self_consistency(con, cfg.min_self_consistency)),
        ("gold accuracy", lambda: cs.gold_accuracy(con, cfg.min_gold_accuracy)),
        ("speed", lambda: cs.speed(con, cfg.fast_ratio)),
        (
            "drift",
            lambda: cs.drift(con, cfg.drift_min_segment, cfg.drift_alpha, cfg.drift_min_change),
        ),
    ):
        part = fn().filter(pl.col("reviewer_id") == reviewer_id)
        verdicts[name] = part["verdict"][0] if part.height else "no data for this check"
    s = summary
    figures = pl.DataFrame(
        [
            (
                "reliability",
                s["reliability"],
                s["reliability_low"],
                s["reliability_high"],
                s["reliability_source"],
            ),
            (
                "leave-one-out agreement",
                s["loo_agreement"],
                None,
                None,
                "share of the other reviewers on the same pair who agreed",
            ),
            ("agreement with majority", s["majority_agreement"], None, None, "raw baseline"),
            (
                "first-shown pick rate",
                s["first_rate"],
                s["first_rate_low"],
                s["first_rate_high"],
                verdicts["position bias"],
            ),
            ("tie rate", s["tie_rate"], s["tie_rate_low"], s["tie_rate_high"], verdicts["tie use"]),
            (
                "self-consistency",
                s["consistency"],
                s["consistency_low"],
                s["consistency_high"],
                verdicts["self-consistency"],
            ),
            (
                "gold accuracy",
                s["gold_accuracy"],
                s["gold_accuracy_low"],
                s["gold_accuracy_high"],
                verdicts["gold accuracy"],
            ),
            ("median seconds", s["median_seconds"], None, None, verdicts["speed"]),
            ("agreement before change-point", s["agreement_before"], None, None, verdicts["drift"]),
            ("agreement after change-point", s["agreement_after"], None, None, verdicts["drift"]),
        ],
        schema={
            "figure": pl.String,
            "value": pl.Float64,
            "low": pl.Float64,
            "high": pl.Float64,
            "verdict": pl.String,
        },
        orient="row",
    )
    partners = (
        pairwise_agreement(con, min_overlap=3)
        .filter((pl.col("reviewer_a") == reviewer_id) | (pl.col("reviewer_b") == reviewer_id))
        .head(limit)
    )
    return ReportCard(
        reviewer_id,
        summary,
        figures,
        partners,
        cs.drift_series(con, reviewer_id),
        school_disagreements(con, reviewer_id, limit),
    )
