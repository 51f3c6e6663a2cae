"""Why reviewers disagree on a pair: noise, pluralism and ambiguity by the law of total variance.

Take the vote of a reviewer drawn from the population, ``Y = 1`` (response 1), ``0.5`` (tie) or
``0`` (response 2). Given the pair's school margins ``m_k`` and the population (school shares
``pi_k``, lapse rate distribution with mean ``eps_bar``, position-bias distribution, display
order equally likely either way)::

    careful, unbiased reviewer of school k:  mean mu_k = P_k(+1) + P_k(0)/2,
                                             variance v_k = P_k(+1) + P_k(0)/4 - mu_k^2
    ambiguity  = E_k[v_k]                    careful within-school (Bernoulli-type) variance
    pluralism  = Var_k[mu_k]                 between-school variance of the careful means
    careful    = ambiguity + pluralism       = Var(Y | careful, unbiased)   (total variance)
    noise      = Var(Y) - careful            the extra variance lapses and position bias add

``Var(Y)`` mixes careful judgments (shifted by ``beta * s`` for a biased reviewer) with lapses
(a coin flip once the display order is random). The extra variance is non-negative except for
rare tie-heavy corner cases, where it is clipped at 0. Shares are the three components divided by
their sum, so they sum to 1 exactly; posterior means and intervals average over the posterior
of the pair's margins.

Verdict (first rule that applies):

1. ``pluralism`` -- the schools disagree more than careful reviewers of one school do:
   ``P(pluralism > ambiguity | data) >= pluralism_probability`` (credibly, not just on average);
2. ``ambiguous`` -- careful reviewers split within their school: ``E[ambiguity] >=
   ambiguity_min_variance`` (margins near 0);
3. ``noise`` -- careful reviewers would agree, yet the pair's votes disagree, the model puts
   at least ``noise_min_lapses`` expected lapsed votes on it, and the votes against the pair's
   majority hold a lapse with posterior probability ``>= noise_probability`` (the disagreement
   is noise, credibly);
4. ``unsettled`` -- the votes disagree and the model puts lapses on them, but not credibly: a
   lapse, a careful reviewer's close call and a split of views the schools do not capture
   explain the same few votes about as well, so the pair gets no verdict about its cause;
5. ``clear`` -- careful reviewers agree and so do the votes (or their disagreement carries
   fewer than ``noise_min_lapses`` expected lapses).

The probability in rule 3 multiplies the departing votes' posterior probabilities of being
careful, ``P(noise) = 1 - prod_{v departs} P(careful_v | data)``: each vote's lapse posterior
is read with the pair's margins integrated out, but the votes are taken as independent given
them, so it runs somewhat high (measured against the truth in ``benchmarks/RESULTS.md``); the
default bar of 0.8 is set where the verdict is right about seven times in ten on worlds the
model was not built around.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .likelihood import careful_probs, vote_value

FloatArray = NDArray[np.float64]
VERDICTS = ("clear", "noise", "pluralism", "ambiguous", "unsettled")


@dataclass(frozen=True)
class Population:
    """The reviewer population the decomposition averages over."""

    school_weights: FloatArray  # (K,)
    tau: float
    lapse_mean: float
    bias_values: FloatArray  # (B,)
    bias_weights: FloatArray  # (B,)


def binned_biases(values: FloatArray, n_bins: int = 15) -> tuple[FloatArray, FloatArray]:
    """A sample of reviewer biases as a weighted grid (bin centres, weights) for
    :class:`Population`: :func:`components` loops over the bias values, so one value per reviewer
    would cost a pass over every pair for every reviewer."""
    values = np.asarray(values, dtype=float)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9:
        return np.array([lo]), np.array([1.0])
    counts, edges = np.histogram(values, bins=n_bins, range=(lo, hi))
    keep = counts > 0
    centres = 0.5 * (edges[:-1] + edges[1:])
    return centres[keep], counts[keep] / counts.sum()


def components(margins: FloatArray, pop: Population) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(noise, pluralism, ambiguity)`` variances for margins of shape ``(..., K)``."""
    pi = pop.school_weights
    p_plus, p_tie, _ = careful_probs(margins, pop.tau)
    mean_k, var_k = vote_value(p_plus, p_tie)
    ambiguity = var_k @ pi
    grand = mean_k @ pi
    if pi.size == 1:
        pluralism = np.zeros_like(ambiguity)  # exactly: one school has no between-school spread
    else:
        pluralism = np.maximum(((mean_k - grand[..., None]) ** 2) @ pi, 0.0)
    # population vote: careful (biased by b * s, s = +-1 equally likely) or a lapse (coin flip)
    first = np.zeros(margins.shape[:-1])
    second = np.zeros(margins.shape[:-1])
    for b, w_b in zip(pop.bias_values, pop.bias_weights, strict=True):
        if w_b <= 0:
            continue
        for sign in (1.0, -1.0):
            pp, pt, _ = careful_probs(margins + sign * b, pop.tau)
            m_k, v_k = vote_value(pp, pt)
            first += 0.5 * w_b * (m_k @ pi)
            second += 0.5 * w_b * ((v_k + m_k**2) @ pi)
    eps = pop.lapse_mean
    total_mean = (1 - eps) * first + eps * 0.5
    total_second = (1 - eps) * second + eps * 0.5
    total = np.maximum(total_second - total_mean**2, 0.0)
    noise = np.maximum(total - ambiguity - pluralism, 0.0)
    return noise, pluralism, ambiguity


