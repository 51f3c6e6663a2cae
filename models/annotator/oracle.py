"""The two oracles of issue 3: ceilings that know the simulator's truth.

No method fitted to the votes alone can beat them; accuracy targets are stated against them.

**Reliability oracle.** Knows each pair's true school margins ``m_{j,k}``, every reviewer's school,
position bias ``beta_r`` and lapse tilt ``gamma_r``, the tie threshold ``tau`` and the generating
prior of lapse rates (careful ``U(0, 0.08)``, rushed ``U(0.30, 0.50)`` mixed by the rushed share).
It computes each reviewer's exact posterior of ``eps_r`` on a fine grid::

    p(eps | y_r) ∝ p(eps) prod_n [(1 - eps) P_c(y_n | m_{j_n, k(r)} + beta_r s_n) + eps P_l(y_n)]

**Margin-blind reliability oracle.** Knows everything the reliability oracle knows *except* the
pair margins: those it integrates out, each pair's margin vector drawn from the empirical
distribution of the other pairs' true margins and weighted by the *other* reviewers' votes on the
pair (whose parameters it knows). Reviewer ``r``'s careful-vote probability on judgment ``n`` is
then the cavity predictive ``A_n = sum_c w_{j,-r}(c) P_c(y_n | m_{c,k(r)} + beta_r s_n)``, and the
lapse posterior is as above with ``A_n`` in place of ``P_c``. A method that reads only the votes
must also estimate every reviewer's parameters, so this is still a ceiling for it, and a tighter
one: the gap between the two oracles is what not knowing the margins costs.

**School oracle.** Knows the true margins, lapse rates, biases and tilts and the school shares,
and gives each reviewer the school of highest posterior probability,
``log pi_k + sum_n log[(1 - eps_r) P_c(y_n | m_{j_n,k} + beta_r s_n) + eps_r P_l(y_n)]``.
Its adjusted Rand index over careful reviewers is the ceiling for school recovery: a reviewer who
never judged a contested pair cannot be placed by anyone.

**Pluralism oracle.** Knows every reviewer's school, lapse rate, bias and tilt and the
generating distribution of pair margins for contested and for other pairs. It scores each pair
by the exact likelihood ratio ``p(votes_j | contested) / p(votes_j | not contested)``, each term
integrating the margins over their generating distribution -- here the empirical distribution of
the true margin vectors of the *other* pairs of that kind in the same world (a Monte-Carlo
integral that is exact as the world grows). By the Neyman-Pearson lemma no score separates
contested from uncontested pairs better (in ROC terms) given the votes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.special import logsumexp

from .errors import AnnotatorDataError
from .likelihood import careful_logp, lapse_prob

FloatArray = NDArray[np.float64]

CAREFUL_LAPSE = (0.0, 0.08)
RUSHED_LAPSE = (0.30, 0.50)


@dataclass(frozen=True)
class OracleInputs:
    """Truth needed by the oracles, as aligned integer-coded arrays."""

    reviewer: NDArray[np.int64]  # (N,) reviewer index
    pair: NDArray[np.int64]  # (N,) pair index
    y: NDArray[np.int64]
    s: NDArray[np.int64]
    school: NDArray[np.int64]  # (R,)
    lapse_rate: FloatArray  # (R,)
    position_bias: FloatArray  # (R,)
    lapse_tilt: FloatArray  # (R,)
    margins: FloatArray  # (J, K)
    contested: NDArray[np.bool_]  # (J,)
    reviewer_ids: list[str]
    pair_ids: list[str]


def oracle_inputs(
    judgments: pl.DataFrame, reviewers: pl.DataFrame, pairs: pl.DataFrame
) -> OracleInputs:
    """Align the truth frames of a demo (or synthetic) world."""
    margin_cols = [c for c in pairs.columns if c.startswith("margin_")]
    rev = reviewers.sort("reviewer_id")
    prs = pairs.sort("pair_id")
    r_ids = rev["reviewer_id"].to_list()
    p_ids = prs["pair_id"].to_list()
    r_index = {r: i for i, r in enumerate(r_ids)}
    p_index = {p: i for i, p in enumerate(p_ids)}
    first = judgments["first_shown_is_response_1"].to_numpy()
    return OracleInputs(
        reviewer=np.array([r_index[r] for r in judgments["reviewer_id"].to_list()]),
        pair=np.array([p_index[p] for p in judgments["pair_id"].to_list()]),
        y=judgments["outcome"].to_numpy().astype(np.int64),
        s=np.where(first, 1, -1).astype(np.int64),
        school=rev["school_index"].to_numpy().astype(np.int64),
        lapse_rate=rev["lapse_rate"].to_numpy().astype(float),
        position_bias=rev["position_bias"].to_numpy().astype(float),
        lapse_tilt=rev["lapse_tilt"].to_numpy().astype(float),
        margins=prs.select(margin_cols).to_numpy().astype(float),
        contested=prs["contested"].to_numpy().astype(bool),
        reviewer_ids=r_ids,
        pair_ids=p_ids,
    )


def reliability_oracle(
    truth: OracleInputs, tau: float, rushed_share: float, grid_size: int = 500
) -> pl.DataFrame:
    """Each reviewer's exact lapse posterior given the true margins and parameters.

    Returns ``reviewer_id, lapse_mean, reliability, reliability_low, reliability_high`` (94%).
    """
    return _lapse_posterior(truth, _own_school(truth, _known_careful_probs(truth, tau)),
                            rushed_share, grid_size)


def margin_blind_reliability_oracle(
    truth: OracleInputs, tau: float, rushed_share: float, grid_size: int = 500
) -> pl.DataFrame:
    """Each reviewer's lapse posterior with the pair margins integrated out (see module doc).

    Same columns as :func:`reliability_oracle`.
    """
    return _lapse_posterior(truth, _own_school(truth, _cavity_careful_probs(truth, tau)),
                            rushed_share, grid_size)


def school_oracle(
    truth: OracleInputs, tau: float, shares: FloatArray, margins_known: bool = True
) -> pl.DataFrame:
    """Each reviewer's most probable school given every other truth (see module doc).

    ``margins_known=False`` integrates the pair margins out as the margin-blind reliability
    oracle does. Returns ``reviewer_id, school, school_probability``.
    """
    r = truth.reviewer
    n_r, k_n = truth.school.shape[0], truth.margins.shape[1]
    eps = truth.lapse_rate[r]
    pl_ = lapse_prob(truth.y, truth.s, truth.lapse_tilt[r])
    careful = (_known_careful_probs if margins_known else _cavity_careful_probs)(truth, tau)
    log_post = np.tile(np.log(np.asarray(shares, dtype=float)), (n_r, 1))
    for k in range(k_n):
        lik = (1 - eps) * careful[:, k] + eps * pl_
        log_post[:, k] += np.bincount(r, np.log(np.maximum(lik, 1e-300)), n_r)
    log_post -= logsumexp(log_post, axis=1, keepdims=True)
    return pl.DataFrame({
        "reviewer_id": truth.reviewer_ids,
        "school": log_post.argmax(axis=1),
        "school_probability": np.exp(log_post.max(axis=1)),
    })


def _known_careful_probs(truth: OracleInputs, tau: float) -> FloatArray:
    """``(N, K)``: each judgment's careful-vote probability under each school's true margin."""
    bias = truth.position_bias[truth.reviewer] * truth.s
    return np.stack([np.exp(careful_logp(truth.y, truth.margins[truth.pair, k] + bias, tau))
                     for k in range(truth.margins.shape[1])], axis=1)


def _own_school(truth: OracleInputs, careful: FloatArray) -> FloatArray:
    """The column of ``careful`` (``(N, K)``) for each judgment's reviewer's true school."""
    return careful[np.arange(careful.shape[0]), truth.school[truth.reviewer]]


@dataclass(frozen=True)
class _VoteBlock:
    """The votes on pairs ``b0 .. b0 + n - 1``, scored under every pair's true margins."""

    b0: int
    votes: NDArray[np.int64]  # (n_v,) judgment indices
    log_lik: FloatArray  # (n_v, J): each vote's likelihood, read in its reviewer's school
    per_pair: FloatArray  # (n, J): log_lik summed over each pair's votes


