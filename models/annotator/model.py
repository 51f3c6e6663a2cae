"""The annotator model in PyMC: exact posteriors by NUTS, or ADVI.

For judgment ``n`` by reviewer ``r`` on pair ``j`` with outcome ``y_n`` in ``{+1, 0, -1}``
(response 1 / tie / response 2, canonical orientation) and ``s_n = +1`` (response 1 shown
first), ``-1`` (response 2 first) or ``0`` (unknown)::

    m_{j,k}  = mu_j + Delta_{j,k},   sum_k Delta_{j,k} = 0               (school margins)
    mu_j     = b . d_j + sigma_mu z_j,   z_j ~ Normal(0, 1)               (consensus)
    Delta_j  = V^T d_j + R_j                                              (school deviations)
    R_j      = lambda_j e_j,   e_j ~ ZeroSumNormal(K; 1)
    log lambda_j = l + s u_j,  u_j ~ Normal(0, 1),  l ~ Normal(log 0.5, 1),  s ~ Gamma(2, 2)

``d_j`` are the pair's response features (tag differences of its replies, see
:mod:`.features`), ``b ~ Normal(0, 1)`` per feature and ``V ~ ZeroSumNormal`` over schools
(features x K): the tags predict the consensus and each school's deviation, and ``R_j`` is what
they do not explain. Without features both terms are 0. ``R_j``'s prior is a normal-lognormal
scale mixture, a sparsity prior: the local scales ``lambda_j`` of the many pairs nobody disputes
go small, those of contested pairs large, and ``l`` and ``s`` learn how many are which.

This is the ``sampled`` form (NUTS, revision 5), non-centred throughout. The ``variational``
form (ADVI and minibatch ADVI) keeps revision 3's: centred ``mu_j ~ Normal(b . d_j, sigma_mu)``
and ``Delta_j ~ rho N(V^T d_j, sigma_f) + (1 - rho) sum_c w_c ZeroSumNormal(K; sigma_c)`` with
``sigma_c`` in DEVIATION_SCALES and ``w ~ Dirichlet(1)`` (the adaptive-shrinkage prior of
Stephens 2017, as in the grid EM, plus a component centred on the features' prediction).
A mean-field posterior cannot hold the coupling of ``V`` with every residual that the sampled
form's ``Delta_j = V^T d_j + R_j`` creates (minibatch ADVI on 100k comparisons: careful-school
ARI 0.02 with it, 0.85 without).

Tag columns are collinear by construction (a tag's column is the sum of its
tag-within-category columns), so ``b`` and ``V`` have ridges only the prior sees. The sampled
form draws them in the orthogonal basis of the features' SVD ``D = U S W^T`` (rank ``r``):
``b' = S W^T b ~ Normal(0, S^2)`` and likewise each row of ``V' = S W^T V`` -- exactly the
Normal(0, 1) prior restricted to the directions the features can tell apart -- with
``D b = U b'``; ``b`` and ``V`` are reported as the minimum-norm coefficients ``W S^-1 b'``.

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
half the time would be indistinguishable from an anti-careful one). In a label task read in
label order the bound is ``label_lapse_max`` instead (see :mod:`.grid_em`): there a lapse tilted
to one label is the spammer who clicks it whatever the item.

Geometry (why the sampled form is non-centred; figures in benchmarks/RESULTS.md). Every
parameter is informed weakly: a reviewer by a few judgments, a pair's margin by 3-8 votes of a
logistic likelihood (about as informative as the prior), a school deviation by the one or two
votes of the minority. Centred, each population scale forms a funnel with thousands of such
parameters: revision 4 (centred ``mu``, centred deviations under the scale mixture) had r_hat
1.42 in ``sigma_mu`` and 1.10 in the mixture weights after 500 draws, and 1.08 after 4,000.
Non-centred, with the mixture replaced by the continuous normal-lognormal (whose local scales
can be non-centred too), the same 10k case reaches r_hat 1.004 on every parameter after 4,000
draws, at 31 leapfrog steps per draw and no divergences. A half-normal prior on ``s`` let it go
near 0, which NUTS crossed slowly (r_hat 1.058 in ``s`` without tags). The horseshoe, the
other continuous choice, made NUTS take its maximum 1,023 steps (revision 1): its half-Cauchy
local scales have funnels of their own.

K = 1 is the plain noise model, the null; K is chosen by LOO (Vehtari, Gelman & Gabry 2017) over
the reviewer-level log-likelihoods ``log p(y_r)`` stored as ``reviewer_loglik``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .judgments import Judgments

DEVIATION_SCALES = (0.2, 0.6, 1.5, 4.0)
"""Scales of the school-deviation prior's components: a narrow one for the many pairs nobody
disputes, wider ones for contested pairs (the weights are learned)."""


def _tie_logp(eta: pt.TensorVariable, tau: pt.TensorVariable) -> pt.TensorVariable:
    """``log P(tie | eta, tau)`` of the symmetric ordered logit, elementwise."""
    p0 = pt.sigmoid(tau - eta) - pt.sigmoid(-tau - eta)
    return pt.log(pt.maximum(p0, 1e-12))


def _decided_logp(signed_eta: pt.TensorVariable, tau: pt.TensorVariable) -> pt.TensorVariable:
    """``log P(y | eta, tau)`` for ``y = +-1`` given ``y * eta``: ``log sigmoid(y eta - tau)``."""
    return -pt.softplus(tau - signed_eta)


@dataclass(frozen=True)
class FeatureBasis:
    """The features' thin SVD ``D = U S W^T`` on the directions with a non-zero singular value."""

    scores: np.ndarray  # U, (pairs, r): orthonormal columns
    scale: np.ndarray  # S, (r,)
    loadings: np.ndarray  # W, (features, r): orthonormal columns

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureBasis:
        u, s, wt = np.linalg.svd(np.asarray(features, dtype=float), full_matrices=False)
        keep = s > max(features.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
        return cls(u[:, keep], s[keep], wt[keep].T)

    def to_basis(self, coef: np.ndarray) -> np.ndarray:
        """``S W^T coef`` for feature coefficients ``(features, ...)``."""
        return np.tensordot(self.loadings.T, coef, axes=1) * self.scale.reshape(
            (-1,) + (1,) * (np.ndim(coef) - 1))


def model_coords(data: Judgments, n_schools: int,
                 features: np.ndarray | None) -> dict[str, np.ndarray]:
    """Coordinates of the model's dimensions (``feature`` only with response features;
    ``feature_basis`` is added where the sampled form declares its SVD basis)."""
    coords = {
        "reviewer": np.arange(data.n_reviewers),
        "pair": np.arange(data.n_pairs),
        "school": np.arange(int(n_schools)),
    }
    if features is not None:
        coords["feature"] = np.arange(features.shape[1])
    return coords


ModelForm = Literal["sampled", "variational"]
"""The parametrisation: ``sampled`` for NUTS, ``variational`` for (minibatch) ADVI; see the
module docstring."""

DEVIATION_LOC_PRIOR = (float(np.log(0.5)), 1.0)
"""``sampled`` form: location and scale of the normal prior of ``deviation_scale_loc`` (``l``),
the mean log local scale of the deviations' residuals."""

DEVIATION_SPREAD_PRIOR = (2.0, 2.0)
"""``sampled`` form: shape and rate of the Gamma prior of ``deviation_scale_sd`` (``s``), the
spread of the log local scales. The Gamma keeps ``s`` off 0, where the prior would stop being a
sparsity prior and where NUTS crossed slowly (see the module docstring)."""

FEATURE_SD_FLOOR = 0.2
"""``variational`` form: smallest scale of the features' mixture component."""


def build_model(
    data: Judgments, n_schools: int, use_features: bool = True,
    form: ModelForm = "sampled",
) -> pm.Model:
    """The PyMC model for ``data`` with ``n_schools`` latent schools (with the pairs' response
    features when ``data`` has them and ``use_features``), parametrised for ``form``.

    Minibatch ADVI builds its own batched likelihood from :func:`_priors` and
    :func:`reviewer_school_loglik`.
    """
    k_n = int(n_schools)
    features = data.pair_features if use_features else None
    with pm.Model(coords=model_coords(data, k_n, features)) as model:
        params = _priors(data.n_reviewers, data.n_pairs, k_n, features=features, form=form,
                         lapse_max=data.lapse_max)
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


def _feature_terms(
    features: np.ndarray, with_schools: bool, form: ModelForm
) -> tuple[pt.TensorVariable, pt.TensorVariable | None]:
    """Declare the feature coefficients; return the predictions ``D b`` and ``D V``."""
    if form == "variational":
        d = pt.as_tensor(np.asarray(features, dtype=float))
        mu_coef = pm.Normal("mu_coef", 0.0, 1.0, dims="feature")
        if not with_schools:
            return pt.dot(d, mu_coef), None
        dev_coef = pm.ZeroSumNormal("dev_coef", sigma=1.0, dims=("feature", "school"))
        return pt.dot(d, mu_coef), pt.dot(d, dev_coef)
    basis = FeatureBasis.of(features)
    model = pm.modelcontext(None)
    if "feature_basis" not in model.coords:
        model.add_coord("feature_basis", np.arange(basis.scale.size))
    scores, loadings = pt.as_tensor(basis.scores), pt.as_tensor(basis.loadings / basis.scale)
    mu_basis = pm.Normal("mu_coef_basis", 0.0, basis.scale, dims="feature_basis")
    pm.Deterministic("mu_coef", pt.dot(loadings, mu_basis), dims="feature")
    if not with_schools:
        return pt.dot(scores, mu_basis), None
    dev_basis = pm.ZeroSumNormal("dev_coef_basis", sigma=basis.scale[:, None],
                                 dims=("feature_basis", "school"))
    pm.Deterministic("dev_coef", pt.dot(loadings, dev_basis), dims=("feature", "school"))
    return pt.dot(scores, mu_basis), pt.dot(scores, dev_basis)


def _priors(
    n_rev: int, n_pairs: int, k_n: int, deviation_scale: float | None = None,
    features: np.ndarray | None = None, form: ModelForm = "sampled", lapse_max: float = 0.5,
) -> dict[str, pt.TensorVariable]:
    """Declare the priors inside the current model context; return the derived quantities.

    ``deviation_scale`` replaces the deviations' sparsity prior by a zero-sum normal of that
    fixed scale. ``features`` (pairs x features) adds the response-feature parts.
    ``lapse_max``: the largest lapse rate (``Judgments.lapse_max``).
    """
    sigma_mu = pm.HalfNormal("sigma_mu", 3.0)
    sparse = k_n > 1 and deviation_scale is None
    consensus, school_pred = (
        (0.0, None) if features is None else _feature_terms(features, sparse, form))
    if form == "sampled":
        z_mu = pm.Normal("z_mu", 0.0, 1.0, dims="pair")
        mu = pm.Deterministic("mu", consensus + sigma_mu * z_mu, dims="pair")
    else:
        mu = pm.Normal("mu", consensus, sigma_mu, dims="pair")
    if k_n > 1:
        z_dev = pm.ZeroSumNormal("z_dev", sigma=1.0, dims=("pair", "school"))
        if not sparse:
            deviations = float(deviation_scale) * z_dev
        elif form == "sampled":
            (loc, loc_sd), (sd_shape, sd_rate) = DEVIATION_LOC_PRIOR, DEVIATION_SPREAD_PRIOR
            scale_loc = pm.Normal("deviation_scale_loc", loc, loc_sd)
            scale_sd = pm.Gamma("deviation_scale_sd", alpha=sd_shape, beta=sd_rate)
            z_scale = pm.Normal("z_deviation_scale", 0.0, 1.0, dims="pair")
            residual = z_dev * pm.math.exp(scale_loc + scale_sd * z_scale)[:, None]
            deviations = residual if school_pred is None else residual + school_pred
        else:
            feature_part = None
            if school_pred is not None:
                extra = pm.HalfNormal("feature_sd_extra", 0.5)
                feature_part = (school_pred, FEATURE_SD_FLOOR + extra,
                                pm.Beta("feature_share", 1.0, 1.0))
            _scale_mixture_prior(z_dev, k_n, feature_part)
            deviations = z_dev
        delta = pm.Deterministic("delta", deviations, dims=("pair", "school"))
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
    eps = pm.Deterministic("eps", lapse_max * pm.math.sigmoid(eps_loc + eps_scale * z_eps),
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


def _scale_mixture_prior(
    delta: pt.TensorVariable, k_n: int,
    feature_part: tuple[pt.TensorVariable, pt.TensorVariable, pt.TensorVariable] | None = None,
) -> None:
    """Turn ``delta``'s unit zero-sum normal prior into the scale mixture of DEVIATION_SCALES.

    ``delta`` is declared with a unit zero-sum normal; this potential adds the mixture's log
    density and removes the unit normal's quadratic term (its normaliser is a constant). On the
    ``K - 1`` dimensional zero-sum subspace, component ``c`` has log density
    ``-(K-1) log sigma_c - |Delta|^2 / (2 sigma_c^2)`` up to a shared constant.
    ``feature_part = (centres, sigma_f, rho)`` (the ``variational`` form) adds the component
    centred on the features' prediction (zero-sum over schools: the same subspace).
    """
    scales = np.asarray(DEVIATION_SCALES)
    weights = pm.Dirichlet("deviation_weights", a=np.ones(scales.size))
    sq_norm = pt.sum(delta**2, axis=1)
    comp = (pt.log(weights)[None, :] - (k_n - 1) * np.log(scales)[None, :]
            - sq_norm[:, None] / (2.0 * scales**2)[None, :])
    if feature_part is not None:
        centres, sigma_f, rho = feature_part
        near = (pt.log(rho) - (k_n - 1) * pt.log(sigma_f)
                - pt.sum((delta - centres) ** 2, axis=1) / (2.0 * sigma_f**2))
        comp = pt.concatenate([pt.log1p(-rho) + comp, near[:, None]], axis=1)
    pm.Potential("deviation_prior", pm.math.logsumexp(comp, axis=1).sum() + 0.5 * sq_norm.sum())


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
    (default: the reviewer index). When the judgments are fixed arrays (the full-data model),
    ties and decided judgments are split up front so each judgment evaluates only its own
    outcome's probability: the gradient is the cost of every NUTS leapfrog step.
    """
    margins, eps, beta, gamma, tau = (
        params["margins"], params["eps"], params["beta"], params["gamma"], params["tau"]
    )
    # Per-reviewer logs, gathered per judgment: far fewer transcendental evaluations.
    log_eps, log_careful_share = pt.log(eps), pt.log1p(-eps)
    log_first, log_second = pt.log(gamma), pt.log1p(-gamma)
    out_row = reviewer if row is None else row
    out = pt.zeros((n_rows, margins.shape[1]))

    def decided(rev: Any, pr: Any, yy: Any, ss: Any) -> pt.TensorVariable:
        yy_f, ss_f = pt.cast(yy, "float64"), pt.cast(ss, "float64")
        eta = margins[pr] * yy_f[:, None] + (beta[rev] * ss_f * yy_f)[:, None]
        log_lapse = pt.switch(pt.eq(ss, 0), np.log(0.5),
                              pt.switch(pt.eq(yy, ss), log_first[rev], log_second[rev]))
        return pt.logaddexp(log_careful_share[rev][:, None] + _decided_logp(eta, tau),
                            (log_eps[rev] + log_lapse)[:, None])

    def tie(rev: Any, pr: Any, ss: Any) -> pt.TensorVariable:
        eta = margins[pr] + (beta[rev] * pt.cast(ss, "float64"))[:, None]
        return log_careful_share[rev][:, None] + _tie_logp(eta, tau)

    if all(isinstance(a, np.ndarray) for a in (reviewer, pair, y, s)) and (
        row is None or isinstance(row, np.ndarray)
    ):
        targets = np.asarray(out_row)
        ties, dec = np.flatnonzero(y == 0), np.flatnonzero(y != 0)
        if dec.size:
            out = out[targets[dec]].inc(decided(reviewer[dec], pair[dec], y[dec], s[dec]))
        if ties.size:
            out = out[targets[ties]].inc(tie(reviewer[ties], pair[ties], s[ties]))
        return out
    y_t = pt.as_tensor(y)
    ll = pt.switch(pt.eq(y_t, 0)[:, None], tie(reviewer, pair, s),
                   decided(reviewer, pair, pt.switch(pt.eq(y_t, 0), 1, y_t), s))
    return out[out_row].inc(ll)
