"""Learned population priors of the grid EM (empirical Bayes).

* Lapse rates and position biases: distributions on a 1-D grid, learned by smoothed EM
  (Silverman, Jones, Wilson & Nychka 1990) -- the non-parametric version of the hierarchical
  prior, free to be bimodal (careful vs rushed reviewers; unbiased vs biased ones).
* Pairs: ``h(mu) * h(Delta)`` with a normal consensus margin ``mu ~ N(0, sd^2)`` (``sd``
  learned) and school deviations ``Delta`` from an adaptive scale mixture of zero-sum normals,
  ``sum_c w_c N(0, sigma_c^2 I)`` over fixed scales including a spike at 0 (the "adaptive
  shrinkage" prior of Stephens 2017; the PyMC model uses a four-component version). Most
  pairs are not contested, so most weight goes to the spike and small scales.

Why a normal for ``mu``: the careful-noise / lapse split is weakly identified when pair margins
are nearly free -- a margin prior allowed to pile mass on extreme values explains careful
reviewers' honest disagreements as lapses (and inflates the tie threshold). A normal prior for
``mu`` (as in the PyMC model, whose NUTS posterior recovers the simulator's tie threshold and
lapse rates) keeps the two apart; the deviations keep the flexible mixture, where the pluralism
signal lives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .lattice import Lattice

FloatArray = NDArray[np.float64]

DEV_SCALES = (0.0, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 4.0)


def _reflecting_kernel(n: int, width: float) -> FloatArray:
    """Column-stochastic Gaussian kernel on ``0..n-1`` whose spill past an end is folded back.

    Folding keeps a mass at the edge of the grid where it is: a plain truncated kernel would push
    it inward a little at every EM step and, over many steps, shift the whole distribution.
    """
    idx = np.arange(n, dtype=float)
    ext = np.arange(-n, 2 * n, dtype=float)
    raw = np.exp(-0.5 * ((ext[:, None] - idx[None, :]) / width) ** 2)
    raw /= raw.sum(axis=0, keepdims=True)
    folded = np.where(ext < 0, -ext - 1, np.where(ext >= n, 2 * n - 1 - ext, ext)).astype(int)
    kern = np.zeros((n, n))
    np.add.at(kern, folded, raw)
    return kern


def smooth_grid(weights: FloatArray, width: float, floor: float = 1e-6) -> FloatArray:
    """Smoothed-EM step for a distribution on a 1-D grid, with a small floor."""
    w = np.asarray(weights, dtype=float)
    if width > 0 and w.size > 1:
        w = _reflecting_kernel(w.size, width) @ w
    w = np.maximum(w, floor * w.max())
    return w / w.sum()


def anchor_careful_majority(weights: FloatArray, grid: FloatArray, careful_limit: float,
                            min_share: float) -> FloatArray:
    """The lapse-rate distribution closest (in the EM's expected log-likelihood) to ``weights``
    that puts at least ``min_share`` of reviewers at lapse rates up to ``careful_limit``.

    Why: a lapse rate shared by every reviewer is not identified from near-tie pairs -- a pool
    that all lapse 45% of the time and a careful pool judging pairs whose margins are near 0
    give nearly the same votes. Lapses are measured *relative to the pool*: the majority (by
    default) is taken to be careful, so randomness every reviewer shows is put on the pairs
    (ambiguity), and only what sets a reviewer apart from the pool can make them a lapser.
    The constrained M-step of a discrete distribution under a lower bound on the mass of a set
    rescales the two parts proportionally (Lagrange), which is what this does.
    """
    w = np.asarray(weights, dtype=float)
    inside = grid <= careful_limit
    mass = float(w[inside].sum())
    if min_share <= 0 or mass >= min_share or not inside.any() or inside.all():
        return w
    out = w.copy()
    out[inside] = (out[inside] / mass if mass > 0 else 1.0 / inside.sum()) * min_share
    out[~inside] *= (1.0 - min_share) / float(w[~inside].sum())
    return out / out.sum()


def regrid(weights: FloatArray, old: FloatArray, new: FloatArray) -> FloatArray:
    """Move a distribution from grid ``old`` to grid ``new`` (density interpolation)."""
    if old.shape == new.shape and np.allclose(old, new):
        return weights.copy()
    if old.size == 1:
        return smooth_grid(np.exp(-0.5 * ((new - old[0]) / 0.3) ** 2) + 0.01, 0.0)
    dens = weights / (old[1] - old[0])
    out = np.interp(new, old, dens, left=dens[0], right=dens[-1])
    return smooth_grid(out + 1e-12, 0.0)


def _scale_components(sq_norm: FloatArray, scales: tuple[float, ...], dims: int) -> FloatArray:
    """``(C, n)`` zero-mean normal densities on lattice points (given squared norms), normalised.

    A zero scale is a spike at the origin.
    """
    comps = np.zeros((len(scales), sq_norm.shape[0]))
    for c, sigma in enumerate(scales):
        if sigma <= 0:
            comps[c, np.argmin(sq_norm)] = 1.0
        else:
            logd = -0.5 * sq_norm / sigma**2 - dims * np.log(sigma)
            dens = np.exp(logd - logd.max())
            comps[c] = dens / dens.sum()
    return comps


@dataclass
class PairPrior:
    """Pair-state prior ``N(mu; 0, mu_sd^2) * sum_c dev_weights[c] N(Delta; 0, sigma_c^2)``."""

    lattice: Lattice
    mu_sd: float
    dev_weights: FloatArray

    @classmethod
    def initial(cls, lat: Lattice) -> PairPrior:
        """Start: ``mu_sd = 2.5``; three times as much weight on "no deviation" as on each scale."""
        scales = np.asarray(DEV_SCALES)
        if lat.deviations.shape[0] == 1:
            w = (scales == 0).astype(float)
        else:
            w = np.where(scales == 0, 3.0, 1.0)
        return cls(lat, 2.5, w / w.sum())

    def _dev_components(self) -> FloatArray:
        lat = self.lattice
        dev = lat.step * lat.deviations.astype(float)
        return _scale_components(np.sum(dev**2, axis=1), DEV_SCALES, max(lat.n_schools - 1, 1))

    def dev_density(self) -> FloatArray:
        """``(n_delta,)`` prior of the lattice deviations (the scale mixture), summing to 1."""
        h_dev = np.maximum(self.dev_weights @ self._dev_components(), 1e-300)
        return h_dev / h_dev.sum()

    def mu_log_density(self) -> FloatArray:
        """``(n_mu,)`` log prior of the consensus margins on the lattice (unnormalised)."""
        return -0.5 * (self.lattice.mu_values / self.mu_sd) ** 2

    def state_prior(self, flat_mu: bool = False) -> FloatArray:
        """``(S,)`` prior probabilities of the pair states (``flat_mu``: the deviations' part
        only, for pairs whose consensus-margin prior comes from response pooling)."""
        lat = self.lattice
        h_mu = np.ones(lat.n_mu) if flat_mu else np.exp(self.mu_log_density())
        prior = h_mu[lat.state_mu] * self.dev_density()[lat.state_delta]
        return prior / prior.sum()

    def update(self, state_mass: FloatArray, inner: int = 5,
               dev_mass: FloatArray | None = None) -> PairPrior:
        """M-step from ``state_mass``, the pair posteriors summed over pairs; ``dev_mass``
        (per lattice deviation) replaces their deviation margin when part of the deviations is
        explained elsewhere (the feature prior of :mod:`.deviation_prior`)."""
        lat = self.lattice
        n_mu = np.bincount(lat.state_mu, state_mass, lat.n_mu)
        n_dev = (np.bincount(lat.state_delta, state_mass, lat.deviations.shape[0])
                 if dev_mass is None else dev_mass)
        mu_sd = float(np.sqrt(max(n_mu @ lat.mu_values**2 / n_mu.sum(), 0.05)))
        comps = self._dev_components()
        w = self.dev_weights.copy()
        if comps.shape[1] > 1:
            for _ in range(inner):
                resp = w[:, None] * comps
                resp /= np.maximum(resp.sum(axis=0, keepdims=True), 1e-300)
                w = resp @ n_dev + 1e-3
                w /= w.sum()
        return PairPrior(lat, mu_sd, w)
