"""Choosing K, the number of schools: the rule, and the sample of pairs it runs on when the
data are large.

The rule (:func:`choose_k`, shared by the grid EM and the samplers): starting from the fewest
schools, a larger K is preferred only when its expected log predictive density (elpd,
leave-one-out) beats the current choice by ``k_selection_se`` standard errors of the difference
and by ``k_selection_min_gain`` log units.

Comparing K = 1, 2, 3 costs three full EM fits; on a million comparisons that is most of the
fitting time, although the LOO differences that decide K are large and stable long before that
(at 1M the K = 1 vs 2 difference was 28,000 log units, about 125 standard errors). So with more
than ``k_selection_max_comparisons`` comparisons, K is chosen on a random sample of *pairs*
(every vote of a sampled pair is kept, so each pair's structure is intact) and only the chosen
K is fitted on all the data, started from the sample's fit: its population priors, tie
thresholds and lapse tilts, and each reviewer's school probabilities as the initial split, so
the full fit begins with the schools already found. Reviewers with no vote in the sample start
from the population.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .config import AnnotatorConfig
from .grid_em import GridEM, GridState
from .judgments import Judgments
from .reversed import consensus_departures

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def sample_pairs(data: Judgments, max_comparisons: int,
                 seed: int) -> tuple[Judgments, IntArray]:
    """Keep each pair with probability ``max_comparisons / n``; pairs and reviewers recoded.

    Returns the sample and, for each of its reviewers, the reviewer's index in ``data``.
    """
    rng = np.random.default_rng(seed)
    keep_pair = rng.random(data.n_pairs) < min(1.0, max_comparisons / max(data.n, 1))
    return data.subset(keep_pair[data.pair])


def expand_state(state: GridState, reviewers: IntArray, n_reviewers: int) -> GridState:
    """The sample's fit with per-reviewer parts spread over all ``n_reviewers`` (those absent
    from the sample get the population's prior and lapse tilt), for a warm start."""
    prior = (state.school_weights[:, None, None] * state.lapse_prior[None, :, None]
             * state.bias_prior[None, None, :])
    post = np.broadcast_to(prior / prior.sum(),
                           (n_reviewers, *prior.shape)).copy()
    post[reviewers] = state.reviewer_post
    gamma = np.full(n_reviewers, state.tilt_mean)
    gamma[reviewers] = state.gamma
    tau_r = np.full(n_reviewers, state.tau)
    tau_r[reviewers] = state.reviewer_tau()
    lapse_tie = np.full(n_reviewers, state.lapse_tie_mean)
    lapse_tie[reviewers] = state.reviewer_lapse_tie()
    lean = None
    if state.lean is not None:
        lean = np.broadcast_to(state.lean_mean, (n_reviewers, state.lean.shape[1])).copy()
        lean[reviewers] = state.lean
    return replace(state, reviewer_post=post, gamma=gamma, tau_r=tau_r,
                   lapse_tie=lapse_tie if state.lapse_tie is not None else None, lean=lean)


def initial_schools(state: GridState) -> FloatArray:
    """(R, K) school probabilities to start a fit from, kept away from exact 0 and 1."""
    probs = state.school_probs()
    probs = 0.9 * probs + 0.1 / probs.shape[1]
    return probs / probs.sum(axis=1, keepdims=True)


def lapse_seeded_schools(fewer: GridState, k: int) -> FloatArray:
    """(R, k) school probabilities to start a k-school fit from the fit with one school fewer:
    its schools kept, and the half of the reviewers (a third for k = 3) who look most careless
    there start 0.8 in the new school.

    A careful minority that K - 1 schools cannot hold looks careless there: its departures
    from the consensus read as lapses. A symmetric random start instead tends to settle in an
    even split that explains nothing (the demo story's world, seed 0: a LOO gain of 3 nats and
    ARI 0.0 from four random starts, against 22.5 nats and ARI 0.46 from this one). Rushed
    reviewers who start in the new school leave it again: their departures share no pattern.
    """
    lapse = fewer.lapse_marginal() @ fewer.lapse_grid
    new = lapse >= np.quantile(lapse, 1.0 - 1.0 / k)
    base = fewer.school_probs()
    probs = np.concatenate([base * np.where(new, 0.2, 0.8)[:, None],
                            np.where(new, 0.8, 0.2)[:, None]], axis=1)
    return probs / probs.sum(axis=1, keepdims=True)