def _vote_blocks(truth: OracleInputs, tau: float, block: int) -> Iterator[_VoteBlock]:
    """Blocks of pairs with every vote's log-likelihood under every candidate margin vector."""
    r = truth.reviewer
    k_r = truth.school[r]
    eps = truth.lapse_rate[r]
    pl_ = lapse_prob(truth.y, truth.s, truth.lapse_tilt[r])
    bias = truth.position_bias[r] * truth.s
    n_pairs = truth.margins.shape[0]
    order = np.argsort(truth.pair, kind="stable")
    starts = np.searchsorted(truth.pair[order], np.arange(n_pairs + 1))
    for b0 in range(0, n_pairs, block):
        b1 = min(b0 + block, n_pairs)
        v = order[starts[b0] : starts[b1]]
        pc = np.exp(careful_logp(truth.y[v][:, None],
                                 truth.margins[:, k_r[v]].T + bias[v][:, None], tau))
        ll = np.log(np.maximum((1 - eps[v])[:, None] * pc + (eps[v] * pl_[v])[:, None], 1e-300))
        per_pair = np.zeros((b1 - b0, n_pairs))
        np.add.at(per_pair, truth.pair[v] - b0, ll)
        yield _VoteBlock(b0, v, ll, per_pair)


def _cavity_careful_probs(truth: OracleInputs, tau: float, block: int = 256) -> FloatArray:
    """``(N, K)``: each judgment's careful-vote probability under each school, the pair's margins
    integrated over the other pairs' true margins weighted by the other reviewers' votes."""
    bias = truth.position_bias[truth.reviewer] * truth.s
    out = np.empty((truth.y.shape[0], truth.margins.shape[1]))
    for blk in _vote_blocks(truth, tau, block):
        v = blk.votes
        y, shift, pair, r = truth.y[v][:, None], bias[v][:, None], truth.pair[v], truth.reviewer[v]
        # cavity: every vote on the pair minus this reviewer's own votes on it
        _, group = np.unique(pair * len(truth.reviewer_ids) + r, return_inverse=True)
        own = np.zeros((group.max() + 1, blk.log_lik.shape[1]))
        np.add.at(own, group, blk.log_lik)
        log_w = blk.per_pair[pair - blk.b0] - own[group]
        log_w[np.arange(v.size), pair] = -np.inf  # the pair's own margins are not known
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        for k in range(out.shape[1]):
            pc_k = np.exp(careful_logp(y, truth.margins[:, k][None, :] + shift, tau))
            out[v, k] = (w * pc_k).sum(axis=1)
    return out


