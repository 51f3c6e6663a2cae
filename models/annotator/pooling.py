"""Pooling consensus margins across pairs that share a response.

A response is usually compared with several others. If each response ``a`` has a latent
consensus quality ``q_a``, the consensus margin of pair ``j = (a, b)`` is

    mu_j ~ N(q_a - q_b, sd_res^2),    q_a ~ N(0, sd_q^2),

so the votes on every other pair with ``a`` or ``b`` inform ``mu_j``: the Thurstone /
Bradley-Terry structure (Thurstone 1927; Bradley & Terry 1952) as a hierarchical prior over the
annotator model's free pair margins, with a residual ``sd_res`` for what qualities do not explain
(non-transitive or prompt-specific preferences). ``sd_q -> 0`` is the independent prior.

Each pair's own votes must not inform its own prior, or a response seen in one pair would
"confirm" that pair's margin. So the prior of pair ``j`` is a *cavity* (leave-this-pair-out)
prediction, in the spirit of expectation propagation (Minka 2001):

1. From the pair sweep, each pair's vote likelihood of its consensus margin ``L_j(mu)`` (school
   deviations summed out) is summarised by its mean ``o_j`` and variance ``s_j`` on the lattice,
   a Gaussian pseudo-observation ``o_j ~ N(q_a - q_b, s_j + sd_res^2)`` with weight
   ``w_j = 1 / (s_j + sd_res^2)``.
2. ``q`` solves the weighted ridge problem ``(A' W A + I / sd_q^2) q = A' W o`` (conjugate
   gradients on the sparse incidence matrix ``A``); ``P_a = 1 / sd_q^2 + sum_{j ni a} w_j`` is
   the diagonal of its precision.
3. Removing pair ``j`` from each end's equation gives the cavity qualities
   ``q_a^{-j} = (P_a q_a - w_j (o_j + q_b)) / (P_a - w_j)`` (and the mirror for ``b``) with
   variances ``1 / (P_a - w_j)``: the prior is ``N(mu_j; q_a^{-j} - q_b^{-j}, sd_res^2 + c_j)``.
4. The residual is robust: with probability ``rho`` a pair's margin ignores the qualities and
   follows the population prior ``N(0, sd_pop^2)`` (a pair that breaks transitivity). Without
   this, a light-tailed residual would push such pairs into spurious school deviations.
5. With response features (:mod:`.features`), the qualities get a fixed part:
   ``q_a - q_b = b . d_j + (xi_a - xi_b)`` with ``d_j`` the pair's feature differences; ``b``
   is a ridge regression of the pseudo-observations, alternated with the ``xi`` solve (``b``
   rests on every pair, so leaving one out barely moves it and it is not recomputed per
   cavity).
6. ``sd_res``, ``sd_q`` and ``rho`` maximise the pairs' cavity predictive likelihood
   ``sum_j log sum_mu L_j(mu) prior_j(mu)`` on the lattice: a leave-one-pair-out criterion, so
   qualities that explain nothing beyond each pair's own votes are not rewarded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.sparse.linalg import cg

from .errors import AnnotatorDataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

RIDGE = 1.0
"""Ridge penalty of the feature coefficients (a rare feature keeps a small coefficient)."""
MIN_RESIDUAL_SD = 0.4
"""Floor of ``sd_res``: below the margin lattice's resolution a narrower prior is not resolved."""
BOUNDS = ((np.log(MIN_RESIDUAL_SD), np.log(8.0)), (np.log(1e-3), np.log(8.0)), (-7.0, 0.0))
"""Search box: log sd_res, log sd_q, logit rho."""


