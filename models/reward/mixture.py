"""A latent-class Bradley-Terry mixture over reviewers: schools learned jointly with the heads.

The multi-head model takes each reviewer's school from the annotator fit, which reads schools
pair by pair from the votes; a school that shows only in what the replies say, across prompts
no two reviewers share, is then half-seen. Here the schools are classes of reviewers whose
votes one reward head explains (Bradley-Terry mixtures: e.g. Zhao et al. 2016, "Learning
mixtures of Plackett-Luce models"; the same idea as personalised reward models over user
types). With reviewer i in school z_i ~ Categorical(pi) and head k's reward r_k,

    p(votes of i | z_i = k) = prod_{n in N_i} sigma(y_n (r_k(x_n, a_n) - r_k(x_n, b_n)))^{w_n}

(``w_n`` = P(careful) when an annotator fit exists, else 1), fitted by EM:

* **E-step** (:func:`memberships`): gamma_{ik} proportional to pi_k p(votes of i | k) over
  the reviewer's training and validation votes (``estep_votes``: the validation votes are
  pairs the heads were not fitted to, which keeps the heads from flattering the school a
  reviewer already has); pi_k = mean_i gamma_{ik}, floored at ``min_share``;
* **M-step**: the heads are trained (``round_epochs`` passes, early stopping on validation)
  on the multi-head loss with school weights s_{n,k} = gamma_{i(n),k}, plus the consensus
  head on every vote.

The memberships start from the annotator fit's school weights when the run has a fit with
that many schools, else from a seeded random draw. Because the heads are functions of the
reply embeddings, the schools they learn carry over to prompts no reviewer has seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray

from dissensus.models.reward.config import MixtureConfig
from dissensus.models.reward.data import PreferenceData
from dissensus.models.reward.heads import bt_nll
from dissensus.models.reward.train import Tensors, TrainResult, response_outputs, train_model

Log = Callable[[str], None]
FloatArray = NDArray[np.float64]

MIXTURE_AUTO: dict[str, object] = {"architecture": "linear", "l2": 1e-3, "lr": 0.01}
"""What ``architecture='auto'`` means for the mixture: ridge-regularised linear heads. On the
untagged demo world they put the school heads at 0.916 / 0.924 on contested pairs of unseen
prompts against the MLP's 0.846 / 0.894 (and the true-school probe's 0.923 / 0.924), for 2.7
points of consensus accuracy (benchmarks/RESULTS.md)."""


@dataclass
class MixtureState:
    """Learned memberships: reviewer ids, gamma (reviewers x K), shares pi, per-round log."""

    reviewer_ids: list[str]
    memberships: FloatArray
    shares: FloatArray
    rounds: list[dict[str, object]]
    initialised_from: str

    def comparison_weights(self, reviewer_ids: list[str]) -> FloatArray:
        """(n, K) memberships of each comparison's reviewer (uniform for an unknown one)."""
        index = {r: i for i, r in enumerate(self.reviewer_ids)}
        k = self.memberships.shape[1]
        out = np.full((len(reviewer_ids), k), 1.0 / k)
        for n, r in enumerate(reviewer_ids):
            if r in index:
                out[n] = self.memberships[index[r]]
        return out


def n_mixture_schools(config: MixtureConfig, data: PreferenceData) -> int:
    """The K to fit: the config's, else the fit's when it has 2 or more, else 2."""
    if config.n_schools:
        return config.n_schools
    return data.n_schools if data.n_schools >= 2 else 2


def initial_memberships(data: PreferenceData, reviewer: NDArray[np.int64], n_reviewers: int,
                        k: int, seed: int, from_fit: bool = True) -> tuple[FloatArray, str]:
    """gamma from the fit's school weights (each reviewer's mean over their comparisons) when
    the fit has ``k`` schools, else a seeded Dirichlet(1) draw per reviewer."""
    if from_fit and data.fit_id is not None and data.n_schools == k:
        weights = data.school_matrix().astype(float)
        gamma = np.zeros((n_reviewers, k))
        np.add.at(gamma, reviewer, weights)
        gamma /= np.maximum(gamma.sum(axis=1, keepdims=True), 1e-12)
        return gamma, f"fit {data.fit_id}"
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k), size=n_reviewers), "random"