def _lapse_posterior(
    truth: OracleInputs, pc: FloatArray, rushed_share: float, grid_size: int
) -> pl.DataFrame:
    """Lapse posterior on a grid under the generating prior, given each judgment's careful-vote
    probability ``pc``."""
    grid = 0.5 * (np.arange(grid_size) + 0.5) / grid_size
    careful = (grid <= CAREFUL_LAPSE[1]) / (CAREFUL_LAPSE[1] - CAREFUL_LAPSE[0])
    rushed = (grid >= RUSHED_LAPSE[0]) / (RUSHED_LAPSE[1] - RUSHED_LAPSE[0])
    prior = (1 - rushed_share) * careful + rushed_share * rushed
    log_prior = np.log(np.maximum(prior, 1e-300))
    r = truth.reviewer
    pl_ = lapse_prob(truth.y, truth.s, truth.lapse_tilt[r])
    log_m = np.log(np.maximum((1 - grid)[None, :] * pc[:, None] + grid[None, :] * pl_[:, None],
                              1e-300))
    n_r = truth.school.shape[0]
    log_post = np.tile(log_prior, (n_r, 1))
    np.add.at(log_post, r, log_m)
    log_post -= logsumexp(log_post, axis=1, keepdims=True)
    post = np.exp(log_post)
    mean = post @ grid
    cdf = np.cumsum(post, axis=1)
    lo = grid[np.minimum((cdf < 0.03).sum(axis=1), grid_size - 1)]
    hi = grid[np.minimum((cdf < 0.97).sum(axis=1), grid_size - 1)]
    return pl.DataFrame(
        {
            "reviewer_id": truth.reviewer_ids,
            "lapse_mean": mean,
            "reliability": 1 - mean,
            "reliability_low": 1 - hi,
            "reliability_high": 1 - lo,
        }
    )


def pluralism_oracle(truth: OracleInputs, tau: float, block: int = 256) -> pl.DataFrame:
    """Per pair ``log p(votes | contested) - log p(votes | not contested)`` (the ceiling score).

    Returns ``pair_id, contested, log_lr``. Needs contested and uncontested pairs in the world.
    """
    n_pairs = truth.margins.shape[0]
    cont = truth.contested
    if cont.all() or not cont.any():
        raise AnnotatorDataError(
            "the pluralism oracle needs both contested and uncontested pairs",
            where="pluralism oracle input", expected="a world with some contested pairs (K > 1)",
            fix="simulate a world with n_schools > 1 and contested_share in (0, 1)",
        )
    log_lr = np.zeros(n_pairs)
    for blk in _vote_blocks(truth, tau, block):
        for jj in range(blk.per_pair.shape[0]):
            j = blk.b0 + jj
            mask = np.ones(n_pairs, dtype=bool)
            mask[j] = False  # leave the pair's own margins out of its prior
            a = blk.per_pair[jj, mask & cont]
            b = blk.per_pair[jj, mask & ~cont]
            log_lr[j] = (logsumexp(a) - np.log(a.size)) - (logsumexp(b) - np.log(b.size))
    return pl.DataFrame({"pair_id": truth.pair_ids, "contested": cont, "log_lr": log_lr})
