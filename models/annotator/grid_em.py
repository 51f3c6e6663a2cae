"""The fast default: grid belief-propagation EM on the marginalised annotator model.

Every latent quantity tied to one reviewer or one pair is low-dimensional, so it is put on a grid
and integrated out exactly; only a handful of population parameters are point-estimated.

* Reviewer ``r``: state ``(k, eps, beta)`` = school ``k`` in ``1..K``, lapse rate ``eps`` on a
  grid in ``(0, 0.5)`` (``(0, label_lapse_max)`` in a label task) and position bias ``beta``
  on a grid; prior ``pi_k g(eps) b(beta)`` with ``g`` and ``b`` the population distributions,
  learned (see :mod:`.priors`) -- the hierarchical priors of the design.
* Pair ``j``: state ``(mu, Delta)`` on a lattice, ``m_{j,k} = mu + Delta_k`` with ``Delta``
  zero-sum over schools; prior ``N(mu; 0, sd^2) * h(Delta)`` with ``h`` an adaptive scale mixture
  with a spike at 0 -- the sparsity prior (most pairs are not contested).
* Per judgment, the lapse indicator is summed out: ``p(y | k, eps, beta, m) = (1 - eps)
  P_c(y | m_k + beta s) + eps P_l(y | gamma_r, s)`` (see :mod:`.likelihood`).

The graph reviewer -- judgment -- pair is sparse and locally tree-like (3-8 votes per pair), so
the exact marginalisation is approximated by loopy sum-product belief propagation (Kschischang,
Frey & Loeliger 2001), the approach Liu, Peng & Ihler (2012) showed to work well for crowdsourcing
models of the Dawid & Skene (1979) family. Messages factorise through the mixture form, so one
iteration costs ``O(N * K * (S + B * M))`` for ``N`` judgments, ``S`` pair states, ``B`` bias
grid points and ``M`` distinct margins. The population parameters (``pi``, ``g``, ``b``, ``sd``,
``h``, the tie threshold ``tau``) and each reviewer's lapse tilt ``gamma_r`` are updated by
(generalised) EM from the beliefs -- a Newton step on the log-concave ordered logit for ``tau``,
a Beta-smoothed ratio for ``gamma_r``.

Identification: the school labels are fixed after the fit by ordering the weights (largest
first); the symmetric initial state is broken by a random start (seeded); ``eps < 0.5`` keeps
careful and lapsed judgments from swapping roles. A label task read in label order is the
exception: there a school's margins can mimic a reviewer who clicks one label whatever the item
(the label order is fixed per item, unlike a display order), so a few such spammers held at
``eps < 0.5`` form a "school" that explains their other half; lapses there run up to
``label_lapse_max``, where a lapse tilted to one label is the spammer.

The cavity distributions of BP exclude the judgment itself, so ``log p(y_n | y_{-n})`` is
available for every judgment: an approximate leave-one-out predictive density (the cavity / EP
approximation of LOO, Opper & Winther 2000; Vehtari et al. 2016), used to choose ``K``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._kernels import careful_table, pair_pass, reviewer_pass
from .config import AnnotatorConfig
from .deviation_prior import DeviationPrior
from .judgments import Judgments
from .lapse_cues import lean_offsets, lean_step
from .lattice import Lattice, make_lattice
from .likelihood import lapse_prob
from .pooling import ResponsePooling
from .priors import PairPrior, anchor_careful_majority, regrid, smooth_grid

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
TIE_STEP = 0.02
"""Per-reviewer tie thresholds are used at this resolution (one careful table per value)."""
HOLD_AFTER = 30
"""Sweeps after which a reviewer's tie threshold that turns back is held where it is."""
TIE_TASTE_MARGIN = 0.3
"""How far above the pool's tie threshold a reviewer's own must sit to be read as a tie taste:
one standard deviation of the thresholds' prior (``tie_threshold_sd``'s default)."""


def initial_lapse_prior(grid: FloatArray) -> FloatArray:
    """The lapse-rate distribution a fit starts from (most reviewers careful, a long tail), and
    the centre of the Dirichlet prior on the pool's distribution."""
    return smooth_grid(np.exp(-grid / 0.08) + 0.05, 0.0)


def tie_levels(tau_r: FloatArray) -> tuple[FloatArray, IntArray]:
    """The distinct thresholds and each reviewer's index among them."""
    levels, level_of = np.unique(np.asarray(tau_r, dtype=float), return_inverse=True)
    return np.maximum(levels, 1e-3), level_of.reshape(-1).astype(np.int64)


