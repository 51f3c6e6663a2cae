"""The reviewer audit: flags with reasons, and report cards, for labeling leads.

Combines the annotator model's ``reviewer_estimates`` (latest fit, when there is one: reliability
= 1 - lapse rate, school) with the model-free checks of :mod:`dissensus.analytics.consistency` and
:mod:`analytics.agreement`. The point of the combination: a reviewer who disagrees with the
majority is not automatically a bad reviewer. A careful member of a minority school is reported as
"minority view, consistent" (where no repeats or gold answers confirm it, the reasons say so
and give the record that falls short: accounts that copy one answer source vote alike too, see
:func:`minority_view_note`; gold and repeats confirm care only where the low end of their
interval reaches the bar); a rushed reviewer as "fast and inconsistent", where their votes and
their speed together favour lapses (speed weighed by how much it tells lapse leaners from the
rest in this pool: :mod:`dissensus.analytics.audit_speed`). Without a fit,
disagreement and carelessness are told apart by the evidence that does not depend on the majority
(repeats, gold questions, display order, speed). With a fit, "unreliable: frequent lapses" is
the fit's own lapse flag, which needs evidence from the reviewer's votes against the pool (see
the annotator model); :func:`fit_notes` gives the fit's words on what the data cannot support.
A careful reviewer whose departures from a clear consensus consistently favour one kind of reply
(the longer, one model's, the first shown) is reported as "consistent lean (a taste, not
lapses)", with the counts (the fit's ``lean``); one who says "equal" far more than the others
on the same pairs, where the fit reads a tie threshold of their own (a stricter idea of
"clearly better") and no lapses, as "says 'equal' often (a tie taste, not lapses)", not as
"overuses ties"; so too, without a fit, one whose repeated pairs come back the same. Without
a fit or repeats the flag stands and says that the votes alone cannot tell a tie taste from
careless ties, and what would. A reviewer the fit finds voting against a clear
consensus more often than a coin flip would is reported as "reversed votes" (swapped buttons or
instructions read backwards; see the annotator model's ``reversed_bayes_factor``). In a label
task (no display order), a reviewer the fit flags for a strong lean toward one label alone is
reported as "leans toward one label": the label task's position bias, not a lapse rate; one
flagged for lapses who picks one label on nearly every item (``one_label_share``) as "one label
on nearly every item": without failed gold questions, a worker who clicks one label whatever the
item and a rater who draws the line for it far from everyone else cast the same votes. With a fit,
"ok" is a verdict the reviewer's own votes must support: where they favour careful over lapses
by less than ``settled_bayes_factor`` (and no repeats or gold show care) the verdict is "cannot
tell from their votes", because the reliability shown is then mostly the pool's.

All thresholds live in :class:`AuditConfig`. The work is split by task: the config in
:mod:`analytics.audit_config`, the vote table every check shares in :mod:`analytics.audit_votes`,
the verdicts in :mod:`dissensus.analytics.audit_flags`, their names and the notes under the
table in :mod:`dissensus.analytics.audit_words`, report cards and school disagreements in
:mod:`dissensus.analytics.report_card`; every public name is importable from here.
"""

from __future__ import annotations

import duckdb
import polars as pl

from dissensus.analytics import consistency as cs
from dissensus.analytics.audit_config import AuditConfig
from dissensus.analytics.audit_fit import fit_notes, latest_fit_estimates
from dissensus.analytics.audit_flags import audit_checks, audit_from
from dissensus.analytics.audit_reliability import reliability_from
from dissensus.analytics.audit_votes import load_votes, require_reviewers
from dissensus.analytics.audit_words import (
    MINORITY_VIEW,
    TIE_TASTE,
    TIES_FROM_VOTES_ALONE,
    UNSETTLED,
    audit_notes,
    minority_view_note,
    speed_note,
    unsettled_note,
)
from dissensus.analytics.report_card import (
    AUDIT_COLUMNS,
    ReportCard,
    report_card,
    school_disagreements,
)

__all__ = [
    "MINORITY_VIEW",
    "TIES_FROM_VOTES_ALONE",
    "TIE_TASTE",
    "UNSETTLED",
    "AuditConfig",
    "ReportCard",
    "audit_checks",
    "audit_from",
    "audit_notes",
    "fit_notes",
    "latest_fit_estimates",
    "minority_view_note",
    "report_card",
    "reviewer_audit",
    "school_disagreements",
    "speed_note",
    "speed_vs_reliability",
    "unsettled_note",
]


def speed_vs_reliability(
    con: duckdb.DuckDBPyConnection, config: AuditConfig | None = None
) -> pl.DataFrame:
    """Median seconds per judgment beside model-free reliability, with the pool's Spearman rho.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, seconds_spent. Returns
    ``reviewer_id, median_seconds, speed_ratio, fast, reliability, spearman_rho, verdict``
    (``spearman_rho`` is one value for the pool: > 0 means slower reviewers are more reliable).
    """
    cfg = config or AuditConfig()
    require_reviewers(con, "Speed", ["seconds_spent"])  # the checks' own messages
    require_reviewers(con, "Reliability", ["outcome"])
    votes = load_votes(con)
    sp = cs.speed_from(votes, cfg.fast_ratio)
    rel = reliability_from(votes, cfg.reliability_iterations, cfg.reliability_prior_strength)
    df = sp.select("reviewer_id", "median_seconds", "speed_ratio", "fast").join(
        rel.select("reviewer_id", "reliability"), on="reviewer_id", how="inner"
    )
    rho = cs.spearman(df["median_seconds"], df["reliability"]) if df.height > 2 else None
    pool = float(df["reliability"].median()) if df.height else 0.0  # type: ignore[arg-type]
    return df.with_columns(spearman_rho=pl.lit(rho, pl.Float64)).with_columns(
        verdict=pl.when(pl.col("fast") & (pl.col("reliability") < pool))
        .then(pl.lit("fast and below the pool's reliability"))
        .when(pl.col("fast"))
        .then(pl.lit("fast, but as reliable as the pool"))
        .otherwise(pl.lit("normal pace"))
    )


def reviewer_audit(
    con: duckdb.DuckDBPyConnection, config: AuditConfig | None = None
) -> pl.DataFrame:
    """One row per reviewer with every figure, a verdict, flagged and the reasons; ranked.

    Needs comparisons.reviewer_id, has_reviewer, pair_id, outcome, first_shown, created_at,
    seconds_spent, gold_outcome (and the output tables for a fit). Rank 1 is the most
    concerning: flagged reviewers first, then by reliability, lowest first.
    """
    cfg = config or AuditConfig()
    require_reviewers(con, "The reviewer audit", AUDIT_COLUMNS)
    return audit_from(con, load_votes(con), cfg)