def memberships(vote_loglik: FloatArray, reviewer: NDArray[np.int64], n_reviewers: int,
                shares: FloatArray, min_share: float) -> tuple[FloatArray, FloatArray]:
    """E-step: gamma (reviewers x K) from each training vote's log-likelihood under every head
    (n x K, already weighted), and the new shares."""
    total = np.zeros((n_reviewers, vote_loglik.shape[1]))
    np.add.at(total, reviewer, vote_loglik)
    log_post = np.log(shares)[None, :] + total
    log_post -= log_post.max(axis=1, keepdims=True)
    gamma = np.exp(log_post)
    gamma /= gamma.sum(axis=1, keepdims=True)
    return gamma, floored_shares(gamma.mean(axis=0), min_share)


def floored_shares(shares: FloatArray, min_share: float) -> FloatArray:
    """``shares`` (summing to 1) with every share at least ``min_share``, the others scaled
    down to make room."""
    low = shares < min_share
    if not low.any():
        return shares
    rest = shares[~low].sum()
    return np.where(low, min_share, shares * (1.0 - min_share * low.sum()) / max(rest, 1e-12))


@torch.no_grad()
def vote_log_likelihood(result: TrainResult, t: Tensors, rows: torch.Tensor,
                        k: int) -> FloatArray:
    """(len(rows), K) w_n log p(y_n | head k) for the comparisons ``rows``."""
    model = result.model
    device = next(model.parameters()).device
    t = t.to(device)
    rows = rows.to(device)
    out_1 = response_outputs(model, t.embeddings, t.prompt[rows], t.r1[rows])
    out_2 = response_outputs(model, t.embeddings, t.prompt[rows], t.r2[rows])
    d = (out_1 - out_2)[:, :k]
    ll = torch.stack([-bt_nll(d[:, j], t.y[rows], t.tie[rows], model.log_nu)
                      for j in range(k)], dim=1)
    return (ll * t.weight[rows, None]).double().cpu().numpy()


def train_mixture(tensors: Tensors, data: PreferenceData, config: MixtureConfig,
                  log: Log = print) -> tuple[TrainResult, MixtureState]:
    """EM over reviewer schools and the heads (see the module docstring)."""
    k = n_mixture_schools(config, data)
    ids, reviewer = np.unique(data.comparisons["reviewer_id"].cast(pl.String).to_numpy()
                              .astype(str), return_inverse=True)
    reviewer = reviewer.astype(np.int64)
    gamma, source = initial_memberships(data, reviewer, len(ids), k, config.seed,
                                        config.start_from == "fit")
    shares = floored_shares(gamma.mean(axis=0), config.min_share)
    train_rows = tensors.rows(0)
    if config.estep_votes == "train+validation":
        train_rows = torch.cat([train_rows, tensors.rows(1)])
    round_config = config.model_copy(update={"epochs": config.round_epochs})
    result: TrainResult | None = None
    rounds: list[dict[str, object]] = []
    for round_no in range(config.em_rounds):
        tensors.schools = torch.tensor(gamma[reviewer], dtype=torch.float32)
        quiet = round_no < config.em_rounds - 1
        result = train_model(tensors, round_config, k, (lambda _m: None) if quiet else log,
                             init=None if result is None else result.model)
        ll = vote_log_likelihood(result, tensors, train_rows, k)
        before = gamma.argmax(axis=1)
        gamma, shares = memberships(ll, reviewer[train_rows.numpy()], len(ids), shares,
                                    config.min_share)
        moved = int(np.sum(gamma.argmax(axis=1) != before))
        rounds.append({"round": round_no + 1, "validation_loss": result.best_validation_loss,
                       "shares": [round(float(s), 4) for s in shares],
                       "reviewers_moved": moved})
        log(f"mixture round {round_no + 1}: shares "
            + ", ".join(f"{s:.0%}" for s in shares) + f", {moved} reviewer(s) moved school")
        if moved == 0 and round_no > 0:
            break
    assert result is not None
    tensors.schools = torch.tensor(gamma[reviewer], dtype=torch.float32)
    return result, MixtureState(ids.tolist(), gamma, shares, rounds, source)
