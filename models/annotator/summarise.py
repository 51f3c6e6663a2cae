"""A grid-EM state in the words and figures a fit reports: per reviewer, per pair, per judgment.

The EM (:mod:`.grid_em`) leaves posteriors on grids; this module reads intervals off them
(mass spread evenly over each grid cell), the model-free agreement of the votes, and the
diagnostics of response pooling and response features that the fit summary prints.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .config import AnnotatorConfig
from .data import EncodedFrame
from .decomposition import Population, decompose_states
from .evidence import bias_reference, lapse_bayes_factor, prob_above
from .grid_em import GridState
from .judgments import Judgments
from .results import FitResult

FloatArray = NDArray[np.float64]


def grid_quantiles(post: FloatArray, grid: FloatArray, qs: tuple[float, ...]) -> FloatArray:
    """Quantiles of distributions on a regular grid, mass spread evenly over each grid cell."""
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    edges = np.concatenate([[grid[0] - step / 2], grid + step / 2])
    cdf = np.concatenate([np.zeros((post.shape[0], 1)), np.cumsum(post, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    out = np.empty((post.shape[0], len(qs)))
    for i, q in enumerate(qs):
        idx = np.clip((cdf < q).sum(axis=1) - 1, 0, grid.size - 1)
        lo, hi = cdf[np.arange(post.shape[0]), idx], cdf[np.arange(post.shape[0]), idx + 1]
        frac = np.where(hi > lo, (q - lo) / np.maximum(hi - lo, 1e-300), 0.5)
        out[:, i] = edges[idx] + np.clip(frac, 0, 1) * step
    return out


def piled_at_bound(post: FloatArray) -> NDArray[np.bool_]:
    """Reviewers whose lapse posterior (``(R, G)`` on the lapse grid) is highest in the grid's
    top cell, at the model's bound on lapse rates (one half outside label tasks).

    There the votes push against the bound: a rate above it would explain them at least as
    well, and the model cannot say how far above. Their interval is reported open to a lapse
    rate of 1 (reliability 0) rather than stopping at the bound, which would claim a precision
    the model does not have (the robustness world ``rushed_majority``, rates of 0.5-0.8, had
    94% intervals that covered the truth for 43% of its reviewers)."""
    if post.shape[1] < 2:  # one cell: nothing lies above it to push toward
        return np.zeros(post.shape[0], dtype=bool)
    return post.argmax(axis=1) == post.shape[1] - 1


def draws_at_bound(eps: FloatArray, lapse_max: float, bins: int = 40) -> NDArray[np.bool_]:
    """:func:`piled_at_bound` for sampled lapse rates ``eps`` (draws x reviewers): the draws'
    histogram on ``bins`` equal cells of ``(0, lapse_max)`` is highest in the top cell."""
    cell = np.clip((eps / lapse_max * bins).astype(np.int64), 0, bins - 1)
    counts = np.stack([(cell == b).sum(axis=0) for b in range(bins)], axis=1)
    return piled_at_bound(counts.astype(float))


def robust_lapse_posterior(post: FloatArray, pool: FloatArray, mix: float) -> FloatArray:
    """Each reviewer's lapse posterior under the prior ``(1 - mix) g + mix u`` in place of the
    pool's ``g`` (``u`` flat on the grid; Berger's epsilon-contamination class).

    With ``post_r ∝ g L_r``: ``post'_r ∝ ((1 - mix) g + mix u) L_r``, ``L_r = post_r / g``. A
    reviewer with many votes has a sharp ``L_r`` and barely moves; one with few keeps some of
    their likelihood's own spread where the fitted ``g`` has little mass (a pool whose rushed
    reviewers mostly cast few votes learns ``g`` from the careful ones with many).
    """
    if mix <= 0:
        return post
    g = pool / pool.sum()
    likelihood = post / np.maximum(g, 1e-300)[None, :]
    out = likelihood * ((1.0 - mix) * g + mix / g.size)[None, :]
    return out / out.sum(axis=1, keepdims=True)


def vote_kappa(d: Judgments) -> float | None:
    """Fleiss' kappa of the votes (outcomes +1 / 0 / -1) over pairs with two or more votes:
    agreement beyond what the overall outcome shares give by chance (1: all agree, 0: chance).
    None when no pair has two votes."""
    counts = np.zeros((d.n_pairs, 3))
    np.add.at(counts, (d.pair, d.y + 1), 1.0)
    n = counts.sum(axis=1)
    c, n = counts[n >= 2], n[n >= 2]
    if c.shape[0] == 0:
        return None
    observed = float(np.mean((c * (c - 1)).sum(axis=1) / (n * (n - 1))))
    expected = float(np.sum((c.sum(axis=0) / c.sum()) ** 2))
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def vote_disagreement(enc: EncodedFrame) -> NDArray[np.bool_]:
    d = enc.judgments
    lo = np.full(d.n_pairs, 2)
    hi = np.full(d.n_pairs, -2)
    np.minimum.at(lo, d.pair, d.y)
    np.maximum.at(hi, d.pair, d.y)
    return hi > lo


def departing_lapse_probability(enc: EncodedFrame, careful_prob: FloatArray) -> FloatArray:
    """Per pair, the posterior probability that at least one vote against the pair's majority
    is a lapse: ``1 - prod P(careful)`` over the votes that depart from the majority side (ties
    included; on an even split every vote departs). Votes are taken as independent given their
    posteriors, so this runs somewhat high where one pair's votes are few."""
    d = enc.judgments
    majority = np.sign(np.bincount(d.pair, d.y.astype(float), d.n_pairs))[d.pair]
    departs = (d.y != majority) | (majority == 0)
    log_careful = np.where(departs, np.log(np.clip(careful_prob, 1e-12, 1.0)), 0.0)
    return 1.0 - np.exp(np.bincount(d.pair, log_careful, d.n_pairs))


