"""Posterior predictive probabilities of new judgments under a fitted grid-EM annotator model.

For a judgment by reviewer ``r`` on pair ``j`` with presentation ``s`` (``+1``: response 1 shown
first, ``-1``: response 2 first, ``0``: unknown), the model's likelihood (:mod:`.likelihood`) is

    p(y | k, eps, beta, m, gamma_r) = (1 - eps) P_c(y | eta = m_k + beta s, tau_r)
                                      + eps P_l(y | gamma_r, s)

with ``P_c`` the symmetric ordered logit with the reviewer's tie threshold ``tau_r`` (the
population's ``tau`` when thresholds are shared, or for an unknown reviewer)::

    P_c(+1) = sigmoid(eta - tau),  P_c(-1) = sigmoid(-eta - tau),
    P_c(0)  = sigmoid(tau - eta) - sigmoid(-tau - eta)

and ``P_l`` the lapse: a tie with the reviewer's chance of a tied lapse, else the first-shown
reply wins with probability ``gamma_r`` (a coin flip when ``s = 0``), tilted by the reviewer's
lean toward the longer reply or one model's (:mod:`.lapse_cues`) when the fit learned one.
The predictive distribution integrates the reviewer's posterior
``q_r(k, eps, beta)`` and the pair's posterior ``q_j(state)`` over the lattice of school margins
``m_{j, .}`` -- both are the beliefs of the grid EM after the fit, so they come from the training
judgments only::

    P(y | r, j, s) = sum_{k, beta} A_r(k, beta) sum_m Q_j(k, m) P_c(y | m + beta s, tau)
                     + L_r P_l(y | gamma_r, s),

    A_r(k, beta) = sum_eps q_r(k, eps, beta) (1 - eps),   L_r = sum q_r(k, eps, beta) eps,
    Q_j(k, m)    = q_j(margin of school k = m)   (marginal of the pair state),

i.e. the reviewer and the pair are taken as independent a posteriori (the mean-field reading of
the BP beliefs; they share at most one judgment, which a held-out judgment is not).

Fallbacks (documented behaviour): a reviewer not seen in the fit gets the population prior
``pi_k g(eps) b(beta)`` and the population lapse tilt; a pair not seen in the fit gets the learned
population prior of pair states (symmetric in response 1 / 2: no consensus is known for it), so a
judgment with neither seen is predicted from the population alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.special import betaln
from scipy.stats import beta

from .data import EncodedFrame, vote_order
from .errors import AnnotatorDataError
from .grid_em import GridState, tie_levels
from .lapse_cues import NO_CUES, CueSpec, cue_matrix, lean_offsets
from .lattice import Lattice
from .likelihood import careful_probs, lapse_prob

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
_CHUNK = 20_000
PREDICT_COLUMNS = ("reviewer_id", "pair_id", "first_shown")


@dataclass(frozen=True)
class PredictiveState:
    """What a prediction reads from a grid-EM fit: the beliefs about the fitted reviewers and
    pairs, and the population priors that stand in for reviewers and pairs not in the fit.

    Taken from a :class:`~.grid_em.GridState` after a fit (:meth:`of`), or restored from a
    saved fit (:mod:`.persistence`); rows follow the fit's reviewer and pair order.
    """

    lattice: Lattice
    lapse_grid: FloatArray  # (G,)
    bias_grid: FloatArray  # (B,)
    school_weights: FloatArray  # (K,) in the fit's school order
    lapse_prior: FloatArray  # (G,)
    bias_prior: FloatArray  # (B,)
    reviewer_post: FloatArray  # (R, K, G, B)
    gamma: FloatArray  # (R,) lapse tilt per reviewer
    lapse_tie: FloatArray  # (R,) P(tie | lapse) per reviewer
    lapse_tie_mean: float  # the population's P(tie | lapse)
    reviewer_tau: FloatArray  # (R,) tie threshold per reviewer
    tau: float  # the population's tie threshold
    tilt_mean: float  # the population's lapse tilt
    pair_post: FloatArray  # (J, S)
    pair_prior: FloatArray  # (S,) the learned population prior of pair states
    lean: FloatArray | None = None  # (R, C) lapse lean per cue (None: lapses lean on nothing)
    lean_mean: FloatArray | None = None  # (C,) the pool's lean
    cues: CueSpec = NO_CUES  # what the lean columns mean

    @classmethod
    def of(cls, state: GridState, cues: CueSpec = NO_CUES) -> PredictiveState:
        return cls(
            lattice=state.lattice, lapse_grid=state.lapse_grid, bias_grid=state.bias_grid,
            school_weights=state.school_weights, lapse_prior=state.lapse_prior,
            bias_prior=state.bias_prior, reviewer_post=state.reviewer_post, gamma=state.gamma,
            lapse_tie=state.reviewer_lapse_tie(), lapse_tie_mean=state.lapse_tie_mean,
            reviewer_tau=state.reviewer_tau(), tau=state.tau, tilt_mean=state.tilt_mean,
            pair_post=state.pair_post, pair_prior=state.pair_prior.state_prior(),
            lean=state.lean, lean_mean=state.lean_mean,
            cues=cues if state.lean is not None else CueSpec(label_order=cues.label_order),
        )

    def lean_offset(self, reviewer: IntArray, frame: pl.DataFrame) -> FloatArray | float:
        """``w_r . x`` for each row of ``frame`` (its reply lengths / models give the cues);
        ``reviewer`` indexes the fit's reviewers, the prior slot taking the pool's lean."""
        if self.lean is None or self.lean_mean is None:
            return 0.0
        x = cue_matrix(self.cues, frame)
        if x is None:
            return 0.0
        lean = np.vstack([self.lean, self.lean_mean[None]])
        return np.einsum("nc,nc->n", x, lean[reviewer])


def _index(ids: list[str], wanted: NDArray) -> IntArray:
    """Position of each ``wanted`` id in ``ids``, ``len(ids)`` (the prior slot) when unknown."""
    lookup = {v: i for i, v in enumerate(ids)}
    unknown = len(ids)
    return np.fromiter((lookup.get(str(w), unknown) for w in wanted), np.int64, len(wanted))


def reviewer_weights(state: PredictiveState) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``A (R+1, K, B)``, ``L (R+1,)`` and ``gamma (R+1,)``; row ``R`` is the population prior."""
    e = state.lapse_grid
    prior = (
        state.school_weights[:, None, None]
        * state.lapse_prior[None, :, None]
        * state.bias_prior[None, None, :]
    )
    post = np.concatenate([state.reviewer_post, (prior / prior.sum())[None]], axis=0)
    post = post / post.sum(axis=(1, 2, 3), keepdims=True)
    careful = np.einsum("rkgb,g->rkb", post, 1.0 - e)
    lapse = post.sum(axis=(1, 3)) @ e
    gamma = np.append(state.gamma, state.tilt_mean)
    return careful, lapse, gamma


