"""Worlds built to break the annotator model's story: one simulator, many small configurations.

The demo world and :mod:`.synthetic` follow the model's own generative story (discrete schools
that differ on a share of pairs, lapses that are coin flips tilted toward the first-shown reply
and never say tie). A target met only there is not met, so this module draws worlds that differ
from that story in one named way each, with the truth needed to score any method on them:

* ``near_tie``: nobody careless, one school, every pair close (margins ``N(0, 0.4^2)``);
* ``lapse_first`` / ``lapse_uniform`` / ``lapse_longer`` / ``lapse_model``: rushed reviewers whose
  lapses lean toward the reply shown first, pick uniformly, lean toward the longer reply or
  toward one model's reply;
* ``content_schools``: two schools that differ through what the replies *say* (a hidden content
  direction), with no tags the model could read;
* ``tastes``: no discrete schools; every careful reviewer a little different, and a few with a
  strong taste for longer replies;
* ``taste_or_lapse``: the hardest form of that confound: a quarter of the careful reviewers
  have a strong taste for longer replies *and* the rushed reviewers' lapses lean toward the
  longer reply, so both depart from the consensus toward the same replies;
* ``few_raters``: 4 reviewers who all rate every pair; ``many_raters``: 2,000 reviewers with 1-2
  votes each;
* ``minority_10`` and ``three_schools``: an unbalanced 90/10 split, and three true schools;
* ``tie_sayers``: careless reviewers whose lapses are mostly "tie";
* ``reversed``: a few careful reviewers whose votes are reversed (swapped buttons): they agree
  with each other on every pair, as a school would, and with nobody else;
* ``heavy_workload``: workloads spread a hundredfold (lognormal sigma 2): a few reviewers cast
  hundreds of votes, most cast a handful, as in real crowds;
* ``label_spammers``: a label task (two fixed label texts, no display order) where 12% of the
  workers click one label (each their own) on nearly every item (lapse rates 0.8-0.95) and cast
  six times a typical worker's share of the votes, as the busiest spammers of Snow et al.'s RTE
  and temporal sets do (no ties: a worker picks one of the labels);
* ``label_schools``: a label task where a careful 30% minority labels 30% of the items the other
  way: the counterpart of ``label_spammers``, whose departures must not be read as lapses;
* ``copy_ring``: a ring of rushed accounts that share one answer source (one bot, or one
  person behind several accounts): when they lapse they all give the ring's answer for the
  pair, and they work the same batch of pairs, so their departures agree with each other as a
  school's would (every other world draws lapses independently across reviewers);
* ``fatigue``: no one rushed from the start, but 20% of the reviewers turn careless halfway
  through their own work (they lapse at a rushed rate from then on), where every other world
  holds each reviewer's lapse rate fixed; scored through the product path, where the audit's
  drift check reads the votes' times (``benchmarks/robustness.py --audit``);
* ``uneven_sharpness``: the story's two schools, but careful reviewers differ in how closely
  they follow the margins (each one's margins scaled by a draw from 0.5-1: a loose reviewer
  errs more on close pairs, rarely on clear ones), where the model holds one slope for all;
  the skill GLAD (Whitehill et al. 2009) gives every worker;
* ``hard_queue``: 30% of the pairs are near-ties, and a quarter of the careful reviewers work
  only that queue (everyone else takes any pair), so a careful reviewer can disagree
  with the pool on most of their votes, where every other world spreads each reviewer's work
  over the same mix of pairs;
* ``order_follows_quality``: the display order is not drawn per judgment: every reviewer of a
  pair sees the same reply first, the better one on 75% of the pairs (as where logs always
  show one model's reply first), so careful reviewers pick the first-shown reply about two
  times in three;
* ``tie_tastes``: a quarter of the careful reviewers have a tie threshold of their own,
  three to five times the others' (they call "about equal" unless a pair is clear, as the
  real expert who answers "tie" 42% of the time does), where every other world gives all
  careful reviewers one threshold;
* ``rushed_majority``: most reviewers (60%) rushed, lapsing on half to four fifths of their
  votes and then picking the longer reply nine times in ten, where every other world keeps
  the careless a minority and their lapse rates below one half (the model's bound outside
  label tasks);
* ``fast_experts``: every judgment timed; the rushed take about 12 s, and so do 30% of the
  careful reviewers (practised experts), where the others take about 45 s: speed alone does
  not tell careless from careful; ``fast_minority``: the same times in a world of two schools
  (70 / 30), where a fast careful reviewer of the minority also disagrees with the majority on
  its contested pairs (the other worlds carry no times, so the audit's speed check is silent
  there);
* ``lapse_on_close``: lapses that come where a pair is hard, four times likelier on a close pair
  (|consensus margin| < 1) than on a clear one, each reviewer's lapse rate kept on average,
  where every other world draws a reviewer's lapses independently of the pair (a lapse then
  hides among careful reviewers' own splits);
* ``crossed_views``: four schools made of two independent questions (say, strict or lenient on
  safety, terse or full on detail: 60 / 40 and 70 / 30, crossed), each contested pair turning on
  one of them, where every other world's schools differ on one set of pairs; the model holds at
  most three schools, so the split it misses must not be read as lapses;
* ``sloppy_minority``: the story's two schools (70 / 30), where the minority's careful
  reviewers also lapse a little more (6-16% of their votes, under the 20% a flag is for,
  against 0-8% for the majority), where every other world draws one careful range for all:
  their view and their slips both depart from the majority, and only the slips are lapses;
* ``adaptive_overlap``: the story's two schools, collected as labelling platforms collect votes
  (dynamic overlap): three votes a pair, two more where they are not unanimous, three more
  where four of those five still do not agree, so how many votes a pair has depends on its
  votes (every other world fixes that in advance): disagreement is sampled where it is, and
  most clear pairs keep three votes;
* ``story``: the model's own story (two schools, 15% rushed), as a control.

Each judgment's truth carries the probability of the observed outcome under a careful judgment
and under a lapse of *that* reviewer (``p_careful``, ``p_lapse``), so an oracle that knows every
margin, taste and lapse habit can compute each reviewer's exact lapse posterior whatever the
world (:func:`.world_scores.oracle_reliability`, which also scores a method's verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl
from scipy.special import expit

LapseMode = Literal["first", "uniform", "longer", "model", "tie", "label"]
SchoolMode = Literal["contested", "content", "crossed"]


@dataclass(frozen=True)
class WorldSpec:
    """One world of the robustness suite; every field is one assumption to keep or break."""

    name: str = "story"
    n_reviewers: int = 60
    n_pairs: int = 800
    votes_per_pair: tuple[int, int] = (3, 8)
    rate_every_pair: bool = False  # every reviewer judges every pair (few-rater panels)
    workload_sigma: float = 0.8  # lognormal spread of reviewer workloads
    school_shares: tuple[float, ...] = (0.65, 0.35)
    # how schools differ: on random pairs, through content, or on two crossed questions (4)
    school_mode: SchoolMode = "contested"
    contested_share: float = 0.20  # contested mode: share of pairs where schools differ
    content_strength: float = 1.6  # content mode: weight of the hidden content direction
    consensus_sd: float = 2.0
    ambiguous_share: float = 0.15  # pairs whose consensus margin is near 0
    taste_sd: float = 0.0  # careful reviewers' own weight on the content direction
    length_taste_share: float = 0.0  # careful reviewers with a strong taste for longer replies
    rushed_share: float = 0.15
    rushed_lapse: tuple[float, float] = (0.30, 0.50)
    careful_lapse: tuple[float, float] = (0.0, 0.08)
    lapse_mode: LapseMode = "first"
    lapse_lean: float = 0.75  # P(a lapse picks the reply it leans toward)
    lapse_tie_share: float = 0.7  # lapse_mode 'tie': share of lapses that are ties
    position_biased_share: float = 0.08
    reversed_share: float = 0.0  # careful reviewers whose votes are reversed (swapped buttons)
    # a label task: the two replies of every pair are the same two label texts (label A the
    # longer), shown in no recorded order, and which one is response 1 is a coin flip per pair
    # (as the warehouse leaves them); lapse_mode 'label': each reviewer's lapses lean toward
    # one label, A or B at random
    label_task: bool = False
    rushed_workload: float = 1.0  # how many times a typical reviewer's share a rushed one casts
    ring_share: float = 0.0  # share of the rushed whose lapses copy one shared answer per pair
    ring_batch_share: float = 0.3  # share of pairs in the batch the ring works together
    ring_focus: float = 6.0  # how much likelier a ring account takes a pair of its batch
    fatigue_share: float = 0.0  # share of reviewers careful at first, rushed after their midpoint
    # careful reviewers' sharpness: each one's margins are multiplied by a draw from this range
    # (a reviewer who follows the margins loosely errs on close pairs, not on clear ones)
    sharpness: tuple[float, float] = (1.0, 1.0)
    # a hard queue: this share of the pairs are near-ties (margins N(0, 0.4^2)), and this share
    # of the careful reviewers work that queue only (everyone else takes any pair)
    hard_pair_share: float = 0.0
    hard_queue_share: float = 0.0
    # display order not randomised: every reviewer of a pair sees the same reply first, the one
    # the consensus favours with this probability (0: a coin flip per judgment, as elsewhere)
    better_first: float = 0.0
    # lapses that come where a pair is hard: this many times likelier on a close pair
    # (|consensus margin| < 1) than on a clear one, each reviewer's lapse rate kept on average
    close_lapse_ratio: float = 1.0
    tau: float = 0.35  # careful tie threshold (ordered logit)
    # careful reviewers with a tie taste of their own: this share of them call "about equal"
    # unless a pair is clear, each with a tie threshold drawn from tie_taste_tau
    tie_taste_share: float = 0.0
    tie_taste_tau: tuple[float, float] = (1.0, 1.8)
    # seconds per judgment on every row (the audit's speed check reads them): careful reviewers
    # take ~45 s, rushed ones ~12 s, and this share of the careful work as fast as the rushed
    timed: bool = False
    fast_careful_share: float = 0.0
    # careful reviewers of the minority schools (school 1, 2, ...) lapse at rates in this range
    # instead of careful_lapse (the same draw, rescaled): a view that comes with a little more
    # carelessness; None: every careful reviewer as careful_lapse
    minority_careful_lapse: tuple[float, float] | None = None
    # dynamic overlap, as labelling platforms run it: a pair gets the first stage's votes, and
    # more (up to the next stage) only while its most common answer holds under
    # overlap_agreement of them (draw votes_per_pair at the last stage); () keeps every vote
    overlap_stages: tuple[int, ...] = ()
    overlap_agreement: float = 0.8
    seed: int = 0

    @property
    def n_schools(self) -> int:
        return len(self.school_shares)


WORLDS: dict[str, WorldSpec] = {
    "near_tie": WorldSpec(
        name="near_tie", n_reviewers=120, n_pairs=600, school_shares=(1.0,), rushed_share=0.0,
        careful_lapse=(0.0, 0.0), consensus_sd=0.4, ambiguous_share=0.0,
        position_biased_share=0.0),
    "lapse_first": WorldSpec(name="lapse_first", school_shares=(1.0,), rushed_share=0.2,
                             lapse_mode="first", lapse_lean=0.8),
    "lapse_uniform": WorldSpec(name="lapse_uniform", school_shares=(1.0,), rushed_share=0.2,
                               lapse_mode="uniform"),
    "lapse_longer": WorldSpec(name="lapse_longer", school_shares=(1.0,), rushed_share=0.2,
                              lapse_mode="longer", lapse_lean=0.85),
    "lapse_model": WorldSpec(name="lapse_model", school_shares=(1.0,), rushed_share=0.2,
                             lapse_mode="model", lapse_lean=0.85),
    "content_schools": WorldSpec(name="content_schools", n_reviewers=80, n_pairs=500,
                                 votes_per_pair=(5, 5), school_shares=(0.6, 0.4),
                                 school_mode="content", rushed_share=0.2, lapse_mode="longer",
                                 lapse_lean=0.8),
    "tastes": WorldSpec(name="tastes", school_shares=(1.0,), taste_sd=0.8,
                        length_taste_share=0.1, rushed_share=0.15),
    "taste_or_lapse": WorldSpec(name="taste_or_lapse", school_shares=(1.0,), rushed_share=0.2,
                                lapse_mode="longer", lapse_lean=0.85, length_taste_share=0.25),
    "few_raters": WorldSpec(name="few_raters", n_reviewers=4, n_pairs=300, rate_every_pair=True,
                            school_shares=(1.0,), rushed_share=0.0, position_biased_share=0.0),
    "many_raters": WorldSpec(name="many_raters", n_reviewers=2000, n_pairs=600,
                             votes_per_pair=(4, 5), workload_sigma=0.0, rushed_share=0.15),
    "minority_10": WorldSpec(name="minority_10", school_shares=(0.9, 0.1), n_reviewers=80,
                             contested_share=0.3),
    "three_schools": WorldSpec(name="three_schools", school_shares=(0.45, 0.35, 0.2),
                               n_reviewers=90, n_pairs=500, contested_share=0.3),
    "tie_sayers": WorldSpec(name="tie_sayers", school_shares=(1.0,), rushed_share=0.2,
                            lapse_mode="tie"),
    "copy_ring": WorldSpec(name="copy_ring", school_shares=(1.0,), rushed_share=0.2,
                           ring_share=0.6, lapse_mode="uniform"),
    "fatigue": WorldSpec(name="fatigue", school_shares=(1.0,), rushed_share=0.0,
                         fatigue_share=0.2, lapse_mode="uniform", rushed_lapse=(0.35, 0.55)),
    "crossed_views": WorldSpec(name="crossed_views", school_mode="crossed", n_reviewers=100,
                               school_shares=(0.42, 0.18, 0.28, 0.12), contested_share=0.3),
    "lapse_on_close": WorldSpec(name="lapse_on_close", school_shares=(1.0,), rushed_share=0.2,
                                lapse_mode="uniform", close_lapse_ratio=4.0),
    "sloppy_minority": WorldSpec(name="sloppy_minority", school_shares=(0.7, 0.3),
                                 minority_careful_lapse=(0.06, 0.16)),
    "adaptive_overlap": WorldSpec(name="adaptive_overlap", votes_per_pair=(8, 8),
                                  overlap_stages=(3, 5, 8)),
    "story": WorldSpec(name="story"),
    "reversed": WorldSpec(name="reversed", school_shares=(1.0,), rushed_share=0.15,
                          reversed_share=0.06),
    "heavy_workload": WorldSpec(name="heavy_workload", school_shares=(1.0,), rushed_share=0.2,
                                lapse_mode="uniform", workload_sigma=2.0),
    "uneven_sharpness": WorldSpec(name="uneven_sharpness", sharpness=(0.5, 1.0)),
    "order_follows_quality": WorldSpec(name="order_follows_quality", school_shares=(1.0,),
                                       better_first=0.75),
    "hard_queue": WorldSpec(name="hard_queue", school_shares=(1.0,), rushed_share=0.15,
                            lapse_mode="uniform", hard_pair_share=0.3, hard_queue_share=0.25),
    "tie_tastes": WorldSpec(name="tie_tastes", school_shares=(1.0,), rushed_share=0.15,
                            tie_taste_share=0.25),
    "rushed_majority": WorldSpec(name="rushed_majority", school_shares=(1.0,), rushed_share=0.6,
                                 rushed_lapse=(0.5, 0.8), lapse_mode="longer", lapse_lean=0.9),
    "fast_experts": WorldSpec(name="fast_experts", school_shares=(1.0,), rushed_share=0.15,
                              timed=True, fast_careful_share=0.3),
    "fast_minority": WorldSpec(name="fast_minority", school_shares=(0.7, 0.3), timed=True,
                               fast_careful_share=0.3),
    "label_spammers": WorldSpec(name="label_spammers", label_task=True, n_reviewers=80,
                                n_pairs=500, votes_per_pair=(6, 10), workload_sigma=1.0,
                                school_shares=(1.0,), rushed_share=0.12, rushed_workload=6.0,
                                rushed_lapse=(0.8, 0.95), lapse_mode="label", lapse_lean=0.95,
                                position_biased_share=0.0, tau=0.0),
    "label_schools": WorldSpec(name="label_schools", label_task=True, n_reviewers=80,
                               n_pairs=500, votes_per_pair=(6, 10), school_shares=(0.7, 0.3),
                               contested_share=0.3, rushed_share=0.1, lapse_mode="label",
                               lapse_lean=0.8, position_biased_share=0.0, tau=0.0),
}
"""The suite, by name. Sizes are small enough for a fit in seconds on 2 cores."""


@dataclass(frozen=True)
class World:
    """A drawn world: truth per reviewer, pair and judgment (the synthetic world's columns)."""

    spec: WorldSpec
    reviewers: pl.DataFrame
    pairs: pl.DataFrame
    judgments: pl.DataFrame
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def true_k(self) -> int:
        """Schools a method should find: tastes are not schools, and a world without contested
        pairs has nothing that tells schools apart."""
        return self.spec.n_schools

    def model_frame(self) -> pl.DataFrame:
        """The annotator model's input: what a warehouse would hold (no truth, no tags; the
        replies' lengths and models, as the warehouse's model frame carries them)."""
        replies = self.pairs.select("pair_id", "response_1_length", "response_2_length",
                                    "response_1_model", "response_2_model")
        return self.judgments.select(
            "comparison_id", "reviewer_id", "pair_id", "prompt_id", "outcome",
            (pl.lit(None) if self.spec.label_task else
             pl.when(pl.col("first_shown_is_response_1")).then(1).otherwise(2))
            .cast(pl.Int8).alias("first_shown"),
            "response_1_id", "response_2_id",
        ).join(replies, on="pair_id", how="left", maintain_order="left")


def _draw_workload(spec: WorldSpec, rng: np.random.Generator, rushed: np.ndarray,
                   ring: np.ndarray | None = None, hard: np.ndarray | None = None,
                   queue: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(reviewer index, pair index) of every judgment; a ring's accounts crowd onto the pairs
    of their batch."""
    n_r, n_j = spec.n_reviewers, spec.n_pairs
    if spec.rate_every_pair:
        return np.tile(np.arange(n_r), n_j), np.repeat(np.arange(n_j), n_r)
    activity = rng.lognormal(0.0, spec.workload_sigma, n_r) if spec.workload_sigma else np.ones(n_r)
    activity = np.where(rushed, activity * spec.rushed_workload, activity)
    activity /= activity.sum()
    in_batch = np.zeros(n_j, bool)
    if ring is not None and ring.any():
        in_batch = rng.random(n_j) < spec.ring_batch_share
        focused = np.where(ring, activity * spec.ring_focus, activity)
        focused /= focused.sum()
    easy_only = on_hard = activity
    queued = hard is not None and queue is not None and bool(queue.any())
    if queued:
        # the queue's reviewers take only hard pairs, as often as they would take any pair
        easy_only = np.where(queue, 0.0, activity)
        easy_only /= easy_only.sum()
        on_hard = np.where(queue, activity / max(float(np.mean(hard)), 1e-9), activity)
        on_hard /= on_hard.sum()
    lo, hi = spec.votes_per_pair
    rows_r: list[np.ndarray] = []
    rows_j: list[np.ndarray] = []
    for j in range(n_j):
        n_votes = min(int(rng.integers(lo, hi + 1)), n_r)
        p = focused if in_batch[j] else activity
        if queued:
            p = on_hard if hard[j] else easy_only  # type: ignore[index]
        rows_r.append(rng.choice(n_r, size=n_votes, replace=False, p=p))
        rows_j.append(np.full(n_votes, j))
    return np.concatenate(rows_r), np.concatenate(rows_j)


def _overlap_kept(spec: WorldSpec, j_idx: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Which judgments a dynamic-overlap queue collects: the votes of each pair come in a random
    order; the first ``overlap_stages[0]`` are always kept, and each next stage's only while
    the pair's most common answer so far holds under ``overlap_agreement`` of its votes."""
    n, n_j = j_idx.size, int(j_idx.max()) + 1
    order = np.lexsort((rng.random(n), j_idx))
    start = np.searchsorted(j_idx[order], j_idx[order])
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - start
    answer = (y + 1).astype(np.int64)  # 0, 1, 2: the three outcomes
    upto = np.full(n_j, spec.overlap_stages[0])
    for stage, following in zip(spec.overlap_stages, spec.overlap_stages[1:], strict=False):
        seen = rank < stage
        by_answer = np.bincount(j_idx[seen] * 3 + answer[seen], minlength=3 * n_j).reshape(n_j, 3)
        settled = by_answer.max(axis=1) >= spec.overlap_agreement * by_answer.sum(axis=1)
        upto = np.where((upto == stage) & ~settled, following, upto)
    return rank < upto[j_idx]


def work_sequence(r_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each judgment's place (0, 1, ...) in a random order of its reviewer's judgments."""
    key = rng.random(r_idx.size)
    order = np.lexsort((key, r_idx))
    start = np.searchsorted(r_idx[order], r_idx[order])
    sequence = np.empty(r_idx.size, np.int64)
    sequence[order] = np.arange(r_idx.size) - start
    return sequence


def simulate_world(spec: WorldSpec | str, seed: int | None = None) -> World:
    """Draw the world ``spec`` (or the suite's world of that name) with ``seed``."""
    if isinstance(spec, str):
        if spec not in WORLDS:
            raise KeyError(f"unknown world {spec!r}; the suite has: {', '.join(WORLDS)}")
        spec = WORLDS[spec]
    if seed is not None:
        spec = replace(spec, seed=seed)
    if spec.school_mode == "crossed" and spec.n_schools != 4:
        raise ValueError(f"school_mode 'crossed' crosses two two-way questions into 4 schools; "
                         f"world {spec.name!r} has {spec.n_schools} school shares: give 4")
    rng = np.random.default_rng(spec.seed)
    n_r, n_j, n_k = spec.n_reviewers, spec.n_pairs, spec.n_schools
    shares = np.asarray(spec.school_shares, float) / np.sum(spec.school_shares)

    # replies: a hidden content direction, a length and a model per reply (two per pair)
    content = rng.normal(0.0, 1.0, (n_j, 2))
    length = rng.lognormal(5.0, 0.5, (n_j, 2)).round()
    model = rng.integers(0, 3, (n_j, 2))
    d_content = content[:, 0] - content[:, 1]
    label_side = np.zeros(n_j)
    if spec.label_task:  # drawn only here: the other worlds keep their draws
        label_side = np.where(rng.random(n_j) < 0.5, 1.0, -1.0)  # +1: response 1 is label A
        length = np.where(label_side[:, None] > 0, [[43.0, 42.0]], [[42.0, 43.0]])
        d_content = np.zeros(n_j)
    longer = np.sign(length[:, 0] - length[:, 1])

    # reviewers
    school = rng.choice(n_k, size=n_r, p=shares)
    rushed = rng.random(n_r) < spec.rushed_share
    biased = (~rushed) & (rng.random(n_r) < spec.position_biased_share)
    eps = np.where(rushed, rng.uniform(*spec.rushed_lapse, n_r),
                   rng.uniform(*spec.careful_lapse, n_r))
    beta = np.where(biased, rng.uniform(0.8, 1.5, n_r), 0.0)
    if spec.minority_careful_lapse is not None:  # the same draw rescaled: no draw added
        (lo, hi), (lo2, hi2) = spec.careful_lapse, spec.minority_careful_lapse
        rescaled = lo2 + (eps - lo) / max(hi - lo, 1e-12) * (hi2 - lo2)
        eps = np.where(~rushed & (school > 0), rescaled, eps)
    taste = rng.normal(0.0, spec.taste_sd, n_r) if spec.taste_sd else np.zeros(n_r)
    length_taste = (~rushed) & (rng.random(n_r) < spec.length_taste_share)
    reversed_ = ((~rushed) & (rng.random(n_r) < spec.reversed_share) if spec.reversed_share
                 else np.zeros(n_r, bool))  # drawn only where asked: other worlds keep theirs

    sharp = np.ones(n_r)
    if spec.sharpness != (1.0, 1.0):  # drawn only where asked: other worlds keep their draws
        sharp = np.where(rushed, 1.0, rng.uniform(*spec.sharpness, n_r))

    tau_r = np.full(n_r, spec.tau)
    tie_taste = np.zeros(n_r, bool)
    if spec.tie_taste_share:  # drawn only where asked: other worlds keep their draws
        tie_taste = (~rushed) & (rng.random(n_r) < spec.tie_taste_share)
        tau_r = np.where(tie_taste, rng.uniform(*spec.tie_taste_tau, n_r), tau_r)

    ring = np.zeros(n_r, bool)
    if spec.ring_share:  # drawn only where asked: other worlds keep their draws
        ring = rushed & (rng.random(n_r) < spec.ring_share)

    # pairs: consensus margins and each school's margin
    u = rng.random(n_j)
    consensus = rng.normal(0.0, spec.consensus_sd, n_j)
    ambiguous = u < spec.ambiguous_share
    consensus = np.where(ambiguous, rng.normal(0.0, 0.25, n_j), consensus)
    margins = np.repeat(consensus[:, None], n_k, axis=1)
    contested = np.zeros(n_j, bool)
    if n_k > 1 and spec.school_mode == "contested":
        contested = (~ambiguous) & (rng.random(n_j) < spec.contested_share)
        sign = rng.choice([-1.0, 1.0], size=n_j)
        for k in range(n_k):
            side = [1.0, -1.0, 0.0][k % 3] if n_k == 3 else (1.0 if k % 2 == 0 else -1.0)
            dev = sign * side * rng.uniform(1.5, 3.0, n_j) if side else rng.normal(0, 0.3, n_j)
            margins[:, k] = np.where(contested, dev, margins[:, k])
        consensus = np.where(contested, margins @ shares, consensus)
    elif spec.school_mode == "crossed":
        # two independent views (say, strict or lenient on safety; terse or full on detail):
        # school k holds view (k // 2) on the first question and (k % 2) on the second, and a
        # contested pair turns on one question, each with half of them
        contested = (~ambiguous) & (rng.random(n_j) < spec.contested_share)
        axis = rng.integers(0, 2, n_j)
        dev = rng.choice([-1.0, 1.0], size=n_j) * rng.uniform(1.5, 3.0, n_j)
        for k in range(n_k):
            view = np.where(axis == 0, k // 2, k % 2)
            margins[:, k] = np.where(contested, np.where(view == 0, dev, -dev), margins[:, k])
        consensus = np.where(contested, margins @ shares, consensus)
    elif n_k > 1:  # content: school k weighs the hidden content direction with its own sign
        directions = np.linspace(1.0, -1.0, n_k) * spec.content_strength
        margins = consensus[:, None] * 0.5 + d_content[:, None] * directions[None, :]
        consensus = margins @ shares
        contested = np.sign(margins.max(axis=1)) != np.sign(margins.min(axis=1))
        contested &= (margins.max(axis=1) - margins.min(axis=1)) > 1.5

    queue = hard = None
    if spec.hard_pair_share:  # drawn only where asked: other worlds keep their draws
        hard = (~contested) & (rng.random(n_j) < spec.hard_pair_share)
        consensus = np.where(hard, rng.normal(0.0, 0.4, n_j), consensus)
        margins = np.where(hard[:, None], consensus[:, None], margins)
        ambiguous = ambiguous | hard
        queue = (~rushed) & (rng.random(n_r) < spec.hard_queue_share)

    # judgments
    r_idx, j_idx = _draw_workload(spec, rng, rushed, ring if ring.any() else None, hard, queue)
    n = r_idx.size
    s = np.where(rng.random(n) < 0.5, 1, -1)
    if spec.better_first:  # drawn only where asked: other worlds keep their draws
        better = np.where(consensus >= 0, 1, -1)
        pair_first = np.where(rng.random(n_j) < spec.better_first, better, -better)
        s = pair_first[j_idx]
    if spec.label_task:  # no display order: a bias (and a lapse's lean) points at label A
        s = label_side[j_idx].astype(np.int64)
    # everything in a careful vote but the pair's margin (the margin-blind oracle swaps that)
    eta_offset = (taste[r_idx] * d_content[j_idx] + 1.5 * length_taste[r_idx] * longer[j_idx]
                  + beta[r_idx] * s)
    eta = sharp[r_idx] * margins[j_idx, school[r_idx]] + eta_offset
    p_plus, p_minus = expit(eta - tau_r[r_idx]), expit(-eta - tau_r[r_idx])
    p_tie = np.clip(1.0 - p_plus - p_minus, 0.0, 1.0)
    v = rng.random(n)
    careful_y = np.where(v < p_plus, 1, np.where(v < p_plus + p_minus, -1, 0))
    careful_y = np.where(reversed_[r_idx], -careful_y, careful_y)

    # a lapse's outcome distribution (P(+1), P(0), P(-1)) for each judgment's reviewer
    lean, toward = spec.lapse_lean, np.zeros(n)
    l_tie = np.zeros(n)
    if spec.lapse_mode == "first":
        toward = s.astype(float)
    elif spec.lapse_mode == "longer":
        toward = longer[j_idx]
    elif spec.lapse_mode == "model":  # toward the reply of model 0
        m1, m2 = model[j_idx, 0] == 0, model[j_idx, 1] == 0
        toward = np.where(m1 & ~m2, 1.0, np.where(m2 & ~m1, -1.0, 0.0))
    elif spec.lapse_mode == "label":  # each reviewer's lapses toward one label, A or B
        label_dir = np.where(rng.random(n_r) < 0.5, 1.0, -1.0)
        toward = label_side[j_idx] * label_dir[r_idx]
    elif spec.lapse_mode == "tie":
        l_tie = np.full(n, spec.lapse_tie_share)
    l_plus = np.where(toward > 0, lean, np.where(toward < 0, 1 - lean, 0.5)) * (1 - l_tie)
    l_minus = (1 - l_tie) - l_plus
    w = rng.random(n)
    lapse_y = np.where(w < l_plus, 1, np.where(w < l_plus + l_minus, -1, 0))
    if ring.any():  # the ring's lapses copy its one answer for the pair (the oracle is told
        # only the answer's odds, as for any lapse: it knows habits, not the ring's draws)
        ring_answer = np.where(rng.random(n_j) < 0.5, 1, -1)
        lapse_y = np.where(ring[r_idx], ring_answer[j_idx], lapse_y)
    eps_n = eps[r_idx]
    if spec.close_lapse_ratio != 1.0:  # no draw here: other worlds keep theirs
        close = np.abs(consensus[j_idx]) < 1.0
        spread = spec.close_lapse_ratio * close.mean() + (1 - close.mean())
        eps_n = np.clip(eps_n * np.where(close, spec.close_lapse_ratio, 1.0) / spread, 0.0, 1.0)
    careful = rng.random(n) >= eps_n
    counts = np.bincount(r_idx, minlength=n_r)
    sequence = np.zeros(n, np.int64)
    fatigued = np.zeros(n_r, bool)
    if spec.fatigue_share:  # drawn only where asked: other worlds keep their draws
        fatigued = rng.random(n_r) < spec.fatigue_share
        late_eps = rng.uniform(*spec.rushed_lapse, n_r)
        sequence = work_sequence(r_idx, rng)
        late = fatigued[r_idx] & (2 * sequence >= counts[r_idx])
        careful = np.where(late, rng.random(n) >= late_eps[r_idx], careful)
        # the reviewer's lapse rate over all their votes: what a fixed-rate model can recover
        late_share = np.bincount(r_idx, late, n_r) / np.maximum(counts, 1)
        eps = np.where(fatigued, (1 - late_share) * eps + late_share * late_eps, eps)
        rushed = rushed | fatigued
    y = np.where(careful, careful_y, lapse_y).astype(np.int8)
    pick = {1: 0, 0: 1, -1: 2}
    col = np.vectorize(pick.get)(y)
    p_careful = np.stack([p_plus, p_tie, p_minus], 1)[np.arange(n), col]
    p_lapse = np.stack([l_plus, l_tie, l_minus], 1)[np.arange(n), col]

    fast_careful = np.zeros(n_r, bool)
    median_seconds, seconds = np.full(n_r, np.nan), np.full(n, np.nan)
    if spec.timed:  # drawn only where asked, and last: other worlds keep their draws
        fast_careful = (~rushed) & (rng.random(n_r) < spec.fast_careful_share)
        median_seconds = rng.lognormal(np.log(np.where(rushed | fast_careful, 12.0, 45.0)), 0.3)
        seconds = median_seconds[r_idx] * rng.lognormal(0.0, 0.4, n)

    order = np.argsort(j_idx, kind="stable")
    if spec.overlap_stages:  # drawn only where asked, and last: other worlds keep their draws
        kept = _overlap_kept(spec, j_idx, y, rng)
        order = order[kept[order]]
        counts = np.bincount(r_idx[kept], minlength=n_r)
    n = order.size
    reviewer_ids = np.array([f"r{i:04d}" for i in range(n_r)])
    pair_ids = np.array([f"p{j:05d}" for j in range(n_j)])
    judgments = pl.DataFrame({
        "comparison_id": [f"c{i:06d}" for i in range(n)],
        "reviewer_id": reviewer_ids[r_idx[order]],
        "pair_id": pair_ids[j_idx[order]],
        "prompt_id": [f"q{j:05d}" for j in j_idx[order]],
        "response_1_id": [f"a{j:05d}" for j in j_idx[order]],
        "response_2_id": [f"b{j:05d}" for j in j_idx[order]],
        "careful": careful[order],
        "first_shown_is_response_1": (s[order] > 0) if not spec.label_task else None,
        "outcome": y[order],
        "p_careful": p_careful[order],
        "p_lapse": p_lapse[order],
        "eta_offset": eta_offset[order],  # a careful vote's log-odds beyond sharpness x margin
        "sequence": sequence[order],  # the judgment's place in its reviewer's work (fatigue)
        "seconds_spent": seconds[order],  # NaN unless the world is timed
    })
    reviewers = pl.DataFrame({
        "reviewer_id": reviewer_ids,
        "school_index": school.astype(np.int64),
        "lapse_rate": eps,
        "position_bias": beta,
        "taste": taste,
        "length_taste": length_taste,
        "is_rushed": rushed,
        "is_position_biased": biased,
        "is_reversed": reversed_,
        "in_ring": ring,
        "is_fatigued": fatigued,
        "sharpness": sharp,
        "hard_queue": queue if queue is not None else np.zeros(n_r, bool),
        "tie_threshold": tau_r,
        "tie_taste": tie_taste,
        "fast_careful": fast_careful,
        "median_seconds": median_seconds,
        "n_comparisons": counts.astype(np.int64),
    })
    pairs = pl.DataFrame({
        "pair_id": pair_ids,
        "consensus_margin": consensus,
        "contested": contested,
        "ambiguous": ambiguous,
        "response_1_length": length[:, 0],
        "response_2_length": length[:, 1],
        "response_1_model": [f"model_{m}" for m in model[:, 0]],
        "response_2_model": [f"model_{m}" for m in model[:, 1]],
        **{f"margin_{k}": margins[:, k] for k in range(n_k)},
    })
    return World(spec, reviewers, pairs, judgments)
