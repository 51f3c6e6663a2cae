"""The audit's verdicts: every check joined per reviewer, then flags with reasons.

See :mod:`dissensus.analytics.audit` (which re-exports the public names) for what the verdicts mean.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import polars as pl

from dissensus.analytics import consistency as cs
from dissensus.analytics.audit_config import AuditConfig
from dissensus.analytics.audit_drift import drift_from
from dissensus.analytics.audit_fit import fit_interval_mass, latest_fit_estimates
from dissensus.analytics.audit_reliability import loo_from, reliability_from
from dissensus.analytics.audit_speed import SpeedEvidence, speed_evidence, what_speed_says
from dissensus.analytics.audit_votes import Votes
from dissensus.analytics.audit_words import (
    LEANS_TO_ONE_LABEL,
    MINORITY_VIEW,
    ONE_LABEL,
    TIE_TASTE,
    TIE_TASTE_SEEN,
    TIES_FROM_VOTES_ALONE,
    UNSETTLED,
    unconfirmed_reason,
)
from dissensus.analytics.audit_words import number as _f
from dissensus.warehouse.fits import fit_schools_unseen, latest_fit


def audit_checks(votes: Votes, cfg: AuditConfig) -> dict[str, pl.DataFrame]:
    """Every per-reviewer check of the audit, computed from one read of the votes.

    The checks are independent and spend their time in numpy, polars and scipy, which release
    the GIL: they run on a small thread pool.
    """
    tasks: dict[str, Callable[[], pl.DataFrame]] = {
        "reliability": lambda: reliability_from(
            votes, cfg.reliability_iterations, cfg.reliability_prior_strength, cfg.level
        ),
        "drift": lambda: drift_from(
            votes, cfg.drift_min_segment, cfg.drift_alpha, cfg.drift_min_change
        ),
        "loo": lambda: loo_from(votes),
        "position": lambda: cs.position_bias_from(
            votes, cfg.position_alpha, cfg.position_min_effect, cfg.level
        ),
        "ties": lambda: cs.tie_use_from(votes, cfg.tie_alpha, cfg.tie_overuse_ratio, cfg.level),
        "consistency": lambda: cs.self_consistency_from(votes, cfg.min_self_consistency, cfg.level),
        "gold": lambda: cs.gold_accuracy_from(votes, cfg.min_gold_accuracy, cfg.level),
        "speed": lambda: cs.speed_from(votes, cfg.fast_ratio),
    }
    votes.unique  # noqa: B018 (cached; computed once here, not by several threads at once)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(task) for name, task in tasks.items()}
        return {name: future.result() for name, future in futures.items()}


def _join_all(
    con: duckdb.DuckDBPyConnection, cfg: AuditConfig, checks: dict[str, pl.DataFrame]
) -> tuple[pl.DataFrame, str]:
    rel = checks["reliability"]
    loo = checks["loo"].select("reviewer_id", "loo_agreement", "majority_agreement")
    fit_id, est = latest_fit_estimates(con)
    if fit_id is not None and est.height:
        base = rel.select("reviewer_id", "n_votes").join(est, on="reviewer_id", how="left")
        mass = fit_interval_mass(con, fit_id)
        source = f"annotator model (fit {fit_id}" + (
            f", {mass:.0%} intervals)" if mass is not None else ")")
    else:
        base = rel.with_columns(
            school=pl.lit(None, pl.Int32), school_probability=pl.lit(None, pl.Float64)
        )
        source = "model-free (leave-one-out agreement with a weighted consensus)"
    pb = checks["position"].select(
        "reviewer_id",
        "first_rate",
        "first_rate_low",
        "first_rate_high",
        "expected_first_rate",
        pl.col("q_value").alias("position_q"),
        "position_biased",
    )
    ti = checks["ties"].select(
        "reviewer_id",
        "tie_rate",
        "tie_rate_low",
        "tie_rate_high",
        "expected_tie_rate",
        "pool_tie_rate",
        "tie_ratio",
        "tie_overuse",
    )
    sc = checks["consistency"].select(
        "reviewer_id",
        "n_repeats",
        "consistency",
        "consistency_low",
        "consistency_high",
        "expected_consistency",
        "swapped_consistency",
        "inconsistent",
    )
    gd = checks["gold"].select(
        "reviewer_id",
        "n_gold",
        "gold_accuracy",
        "gold_accuracy_low",
        "gold_accuracy_high",
        "fails_gold",
    )
    sp = checks["speed"].select(
        "reviewer_id", "median_seconds", "pool_median_seconds", "speed_ratio", "fast"
    )
    dr = checks["drift"].select(
        "reviewer_id", "drifting", "agreement_before", "agreement_after", "change_at"
    )
    out = base
    for part in (loo, pb, ti, sc, gd, sp, dr):
        out = out.join(part, on="reviewer_id", how="left")
    return out.with_columns(reliability_source=pl.lit(source)), source


def _judge(
    row: dict, cfg: AuditConfig, pool_rel: float, model: bool, majority_school: int | None,
    schools_seen: bool = True, speed: SpeedEvidence | None = None,
) -> tuple[str, bool, list[str]]:
    """Verdict, flagged, reasons for one reviewer (see the module docstring). ``schools_seen``
    False: the fit chose schools but called no pair pluralism, so nobody is placed in one.
    ``speed``: what "fast" says in this pool (:func:`.audit_speed.speed_evidence`)."""
    reasons: list[str] = []
    if row["n_votes"] < cfg.min_votes:
        return "too few votes", False, [f"only {row['n_votes']} votes"]
    rel, high = row["reliability"], row["reliability_high"]
    if rel is None and not model:
        return "cannot judge: no shared pairs", False, [
            f"none of the {row['n_votes']} votes is on a pair another reviewer also judged, so "
            "agreement (and reliability) cannot be measured"]
    if model:  # the fit's own verdict, with its evidence against the pool (one home)
        unreliable = bool(row.get("model_lapse_flag"))
        if unreliable:
            reasons.append(f"annotator model: {row.get('model_flag_reason') or 'lapses'}")
    else:
        unreliable = high is not None and high < cfg.relative_reliability * pool_rel
        if unreliable:
            reasons.append(
                f"reliability {_f(rel)} ({_f(row['reliability_low'])}–{_f(high)}) below the pool"
            )
    biased = bool(row.get("position_biased"))
    if biased:
        reasons.append(
            f"picks the first-shown reply {100 * row['first_rate']:.0f}% of the time, where "
            f"the others' picks on the same pairs predict "
            f"{100 * row['expected_first_rate']:.0f}% (q={row['position_q']:.2g})"
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
            f"{row['n_repeats']} repeated pairs (the others' answers on those pairs predict "
            f"{100 * row['expected_consistency']:.0f}%)"
        )
    fails_gold = bool(row.get("fails_gold"))
    if fails_gold:
        reasons.append(f"gold accuracy {100 * row['gold_accuracy']:.0f}% on {row['n_gold']}")
    ties = bool(row.get("tie_overuse"))
    if ties:
        reasons.append(f"says 'tie' {row['tie_ratio']:.1f}x as often as the others on the "
                       "same pairs")
    drifting = bool(row.get("drifting")) and (row["agreement_after"] or 0) < (
        row["agreement_before"] or 0
    )
    if drifting:
        reasons.append(
            f"agreement fell from {_f(row['agreement_before'])} to "
            f"{_f(row['agreement_after'])} around {str(row['change_at'])[:10]}"
        )
    # care is shown where the low end of the interval clears the bar, as a failure is where
    # the high end falls below it: a few gold answers at 75% do not show care (a ring of
    # accounts lapsing a third of the time answers so)
    careful_evidence = (
        (row.get("n_repeats") or 0) >= cfg.min_repeats
        and not inconsistent
        and (row.get("consistency_low") or 0) >= cfg.min_self_consistency
    ) or (
        (row.get("n_gold") or 0) >= cfg.min_gold
        and not fails_gold
        and (row.get("gold_accuracy_low") or 0) >= cfg.min_gold_accuracy
    )
    if model and "votes reversed" in (row.get("model_flag_reason") or ""):
        return "reversed votes", True, reasons  # no lapse: they pick the reply others reject
    if fast and (unreliable or inconsistent or fails_gold):
        return "fast and inconsistent", True, reasons
    speed_says = None
    if fast:
        said, speed_says = what_speed_says(row, pool_rel, model, speed, cfg)
        reasons.append(said)
        if speed_says == "lapses":
            return "fast and inconsistent", True, reasons
    if biased:
        return "position-biased", True, reasons
    if fails_gold:
        return "fails gold questions", True, reasons
    if inconsistent:
        return "inconsistent on repeats", True, reasons
    if model and row.get("model_label_lean_flag"):
        # a label task has no display order for the audit to check, so the fit's lean is the
        # evidence; it is the label task's position bias, not a lapse rate
        reasons.append(f"annotator model: {row['model_flag_reason']}")
        return LEANS_TO_ONE_LABEL, True, reasons
    lean = row.get("model_lean") if model else None
    if lean:  # evidence a lead can check: what the reviewer's departures favour
        reasons.append(lean)
    share = row.get("model_top_label_share") if model else None
    if unreliable and share is not None and share == share and share >= cfg.one_label_share:
        # no gold failed (that verdict came first): the votes alone cannot tell a one-label
        # clicker from a rater whose line sits far from everyone else's, so say both
        reasons.append(
            "a worker who clicks one label whatever the item and a rater who draws the line "
            "for that label far from everyone else cast the same votes: gold questions (or the "
            "rater's graded scores, where the labels come from a scale) would tell them apart; "
            "either way these votes say little about the items, and they carry little weight")
        return ONE_LABEL, True, reasons
    if unreliable and model:
        return "unreliable: frequent lapses", True, reasons
    if unreliable and careful_evidence:
        reasons.append(
            "but consistent on repeats/gold: disagreement looks like a view, not noise"
            " (fit the annotator model to confirm)"
        )
        return "disagrees with the majority, consistent", False, reasons
    if unreliable:
        if ties:  # much of the disagreement may be the ties themselves
            reasons.append(TIES_FROM_VOTES_ALONE)
        return "unreliable: disagrees with the others", True, reasons
    tie_taste = bool(model and row.get("model_tie_taste"))
    if ties and not tie_taste and careful_evidence:
        reasons.append(f"but consistent on repeats/gold: {TIE_TASTE_SEEN}")
        return TIE_TASTE, False, reasons
    if ties and not tie_taste:
        if not model:
            reasons.append(TIES_FROM_VOTES_ALONE)
        return "overuses ties", True, reasons
    if drifting:
        return "drifting", True, reasons
    # "careful" is a verdict about the person: their votes (or repeats, gold) must support it,
    # for a member of a minority school as for anyone
    unsettled = model and not careful_evidence and _unsettled(row, cfg)
    school = row.get("school")
    if model and school is not None and majority_school is not None and school != majority_school:
        placed = schools_seen and ((row.get("school_probability") or 0.0)
                                   >= cfg.min_school_probability)
        reasons.append(
            f"school {school} (p={_f(row.get('school_probability'))}): votes with a minority "
            "view" if placed and unsettled else
            f"school {school} (p={_f(row.get('school_probability'))}), reliability "
            f"{_f(rel)}: careful, holds a minority view" if placed else
            f"school {school} unproven (p={_f(row.get('school_probability'))}): the fit calls "
            "no pair pluralism, so this school is a view seen on no pair" if not schools_seen else
            f"school {school} uncertain (p={_f(row.get('school_probability'))}): the votes do "
            "not settle which school this reviewer holds"
        )
        if placed and not unsettled:
            if not careful_evidence:
                reasons.append(unconfirmed_reason(row))
            return MINORITY_VIEW, False, reasons
    if unsettled:
        return UNSETTLED, False, [*reasons, _unsettled_reason(row, cfg)]
    if speed_says == "unsettled" and not careful_evidence:
        return UNSETTLED, False, reasons  # the votes and speed together settle neither way
    if fast:
        return "fast, but reliable", False, reasons
    if tie_taste:
        return TIE_TASTE, False, reasons
    if lean:
        return "consistent lean (a taste, not lapses)", False, reasons
    return "ok", False, reasons


def _unsettled(row: dict, cfg: AuditConfig) -> bool:
    evidence = row.get("model_lapse_evidence")
    return evidence is not None and evidence == evidence and (
        evidence > 1.0 / cfg.settled_bayes_factor)


def _unsettled_reason(row: dict, cfg: AuditConfig) -> str:
    evidence = float(row["model_lapse_evidence"])
    votes = f"their {row['n_votes']} votes"
    if evidence >= 1.0:
        # the fit flags only where a high lapse rate is also probable, so with few votes even
        # strong odds can leave the interval reaching careful rates: say so, not "too little"
        low, high = row.get("reliability_low"), row.get("reliability_high")
        reach = ("" if low is None or high is None else
                 f", and their reliability interval ({_f(low)}–{_f(high)}) still reaches "
                 "careful rates")
        return (f"{votes} favour lapses {evidence:.1f} to 1 over careful{reach}: too little "
                "to flag; more votes would settle it")
    return (f"{votes} favour careful only {1 / evidence:.1f} to 1 (the audit asks "
            f"{cfg.settled_bayes_factor:g} to 1): the reliability shown is mostly the pool's, "
            "not a verdict on them")


def audit_from(
    con: duckdb.DuckDBPyConnection,
    votes: Votes,
    cfg: AuditConfig,
    checks: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """:func:`dissensus.analytics.audit.reviewer_audit` from ``votes`` (and ``checks`` when already
    computed by :func:`audit_checks` with ``cfg``)."""
    checks = checks if checks is not None else audit_checks(votes, cfg)
    df, source = _join_all(con, cfg, checks)
    model = source.startswith("annotator")
    pool_rel = float(
        df.filter(pl.col("n_votes") >= cfg.min_votes)["reliability"].drop_nulls().median() or 0.0
    )  # type: ignore[arg-type]
    majority_school = None
    schools_seen = not (model and fit_schools_unseen(
        con, latest_fit(con, having="reviewer_estimates")))
    if model and df["school"].drop_nulls().len():
        majority_school = df["school"].drop_nulls().mode().sort()[0]
    # a reviewer with none of these is "ok" with no reasons (see _judge); only the others
    # are judged one by one
    unreliable = (pl.col("model_lapse_flag") if model
                  else pl.col("reliability_high") < cfg.relative_reliability * pool_rel)
    needs = (
        (pl.col("n_votes") < cfg.min_votes)
        | pl.col("reliability").is_null()
        | unreliable
        | pl.any_horizontal(
            pl.col(c).fill_null(False)
            for c in (
                "position_biased",
                "fast",
                "inconsistent",
                "fails_gold",
                "tie_overuse",
                "drifting",
            )
        )
    ).fill_null(False)
    if model and majority_school is not None:
        needs = needs | (pl.col("school").is_not_null() & (pl.col("school") != majority_school))
    if model and "model_lean" in df.columns:
        needs = needs | pl.col("model_lean").is_not_null()
    if model and "model_label_lean_flag" in df.columns:
        needs = needs | pl.col("model_label_lean_flag").fill_null(False)
    if model and "model_lapse_evidence" in df.columns:
        needs = needs | (pl.col("model_lapse_evidence").fill_nan(None)
                         > 1.0 / cfg.settled_bayes_factor)
    speed = speed_evidence(df, cfg.min_votes, model)
    mask = df.select(needs.fill_null(False)).to_series().to_numpy()
    verdict = np.full(df.height, "ok", dtype=object)
    flagged = np.zeros(df.height, dtype=bool)
    reasons = np.full(df.height, "", dtype=object)
    rows = np.flatnonzero(mask)
    for i, row in zip(rows, df.filter(pl.Series(mask)).iter_rows(named=True), strict=True):
        verdict[i], flagged[i], why = _judge(row, cfg, pool_rel, model, majority_school,
                                             schools_seen, speed)
        reasons[i] = "; ".join(why)
    df = df.with_columns(
        verdict=pl.Series(verdict.tolist(), dtype=pl.String),
        flagged=pl.Series(flagged, dtype=pl.Boolean),
        reasons=pl.Series(reasons.tolist(), dtype=pl.String),
    ).sort(
        ["flagged", "reliability"], descending=[True, False], nulls_last=True, maintain_order=True
    )
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
        "agreement",
        "agreement_low",
        "agreement_high",
        "school",
        "school_probability",
    ]
    first = [c for c in first if c in df.columns]
    return df.select(first + [c for c in df.columns if c not in first])