def p_first(margins: FloatArray, pop: Population) -> FloatArray:
    """Population probability that a careful, unbiased reviewer prefers response 1 (ties 1/2)."""
    p_plus, p_tie, _ = careful_probs(margins, pop.tau)
    return (p_plus + 0.5 * p_tie) @ pop.school_weights


@dataclass(frozen=True)
class PairDecomposition:
    """Per-pair posterior summaries (arrays of length J)."""

    p_first: FloatArray
    noise_share: FloatArray
    pluralism_share: FloatArray
    ambiguity_share: FloatArray
    share_low: FloatArray  # (J, 3): noise, pluralism, ambiguity lower interval bounds
    share_high: FloatArray  # (J, 3)
    ambiguity: FloatArray  # expected careful within-school variance
    p_pluralism: FloatArray  # P(pluralism > ambiguity | data)
    p_ambiguous: FloatArray  # P(ambiguity >= the ambiguous bar | data)


def _shares(noise: FloatArray, plur: FloatArray, amb: FloatArray) -> FloatArray:
    tot = noise + plur + amb
    safe = np.where(tot > 0, tot, 1.0)
    out = np.stack([noise / safe, plur / safe, amb / safe], axis=-1)
    out[tot <= 0] = np.array([1.0, 0.0, 0.0])
    return out


def decompose_states(
    state_margins: FloatArray, weights: FloatArray, pop: Population, interval_mass: float,
    ambiguous_bar: float,
) -> PairDecomposition:
    """Decomposition for shared states: ``state_margins`` ``(S, K)``, ``weights`` ``(J, S)``."""
    noise, plur, amb = components(state_margins, pop)
    shares = _shares(noise, plur, amb)  # (S, 3)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum(axis=1, keepdims=True)
    mean = w @ shares
    lo_q, hi_q = (1 - interval_mass) / 2, 1 - (1 - interval_mass) / 2
    low = np.empty_like(mean)
    high = np.empty_like(mean)
    for c in range(3):
        order = np.argsort(shares[:, c], kind="stable")
        cdf = np.cumsum(w[:, order], axis=1)
        vals = shares[order, c]
        low[:, c] = vals[np.minimum((cdf < lo_q).sum(axis=1), vals.size - 1)]
        high[:, c] = vals[np.minimum((cdf < hi_q).sum(axis=1), vals.size - 1)]
    return PairDecomposition(
        p_first=w @ p_first(state_margins, pop),
        noise_share=mean[:, 0],
        pluralism_share=mean[:, 1],
        ambiguity_share=mean[:, 2],
        share_low=low,
        share_high=high,
        ambiguity=w @ amb,
        p_pluralism=w @ (plur > amb).astype(float),
        p_ambiguous=w @ (amb >= ambiguous_bar).astype(float),
    )


def decompose_draws(
    draw_margins: FloatArray, pop: Population, interval_mass: float, ambiguous_bar: float,
    block: int = 2_000_000,
) -> PairDecomposition:
    """Decomposition from posterior draws: ``draw_margins`` ``(J, D, K)`` (equal weights).

    Pairs are taken ``block`` margin values at a time, so memory stays flat on large data.
    """
    n_pairs, n_draws, k_n = draw_margins.shape
    step = max(1, block // max(n_draws * k_n, 1))
    if n_pairs > step:
        parts = [_decompose_draws(draw_margins[j : j + step], pop, interval_mass, ambiguous_bar)
                 for j in range(0, n_pairs, step)]
        return PairDecomposition(*(
            np.concatenate([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(PairDecomposition)
        ))
    return _decompose_draws(draw_margins, pop, interval_mass, ambiguous_bar)


def _decompose_draws(
    draw_margins: FloatArray, pop: Population, interval_mass: float, ambiguous_bar: float
) -> PairDecomposition:
    noise, plur, amb = components(draw_margins, pop)
    shares = _shares(noise, plur, amb)  # (J, D, 3)
    lo_q, hi_q = (1 - interval_mass) / 2, 1 - (1 - interval_mass) / 2
    return PairDecomposition(
        p_first=p_first(draw_margins, pop).mean(axis=1),
        noise_share=shares[..., 0].mean(axis=1),
        pluralism_share=shares[..., 1].mean(axis=1),
        ambiguity_share=shares[..., 2].mean(axis=1),
        share_low=np.quantile(shares, lo_q, axis=1),
        share_high=np.quantile(shares, hi_q, axis=1),
        ambiguity=amb.mean(axis=1),
        p_pluralism=(plur > amb).mean(axis=1),
        p_ambiguous=(amb >= ambiguous_bar).mean(axis=1),
    )


def verdicts(
    dec: PairDecomposition,
    votes_disagree: NDArray[np.bool_],
    expected_lapses: FloatArray,
    p_departing_lapse: FloatArray,
    *,
    n_schools: int,
    pluralism_probability: float,
    ambiguity_min_variance: float,
    noise_min_lapses: float,
    noise_probability: float,
) -> list[str]:
    """One verdict per pair (rules in the module docstring)."""
    out: list[str] = []
    for j in range(dec.p_first.shape[0]):
        if n_schools > 1 and dec.p_pluralism[j] >= pluralism_probability:
            out.append("pluralism")
        elif dec.ambiguity[j] >= ambiguity_min_variance:
            out.append("ambiguous")
        elif votes_disagree[j] and expected_lapses[j] >= noise_min_lapses:
            out.append("noise" if p_departing_lapse[j] >= noise_probability else "unsettled")
        else:
            out.append("clear")
    return out
