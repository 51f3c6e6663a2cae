"""The one typed config of the reviewer audit: every threshold, with its default and meaning.

Re-exported by :mod:`dissensus.analytics.audit`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuditConfig(BaseModel):
    """Thresholds of the reviewer audit (defaults suit a few dozen votes per reviewer)."""

    min_votes: int = Field(
        5,
        ge=1,
        description="Reviewers with fewer votes are listed, not "
        "flagged: too little evidence either way.",
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
    tie_alpha: float = Field(
        0.01, gt=0, lt=1,
        description="Level of the tie-overuse test (Benjamini-Hochberg q-value over reviewers)."
    )
    tie_overuse_ratio: float = Field(
        2.0, ge=1, description="Tie rate this many times the pool's counts as overuse."
    )
    min_self_consistency: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Inconsistent when the upper end of the repeat-agreement interval is below; "
        "repeats show care when its lower end is at or above.",
    )
    min_repeats: int = Field(
        3, ge=1, description="Repeats needed before consistency counts as evidence of care."
    )
    min_school_probability: float = Field(
        0.8, gt=0.5, le=1,
        description="A careful reviewer in a minority school is called 'minority view' only "
        "when the fit places them there with at least this probability; below it their school "
        "is listed as uncertain (the fit summary counts them as not placed at the same bar).",
    )
    settled_bayes_factor: float = Field(
        3.0, gt=1,
        description="With a fit, a reviewer is called 'ok' only when their own votes favour "
        "careful over lapses by at least this Bayes factor (the fit's lapse_evidence at or "
        "below its inverse), or repeats or gold show care; otherwise the verdict is 'cannot "
        "tell from their votes': the reliability shown is then mostly the pool's.",
    )
    flag_probability: float = Field(
        0.9, gt=0.5, lt=1,
        description="A fast reviewer not flagged otherwise is flagged 'fast and inconsistent' "
        "when P(careless) from their votes and their speed reaches this (the fit's own lapse "
        "flag asks the same of the votes alone); what speed says is learned from the pool "
        "(see dissensus.analytics.audit_speed).",
    )
    strong_speed_ratio: float = Field(
        10.0, gt=1,
        description="Where 'fast' is at least this many times as likely from the careless as "
        "from the careful in this pool, a fast reviewer whose votes lean toward lapses at all "
        "(Bayes factor above 1) is flagged even short of flag_probability: speed is then "
        "strong evidence, and the votes do not argue against it.",
    )
    one_label_share: float = Field(
        0.9, gt=0.5, le=1,
        description="With a fit of a label task, a reviewer flagged for lapses who picks one "
        "label on at least this share of their votes is called 'one label on nearly every "
        "item', not 'unreliable': without failed gold questions the votes cannot tell a "
        "one-label clicker from a rater whose line for that label sits far from everyone "
        "else's.",
    )
    min_gold_accuracy: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Fails gold when the upper end of the gold-accuracy interval is below; gold "
        "shows care when its lower end is at or above.",
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