SETTLE_WINDOW, SETTLE_MIN_SWEEPS, SWING_WINDOW = 10, 20, 20
"""Sweeps over which the elpd must have settled, the least sweeps before it may count as
settled, and the sweeps over which a swing is measured."""


def settled_or_swinging(elpd: list[float], cfg: AnnotatorConfig) -> tuple[bool, bool]:
    """``(settled, swinging)`` from the cavity elpd of each sweep so far.

    Settled: past SETTLE_MIN_SWEEPS, the last SETTLE_WINDOW values lie within ``settle_elpd``
    nats; the parameter rule (``tol``) can take long when a few reviewers' tie thresholds step
    to and fro on the hysteresis band while the predictions no longer change. Swinging: past
    ``swing_after`` sweeps the last SWING_WINDOW values still go back and forth by more than
    ``swing_elpd`` nats in all (the path's length beyond the net change: a slow steady climb
    is progress, not a swing). Synchronous message passing on the reviewer-pair graph need not
    converge: with schools the votes do not pin down, whole groups of reviewers hop between
    schools each sweep and the elpd swings by tens of nats, so where it stops would decide K by
    chance.
    """
    n = len(elpd)
    if cfg.settle_elpd is not None and n >= max(SETTLE_MIN_SWEEPS, SETTLE_WINDOW):
        tail = elpd[-SETTLE_WINDOW:]
        if max(tail) - min(tail) < cfg.settle_elpd:
            return True, False
    if cfg.swing_elpd is not None and n >= max(cfg.swing_after, SWING_WINDOW):
        steps = np.diff(elpd[-SWING_WINDOW:])
        if float(np.abs(steps).sum() - abs(steps.sum())) > cfg.swing_elpd:
            return False, True
    return False, False


def lattice_for(config: AnnotatorConfig, n_schools: int) -> Lattice:
    """The pair-state lattice of a grid-EM run with ``n_schools`` schools under ``config``
    (K = 3 has a coarser step: its lattice grows with the square of the deviations' range)."""
    step = config.margin_step if n_schools <= 2 else config.margin_step_k3
    return make_lattice(n_schools, step, config.margin_limit, config.deviation_limit)


@dataclass
class GridState:
    """Everything the grid EM learns; the estimator reads its outputs from here."""

    lattice: Lattice
    lapse_grid: FloatArray  # (G,)
    bias_grid: FloatArray  # (B,)
    school_weights: FloatArray  # (K,)
    lapse_prior: FloatArray  # (G,)
    bias_prior: FloatArray  # (B,)
    pair_prior: PairPrior  # learned population distribution of pair states
    tau: float
    tilt_mean: float
    gamma: FloatArray  # (R,) lapse tilt per reviewer
    reviewer_post: FloatArray = field(repr=False)  # (R, K, G, B)
    pair_post: FloatArray = field(repr=False)  # (J, S)
    lapse_post: FloatArray = field(repr=False)  # (N,) P(judgment was a lapse | data)
    loo: FloatArray = field(repr=False)  # (N,) log p(y_n | y_-n), cavity approximation
    n_iter: int = 0
    converged: bool = False
    swinging: bool = False  # stopped with its elpd still swinging (see AnnotatorConfig.swing_elpd)
    tau_r: FloatArray | None = field(default=None, repr=False)  # (R,) per-reviewer thresholds
    pooling: ResponsePooling | None = field(default=None, repr=False)
    deviation_prior: DeviationPrior | None = field(default=None, repr=False)
    lapse_tie: FloatArray | None = field(default=None, repr=False)  # (R,) P(tie | lapse)
    lapse_tie_mean: float = 0.0  # the population's P(tie | lapse)
    lean: FloatArray | None = field(default=None, repr=False)  # (R, C) lapse lean per cue
    lean_mean: FloatArray | None = field(default=None, repr=False)  # (C,) the pool's lean

    def reviewer_lapse_tie(self) -> FloatArray:
        """Each reviewer's chance that a lapse is a tie (0 where lapse ties are off)."""
        if self.lapse_tie is not None:
            return self.lapse_tie
        return np.zeros(self.gamma.shape[0])

    def tie_tastes(self) -> NDArray[np.bool_]:
        """Reviewers whose 'equal' votes the fit reads as a taste of their own: a tie threshold
        (given only where the fit gives each reviewer one, ``tie_per_reviewer``) more than
        :data:`TIE_TASTE_MARGIN` above the pool's."""
        return self.reviewer_tau() > self.tau + TIE_TASTE_MARGIN

    def reviewer_tau(self) -> FloatArray:
        """Each reviewer's tie threshold (the population's when not estimated per reviewer)."""
        if self.tau_r is not None:
            return self.tau_r
        return np.full(self.gamma.shape[0], self.tau)

    @property
    def n_schools(self) -> int:
        return int(self.school_weights.shape[0])

    def school_probs(self) -> FloatArray:
        return self.reviewer_post.sum(axis=(2, 3))

    def lapse_marginal(self) -> FloatArray:
        return self.reviewer_post.sum(axis=(1, 3))

    def bias_marginal(self) -> FloatArray:
        return self.reviewer_post.sum(axis=(1, 2))


