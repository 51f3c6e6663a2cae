"""The fit's words on what its data cannot support (``verdict_notes`` in the diagnostics).

Shown by the fit summary, ``dissensus reviewers``, the Overview and the Reviewer audit pages:
near-chance agreement, too few reviewers for schools, reviewers who cannot be placed in a
school, busy reviewers who lapse on most of their votes, lapse rates at the model's bound,
reversed votes, lapses that lean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from .config import AnnotatorConfig
from .lapse_cues import describe_lean
from .results import FitResult
from .taste import taste_words

NEAR_CHANCE_KAPPA = 0.1
"""Fleiss' kappa of the votes below which agreement is called near chance (Landis & Koch 1977
call 0-0.2 "slight")."""
PLACED_PROBABILITY = 0.8
"""A reviewer whose most probable school has less than this probability is not placed in one."""
UNPLACED_SHARE = 0.25
"""The share of reviewers not placed at which the fit says so."""
FEW_JUDGMENTS = 5
"""Median judgments per reviewer below which one school says nothing about the pool's views."""
MOSTLY_LAPSES = 0.5
"""Reliability below which a flagged reviewer lapses on most of their votes."""
AT_BOUND_VOTE_SHARE = 0.4
"""The share of all votes, cast by reviewers whose lapse rates reach the model's bound, at which
the fit says so (the robustness suite's worlds with a careless minority stay below it)."""
BUSY_LAPSERS_SHARE = 0.1
"""The share of all votes, cast by reviewers who lapse on most of theirs, at which the fit says
so: that much of the data carries almost no information."""

def verdict_notes(reviewers: pl.DataFrame, pairs: pl.DataFrame, res: FitResult,
                  diagnostics: dict[str, Any], config: AnnotatorConfig) -> list[str]:
    """What the data cannot support, in words a labeling lead can act on."""
    notes: list[str] = []
    lapse_flags = int(flagged_for(reviewers, "lapses").sum())
    kappa = diagnostics.get("vote_kappa")
    plural = float((pairs["verdict"] == "pluralism").mean()) if pairs.height else 0.0
    if kappa is not None and kappa < NEAR_CHANCE_KAPPA and plural < 0.1:
        notes.append(
            f"Agreement is near chance (Fleiss' kappa {kappa:.2f}) and no schools explain it: "
            "the votes cannot tell careless reviewers from near-tie pairs, so the randomness "
            "every reviewer shows is read as ambiguity and only reviewers whose own votes "
            "stand out from the pool can be flagged"
            + ("; nobody is flagged for lapses." if lapse_flags == 0 else
               f"; {lapse_flags} reviewer{'s' if lapse_flags != 1 else ''} stand out."))
    elif lapse_flags == 0 and float(np.max(res.lapse_evidence, initial=0.0)) < 3.0:
        notes.append("No reviewer's votes set them apart from the pool: nobody is flagged for "
                     "lapses.")
    notes += _busy_lapser_notes(reviewers)
    notes += _lapse_bound_notes(reviewers, res)
    notes += _common_label_lean_notes(reviewers)
    reversed_n = len(reversed_reviewers(res))
    if reversed_n:
        notes.append(f"{reversed_n} reviewer{'s' if reversed_n != 1 else ''} vote against a "
                     "clear consensus more often than chance (reversed votes: swapped buttons "
                     "or instructions read backwards, not a view or a lapse): flagged, their "
                     "votes given weight 0" + (", and the schools chosen without them"
                                               if config.n_schools == "auto" else "") + ".")
    n_rev = reviewers.height
    if n_rev and n_rev < config.few_reviewers:
        notes.append(f"Only {n_rev} reviewers: schools (consistent minority views) cannot be "
                     "told apart from individual views with so few, so one school is assumed "
                     "unless the evidence is overwhelming.")
    notes += _placement_notes(reviewers, pairs, res.n_schools, config)
    notes += _taste_notes(res)
    lean = describe_lean(diagnostics.get("lapse_lean") or {})
    if lean:
        notes.append(f"Lapses in this pool lean {lean}; the model reads such votes as lapses, "
                     "so the reply property alone does not make a vote careful.")
    return notes


