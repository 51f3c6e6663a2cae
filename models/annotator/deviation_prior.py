"""A per-pair prior of the school deviations from response features (see :mod:`.features`).

With school margins ``m_{j,k} ~ N(w_k . d_j, sd^2)`` the deviations ``Delta_j = m_j - mean_k
m_j`` are normal around ``c_j = V d_j`` with ``V_k = w_k - mean_k w`` (rows sum to zero over
schools). Features need not explain every deviation, so the prior of pair ``j`` is a mixture
with the feature-free sparsity prior ``h`` of :class:`.priors.PairPrior`:

    p_j(Delta) = rho N(Delta; c_j, sd^2 I) + (1 - rho) h(Delta),

both normalised on the lattice. ``rho -> 0`` recovers the model without features, which is
what EM does when the tags say nothing about who prefers what.

M-step (generalised EM on the pair posteriors ``q_j(Delta)``): responsibilities
``r_j(Delta) = rho N_j / p_j``, weights ``omega_j(Delta) = q_j(Delta) r_j(Delta)``;

* ``rho = sum omega / J``;
* ``V_k`` solves the ridge problem ``(sum_j Omega_j d_j d_j' + lambda I) V_k = sum_j d_j
  sum_Delta omega_j(Delta) Delta_k`` with ``Omega_j = sum_Delta omega_j(Delta)`` (one matrix for
  every school, and the solutions stay zero-sum because the targets are);
* ``sd^2 = sum omega ||Delta - c_j||^2 / ((K - 1) sum Omega)``, floored at the lattice
  resolution.

The school deviations' weights ``h`` are refitted on the mass the feature component does not
explain, ``sum_j q_j(Delta) (1 - r_j(Delta))``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

RIDGE = 1.0
"""lambda of the ridge problem: a feature seen in a handful of pairs keeps a small weight."""
MIN_SD_STEPS = 0.6
"""Floor of ``sd`` in lattice steps: a narrower normal is not resolved by the lattice."""


@dataclass(frozen=True)
class DeviationPrior:
    """Feature weights ``V`` (K, F), the residual ``sd`` and the feature share ``rho``."""

    diff: FloatArray  # (J, F) feature differences of the pairs
    deviations: FloatArray  # (n_delta, K) deviation values of the lattice
    coef: FloatArray  # (K, F)
    sd: float
    share: float

    @classmethod
    def initial(cls, diff: FloatArray, deviations: FloatArray) -> DeviationPrior:
        """No feature weight yet; half the pairs' prior mass on the (still flat) feature part."""
        k = deviations.shape[1]
        return cls(np.asarray(diff, dtype=float), np.asarray(deviations, dtype=float),
                   np.zeros((k, diff.shape[1])), 1.0, 0.5)

    @property
    def n_schools(self) -> int:
        return int(self.deviations.shape[1])

    def centres(self) -> FloatArray:
        """``(J, K)`` feature-predicted deviation of every pair."""
        return self.diff @ self.coef.T

    def _feature_log_density(self) -> FloatArray:
        sq = np.sum((self.deviations[None, :, :] - self.centres()[:, None, :]) ** 2, axis=2)
        lp = -0.5 * sq / self.sd**2
        lp -= lp.max(axis=1, keepdims=True)
        return lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))

    def log_prior(self, h_dev: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(J, n_delta)`` log prior of every pair's deviations and the responsibilities of
        the feature part; ``h_dev`` is the feature-free prior on the lattice deviations."""
        h = np.log(np.maximum(h_dev / h_dev.sum(), 1e-300))[None, :]
        feat = np.log(self.share) + self._feature_log_density()
        rest = np.log1p(-self.share) + h
        total = np.logaddexp(feat, rest)
        return total, np.exp(feat - total)

    def refit(self, delta_post: FloatArray, h_dev: FloatArray,
              step: float) -> tuple[DeviationPrior, FloatArray]:
        """One M-step from the pairs' deviation posteriors ``(J, n_delta)``; also returns the
        mass the feature-free prior must explain, per lattice deviation."""
        _, resp = self.log_prior(h_dev)
        omega = delta_post * resp
        pair_weight = omega.sum(axis=1)
        j = delta_post.shape[0]
        share = float(np.clip(pair_weight.sum() / max(j, 1), 1e-3, 1 - 1e-3))
        gram = (self.diff * pair_weight[:, None]).T @ self.diff
        gram[np.diag_indices_from(gram)] += RIDGE
        target = self.diff.T @ (omega @ self.deviations)  # (F, K)
        coef = np.linalg.solve(gram, target).T
        moved = replace(self, coef=coef)
        sq = np.sum((self.deviations[None, :, :] - moved.centres()[:, None, :]) ** 2, axis=2)
        dims = max(self.n_schools - 1, 1)
        sd2 = float(np.sum(omega * sq) / max(dims * pair_weight.sum(), 1e-12))
        sd = max(float(np.sqrt(sd2)), MIN_SD_STEPS * step)
        rest_mass = (delta_post * (1.0 - resp)).sum(axis=0)
        return replace(moved, sd=min(sd, 8.0), share=share), rest_mass
