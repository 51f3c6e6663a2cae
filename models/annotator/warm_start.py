"""The NUTS starting point, taken from the grid EM's mode.

The school mixture makes the posterior multimodal in who-belongs-where; started at random, NUTS
chains settle in different (mostly poor) modes and r_hat cannot recover. So every chain starts
at the grid EM's mode (:func:`em_initial_point`). Values are on the constrained scale, in the
``sampled`` parametrisation of :mod:`.model` (non-centred throughout, the hyper-parameters at
the prior locations below or at the EM's spread of the quantity they scale).

Two other uses of the EM were tried and not kept (see benchmarks/RESULTS.md): starting
minibatch ADVI at the EM's mode (mean-field ADVI drifts from it to the same under-separated
optimum as from PyMC's default start), and fixing the deviation mixture's weights at the EM's
estimate for NUTS (the deviations then mixed worse: r_hat 1.044 after 3,000 draws).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logit

from .config import AnnotatorConfig
from .data import EncodedFrame
from .grid_em import GridEM, GridState
from .model import DEVIATION_SPREAD_PRIOR, FeatureBasis

EPS_LOC, EPS_SCALE, BIAS_SCALE, TILT_SCALE = -2.0, 1.5, 0.51, 0.51
"""Hyper-parameter values the start uses; the non-centred offsets are set to match them. The
scales sit just off their priors' modes (0.5), and the tilt's location just off 0, because
where no vote informs a parameter (no display order anywhere: neither position bias nor lapse
tilt act) its gradient at the prior's mode is exactly 0, and nutpie refuses such a start ("All
initialization points failed")."""
TILT_LOC_OFFSET = 0.02


def _point(state: GridState) -> dict[str, Any]:
    """The grid EM's posterior means, schools ordered largest first, as model values."""
    order = np.argsort(-state.school_weights, kind="stable")
    margins = state.pair_post @ state.lattice.margins()[:, order]  # (J, K)
    mu = margins.mean(axis=1)
    # the grid's midpoints (i + 1/2) L / G span (0, L): their first and last sum to the bound
    # L on the lapse rate (0.5, or label_lapse_max in a label task), as the model's eps uses it
    lapse_max = float(state.lapse_grid[0] + state.lapse_grid[-1])
    eps = np.clip(state.lapse_marginal() @ state.lapse_grid, 0.01 * lapse_max, 0.98 * lapse_max)
    bias = state.bias_marginal() @ state.bias_grid
    gamma = np.clip(state.gamma, 0.02, 0.98)
    tilt_loc = float(logit(np.clip(state.tilt_mean, 0.05, 0.95))) + TILT_LOC_OFFSET
    point: dict[str, Any] = {
        "sigma_mu": float(max(mu.std(), 0.5)), "mu": mu,
        "eps_loc": EPS_LOC, "eps_scale": EPS_SCALE,
        "z_eps": (logit(eps / lapse_max) - EPS_LOC) / EPS_SCALE,
        "sigma_beta": BIAS_SCALE, "z_beta": bias / BIAS_SCALE,
        "tilt_loc": tilt_loc, "tilt_scale": TILT_SCALE,
        "z_tilt": (logit(gamma) - tilt_loc) / TILT_SCALE,
        "tau": float(state.tau),
    }
    if state.n_schools > 1:
        pi = state.school_weights[order]
        point.update({
            "z_dev": margins - mu[:, None],
            "school_gaps": np.maximum(-np.diff(np.log(np.maximum(pi, 1e-6))), 0.01),
        })
    features, consensus = _feature_point(state, order, mu, point.get("z_dev"))
    point.update(features)
    point["z_mu"] = (point.pop("mu") - consensus) / point["sigma_mu"]
    if "z_dev" in point:
        point.update(_residual_point(point.pop("z_dev")))
    return point


def _residual_point(residual: np.ndarray) -> dict[str, Any]:
    """The deviations' residuals ``(J, K)`` in the non-centred normal-lognormal form: each
    pair's local scale is its residual's size (``u_j`` clipped to +-2.5), so
    every ``z_dev`` row starts at unit size."""
    size = np.sqrt(np.mean(residual**2, axis=1)) + 1e-3
    loc = float(np.log(np.sqrt(np.mean(size**2))))
    shape, rate = DEVIATION_SPREAD_PRIOR
    sd = shape / rate  # the prior mean of s
    z_scale = np.clip((np.log(size) - loc) / sd, -2.5, 2.5)
    return {"deviation_scale_loc": loc, "deviation_scale_sd": sd, "z_deviation_scale": z_scale,
            "z_dev": residual / np.exp(loc + sd * z_scale)[:, None]}


def _feature_point(
    state: GridState, order: np.ndarray, mu: np.ndarray, deviations: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray | float]:
    """Start values of the response-feature parameters (the NUTS model's residual form, in the
    features' SVD basis), when the EM used features: its pooled qualities' feature coefficients
    and its deviation prior's school weights, with ``deviations`` made residuals; also the
    features' part of the consensus margins (0 without features)."""
    pooling, deviation = state.pooling, state.deviation_prior
    diff = deviation.diff if deviation is not None else (
        pooling.features if pooling is not None else None)
    if diff is None:
        return {}, 0.0
    coef = (pooling.feature_coef if pooling is not None and pooling.feature_coef is not None
            else np.zeros(diff.shape[1]))
    basis = FeatureBasis.of(diff)
    consensus = diff @ coef
    point: dict[str, Any] = {"mu_coef_basis": basis.to_basis(coef),
                             "sigma_mu": float(max(np.std(mu - consensus), 0.5))}
    if deviation is not None and deviations is not None:
        dev_basis = basis.to_basis(deviation.coef[order].T)
        point["dev_coef_basis"] = dev_basis
        # the model's z_dev is the residual from the features' prediction
        point["z_dev"] = deviations - basis.scores @ dev_basis
    return point, consensus


def em_state(enc: EncodedFrame, k_n: int, config: AnnotatorConfig) -> GridState:
    """The grid EM on all the data with ``k_n`` schools, to start NUTS from."""
    return GridEM(enc.judgments, k_n, config).run()


def em_initial_point(state: GridState, seed: int) -> dict[str, Any]:
    """NUTS start: the grid EM's mode, nudged off exact zeros."""
    point = _point(state)
    # A reviewer whose votes say nothing about a parameter (no known display order, no
    # lapse evidence) starts at exactly 0 there, where its gradient is exactly 0; nutpie's
    # mass-matrix start divides by the gradient and refuses such a point. A tiny seeded nudge
    # (far below the posterior scale) avoids exact zeros without moving the start.
    rng = np.random.default_rng(seed)
    for name in ("z_mu", "z_eps", "z_beta", "z_tilt", "z_dev", "dev_coef_basis"):
        if name in point:
            nudged = point[name] + 1e-3 * rng.standard_normal(np.shape(point[name]))
            if name in ("z_dev", "dev_coef_basis"):  # keep the zero sum over schools
                nudged = nudged - nudged.mean(axis=1, keepdims=True)
            point[name] = nudged
    return point
