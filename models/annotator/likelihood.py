"""The judgment likelihood shared by every inference path, the oracles and the decomposition.

A judgment ``y`` is ``+1`` (response 1 preferred), ``-1`` (response 2 preferred) or ``0`` (tie),
in the pair's canonical orientation. ``s = +1`` when response 1 was shown first, ``-1`` when
response 2 was, ``0`` when the order is unknown.

Careful judgment: a symmetric ordered logit (McCullagh 1980), the ordinal form of Davidson's
(1970) tie model for paired comparisons, with latent margin ``eta = m + beta * s``::

    P(y = +1) = sigmoid(eta - tau)
    P(y = -1) = sigmoid(-eta - tau)
    P(y =  0) = sigmoid(tau - eta) - sigmoid(-tau - eta)          (tau > 0)

Lapse (Dawid & Skene 1979 style "random" labeller, tilted toward the reply shown first): a tie
with probability ``t`` (careless reviewers who click "equal"; 0 gives the original model, whose
lapses never tie), else the first-shown reply wins with probability ``gamma`` and the other with
``1 - gamma``; a coin flip when the order is unknown. A lapse may also lean toward a reply
property (the longer reply, one model's): see :mod:`.lapse_cues`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, log_expit

FloatArray = NDArray[np.float64]
_TINY = 1e-300


def careful_logp(y: NDArray, eta: FloatArray, tau: float) -> FloatArray:
    """Log-probability of outcome ``y`` under the ordered logit with thresholds ``±tau``.

    ``y`` and ``eta`` broadcast against each other.
    """
    y = np.asarray(y)
    lp_plus = log_expit(eta - tau)
    lp_minus = log_expit(-eta - tau)
    p0 = expit(tau - eta) - expit(-tau - eta)
    lp_tie = np.log(np.maximum(p0, _TINY))
    return np.where(y > 0, lp_plus, np.where(y < 0, lp_minus, lp_tie))


def careful_prob_rows(y: NDArray, eta: FloatArray, tau: float) -> FloatArray:
    """``P(y_i | eta_i...)`` of the ordered logit for a 1-d ``y`` indexing the first axis of
    ``eta``: the same values as ``exp(careful_logp(y[:, None...], eta, tau))``, each row
    evaluated only for its own outcome (a third of the work on large grids)."""
    y = np.asarray(y)
    out = np.empty(np.shape(eta))
    plus, minus, tie = y > 0, y < 0, y == 0
    out[plus] = expit(eta[plus] - tau)
    out[minus] = expit(-eta[minus] - tau)
    out[tie] = expit(tau - eta[tie]) - expit(-tau - eta[tie])
    return np.maximum(out, _TINY)


def careful_probs(eta: FloatArray, tau: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(P(+1), P(0), P(-1))`` of a careful judgment with latent margin ``eta``."""
    p_plus = expit(eta - tau)
    p_minus = expit(-eta - tau)
    p_tie = np.maximum(expit(tau - eta) - expit(-tau - eta), 0.0)
    return p_plus, p_tie, p_minus


def careful_derivatives(
    y: NDArray, eta: FloatArray, tau: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """First and second derivatives of ``log P(y | eta, tau)`` in ``eta`` and in ``tau``.

    Returns ``(d_eta, d2_eta, d_tau, d2_tau)``. The ordered logit is log-concave in
    ``(eta, tau)`` (Pratt 1981), so the second derivatives are <= 0 and Newton steps are safe.
    """
    y = np.asarray(y)

    def sd1(x: FloatArray) -> FloatArray:
        return expit(x) * expit(-x)

    def sd2(x: FloatArray) -> FloatArray:
        return sd1(x) * (1.0 - 2.0 * expit(x))

    a = tau - eta  # P(+1) = sigmoid(-a)
    b = tau + eta  # P(-1) = sigmoid(-b)
    p0 = np.maximum(expit(a) - expit(-b), 1e-12)
    # y = +1
    d_eta_p = expit(a)
    d2_eta_p = -sd1(a)
    d_tau_p = -expit(a)
    d2_tau_p = -sd1(a)
    # y = -1
    d_eta_m = -expit(b)
    d2_eta_m = -sd1(b)
    d_tau_m = -expit(b)
    d2_tau_m = -sd1(b)
    # y = 0: p0 = sigmoid(tau - eta) - sigmoid(-tau - eta)
    dp0_eta = -sd1(a) + sd1(-b)
    d2p0_eta = sd2(a) - sd2(-b)
    dp0_tau = sd1(a) + sd1(-b)
    d2p0_tau = sd2(a) - sd2(-b)
    d_eta_0 = dp0_eta / p0
    d2_eta_0 = d2p0_eta / p0 - d_eta_0**2
    d_tau_0 = dp0_tau / p0
    d2_tau_0 = d2p0_tau / p0 - d_tau_0**2

    def pick(vp: FloatArray, vm: FloatArray, v0: FloatArray) -> FloatArray:
        return np.where(y > 0, vp, np.where(y < 0, vm, v0))

    return (
        pick(d_eta_p, d_eta_m, d_eta_0),
        pick(d2_eta_p, d2_eta_m, d2_eta_0),
        pick(d_tau_p, d_tau_m, d_tau_0),
        pick(d2_tau_p, d2_tau_m, d2_tau_0),
    )


def lapse_prob(y: NDArray, s: NDArray, gamma: FloatArray,
               tie: FloatArray | float = 0.0,
               offset: FloatArray | float = 0.0) -> FloatArray:
    """Probability of ``y`` under a lapse: a tie with probability ``tie``, else the first-shown
    reply wins with probability ``gamma``.

    ``offset`` (per judgment) adds a lean toward response 1 on the logit scale (see
    :mod:`.lapse_cues`): response 1 then wins with ``sigmoid(logit(gamma) s + offset)``.
    """
    y = np.asarray(y)
    s = np.asarray(s)
    if np.isscalar(offset) and offset == 0.0:
        first = np.where(y == s, gamma, 1.0 - gamma)
        directed = np.where(s == 0, 0.5, first)
    else:
        g = np.clip(np.asarray(gamma, dtype=float), 1e-9, 1 - 1e-9)
        p1 = expit(np.log(g / (1.0 - g)) * s + offset)
        directed = np.where(y > 0, p1, 1.0 - p1)
    return np.where(y == 0, tie, (1.0 - np.asarray(tie)) * directed)


def vote_value(p_plus: FloatArray, p_tie: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of the vote ``Y`` in ``{1, 0.5, 0}`` (response 1 / tie / response 2)."""
    mean = p_plus + 0.5 * p_tie
    second = p_plus + 0.25 * p_tie
    return mean, np.maximum(second - mean**2, 0.0)