class GridEM:
    """One grid-EM fit for a fixed number of schools. Use :meth:`run`."""

    def __init__(self, data: Judgments, n_schools: int, config: AnnotatorConfig) -> None:
        """A run with ``n_schools`` schools; every numerical setting comes from ``config``
        (whose own ``n_schools`` may be 'auto': the run's K is ``n_schools``)."""
        self.d = data
        self.cfg = config
        self.k = int(n_schools)
        self.lat = lattice_for(config, self.k)
        h = self.lat.step
        g = config.lapse_grid_size
        self.e = data.lapse_max * (np.arange(g) + 0.5) / g
        self.b_half = max(round(config.position_bias_limit / (h / 2)), 0)
        self.bias = (h / 2) * np.arange(-self.b_half, self.b_half + 1, dtype=float)
        m_int = np.rint(self.lat.m_values / h).astype(np.int64)
        x_lo = 2 * int(m_int.min()) - self.b_half
        x_hi = 2 * int(m_int.max()) + self.b_half
        self.x = (h / 2) * np.arange(x_lo, x_hi + 1, dtype=float)
        self.m2 = (2 * m_int - x_lo).astype(np.int64)
        self.starts = data.pair_start
        self.r_order = np.argsort(data.reviewer, kind="stable").astype(np.int64)
        self.r_starts = np.searchsorted(
            data.reviewer[self.r_order], np.arange(data.n_reviewers + 1)
        ).astype(np.int64)
        self.first = np.where(data.s != 0, (data.y == data.s).astype(float), 0.0)
        self.has_order = ((data.s != 0) & (data.y != 0)).astype(float)
        big = data.n_pairs * self.lat.n_states > 5e7
        self.post_dtype = np.float32 if big else np.float64

    def _pair_pass(
        self, a_msg: FloatArray, b_msg: FloatArray, tau_r: FloatArray,
        priors: tuple[FloatArray, FloatArray, FloatArray],
    ) -> dict[str, FloatArray]:
        log_prior_s, mu_lp, delta_lp = priors
        d, lat = self.d, self.lat
        ec = np.empty((d.n, self.k, self.bias.size))
        z = np.empty(d.n)
        stats = np.empty((d.n, 2))
        post = np.empty((d.n_pairs, lat.n_states), dtype=self.post_dtype)
        mu_lik = np.zeros((d.n_pairs if mu_lp.shape[0] > 1 else 1, lat.n_mu))
        # one careful table per distinct (rounded) reviewer threshold
        levels, level_of = tie_levels(tau_r)
        tables = np.stack([careful_table(self.x, float(t)) for t in levels])
        lev = level_of[d.reviewer]
        k_n, n_b = self.k, self.bias.size
        if a_msg.shape != (d.n, k_n, n_b) or b_msg.shape != (d.n,) or log_prior_s.shape != (
            lat.n_states,
        ):
            raise ValueError("grid EM: message or prior shapes do not match the lattice")
        pair_pass(
            self.starts, d.y, d.s, a_msg, b_msg, tables, lev, self.m2, self.b_half, lat.midx,
            np.ascontiguousarray(log_prior_s), np.ascontiguousarray(mu_lp), lat.state_mu,
            np.ascontiguousarray(delta_lp), lat.state_delta, mu_lik, post, ec, z, stats,
        )
        return {"ec": ec, "z": z, "post": post, "g_tau": stats[:, 0], "h_tau": stats[:, 1],
                "mu_lik": mu_lik}

    def _reviewer_pass(
        self, ec: FloatArray, pl_: FloatArray, log_prior_r: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        d = self.d
        shape = (self.k, self.e.size, self.bias.size)
        if log_prior_r.shape != shape or ec.shape != (d.n, shape[0], shape[2]):
            raise ValueError("grid EM: reviewer prior or message shapes do not match the grids")
        post = np.empty((d.n_reviewers, *log_prior_r.shape))
        a_msg = np.empty((d.n, self.k, self.bias.size))
        b_msg = np.empty(d.n)
        reviewer_pass(
            self.r_starts, self.r_order, ec, pl_, self.e, np.ascontiguousarray(log_prior_r),
            post, a_msg, b_msg,
        )
        return post, a_msg, b_msg

    def _pair_priors(
        self, prior: PairPrior, pooling: ResponsePooling | None,
        deviation: DeviationPrior | None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The kernel's log priors: shared per state, per pair over the consensus margin (from
        response pooling) and per pair over the deviations (from response features)."""
        lat = self.lat
        mu_lp = (np.zeros((1, lat.n_mu)) if pooling is None
                 else pooling.mu_log_prior(lat.mu_values))
        if deviation is None:
            log_s = np.log(prior.state_prior(flat_mu=pooling is not None))
            return log_s, mu_lp, np.zeros((1, lat.deviations.shape[0]))
        h_mu = np.zeros(lat.n_mu) if pooling is not None else prior.mu_log_density()
        return h_mu[lat.state_mu], mu_lp, deviation.log_prior(prior.dev_density())[0]

    def _lapse_tie_step(self, lapse: FloatArray) -> tuple[FloatArray, float]:
        """Each reviewer's P(tie | lapse): the lapse-weighted share of their ties, shrunk toward
        the population's by a Beta prior of strength ``lapse_tie_concentration`` (the same
        smoothed ratio as the lapse tilt)."""
        d, conc = self.d, self.cfg.lapse_tie_concentration
        tie = (d.y == 0).astype(float)
        mean = float(np.clip((np.sum(lapse * tie) + 0.5) / (lapse.sum() + 5.0), 0.0, 0.9))
        num = np.bincount(d.reviewer, lapse * tie, d.n_reviewers) + conc * mean
        den = np.bincount(d.reviewer, lapse, d.n_reviewers) + conc
        return np.clip(num / den, 1e-4, 0.95), mean

    def _tie_step(self, g: FloatArray, h: FloatArray, tau: float,
                  tau_r: FloatArray) -> tuple[float, FloatArray]:
        """One Newton step on the expected careful log-likelihood (log-concave in tau).

        With ``tie_per_reviewer`` each reviewer's threshold gets its own step under the
        hierarchical prior ``tau_r ~ N(tau, tie_threshold_sd^2)`` and ``tau`` becomes their mean;
        otherwise one threshold is shared.
        """
        cfg, d = self.cfg, self.d
        if not cfg.tie_per_reviewer:
            step = float(g.sum()) / min(float(h.sum()), -1e-6)
            tau = float(np.clip(tau - np.clip(step, -0.5, 0.5), 1e-3, 5.0))
            return tau, np.full(d.n_reviewers, tau)
        prec = 1.0 / cfg.tie_threshold_sd**2
        g_r = np.bincount(d.reviewer, g, d.n_reviewers) - prec * (tau_r - tau)
        h_r = np.minimum(np.bincount(d.reviewer, h, d.n_reviewers), 0.0) - prec
        # half steps: a full Newton step on the expected log-likelihood overshoots the EM fixed
        # point here and settles into a two-cycle
        tau_r = np.clip(tau_r - 0.5 * np.clip(g_r / h_r, -0.5, 0.5), 1e-3, 5.0)
        return float(tau_r.mean()), tau_r

    def run(
        self,
        school_init: FloatArray | None = None,
        warm: GridState | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> GridState:
        """Iterate BP sweeps and EM updates to convergence.

        ``school_init`` (``(R, K)`` probabilities) breaks the label symmetry of K > 1; ``warm``
        (a fit with any K) seeds the lapse and bias priors, the tie threshold and the tilts.
        """
        d, cfg, lat, e, bias = self.d, self.cfg, self.lat, self.e, self.bias
        k_n, r_n = self.k, d.n_reviewers
        rng = np.random.default_rng(cfg.seed)
        if warm is not None:
            gamma, tau, tilt_mean = warm.gamma.copy(), warm.tau, warm.tilt_mean
            lapse_tie, tie_mean = warm.reviewer_lapse_tie().copy(), warm.lapse_tie_mean
            tau_r = warm.reviewer_tau().copy() if cfg.tie_per_reviewer else np.full(r_n, tau)
            g_e = regrid(warm.lapse_prior, warm.lapse_grid, e)
            g_b = regrid(warm.bias_prior, warm.bias_grid, bias)
            ebar = warm.lapse_marginal() @ warm.lapse_grid
        else:
            gamma, tau, tilt_mean = np.full(r_n, 0.6), 0.3, 0.6
            lapse_tie, tie_mean = np.zeros(r_n), 0.0
            tau_r = np.full(r_n, tau)
            g_e = initial_lapse_prior(e)
            g_b = smooth_grid(np.exp(-0.5 * (bias / 0.3) ** 2) + 0.01, 0.0)
            ebar = np.full(r_n, float(g_e @ e))
        ties = cfg.lapse_ties is True  # 'auto' is decided before a run (inference)
        if not ties:
            lapse_tie, tie_mean = np.zeros(r_n), 0.0
        elif not lapse_tie.any():
            # a start above 0: at 0 no tie could ever be read as a lapse, and EM would stay there
            lapse_tie, tie_mean = np.full(r_n, 0.1), 0.1
        g_start = initial_lapse_prior(e)
        tau_used = np.rint(tau_r / TIE_STEP) * TIE_STEP if cfg.tie_per_reviewer else tau_r
        cues = d.lapse_cues if cfg.lapse_cues and d.lapse_cues is not None else None
        lean = lean_mean = None
        if cues is not None:
            n_c = cues.shape[1]
            fits = warm is not None and warm.lean is not None and warm.lean.shape[1] == n_c
            lean = warm.lean.copy() if fits else np.zeros((r_n, n_c))  # type: ignore[union-attr]
            lean_mean = warm.lean_mean.copy() if fits else np.zeros(n_c)  # type: ignore[union-attr]
        prior = PairPrior.initial(lat)
        pooling = None
        if cfg.pool_responses and d.pair_responses is not None:
            pooling = ResponsePooling.initial(
                d.pair_responses, d.n_responses, prior.mu_sd,
                d.pair_features if cfg.response_features else None)
        deviation = None
        if cfg.response_features and d.pair_features is not None and k_n > 1:
            deviation = DeviationPrior.initial(d.pair_features,
                                               lat.step * lat.deviations.astype(float))
        priors = self._pair_priors(prior, pooling, deviation)
        pi = np.full(k_n, 1.0 / k_n)
        if school_init is None:
            school_init = (
                rng.dirichlet(np.full(k_n, 5.0), size=r_n) if k_n > 1 else np.ones((r_n, 1))
            )
        pl_ = lapse_prob(d.y, d.s, gamma[d.reviewer], lapse_tie[d.reviewer],
                         lean_offsets(cues, lean, d.reviewer))
        a_msg = (school_init[d.reviewer] * (1 - ebar[d.reviewer])[:, None])[:, :, None] * g_b
        b_msg = pl_ * ebar[d.reviewer]
        prev: FloatArray | None = None
        held, last_move = np.zeros(r_n, bool), np.zeros(r_n)
        converged = swinging = False
        elpd_trace: list[float] = []
        it = 0
        rev_post = np.zeros((r_n, k_n, e.size, bias.size))
        for it in range(1, cfg.max_iter + 1):
            st = self._pair_pass(a_msg, b_msg, tau_used, priors)
            lapse = np.clip(b_msg / st["z"], 0.0, 1.0)
            tau, tau_r = self._tie_step(st["g_tau"], st["h_tau"], tau, tau_r)
            # move a reviewer's threshold in use only when the estimate is well past the next
            # step: without this hysteresis, estimates at a rounding boundary flip back and
            # forth and the EM never settles
            if cfg.tie_per_reviewer:
                moved = np.abs(tau_r - tau_used) > 1.5 * TIE_STEP
                # a threshold that turns back is held where it is: with many reviewers' steps
                # interacting through the pairs, some go back and forth for good otherwise,
                # each step jolting the elpd by a nat, and the EM never settles
                direction = np.sign(tau_r - tau_used)
                if it > HOLD_AFTER:  # early on, thresholds still find their level
                    held |= moved & (direction * last_move < 0)
                moved &= ~held
                last_move = np.where(moved, direction, last_move)
                tau_used = np.where(moved, np.rint(tau_r / TIE_STEP) * TIE_STEP, tau_used)
            else:
                tau_used = tau_r
            # lapse tilt: Beta prior centred on the population tilt
            lam_o = lapse * self.has_order
            tilt_mean = float(
                np.clip((np.sum(lam_o * self.first) + 1.0) / (lam_o.sum() + 2.0), 0.05, 0.95)
            )
            conc = cfg.tilt_concentration
            num = np.bincount(d.reviewer, lam_o * self.first, r_n) + conc * tilt_mean
            den = np.bincount(d.reviewer, lam_o, r_n) + conc
            gamma = np.clip(num / den, 0.02, 0.98)
            if cues is not None and lean is not None:
                g = gamma[d.reviewer]
                lean, lean_mean = lean_step(
                    cues, d.y, d.reviewer, r_n, lapse, np.log(g / (1.0 - g)) * d.s, lean,
                    lean_mean, cfg.lapse_lean_sd)
            if ties:
                lapse_tie, tie_mean = self._lapse_tie_step(lapse)
            # pair prior: consensus-margin scale and deviation mixture weights
            if deviation is None:
                prior = prior.update(st["post"].sum(axis=0))
            else:
                delta_post = st["post"].reshape(d.n_pairs, lat.n_mu, -1).sum(
                    axis=1, dtype=np.float64)
                deviation, rest = deviation.refit(delta_post, prior.dev_density(), lat.step)
                prior = prior.update(st["post"].sum(axis=0), dev_mass=rest)
            if pooling is not None:
                # the three scales settle early; searching them again every few rounds is
                # enough, and on large data the search is the costly part
                search = it <= 3 or it % 10 == 0
                pooling = pooling.refit(st["mu_lik"], lat.mu_values, prior.mu_sd, search)
            priors = self._pair_priors(prior, pooling, deviation)
            # reviewer side
            pl_ = lapse_prob(d.y, d.s, gamma[d.reviewer], lapse_tie[d.reviewer],
                             lean_offsets(cues, lean, d.reviewer))
            log_prior_r = (
                np.log(pi)[:, None, None] + np.log(g_e)[None, :, None] + np.log(g_b)[None, None, :]
            )
            rev_post, a_msg, b_msg = self._reviewer_pass(st["ec"], pl_, log_prior_r)
            school_marg = rev_post.sum(axis=(2, 3))
            pi = (school_marg.sum(axis=0) + 0.5) / (r_n + 0.5 * k_n)
            # the pool's lapse distribution is learned from r_n reviewers: its posterior mean
            # under a Dirichlet centred on the starting shape and worth lapse_prior_reviewers,
            # not a plug-in that a handful of reviewers would make far too sure
            n0 = cfg.lapse_prior_reviewers
            g_e = anchor_careful_majority(
                smooth_grid((rev_post.sum(axis=(0, 1, 3)) + n0 * g_start) / (r_n + n0),
                            cfg.smoothing), e,
                cfg.careful_lapse_limit, cfg.careful_share)
            g_b = smooth_grid(rev_post.sum(axis=(0, 1, 2)) / r_n, cfg.smoothing)
            summary = np.concatenate([
                school_marg.ravel(), rev_post.sum(axis=(1, 3)) @ e, rev_post.sum(axis=(1, 2)) @ bias
            ])
            if callback is not None:
                callback(it, cfg.max_iter)
            if prev is not None and np.max(np.abs(summary - prev)) < cfg.tol:
                converged = True
                break
            prev = summary
            elpd_trace.append(float(np.log(np.maximum(st["z"], 1e-300)).sum()))
            converged, swinging = settled_or_swinging(elpd_trace, cfg)
            if converged or swinging:
                break
        st = self._pair_pass(a_msg, b_msg, tau_used, priors)
        return GridState(
            lattice=lat, lapse_grid=e, bias_grid=bias, school_weights=pi, lapse_prior=g_e,
            bias_prior=g_b, pair_prior=prior, tau=tau, tilt_mean=tilt_mean, gamma=gamma,
            reviewer_post=rev_post, pair_post=st["post"],
            lapse_post=np.clip(b_msg / st["z"], 0.0, 1.0),
            loo=np.log(np.maximum(st["z"], 1e-300)), n_iter=it, converged=converged,
            swinging=swinging,
            tau_r=tau_used, pooling=pooling, deviation_prior=deviation,
            lapse_tie=lapse_tie if ties else None, lapse_tie_mean=tie_mean,
            lean=lean, lean_mean=lean_mean,
        )
