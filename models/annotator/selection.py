"""Choosing K on a sample of pairs when the data are large.

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

import numpy as np
from numpy.typing import NDArray

from .grid_em import GridState, Judgments

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def sample_pairs(data: Judgments, max_comparisons: int,
                 seed: int) -> tuple[Judgments, IntArray]:
    """Keep each pair with probability ``max_comparisons / n``; pairs and reviewers recoded.

    Returns the sample and, for each of its reviewers, the reviewer's index in ``data``.
    """
    rng = np.random.default_rng(seed)
    keep_pair = rng.random(data.n_pairs) < min(1.0, max_comparisons / max(data.n, 1))
    rows = keep_pair[data.pair]
    pair_code = np.cumsum(keep_pair) - 1
    reviewers, reviewer = np.unique(data.reviewer[rows], return_inverse=True)
    sample = Judgments(
        reviewer=reviewer.astype(np.int64), pair=pair_code[data.pair[rows]].astype(np.int64),
        y=data.y[rows], s=data.s[rows], n_reviewers=int(reviewers.size),
        n_pairs=int(keep_pair.sum()),
        pair_responses=None if data.pair_responses is None else data.pair_responses[keep_pair],
        n_responses=data.n_responses,
    )
    return sample, reviewers.astype(np.int64)


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
    return replace(state, reviewer_post=post, gamma=gamma, tau_r=tau_r)


def initial_schools(state: GridState) -> FloatArray:
    """(R, K) school probabilities to start a fit from, kept away from exact 0 and 1."""
    probs = state.school_probs()
    probs = 0.9 * probs + 0.1 / probs.shape[1]
    return probs / probs.sum(axis=1, keepdims=True)