def pair_margins(state: PredictiveState, pairs: IntArray) -> FloatArray:
    """``Q (n, K, M)``: each pair's posterior over school-``k`` margins (prior when unknown)."""
    lat = state.lattice
    n_pairs = state.pair_post.shape[0]
    known = pairs < n_pairs
    post = np.empty((pairs.size, lat.n_states))
    post[known] = state.pair_post[pairs[known]]
    post[~known] = state.pair_prior
    post /= post.sum(axis=1, keepdims=True)
    n_m = lat.m_values.size
    out = np.empty((pairs.size, lat.n_schools, n_m))
    for k in range(lat.n_schools):
        onehot = np.zeros((lat.n_states, n_m))
        onehot[np.arange(lat.n_states), lat.midx[:, k]] = 1.0
        out[:, k, :] = post @ onehot
    return out


def careful_tables(state: PredictiveState, tau: float) -> dict[int, FloatArray]:
    """``T_s (M, B, 3)`` = ``P_c(y | m + beta s, tau)`` for ``s`` in {-1, 0, 1}, y = (+1, 0, -1)."""
    m = state.lattice.m_values
    out = {}
    for s in (-1, 0, 1):
        eta = m[:, None] + s * state.bias_grid[None, :]
        out[s] = np.stack(careful_probs(eta, tau), axis=-1)
    return out