def shared_departure_schools(one: GridState, data: Judgments, candidates: float = 0.3,
                             max_candidates: int = 2000) -> FloatArray | None:
    """(R, 2) school probabilities to start a two-school fit from the one-school fit ``one``:
    the careless-looking reviewers whose departures fall on the same pairs start in the new
    school, everyone else in the first; None when no such group stands out.

    :func:`lapse_seeded_schools` moves the most careless-looking half of the reviewers to the
    new school. Where rushed reviewers outnumber a careful minority, the start is mostly
    rushed reviewers and the fit settles on no split at all (robustness world minority_10 with
    12-16 votes per pair, seed 2: elpd equal to one school's, while the true schools held
    from a start on them gain 9 nats). A minority's departures are shared, a lapse's are not:
    among the ``candidates`` share of reviewers with the highest lapse rates, ``C[r, r']`` =
    the pairs on which both vote against a clear consensus (probability beyond 0.5 +- 0.1)
    minus what their departure rates predict on the clear pairs they share, scaled by
    ``sqrt(n_r n_r')``; the reviewers loading on its leading eigenvector (above mean + sd / 2)
    are the seed.
    """
    from scipy import sparse

    clear, departs = consensus_departures(one, data)
    lapse = one.lapse_marginal() @ one.lapse_grid
    n_pick = min(int(candidates * data.n_reviewers), max_candidates)
    if n_pick < 4:
        return None
    cand = np.argsort(-lapse, kind="stable")[:n_pick]
    row = np.full(data.n_reviewers, -1)
    row[cand] = np.arange(n_pick)
    keep = row[data.reviewer] >= 0
    shape = (n_pick, data.n_pairs)
    voted = sparse.csr_matrix((clear[keep].astype(float),
                               (row[data.reviewer[keep]], data.pair[keep])), shape=shape)
    dep = sparse.csr_matrix((departs[keep].astype(float),
                             (row[data.reviewer[keep]], data.pair[keep])), shape=shape)
    n = np.asarray(voted.sum(axis=1)).ravel()
    rate = np.asarray(dep.sum(axis=1)).ravel() / np.maximum(n, 1.0)
    excess = (dep @ dep.T).toarray() - np.outer(rate, rate) * (voted @ voted.T).toarray()
    np.fill_diagonal(excess, 0.0)
    excess /= np.sqrt(np.maximum(np.outer(n, n), 1.0))
    _, vectors = np.linalg.eigh(excess)
    lead = vectors[:, -1] if vectors[:, -1].sum() >= 0 else -vectors[:, -1]
    seed = cand[lead > lead.mean() + 0.5 * lead.std()]
    if seed.size < 2 or seed.size >= n_pick:
        return None
    probs = np.tile([0.95, 0.05], (data.n_reviewers, 1))
    probs[seed] = [0.05, 0.95]
    return probs


def loo_row(pointwise: FloatArray, k: int, best: FloatArray | None) -> dict[str, float]:
    """One row of the LOO table: elpd, its standard error, and the difference to ``best``."""
    n = pointwise.size
    row = {"n_schools": float(k), "elpd_loo": float(pointwise.sum()),
           "se": float(np.sqrt(n * np.var(pointwise)))}
    if best is not None:
        diff = pointwise - best
        row["elpd_diff"] = float(diff.sum())
        row["dse"] = float(np.sqrt(n * np.var(diff)))
    return row


def choose_k(pointwise: dict[int, FloatArray], config: AnnotatorConfig) -> tuple[int, list[dict]]:
    """Apply the rule of the module docstring to pointwise elpd values per K; returns K and the
    LOO table."""
    chosen = min(pointwise)
    for k in sorted(pointwise):
        if k == chosen:
            continue
        diff = pointwise[k] - pointwise[chosen]
        gain = float(diff.sum())
        se = float(np.sqrt(diff.size * np.var(diff)))
        if gain > max(config.k_selection_se * se, config.k_selection_min_gain):
            chosen = k
    table = [loo_row(pointwise[k], k, pointwise[chosen]) for k in sorted(pointwise)]
    for row in table:
        row["chosen"] = bool(row["n_schools"] == chosen)
    return chosen, table


