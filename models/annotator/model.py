"""The annotator model in PyMC: exact posteriors by NUTS, or ADVI.

For judgment ``n`` by reviewer ``r`` on pair ``j`` with outcome ``y_n`` in ``{+1, 0, -1}``
(response 1 / tie / response 2, canonical orientation) and ``s_n = +1`` (response 1 shown
first), ``-1`` (response 2 first) or ``0`` (unknown)::

    m_{j,k}  = mu_j + Delta_{j,k},   sum_k Delta_{j,k} = 0               (school margins)
    mu_j     = sigma_mu * z_j                                             (non-centred)
    Delta_j  = sigma_dev * lambda_j * ZeroSumNormal(K)_j,  lambda_j ~ HalfCauchy(1)
                                                (horseshoe-type: most pairs are not contested)
    eta_{n,k} = m_{j,k} + beta_r s_n,   beta_r = sigma_beta * b_r         (position bias)
    careful:  P(+1) = sigmoid(eta - tau), P(-1) = sigmoid(-eta - tau), P(0) = the rest
              (ordered logit, McCullagh 1980; Davidson 1970 for ties in paired comparisons)
    lapse:    first-shown reply wins with probability gamma_r (a tilted coin, no ties)
    eps_r    = 0.5 * sigmoid(a + sigma_eps * e_r)                         (lapse rate < 0.5)
    p(y_r | school k) = prod_n [(1 - eps_r) P_c(y_n | eta_{n,k}) + eps_r P_l(y_n)]
    p(y_r)   = sum_k pi_k p(y_r | k)       (school marginalised per reviewer, Dawid & Skene 1979)

Identification. Labels: ``pi`` is built from positive gaps of ordered logits, so
``pi_1 >= pi_2 >= ...`` (largest school first) and label switching is excluded. Location: the
zero-sum constraint puts the consensus in ``mu``. Scale: the ordered logit fixes the logit scale.
``eps_r < 0.5`` keeps "careful" and "lapse" from swapping roles (a reviewer who lapses more than
half the time would be indistinguishable from an anti-careful one). Every hierarchy is
non-centred, as NUTS needs on funnels.

K = 1 is the plain noise model, the null; K is chosen by LOO (Vehtari, Gelman & Gabry 2017) over
the reviewer-level log-likelihoods ``log p(y_r)`` stored as ``reviewer_loglik``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .grid_em import Judgments


def _ordered_logit_logp(y: np.ndarray, eta: pt.TensorVariable, tau: pt.TensorVariable
                        ) -> pt.TensorVariable:
    """``log P(y | eta, tau)`` of the symmetric ordered logit, elementwise."""
    lp_plus = pt.log(pt.sigmoid(eta - tau))
    lp_minus = pt.log(pt.sigmoid(-eta - tau))
    p0 = pt.sigmoid(tau - eta) - pt.sigmoid(-tau - eta)
    lp_tie = pt.log(pt.maximum(p0, 1e-12))
    return pt.switch(pt.gt(y, 0), lp_plus, pt.switch(pt.lt(y, 0), lp_minus, lp_tie))


def build_model(
    data: Judgments,
    n_schools: int,
    *,
    reviewer_subset: np.ndarray | None = None,
) -> pm.Model:
    """The PyMC model for ``data`` with ``n_schools`` latent schools.

    ``reviewer_subset`` is unused by the full-data model; minibatch ADVI builds its own
    likelihood through :func:`reviewer_loglik`.
    """
    del reviewer_subset
    k_n = int(n_schools)
    coords = {
        "reviewer": np.arange(data.n_reviewers),
        "pair": np.arange(data.n_pairs),
        "school": np.arange(k_n),
    }
    with pm.Model(coords=coords) as model:
        params = _priors(data.n_reviewers, data.n_pairs, k_n)
        ll_rk = reviewer_school_loglik(params, data.reviewer, data.pair, data.y, data.s,
                                       data.n_reviewers)
        per_reviewer = pm.Deterministic(
            "reviewer_loglik",
            pm.math.logsumexp(pt.log(params["pi"])[None, :] + ll_rk, axis=1).flatten()
            if k_n > 1 else ll_rk[:, 0],
            dims="reviewer",
        )
        pm.Potential("likelihood", per_reviewer.sum())
    return model


def _priors(
    n_rev: int, n_pairs: int, k_n: int, deviation_scale: float | None = None
) -> dict[str, pt.TensorVariable]:
    """Declare the priors inside the current model context; return the derived quantities.

    ``deviation_scale`` replaces the horseshoe on the school deviations by a zero-sum normal of
    that fixed scale (for mean-field ADVI, which collapses the horseshoe's scales to zero).
    """
    sigma_mu = pm.HalfNormal("sigma_mu", 3.0)
    z_mu = pm.Normal("z_mu", 0.0, 1.0, dims="pair")
    mu = pm.Deterministic("mu", sigma_mu * z_mu, dims="pair")
    if k_n > 1:
        z_dev = pm.ZeroSumNormal("z_dev", sigma=1.0, dims=("pair", "school"))
        if deviation_scale is None:
            sigma_dev = pm.HalfNormal("sigma_dev", 1.0)
            lam = pm.HalfCauchy("lambda_dev", 1.0, dims="pair")
            scale = sigma_dev * lam[:, None]
        else:
            scale = pt.as_tensor(float(deviation_scale))
        delta = pm.Deterministic("delta", scale * z_dev, dims=("pair", "school"))
        gaps = pm.HalfNormal("school_gaps", 1.5, shape=k_n - 1)
        logits = pt.concatenate([pt.zeros(1), -pt.cumsum(gaps)])
        pi = pm.Deterministic("pi", pt.special.softmax(logits), dims="school")
    else:
        delta = pt.zeros((n_pairs, 1))
        pi = pt.ones(1)
    margins = pm.Deterministic("margins", mu[:, None] + delta, dims=("pair", "school"))
    eps_loc = pm.Normal("eps_loc", -2.0, 1.5)
    eps_scale = pm.HalfNormal("eps_scale", 1.5)
    z_eps = pm.Normal("z_eps", 0.0, 1.0, dims="reviewer")
    eps = pm.Deterministic("eps", 0.5 * pm.math.sigmoid(eps_loc + eps_scale * z_eps),
                           dims="reviewer")
    sigma_beta = pm.HalfNormal("sigma_beta", 0.5)
    z_beta = pm.Normal("z_beta", 0.0, 1.0, dims="reviewer")
    beta = pm.Deterministic("beta", sigma_beta * z_beta, dims="reviewer")
    tilt_loc = pm.Normal("tilt_loc", 0.0, 1.0)
    tilt_scale = pm.HalfNormal("tilt_scale", 0.5)
    z_tilt = pm.Normal("z_tilt", 0.0, 1.0, dims="reviewer")
    gamma = pm.Deterministic("gamma", pm.math.sigmoid(tilt_loc + tilt_scale * z_tilt),
                             dims="reviewer")
    tau = pm.HalfNormal("tau", 1.0)
    return {"margins": margins, "pi": pi, "eps": eps, "beta": beta, "gamma": gamma, "tau": tau}


def reviewer_school_loglik(
    params: dict[str, pt.TensorVariable],
    reviewer: np.ndarray | pt.TensorVariable,
    pair: np.ndarray | pt.TensorVariable,
    y: np.ndarray | pt.TensorVariable,
    s: np.ndarray | pt.TensorVariable,
    n_rows: int,
    row: np.ndarray | pt.TensorVariable | None = None,
) -> pt.TensorVariable:
    """``(n_rows, K)`` log-likelihood of each reviewer's judgments given each school.

    The lapse indicator is summed out per judgment; ``row`` maps judgments to output rows
    (default: the reviewer index).
    """
    margins, eps, beta, gamma, tau = (
        params["margins"], params["eps"], params["beta"], params["gamma"], params["tau"]
    )
    s_f = pt.cast(s, "float64")
    eta = margins[pair] + (beta[reviewer] * s_f)[:, None]
    lp_c = _ordered_logit_logp(pt.as_tensor(y)[:, None], eta, tau)
    g = gamma[reviewer]
    first_wins = pt.eq(y, s)
    p_l = pt.switch(pt.eq(s, 0), 0.5, pt.switch(first_wins, g, 1.0 - g))
    e = eps[reviewer][:, None]
    log_careful = pt.log1p(-e) + lp_c
    log_lapse = pt.log(e) + pt.log(p_l)[:, None]
    ll = pt.switch(pt.eq(pt.as_tensor(y), 0)[:, None], log_careful,
                   pt.logaddexp(log_careful, log_lapse))
    out_row = reviewer if row is None else row
    return pt.zeros((n_rows, margins.shape[1]))[out_row].inc(ll)