def predict_grid(
    state: PredictiveState, reviewer: IntArray, pair: IntArray, s: IntArray,
    lean_offset: FloatArray | float = 0.0,
) -> FloatArray:
    """``(n, 3)`` predictive probabilities (response 1 wins, tie, response 2 wins).

    ``reviewer`` / ``pair`` index the fit's reviewers / pairs; an index equal to the number of
    fitted reviewers (pairs) means unknown and uses the population prior. ``lean_offset``: each
    row's lapse lean toward response 1 (:meth:`PredictiveState.lean_offset`).
    """
    careful_w, lapse_w, gamma = reviewer_weights(state)
    ties = np.append(state.lapse_tie, state.lapse_tie_mean)
    # each reviewer's own tie threshold (the population's for an unknown reviewer)
    levels, level_of = tie_levels(np.append(state.reviewer_tau, state.tau))
    tables = [careful_tables(state, float(t)) for t in levels]
    out = np.empty((reviewer.size, 3))
    for lo in range(0, reviewer.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        r, j, sv = reviewer[sl], pair[sl], s[sl]
        off = lean_offset if np.isscalar(lean_offset) else np.asarray(lean_offset)[sl]
        q = pair_margins(state, j)
        p = np.empty((r.size, 3))
        lev = level_of[r]
        for level in np.unique(lev):
            for value, table in tables[level].items():
                rows = np.flatnonzero((sv == value) & (lev == level))
                if rows.size == 0:
                    continue
                ec = np.einsum("nkm,mbc->nkbc", q[rows], table)
                p[rows] = np.einsum("nkb,nkbc->nc", careful_w[r[rows]], ec)
        for c, y in enumerate((1, 0, -1)):
            p[:, c] += lapse_w[r] * lapse_prob(np.full(r.size, y), sv, gamma[r], ties[r], off)
        out[sl] = p / p.sum(axis=1, keepdims=True)
    return out


def predict_frame(
    state: PredictiveState, reviewer_ids: list[str], pair_ids: list[str], frame: pl.DataFrame
) -> FloatArray:
    """Predictive ``(n, 3)`` probabilities for the rows of a model frame (see module docstring).

    ``reviewer_ids`` and ``pair_ids`` name the fit's reviewers and pairs in its order; ``frame``
    needs ``reviewer_id``, ``pair_id`` and ``first_shown`` (1 / 2 / null); rows keep their order.
    """
    missing = [c for c in PREDICT_COLUMNS if c not in frame.columns]
    if missing:
        raise AnnotatorDataError(
            f"the frame to predict lacks column(s) {', '.join(missing)}",
            where="AnnotatorModel.predict_proba input",
            expected=f"columns {', '.join(PREDICT_COLUMNS)} (first_shown: 1, 2 or null)",
            fix="build the frame with warehouse.queries.model_frame(con), or add the columns",
        )
    reviewer = _index(reviewer_ids, frame["reviewer_id"].cast(pl.String).to_numpy())
    pair = _index(pair_ids, frame["pair_id"].cast(pl.String).to_numpy())
    s = vote_order(frame, state.cues.label_order)
    return predict_grid(state, reviewer, pair, s, state.lean_offset(reviewer, frame))


def expected_agreement(state: PredictiveState, enc: EncodedFrame,
                       p_first: FloatArray) -> FloatArray:
    """Each reviewer's chance that a vote of theirs names the consensus side of the pair.

    ``A_r = mean_n P_r(y_n = side_j | y_n != tie)`` over the reviewer's own judgments, ``side_j``
    the reply the pair's consensus favours (``p_first`` above or below 0.5; pairs at exactly
    0.5 left out) and ``P_r`` the fit's predictive for that reviewer (their lapse rate, lapse
    tilt and lean, position bias or lean toward one label, school and tie threshold). Lapses
    alone miss a reviewer who is careful but leans: a rater who calls most items "unsafe"
    lapses rarely and still agrees with the consensus less. NaN for a reviewer with no such
    judgment.
    """
    d = enc.judgments
    probs = predict_grid(state, d.reviewer, d.pair, d.s,
                         lean_offsets(d.lapse_cues, state.lean, d.reviewer))
    p = np.asarray(p_first, dtype=float)[d.pair]
    decided = p != 0.5
    named = np.where(p > 0.5, probs[:, 0], probs[:, 2]) / np.maximum(probs[:, 0] + probs[:, 2],
                                                                      1e-12)
    total = np.bincount(d.reviewer, np.where(decided, named, 0.0), d.n_reviewers)
    count = np.bincount(d.reviewer, decided.astype(float), d.n_reviewers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def consensus_record(enc: EncodedFrame, p_first: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per reviewer ``(k, n)``: of their ``n`` non-tie votes on pairs with a consensus side
    (``p_first`` not exactly 0.5), the ``k`` that name that side."""
    d = enc.judgments
    p = np.asarray(p_first, dtype=float)[d.pair]
    decided = (p != 0.5) & (d.y != 0)
    named = decided & ((d.y > 0) == (p > 0.5))
    return (np.bincount(d.reviewer, named.astype(float), d.n_reviewers),
            np.bincount(d.reviewer, decided.astype(float), d.n_reviewers))


def agreement_prior_votes(predicted: FloatArray, k: FloatArray, n: FloatArray) -> float:
    """How many votes the fit's predicted agreement is worth, by empirical Bayes.

    Each reviewer's record is read as ``k_r ~ BetaBinomial(n_r, c A_r, c (1 - A_r))``, ``A_r``
    the fit's predicted agreement: the ``c`` that maximises the marginal likelihood over all
    reviewers (on ``1 .. e^8``). A small ``c`` says the reviewers' records spread far more than
    the model foresees (it misses something about them, e.g. a lean it has no place for); a large
    one says the model already tells them apart.
    """
    ok = np.isfinite(predicted) & (n > 0)
    a = np.clip(predicted[ok], 1e-3, 1 - 1e-3)
    k, n = k[ok], n[ok]
    if a.size == 0:
        return float("nan")

    def neg_log_likelihood(log_c: float) -> float:
        c = np.exp(log_c)
        return -float(np.sum(betaln(k + c * a, n - k + c * (1 - a)) - betaln(c * a, c * (1 - a))))

    return float(np.exp(minimize_scalar(neg_log_likelihood, bounds=(0.0, 8.0),
                                        method="bounded").x))


def posterior_agreement(predicted: FloatArray, k: FloatArray, n: FloatArray,
                        mass: float = 0.94) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each reviewer's agreement: the fit's prediction updated by their own record.

    The posterior ``Beta(k_r + c A_r, n_r - k_r + c (1 - A_r))`` of a beta prior centred on the
    model's predicted agreement ``A_r`` (:func:`expected_agreement`) with the weight ``c`` of
    :func:`agreement_prior_votes`: its mean ``(k_r + c A_r) / (n_r + c)`` and the equal-tailed
    interval of ``mass``. The model's prediction alone cannot go below what its lapses allow (a
    coin flip), nor tell apart two heavy lapsers of whom one agrees with the consensus half the
    time and the other a third of the time; the record can, and the prior keeps a reviewer with
    few votes near what the fit expects of them. ``(mean, low, high)``; NaN where ``predicted``
    is NaN.
    """
    c = agreement_prior_votes(predicted, k, n)
    if not np.isfinite(c):
        return predicted, predicted.copy(), predicted.copy()
    a = np.clip(predicted, 1e-6, 1 - 1e-6)
    alpha, beta_ = k + c * a, n - k + c * (1 - a)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, (k + c * predicted) / (n + c), predicted)
    low, high = beta_interval(alpha, beta_, mass)
    known = np.isfinite(predicted)
    return mean, np.where(known, low, np.nan), np.where(known, high, np.nan)


def beta_interval(a: FloatArray | float, b: FloatArray | float,
                  mass: float) -> tuple[FloatArray, FloatArray]:
    """The equal-tailed interval of ``mass`` of ``Beta(a, b)``."""
    tail = (1 - mass) / 2
    return beta.ppf(tail, a, b), beta.ppf(1 - tail, a, b)