def school_support(states: dict[int, GridState], config: AnnotatorConfig,
                   n_reviewers: int) -> tuple[dict[int, GridState], list[str]]:
    """The candidate K that the reviewers can fill, and notes on those dropped.

    K schools need at least ``min_reviewers_per_school`` reviewers' worth of membership in each
    school (the column sums of the school probabilities): three reviewers split into three
    schools is not pluralism, it is three people. With fewer than ``few_reviewers`` reviewers,
    more than one school must also win the LOO comparison by ``few_reviewers_gain_factor`` times
    the usual margins (see :func:`.selection.choose_k`).
    """
    kept: dict[int, GridState] = {}
    notes: list[str] = []
    for k, state in states.items():
        filled = state.school_probs().sum(axis=0)
        if k > 1 and filled.min() < config.min_reviewers_per_school:
            notes.append(f"{k} schools not considered: the smallest would hold "
                         f"{filled.min():.2f} reviewers (min_reviewers_per_school="
                         f"{config.min_reviewers_per_school:g})")
            continue
        kept[k] = state
    if n_reviewers < config.few_reviewers and len(kept) > 1:
        notes.append(f"only {n_reviewers} reviewers: schools cannot be told apart from "
                     "individual views with so few, so more than one school needs "
                     f"{config.few_reviewers_gain_factor:g}x the usual LOO evidence")
    return kept, notes


def selection_rule(config: AnnotatorConfig, n_reviewers: int) -> AnnotatorConfig:
    """The K-selection margins in force: stronger with fewer than ``few_reviewers``."""
    if n_reviewers >= config.few_reviewers:
        return config
    factor = config.few_reviewers_gain_factor
    return config.model_copy(update={
        "k_selection_se": config.k_selection_se * factor,
        "k_selection_min_gain": config.k_selection_min_gain * factor})