LAPSE_FIELDS = ("reliability", "reliability_low", "reliability_high", "p_unreliable",
                "lapse_evidence")
"""The :class:`FitResult` fields read from each reviewer's lapse-rate posterior."""


def lapse_summary(lapse: FloatArray, pool: FloatArray, grid: FloatArray,
                  config: AnnotatorConfig) -> dict[str, FloatArray]:
    """The :data:`LAPSE_FIELDS` of reviewers with lapse posteriors ``lapse`` (``(R, G)`` on
    ``grid``) against the pool's lapse distribution ``pool``: reliability and its interval
    (under the robust prior, :func:`robust_lapse_posterior`), the probability of a lapse rate
    above ``1 - flag_min_reliability`` and the evidence against the pool."""
    mass, lapse_from = config.interval_mass, 1 - config.flag_min_reliability
    robust = robust_lapse_posterior(lapse, pool, config.interval_prior_mix)
    eps_q = grid_quantiles(robust, grid, ((1 - mass) / 2, 1 - (1 - mass) / 2))
    return {
        "reliability": 1 - lapse @ grid / lapse.sum(axis=1),
        "reliability_low": np.where(piled_at_bound(robust), 0.0, 1 - eps_q[:, 1]),
        "reliability_high": 1 - eps_q[:, 0],
        "p_unreliable": prob_above(lapse, grid, lapse_from),
        "lapse_evidence": lapse_bayes_factor(lapse, pool, grid, config.careful_lapse_limit,
                                             lapse_from),
    }