def pair_notes(pairs: pl.DataFrame, config: AnnotatorConfig) -> list[str]:
    """What the data cannot support about *pairs* (``pair_notes`` in the diagnostics; the
    reviewer audit reads only ``verdict_notes``): the pairs whose disagreement the votes
    cannot pin on one cause."""
    unsettled = int((pairs["verdict"] == "unsettled").sum()) if pairs.height else 0
    if not unsettled:
        return []
    noise = int((pairs["verdict"] == "noise").sum())
    return [f"{unsettled:,} pair{'s' if unsettled != 1 else ''} "
            f"({unsettled / pairs.height:.0%}) are unsettled: their votes disagree, but with "
            "so few votes a lapse, a careful reviewer's close call and a split of views explain "
            "them about as well, so no cause is named (noise is named only where a lapse among "
            f"the departing votes is at least {config.noise_probability:.0%} likely: "
            f"{noise:,} pair{'s' if noise != 1 else ''}). More votes on those pairs, "
            "gold questions or repeats would settle them."]


def _taste_notes(res: FitResult) -> list[str]:
    """Reviewers whose departures a taste of their own explains (see :mod:`.taste`)."""
    cleared = res.diagnostics.get("taste_readings") or []
    if not cleared:
        return []
    n = len(cleared)
    return [f"{n} reviewer{'s' if n != 1 else ''} depart{'s' if n == 1 else ''} from the "
            f"consensus toward {taste_words(cleared)} in a way a taste of their own explains as "
            "well as lapses do (on close pairs, rarely on clear ones), and the pool's votes show "
            "tastes that large: not flagged. Where the audit says it cannot tell from their "
            "votes, more of them on clear pairs would settle it; whether a taste belongs in the "
            "reward model is a call for the team."]


def _lapse_bound_notes(reviewers: pl.DataFrame, res: FitResult) -> list[str]:
    """Say so when reviewers' lapse rates reach the model's bound (one half outside label
    tasks): the model reads no rate above it, so an interval piled against it is left open
    (:func:`.summarise.piled_at_bound`; the robustness world ``rushed_majority``, whose rushed
    lapse on up to four fifths of their votes)."""
    state = res.grid_state
    if state is None or not reviewers.height:
        return []
    grid = state.lapse_grid
    bound = float(grid[-1] + grid[0])  # the grid holds cell midpoints: top + half a step
    step = float(grid[1] - grid[0]) if grid.size > 1 else bound
    # the interval's upper lapse end (its reliability_low) lies in the grid's top cell
    at_bound = reviewers["reliability_low"] <= 1.0 - bound + step + 1e-9
    n = int(at_bound.sum())
    share = float(reviewers.filter(at_bound)["n_comparisons"].sum()
                  / max(int(reviewers["n_comparisons"].sum()), 1))
    if share < AT_BOUND_VOTE_SHARE:
        return []
    return [f"{n} of {reviewers.height} reviewers, casting {share:.0%} of the votes, reach "
            f"the model's bound on lapse rates ({bound:.0%}): the model reads no rate above it, "
            "so their true lapse rates may be higher, and where their votes push against the "
            "bound their reliability intervals are left open down to 0 (they rank among the "
            "least reliable either way). With so "
            "many, lapses may be much of the votes, and what their lapses share (a lean toward "
            "one kind of reply) can read as a school of its own: read the schools with care."]


def _busy_lapser_notes(reviewers: pl.DataFrame) -> list[str]:
    """Say so when reviewers flagged for lapsing on most of their votes cast a good share of
    all votes (as a few busy workers who click one label whatever the item do on Snow et
    al.'s RTE and temporal sets): the lead's first check, and data that adds little."""
    total = int(reviewers["n_comparisons"].sum()) if reviewers.height else 0
    lapsers = reviewers.filter(flagged_for(reviewers, "lapses")
                               & (pl.col("reliability") < MOSTLY_LAPSES))
    cast = int(lapsers["n_comparisons"].sum())
    if not total or cast < BUSY_LAPSERS_SHARE * total:
        return []
    n = lapsers.height
    label_task = label_task_estimates(lapsers)
    return [f"{n} reviewer{'s' if n != 1 else ''} lapse{'' if n != 1 else 's'} on most of "
            f"their votes (reliability below {MOSTLY_LAPSES:g}) and "
            f"cast {cast / total:.0%} of all the votes: the fit gives those votes little weight "
            "in the consensus and in reward training. Check them first (the same answer "
            "whatever the item, a script, a broken form"
            + ("; where the labels are a matter of judgement, one label on nearly every item "
               "can also be a rater whose line sits far from everyone else's, which gold "
               "questions tell apart" if label_task else "")
            + "); more votes from careful reviewers would replace what they did not add."]