def choose_lapse_model(data: Judgments, config: AnnotatorConfig
                       ) -> tuple[dict[str, Any], GridState, list[str]]:
    """How much of the pool's randomness to read as lapses, with the one-school fit made so.

    Each step keeps the simpler reading unless the richer one predicts the votes clearly better
    by the K-selection rule of :func:`.selection.choose_k`:

    1. the strict anchor (``careful_share_strict``: nearly everyone careful, disagreement read
       as near-tie pairs) against the looser one (``careful_share``: some reviewers really lapse
       more than the pool);
    2. lapses that never tie against lapses that may tie (``lapse_ties``): careful reviewers on
       near-tie pairs say "equal" too, and some careful reviewers simply say it more often (a
       taste: a tie threshold of their own), so ties are read as lapses only when that beats
       the plain model clearly, and either beats the tie-taste one (``tie_per_reviewer``) at
       all or leaves lapses tying far more often than votes do (``lapse_tie_excess``): the
       taste model's per-reviewer thresholds are point estimates its LOO does not leave out.
       Where only the excess speaks for lapses that tie, they must also beat the taste model
       with lapses that tie added to it (by the K-selection rule). That model with both
       readings is kept where the ties no longer stand out in it, the model with lapses that
       tie where they still do. Where they do not win, the ties are a taste, and the
       thresholds per reviewer are kept (``tie_per_reviewer``) without lapses that tie:
       careful reviewers with a stricter idea of "clearly better" say "equal" on close pairs,
       and a model with one threshold reads those ties as lapses (world ``tie_tastes``).
       Not considered at all where reviewers have fewer than ``lapse_ties_min_judgments``
       judgments each (the median): a careless 'equal' click is a reviewer's habit, and one or
       two votes cannot show a habit.

    Returns the settings chosen (``careful_share``, ``lapse_ties``, and ``tie_per_reviewer``
    where it was turned on), the chosen one-school fit and notes for the summary.
    """
    base = config.model_copy(update={"lapse_ties": config.lapse_ties is True})
    strict = config.careful_share_strict
    loose = GridEM(data, 1, base).run()
    tight = GridEM(data, 1, base.model_copy(update={"careful_share": strict})).run()
    notes: list[str] = []
    if choose_k({1: tight.loo, 2: loose.loo}, config)[0] == 2:
        chosen, best = {"careful_share": config.careful_share}, loose
    else:
        chosen, best = {"careful_share": strict}, tight
        notes.append(f"careful share {strict:g}: treating more reviewers as lapsing did not "
                     "predict the votes better, so their disagreement is read as near-tie pairs")
    chosen["lapse_ties"] = config.lapse_ties is True
    judgments = np.bincount(data.reviewer, minlength=data.n_reviewers)
    median = float(np.median(judgments[judgments > 0])) if data.n else 0.0
    if config.lapse_ties == "auto" and median < config.lapse_ties_min_judgments:
        notes.append(f"reviewers have a median of {median:g} judgments each: whether one "
                     "reviewer's 'equal' votes are careless cannot be told from so few, so "
                     "ties are read as close pairs, not lapses (lapse_ties not considered; "
                     f"lapse_ties_min_judgments={config.lapse_ties_min_judgments})")
    elif config.lapse_ties == "auto":
        tied = GridEM(data, 1, config.model_copy(update=chosen | {"lapse_ties": True})).run()
        taste = (best if config.tie_per_reviewer else GridEM(
            data, 1, config.model_copy(update=chosen | {"tie_per_reviewer": True})).run())
        excess = config.lapse_tie_excess
        tie_share = float(np.mean(data.y == 0)) if data.n else 0.0
        ties_stand_out = (excess is not None and tie_share > 0
                          and tied.lapse_tie_mean >= excess * tie_share)
        tied_wins = choose_k({1: best.loo, 2: tied.loo}, config)[0] == 2
        if tied_wins and float(tied.loo.sum()) > float(taste.loo.sum()):
            chosen["lapse_ties"], best = True, tied
        elif tied_wins and ties_stand_out and not config.tie_per_reviewer:
            # ties stand out, but a careful reviewer with a tie taste of their own says 'equal'
            # on close pairs as often: read them as lapses only where lapses that tie still
            # predict the votes clearly better once every reviewer has their own threshold
            both = GridEM(data, 1, config.model_copy(
                update=chosen | {"lapse_ties": True, "tie_per_reviewer": True})).run()
            if choose_k({1: taste.loo, 2: both.loo}, config)[0] == 2:
                chosen["lapse_ties"], best = True, tied
                if both.lapse_tie_mean < excess * tie_share:  # type: ignore[operator]
                    # with thresholds of their own the ties no longer stand out as lapses:
                    # keep both readings, a lapse that says 'equal' and a tie taste
                    chosen["tie_per_reviewer"], best = True, both
                    notes.append(tie_taste_note(both, tie_share, lapses_tie=True))
            else:
                chosen["tie_per_reviewer"], best = True, taste
                notes.append(tie_taste_note(taste, tie_share, lapses_tie=False))
        if chosen["lapse_ties"] and not chosen.get("tie_per_reviewer"):
            notes.append("some reviewers say 'equal' far more than the pool: their lapses may "
                         f"be ties (lapse_ties; {tied.lapse_tie_mean:.0%} of lapses are ties, "
                         f"against {tie_share:.0%} of all votes)")
    return chosen, best, notes


def tie_taste_note(state: GridState, tie_share: float, lapses_tie: bool) -> str:
    """The summary's words where some reviewers' many 'equal' votes are read as a taste."""
    wide = int(np.sum(state.tie_tastes()))
    taste = (f"some reviewers say 'equal' far more than the pool ({tie_share:.0%} of all votes "
             "are ties), mostly on close pairs, where a careful reviewer with a stricter idea "
             f"of 'clearly better' says it too: read as a tie taste ({wide} reviewer(s) with a "
             "tie threshold well above the pool's), not as lapses (tie_per_reviewer)")
    if lapses_tie:
        return (f"{taste}; lapses may also be ties ({state.lapse_tie_mean:.0%} of lapses): "
                "they predict the votes better even with a threshold per reviewer (lapse_ties)")
    return (f"{taste}; lapses that tie did not predict the votes better once each reviewer "
            "has a threshold of their own")