@dataclass(frozen=True)
class ResponsePooling:
    """Response qualities, the two scales, and each pair's cavity prior of its margin."""

    pair_responses: IntArray  # (J, 2): response 1 and response 2 of each pair
    n_responses: int
    sd_residual: float
    sd_quality: float
    quality: FloatArray  # (n_responses,) from every pair
    cavity_mean: FloatArray  # (J,) q_a^{-j} - q_b^{-j}
    cavity_var: FloatArray  # (J,) variance of that difference
    outlier_share: float = 0.0  # rho: share of pairs whose margin ignores the qualities
    population_sd: float = 2.5  # their prior scale
    features: FloatArray | None = None  # (J, F) response-feature differences of the pairs
    feature_coef: FloatArray | None = None  # (F,) b: the features' part of the qualities

    @classmethod
    def initial(cls, pair_responses: IntArray, n_responses: int, margin_sd: float,
                features: FloatArray | None = None) -> ResponsePooling:
        """No pooling yet: every pair's prior is ``N(0, margin_sd^2)``."""
        pr = np.asarray(pair_responses, dtype=np.int64)
        problem = None
        if pr.ndim != 2 or pr.shape[1] != 2:
            problem = f"pair_responses has shape {pr.shape}"
        elif pr.size and (pr.min() < 0 or pr.max() >= n_responses):
            problem = "pair_responses holds indices outside 0..n_responses-1"
        if problem is not None:
            raise AnnotatorDataError(
                problem, where="annotator model, response pooling",
                expected="(pairs, 2) indices of each pair's responses in 0..n_responses-1",
                fix="code the model frame with models.annotator.data.encode_frame",
            )
        j = pr.shape[0]
        coef = None if features is None else np.zeros(features.shape[1])
        return cls(pr, n_responses, float(margin_sd), 1e-3, np.zeros(n_responses),
                   np.zeros(j), np.zeros(j), 0.0, float(margin_sd), features, coef)

    def feature_offset(self) -> FloatArray | float:
        """``b . d_j`` for every pair (0 without features)."""
        if self.features is None or self.feature_coef is None:
            return 0.0
        return self.features @ self.feature_coef

    def mu_log_prior(self, mu_values: FloatArray) -> FloatArray:
        """``(J, n_mu)`` log prior of each pair's consensus margin on the lattice, normalised."""
        pooled = _lattice_log_normal(mu_values, self.cavity_mean,
                                     self.sd_residual**2 + self.cavity_var)
        if self.outlier_share <= 0.0:
            return pooled
        wide = _lattice_log_normal(mu_values, np.zeros(1), np.array([self.population_sd**2]))
        return np.logaddexp(np.log1p(-self.outlier_share) + pooled,
                            np.log(self.outlier_share) + wide)

    def _incidence(self) -> sp.csr_matrix:
        j = self.pair_responses.shape[0]
        rows = np.repeat(np.arange(j), 2)
        data = np.tile([1.0, -1.0], j)
        return sp.csr_matrix((data, (rows, self.pair_responses.ravel())),
                             shape=(j, self.n_responses))

    def with_scales(self, obs: FloatArray, obs_var: FloatArray, sd_residual: float,
                    sd_quality: float, incidence: sp.csr_matrix | None = None) -> ResponsePooling:
        """Qualities and cavity priors for pseudo-observations ``obs`` under the two scales."""
        a = self._incidence() if incidence is None else incidence
        w = 1.0 / (obs_var + sd_residual**2)
        prec_q = 1.0 / sd_quality**2
        normal = a.T @ sp.diags(w) @ a + sp.identity(self.n_responses) * prec_q
        start = self.quality if np.any(self.quality) else None
        quality, _ = cg(normal, a.T @ (w * obs), x0=start, rtol=1e-7, maxiter=500)
        r1, r2 = self.pair_responses[:, 0], self.pair_responses[:, 1]
        prec = prec_q + np.bincount(self.pair_responses.ravel(), np.repeat(w, 2),
                                    self.n_responses)
        # each end's equation without pair j (at the optimum P_a q_a = sum of its pairs' terms)
        rest_1 = np.maximum(prec[r1] - w, prec_q)
        rest_2 = np.maximum(prec[r2] - w, prec_q)
        cav_1 = (prec[r1] * quality[r1] - w * (obs + quality[r2])) / rest_1
        cav_2 = (prec[r2] * quality[r2] - w * (quality[r1] - obs)) / rest_2
        return replace(self, sd_residual=float(sd_residual), sd_quality=float(sd_quality),
                       quality=quality, cavity_mean=cav_1 - cav_2 + self.feature_offset(),
                       cavity_var=1.0 / rest_1 + 1.0 / rest_2)

    def _fit_features(self, obs: FloatArray, obs_var: FloatArray,
                      incidence: sp.csr_matrix, rounds: int = 2) -> ResponsePooling:
        """Alternate the feature coefficients ``b`` (weighted ridge on what the free qualities
        leave) and the qualities, at the current scales."""
        if self.features is None:
            return self
        d = self.features
        w = 1.0 / (obs_var + self.sd_residual**2)
        gram = (d * w[:, None]).T @ d + RIDGE * np.eye(d.shape[1])
        current = self
        for _ in range(rounds):
            q = current.quality
            free = q[self.pair_responses[:, 0]] - q[self.pair_responses[:, 1]]
            coef = np.linalg.solve(gram, d.T @ (w * (obs - free)))
            current = replace(current, feature_coef=coef)
            current = current.with_scales(obs - d @ coef, obs_var, current.sd_residual,
                                          current.sd_quality, incidence)
        return current

    def predictive_loglik(self, mu_lik: FloatArray, mu_values: FloatArray) -> float:
        """``sum_j log sum_mu L_j(mu) prior_j(mu)``: the pairs' cavity predictive likelihood."""
        mix = np.sum(mu_lik * np.exp(self.mu_log_prior(mu_values)), axis=1)
        return float(np.sum(np.log(np.maximum(mix, 1e-300))))

    def refit(self, mu_lik: FloatArray, mu_values: FloatArray, population_sd: float,
              search: bool = True, max_evaluations: int = 30) -> ResponsePooling:
        """Refit qualities, scales and cavity priors to the pairs' vote likelihoods
        ``mu_lik`` (J, n_mu; each row sums to 1), starting the search where it was;
        ``population_sd`` is the unpooled margin scale (the outliers' prior). Without
        ``search`` the scales are kept and only the qualities and cavities move."""
        if mu_lik.shape[0] != self.pair_responses.shape[0] or mu_lik.shape[0] < 2:
            return self
        obs, obs_var = lattice_moments(mu_lik, mu_values)
        step = float(mu_values[1] - mu_values[0]) if mu_values.size > 1 else 1.0
        obs_var = np.maximum(obs_var, step**2 / 12)
        a = self._incidence()
        base = self._fit_features(obs, obs_var, a)
        obs = obs - base.feature_offset()

        def fitted(x: FloatArray) -> ResponsePooling:
            scaled = base.with_scales(obs, obs_var, float(np.exp(x[0])), float(np.exp(x[1])), a)
            return replace(scaled, outlier_share=float(1.0 / (1.0 + np.exp(-x[2]))),
                           population_sd=float(population_sd))

        if not search:
            return replace(base.with_scales(obs, obs_var, base.sd_residual, base.sd_quality, a),
                           population_sd=float(population_sd))
        share = min(max(base.outlier_share, 0.02), 0.5)
        start = np.array([np.log(max(base.sd_residual, MIN_RESIDUAL_SD)),
                          np.log(max(base.sd_quality, 0.3)), np.log(share / (1 - share))])
        best = minimize(lambda x: -fitted(x).predictive_loglik(mu_lik, mu_values), start,
                        method="Powell", bounds=BOUNDS,
                        options={"maxfev": max_evaluations, "xtol": 0.05, "ftol": 1e-5})
        return fitted(best.x)


def _lattice_log_normal(mu_values: FloatArray, mean: FloatArray, var: FloatArray) -> FloatArray:
    lp = -0.5 * (mu_values[None, :] - mean[:, None]) ** 2 / var[:, None]
    lp -= lp.max(axis=1, keepdims=True)
    return lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))


def consensus_moments(pair_post: FloatArray, n_mu: int,
                      mu_values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of each pair's consensus margin from ``(J, S)`` beliefs (mu-major)."""
    marg = pair_post.reshape(pair_post.shape[0], n_mu, -1).sum(axis=2, dtype=np.float64)
    marg /= np.maximum(marg.sum(axis=1, keepdims=True), 1e-300)
    return lattice_moments(marg, mu_values)


def lattice_moments(dist: FloatArray, mu_values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of each row of ``dist`` (rows sum to 1) over the margins ``mu_values``."""
    mean = dist @ mu_values
    return mean, np.maximum(dist @ mu_values**2 - mean**2, 0.0)