def flagged_for(reviewers: pl.DataFrame, kind: str) -> pl.Series:
    """Whether each reviewer is flagged for ``kind`` (one of the estimator's flag kinds)."""
    return reviewers["flag_kinds"].str.contains(kind).fill_null(False)


def flagged_for_lean_alone(reviewers: pl.DataFrame) -> pl.Series:
    """Whether each reviewer is flagged for a lean and nothing else."""
    return (reviewers["flag_kinds"] == "lean").fill_null(False)


def label_task_estimates(reviewers: pl.DataFrame) -> bool:
    """Whether these reviewer estimates come from a label task (only those carry a share of
    one label)."""
    return bool(reviewers["top_label_share"].is_not_null().any())


COMMON_LEAN_SHARE = 0.25
"""The share of a label task's reviewers flagged for a lean alone at which the fit says that a
lean is how this pool labels, not a trait of a few."""


def _common_label_lean_notes(reviewers: pl.DataFrame) -> list[str]:
    """In a label task where a good share of the pool leans credibly toward one label or the
    other: say what a lean is, because the votes alone cannot say whether it is a fault."""
    if not reviewers.height or not label_task_estimates(reviewers):
        return []
    leaners = reviewers.filter(flagged_for_lean_alone(reviewers))
    if leaners.height < COMMON_LEAN_SHARE * reviewers.height:
        return []
    return [f"{leaners.height} of {reviewers.height} reviewers lean credibly toward one label "
            "or the other: the raters differ in where they draw the line between the labels. Where "
            "the task has a right answer, a lean costs accuracy (gold questions show how much); "
            "where the labels are a matter of judgement (how offensive, how helpful), a lean is "
            "the rater's own threshold, a taste, not noise. Their votes keep their weight "
            "either way."]


def schools_unseen(n_schools: int, verdicts: pl.Series) -> bool:
    """Whether a fit chose more than one school yet called none of its pairs (``verdicts``)
    pluralism: then no pair shows the schools, and no reviewer's school is a view the votes
    show (kept in the fit's diagnostics as ``schools_unseen``, which the audit reads)."""
    return n_schools > 1 and verdicts.len() > 0 and not bool((verdicts == "pluralism").any())


def _placement_notes(reviewers: pl.DataFrame, pairs: pl.DataFrame, n_schools: int,
                     config: AnnotatorConfig) -> list[str]:
    """Whether the votes place each reviewer in a school: with one or two judgments each,
    schools can show in the pairs while no person can be placed in one (or stay unseen); and
    a split that shows on no pair at all places nobody."""
    if reviewers.height == 0:
        return []
    if pairs.height and schools_unseen(n_schools, pairs["verdict"]):
        # seen on the suite: a chance split of careful reviewers in a label task with busy
        # spammers (label_spammers, seed 0), and 2,000 reviewers with a vote or two each
        return [f"{n_schools} schools were chosen, yet no pair is called pluralism (on no "
                "pair is it at least "
                f"{config.pluralism_probability:.0%} probable that the schools disagree more "
                "than reviewers of one school do): the split rests on many small differences "
                "spread over the pairs, not on pairs the schools see differently, so no "
                "reviewer's school is a verdict about them. A split like this can be real "
                "schools the pairs rarely set against each other, or something shared that is "
                "not a view: a habit "
                "(a lean toward one reply or label) or tastes that vary by degree."]
    median = float(reviewers["n_comparisons"].median())  # type: ignore[arg-type]
    if n_schools == 1:
        if median >= FEW_JUDGMENTS:
            return []
        return [f"Reviewers have few judgments each (median {median:g}): schools could not be "
                "told apart from these votes even if the pool holds them, so one school is "
                "assumed; this says nothing about whether the reviewers share one view."]
    unplaced = int((reviewers["school_probability"] < PLACED_PROBABILITY).sum())
    if unplaced < UNPLACED_SHARE * reviewers.height:
        return []
    return [f"{unplaced} of {reviewers.height} reviewers cannot be placed in a school (their "
            f"most probable school has under {PLACED_PROBABILITY:.0%} probability; median "
            f"{median:g} judgments each): the pairs show {n_schools} schools, but these "
            "reviewers' votes do not settle which one they hold (too few of their votes fall "
            "where the schools differ, or their views sit between the schools'), so their "
            "school is a guess, not a verdict about them."]


def reversed_reviewers(res: FitResult) -> list[dict[str, Any]]:
    """The fit's reversed reviewers (index, votes against, clear votes, Bayes factor)."""
    return list(res.diagnostics.get("reversed_reviewers") or [])
