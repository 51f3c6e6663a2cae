"""Report cards: everything about one reviewer, and their votes against their school.

Re-exported by :mod:`analytics.audit`. A report card reads the votes once and shares them between
the audit, the verdicts, the partners (filtered to the reviewer's pairs) and the drift series.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import polars as pl

from dissensus.analytics import consistency as cs
from dissensus.analytics.audit_config import AuditConfig
from dissensus.analytics.audit_drift import drift_series_from
from dissensus.analytics.audit_fit import latest_fit_estimates
from dissensus.analytics.audit_flags import audit_checks, audit_from
from dissensus.analytics.audit_reliability import pairwise_from
from dissensus.analytics.audit_votes import load_votes, require_reviewers
from dissensus.warehouse.errors import EmptyDataError

AUDIT_COLUMNS = ["outcome", "first_shown", "created_at", "seconds_spent", "gold_outcome"]
"""Columns of ``comparisons`` the audit needs beyond the reviewer and the pair."""


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
        "SELECT reviewer_id, school FROM reviewer_estimates WHERE fit_id = $fit"
        if fit_id
        else "SELECT NULL::VARCHAR AS reviewer_id, NULL::INTEGER AS school"
    )
    params: dict[str, object] = {"rid": reviewer_id, **({"fit": fit_id} if fit_id else {})}
    label = "CASE {x} WHEN 1 THEN 'response_1' WHEN -1 THEN 'response_2' ELSE 'tie' END"
    # only the reviewer's pairs matter: filter before the first-vote window (which partitions
    # by reviewer and pair, so the filter does not change which vote is first)
    return con.sql(
        f"""
        WITH mine AS (SELECT DISTINCT pair_id FROM comparisons
                      WHERE has_reviewer AND reviewer_id = $rid),
        v AS (SELECT comparison_id, reviewer_id, pair_id, outcome, created_at
              FROM comparisons WHERE has_reviewer AND pair_id IN (SELECT pair_id FROM mine)
              QUALIFY row_number() OVER (PARTITION BY reviewer_id, pair_id
                                         ORDER BY created_at NULLS LAST, comparison_id) = 1),
        s AS ({school_sql}),
        me AS (SELECT v.pair_id, v.outcome, v.created_at, s.school FROM v
               LEFT JOIN s USING (reviewer_id) WHERE v.reviewer_id = $rid),
        o AS (SELECT v.pair_id, v.outcome, count(*) AS n FROM v JOIN me USING (pair_id)
              LEFT JOIN s ON s.reviewer_id = v.reviewer_id
              WHERE v.reviewer_id <> $rid AND (me.school IS NULL OR s.school = me.school)
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
        params=params,
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
    cfg = config or AuditConfig()
    require_reviewers(con, "The reviewer audit", AUDIT_COLUMNS)
    votes = load_votes(con)  # read once: the audit, the verdicts, partners and drift share it
    votes.unique  # noqa: B018 (cached; computed once before the threads share it)
    code = votes.code(reviewer_id)
    # the reviewer's own parts run beside the audit (DuckDB on a cursor of its own)
    cursor = con.cursor()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            disagreements = pool.submit(school_disagreements, cursor, reviewer_id, limit)
            partners = pool.submit(
                lambda: pairwise_from(votes, min_overlap=3, reviewer=code).head(limit)
                if code is not None
                else pl.DataFrame()
            )
            drift = pool.submit(drift_series_from, votes, reviewer_id)
            checks = audit_checks(votes, cfg)
            audit = audit_from(con, votes, cfg, checks)
            parts = (partners.result(), drift.result(), disagreements.result())
    finally:
        cursor.close()
    row = audit.filter(pl.col("reviewer_id") == reviewer_id)
    if row.height == 0:
        raise EmptyDataError(
            f"There is no reviewer '{reviewer_id}' in the warehouse.",
            expected="an id listed by `dissensus reviewers`",
            fix="check the spelling; ids are case-sensitive",
        )
    summary = row.row(0, named=True)
    # the verdicts as the checks give them with their default interval level (the position
    # and tie verdicts do not depend on the level)
    default = cfg.level == AuditConfig.model_fields["level"].default
    frames = {
        "position bias": checks["position"],
        "tie use": checks["ties"],
        "self-consistency": checks["consistency"]
        if default
        else cs.self_consistency_from(votes, cfg.min_self_consistency),
        "gold accuracy": checks["gold"]
        if default
        else cs.gold_accuracy_from(votes, cfg.min_gold_accuracy),
        "speed": checks["speed"],
        "drift": checks["drift"],
    }
    verdicts = {}
    for name, frame in frames.items():
        part = frame.filter(pl.col("reviewer_id") == reviewer_id)
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
                "expected agreement with the consensus",
                s.get("agreement"),
                s.get("agreement_low"),
                s.get("agreement_high"),
                "the chance that a vote of theirs names the side the consensus favours: the "
                "fit's prediction (lapses and leans together) updated by their own record "
                "(the fit's interval, as for reliability)",
            ),
            (
                "lapse evidence (Bayes factor)",
                s.get("model_lapse_evidence"),
                None,
                None,
                "how far their own votes move the odds of lapses against careful from the "
                "pool's: above 1 toward lapses, below 1 toward careful, near 1 they say little",
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
    return ReportCard(reviewer_id, summary, figures, *parts)
