"""The evidence behind a verdict about a person: lapse flags measured against the pool.

A reviewer is flagged for lapses when the posterior probability of a lapse rate above
``1 - flag_min_reliability`` reaches ``flag_probability`` *and* the reviewer's own votes move the
odds of lapsing against the pool's by the Bayes factor ``flag_bayes_factor``
(:func:`lapse_bayes_factor`); when one school was chosen over two, the weaker evidence of the two
fits counts (:func:`flags_robust_to_schools`), unless two schools were clearly worse
(:func:`one_school_won_narrowly`). A position-bias flag is read against the pool's bias where
the display order cannot tell the pool's bias from the pairs' quality (:func:`bias_reference`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .config import AnnotatorConfig
from .data import EncodedFrame
from .grid_em import GridState
from .results import FitResult
from .selection import loo_row

FloatArray = NDArray[np.float64]


def prob_above(post: FloatArray, grid: FloatArray, threshold: float) -> FloatArray:
    """``P(x > threshold)`` for distributions on a regular grid (mass even within cells)."""
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    frac = np.clip((grid + step / 2 - threshold) / step, 0.0, 1.0)
    return post @ frac / post.sum(axis=1)


FIXED_ORDER_SHARE = 0.9
"""Display orders count as fixed within pairs when at least this share of the pairs judged twice
or more (with a known order) showed every reviewer the same reply first."""


def orders_fixed_within_pairs(enc: EncodedFrame) -> bool:
    """Whether every reviewer of a pair saw the same reply first, on nearly every pair.

    With orders drawn per judgment, the same pair is seen both ways and a reviewer's position
    bias is told from the pair's quality within pairs. With one order per pair it is told apart
    only between reviewers: where the order follows quality (the better reply usually first),
    "the first is better" and "everyone favours the first" fit the votes alike.
    """
    d = enc.judgments
    known = d.s != 0
    pair, s = d.pair[known], d.s[known]
    n = np.bincount(pair, minlength=d.n_pairs)
    plus = np.bincount(pair, (s > 0).astype(np.float64), minlength=d.n_pairs)
    multi = n >= 2
    if not multi.any():
        return False
    fixed = (plus[multi] == 0) | (plus[multi] == n[multi])
    return bool(fixed.mean() >= FIXED_ORDER_SHARE)


def bias_reference(enc: EncodedFrame, weights: FloatArray, values: FloatArray) -> float:
    """The position bias a reviewer's must stand out from to be flagged: 0, or the pool's
    median (:func:`pool_bias`) where display orders are fixed within pairs (then the pool's
    bias and the pairs' quality cannot be told apart, and a flag is a verdict about one person
    against the others). In a label task the lean toward one label keeps 0: a majority that
    over-calls one label is what the lean flag is for."""
    if enc.cues.label_order or not orders_fixed_within_pairs(enc):
        return 0.0
    return pool_bias(weights, values)


def pool_bias(weights: FloatArray, values: FloatArray) -> float:
    """The pool's typical position bias: the median of its bias distribution (``weights`` over
    sorted ``values``)."""
    w = np.asarray(weights, dtype=float)
    cdf = np.cumsum(w) / max(float(w.sum()), 1e-300)
    return float(values[int(np.argmax(cdf >= 0.5))])


def lapse_bayes_factor(post: FloatArray, pool: FloatArray, grid: FloatArray,
                       careful_limit: float, lapse_from: float) -> FloatArray:
    """How much a reviewer's own votes move the odds "lapses" : "careful" away from the pool's.

    ``BF_r = [P(eps_r > lapse_from | y_r) / P(eps_r <= careful_limit | y_r)] /
    [P(eps > lapse_from) / P(eps <= careful_limit)]`` with the second odds under the pool's
    lapse distribution ``pool`` (the population prior). A reviewer whose votes say nothing about
    them keeps the pool's odds (BF ~ 1) however high the pool's lapse rate; Kass & Raftery (1995)
    call BF > 10 strong evidence.
    """
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    above = np.clip((grid + step / 2 - lapse_from) / step, 0.0, 1.0)
    below = np.clip((careful_limit - (grid - step / 2)) / step, 0.0, 1.0)
    tiny = 1e-12
    post = post / post.sum(axis=1, keepdims=True)
    pool = pool / pool.sum()
    own = (post @ above + tiny) / (post @ below + tiny)
    prior = (pool @ above + tiny) / (pool @ below + tiny)
    return own / prior


def lapse_flagged(result: FitResult, config: AnnotatorConfig) -> NDArray[np.bool_]:
    """Reviewers whose lapses are both probable and evidenced against the pool (no vote count
    rule: the estimator adds that)."""
    return ((result.p_unreliable >= config.flag_probability)
            & (result.lapse_evidence >= config.flag_bayes_factor))


def keep_weaker_reading(result: FitResult, p_unreliable: FloatArray, evidence: FloatArray,
                        config: AnnotatorConfig) -> int:
    """Lower ``result``'s two flag tests to another reading's where that one is weaker (the
    weakest evidence counts); returns how many lapse flags that withdraws."""
    before = lapse_flagged(result, config)
    result.p_unreliable = np.minimum(result.p_unreliable, p_unreliable)
    result.lapse_evidence = np.minimum(result.lapse_evidence, evidence)
    return int(np.sum(before & ~lapse_flagged(result, config)))


def flags_robust_to_placement(result: FitResult, state: GridState,
                              config: AnnotatorConfig) -> list[str]:
    """Keep a lapse flag of a fit with schools only where it stands in every school the
    reviewer may hold.

    The lapse posterior of reviewer ``r`` given school ``k`` is their posterior restricted to
    that school, ``p(eps | y_r, k) ∝ sum_b p(k, eps, b | y_r)``. For every school with
    ``P(k | y_r) >= flag_school_floor`` the flag's two tests (the probability of a lapse rate
    above ``1 - flag_min_reliability`` and the Bayes factor against the pool) are read under
    that school, and the weakest reading counts, as :func:`flags_robust_to_schools` does across
    the number of schools. A careful reviewer of a minority school whom the fit places in the
    majority at 0.74 looks careless there and careful in their own school; a rushed reviewer's
    lapses fall on pairs at random and look like lapses in any school.
    """
    floor = config.flag_school_floor
    if state.n_schools < 2 or floor <= 0:
        return []
    post = state.reviewer_post.sum(axis=3)  # (R, K, G)
    placed = post.sum(axis=2)
    placed = placed / np.maximum(placed.sum(axis=1, keepdims=True), 1e-300)
    grid, lapse_from = state.lapse_grid, 1 - config.flag_min_reliability
    p_min = np.full(post.shape[0], np.inf)
    evidence_min = np.full(post.shape[0], np.inf)
    for k in range(state.n_schools):
        held = placed[:, k] >= floor
        if not held.any():
            continue
        within = post[held, k] + 1e-300  # conditional on school k (rows renormalised below)
        p_min[held] = np.minimum(p_min[held], prob_above(within, grid, lapse_from))
        evidence_min[held] = np.minimum(evidence_min[held], lapse_bayes_factor(
            within, state.lapse_prior, grid, config.careful_lapse_limit, lapse_from))
    dropped = keep_weaker_reading(result, p_min, evidence_min, config)
    if not dropped:
        return []
    return [f"{dropped} reviewer(s) not flagged: the fit is unsure which school they hold (two "
            f"or more at {floor:.0%} or more each), and their disagreement looks like lapses "
            "under one school but like that school's view under another"]


def one_school_won_narrowly(one_loo: FloatArray, two_loo: FloatArray,
                            within_se: float | None) -> bool:
    """Whether the two-school fit's pointwise LOO ``two_loo`` came within ``within_se``
    standard errors of the difference of the chosen one-school fit's ``one_loo`` (or beat it);
    ``None``: always. Only then does :func:`flags_robust_to_schools` weigh the two-school fit:
    a reading the votes clearly reject should not clear a reviewer they clearly implicate."""
    if within_se is None:
        return True
    row = loo_row(np.asarray(two_loo, dtype=float), 2, np.asarray(one_loo, dtype=float))
    return row["elpd_diff"] > -within_se * row["dse"]


def flags_robust_to_schools(result: FitResult, two: GridState,
                             config: AnnotatorConfig) -> list[str]:
    """Keep a lapse flag of a one-school fit only where the two-school fit agrees.

    When K = 1 wins narrowly, a careful minority's consistent disagreement can look like lapses;
    under the two-school fit it is a school. A verdict about a person should not hang on a
    close model choice, so the evidence taken is the weaker of the two fits'.
    """
    lapse, grid = two.lapse_marginal(), two.lapse_grid
    evidence = lapse_bayes_factor(lapse, two.lapse_prior, grid, config.careful_lapse_limit,
                                  1 - config.flag_min_reliability)
    p_two = prob_above(lapse, grid, 1 - config.flag_min_reliability)
    dropped = keep_weaker_reading(result, p_two, evidence, config)
    if not dropped:
        return []
    # a fit K selection set aside as unsettled is said to be one, not "not by much", or this
    # note and the one that set it aside read as a contradiction
    reading = ("a two-school reading that never settled; the votes cannot tell a careful "
               "minority from lapses here" if two.swinging
               else "two (K = 1 was chosen, not by much)")
    return [f"{dropped} reviewer(s) not flagged: their disagreement looks like lapses under one "
            f"school but like a school of their own under {reading}"]