def summarise_grid(
    state: GridState, enc: EncodedFrame, config: AnnotatorConfig, seconds: float
) -> FitResult:
    """Turn a grid-EM state into per-reviewer, per-pair and per-judgment summaries."""
    d = enc.judgments
    order = np.argsort(-state.school_weights, kind="stable")
    pi = state.school_weights[order]
    mass = config.interval_mass
    qs = ((1 - mass) / 2, 1 - (1 - mass) / 2)
    e_grid = state.lapse_grid
    lapse = lapse_summary(state.lapse_marginal(), state.lapse_prior, e_grid, config)
    bias = state.bias_marginal()
    b_grid = state.bias_grid
    centre = 0.0
    if b_grid.size > 1:
        b_q = grid_quantiles(bias, b_grid, qs)
        centre = bias_reference(enc, state.bias_prior, b_grid)
        p_bias = prob_above(bias, b_grid, centre + config.position_bias_flag) + (
            1 - prob_above(bias, b_grid, centre - config.position_bias_flag)
        )
    else:
        b_q = np.zeros((d.n_reviewers, 2))
        p_bias = np.zeros(d.n_reviewers)
    pop = Population(
        school_weights=pi,
        tau=state.tau,
        lapse_mean=float(state.lapse_prior @ e_grid),
        bias_values=b_grid,
        bias_weights=state.bias_prior,
    )
    margins = state.lattice.margins()[:, order]
    pairs = decompose_states(margins, state.pair_post, pop, mass,
                             config.ambiguity_min_variance)
    return FitResult(
        method="em",
        n_schools=state.n_schools,
        seconds=seconds,
        school_weights=pi,
        **lapse,
        bias_mean=bias @ b_grid,
        bias_low=b_q[:, 0],
        bias_high=b_q[:, 1],
        p_strong_bias=p_bias,
        bias_centre=centre,
        school_probs=state.school_probs()[:, order],
        careful_prob=1 - state.lapse_post,
        pairs=pairs,
        expected_lapses=np.bincount(d.pair, state.lapse_post, d.n_pairs),
        population=pop,
        diagnostics={
            "iterations": state.n_iter,
            "converged": state.converged,
            "tie_threshold": state.tau,
            "tie_threshold_spread": float(np.std(state.reviewer_tau())),
            "lapse_tilt": state.tilt_mean,
            "mean_lapse_rate": pop.lapse_mean,
            "careful_share_binds": bool(
                config.careful_share > 0
                and float(state.lapse_prior[e_grid <= config.careful_lapse_limit].sum())
                <= config.careful_share + 1e-3),
            **_pooling_diagnostics(state),
            **_feature_diagnostics(state, enc, order),
            "lapse_lean": ({} if state.lean_mean is None else
                           dict(zip(enc.cues.names, map(float, state.lean_mean), strict=True))),
        },
        grid_state=state,
    )


def _pooling_diagnostics(state: GridState) -> dict[str, object]:
    """Scales of the response-pooled margin prior, when the fit pooled responses."""
    pooling = state.pooling
    if pooling is None:
        return {"response_pooling": False}
    return {"response_pooling": True, "response_quality_sd": pooling.sd_quality,
            "margin_residual_sd": pooling.sd_residual, "n_responses": pooling.n_responses}


def _feature_diagnostics(state: GridState, enc: EncodedFrame,
                         order: NDArray[np.intp], top: int = 8) -> dict[str, object]:
    """What the response features explain: the share of pairs whose deviations follow them,
    the residual sd, and the features on which the schools' weights differ most (schools in
    the reported order; a weight is the feature's pull on that school's margin relative to the
    schools' mean)."""
    prior = state.deviation_prior
    if prior is None or enc.features is None:
        return {"response_features": False}
    coef = prior.coef[order]
    tags = [i for i in range(enc.features.n_features) if i not in enc.features.content_index]
    spread = coef.max(axis=0) - coef.min(axis=0)
    ranked = [int(f) for f in np.argsort(-spread, kind="stable") if f in tags][:top]
    content = enc.features.content_index
    return {
        "response_features": True,
        "feature_source": enc.features.source,
        # each school's pull along the reply-content components (see .content.school_examples)
        "content_directions": [[round(float(w), 4) for w in row] for row in coef[:, content]]
        if content else [],
        "n_features": enc.features.n_features,
        "feature_share": prior.share,
        "feature_deviation_sd": prior.sd,
        "school_contrasts": [
            {"feature": enc.features.names[f], "weights": [round(float(w), 3) for w in coef[:, f]]}
            for f in ranked if spread[f] > 0.1
        ],
    }
