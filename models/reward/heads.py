"""The reward network and the four losses.

Network (``architecture="mlp"``, the default): a response r to prompt x with embeddings e_x, e_r
(frozen encoder) gets features phi = [e_x, e_r, e_x * e_r], a two-layer GELU trunk h = T(phi),
and linear heads on h. ``architecture="linear"``: each head is linear in the response's own
features, r = w . e_r (the prompt's terms would cancel within a pair): a regularised linear
Bradley-Terry model, which transfers to unseen prompts better than the trunk on small data.
When ``length_features`` is on, e_r ends with the response's log character and word counts.

Losses, for a comparison with rewards r_1, r_2 (d = r_1 - r_2), target y in {0, 1/2, 1} and
weight w (all means are w-weighted: sum w * l / sum w):

* **Bradley-Terry** (Bradley & Terry 1952): P(1 beats 2) = sigma(d);
  l = -[y log sigma(d) + (1 - y) log sigma(-d)]; a tie (y = 1/2) counts half a win each way.
* **Davidson ties** (Davidson 1970): with pi_i = exp(r_i) and a learned nu > 0,
  P(1) = pi_1 / Z, P(2) = pi_2 / Z, P(tie) = nu sqrt(pi_1 pi_2) / Z, Z = pi_1 + pi_2 +
  nu sqrt(pi_1 pi_2); dividing by sqrt(pi_1 pi_2): logits (d/2, -d/2, log nu) under a softmax.
* **Weighted**: the same with w = P(careful) from the annotator model, so likely lapses count
  little (an importance weight on the careful-judgment likelihood).
* **Multi-head**: K school heads and a consensus head; head k's loss weights comparison n by
  w_n * s_{n,k} (its reviewer's posterior membership of school k), the consensus head by w_n;
  total = sum_k L_k + lambda * L_consensus.
* **Mixture** (a latent-class Bradley-Terry mixture over reviewers): the multi-head loss with
  s_{n,k} the membership of comparison n's reviewer learned by EM alongside the heads (see
  :mod:`.mixture`), not taken from the annotator fit.
* **Distributional** (Siththaranjan et al. 2023, "Distributional preference learning", the
  mean-and-variance model): each response has a utility distribution N(mu, sigma^2) over the
  reviewer population, two heads give mu and log sigma^2, and
  P(1 beats 2) = F((mu_1 - mu_2) / sqrt(sigma_1^2 + sigma_2^2)) with F = Phi (probit) or the
  logistic sigma. Contested pairs are fitted with a large variance sum, so they come out
  uncertain rather than confidently wrong for one group.
* **Distributional, spread from schools** (``spread_from="schools"``, two schools with shares
  pi_k): outputs a mean mu and a signed lean l per response; school k's utility is
  u_k = mu + l c_k with c_0 = sqrt(pi_1 / pi_0), c_1 = -sqrt(pi_0 / pi_1), so that
  sum_k pi_k c_k = 0 and sum_k pi_k c_k^2 = 1: mu is the population mean of the utility and
  |l| its between-school standard deviation. Each school's votes are fitted by Bradley-Terry on
  d_k = (mu_1 - mu_2) + (l_1 - l_2) c_k, weighted as the multi-head school heads are. The
  population's P(1 beats 2) = E_k[sigma(d_k)] is read with the probit approximation
  sigma(dmu / sqrt(1 + pi dl^2 / 8)) (MacKay 1992), so no school share is stored; a pair whose
  replies lean apart (|dl| large) is contested. The vote likelihood alone cannot tell a split
  of firm, opposite views from a split of coin tosses; the school weights can.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dissensus.models.reward.config import SCHOOL_HEAD_KINDS
from dissensus.models.reward.errors import RewardInputError

Architecture = Literal["mlp", "linear"]


class RewardNet(nn.Module):
    """Trunk over [e_x, e_r, e_x * e_r] and ``n_outputs`` linear heads, or linear heads on e_r."""

    def __init__(
        self, dim: int, hidden: int, n_outputs: int, dropout: float = 0.1, davidson: bool = False,
        architecture: Architecture = "mlp", spread_from: str = "votes",
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.n_outputs = dim, hidden, n_outputs
        self.architecture = architecture
        if architecture == "linear":
            self.trunk: nn.Module = nn.Identity()
            self.head = nn.Linear(dim, n_outputs)
        else:
            self.trunk = nn.Sequential(
                nn.Linear(3 * dim, hidden), nn.GELU(), nn.Dropout(dropout),
                nn.Linear(hidden, hidden), nn.GELU(),
            )
            self.head = nn.Linear(hidden, n_outputs)
        self.log_nu = nn.Parameter(torch.tensor(math.log(0.5))) if davidson else None
        # how a distributional model's second output reads (not a weight: set from the config)
        self.spread_from = spread_from
        self.school_offsets: Tensor | None = None  # c_k, while training a 'schools' model

    def forward(self, prompt: Tensor, response: Tensor) -> Tensor:
        """(n, n_outputs) raw head outputs."""
        if self.architecture == "linear":
            return self.head(response)
        features = torch.cat([prompt, response, prompt * response], dim=-1)
        return self.head(self.trunk(features))


def head_names(kind: str, n_schools: int, spread_from: str = "votes") -> list[str]:
    """Names of the network's outputs for ``kind``."""
    if kind in SCHOOL_HEAD_KINDS:
        return [f"school_{k}" for k in range(n_schools)] + ["consensus"]
    if kind == "distributional":
        return ["mean", "lean"] if spread_from == "schools" else ["mean", "log_var"]
    return ["reward"]


def n_outputs(kind: str, n_schools: int) -> int:
    """How many outputs the network has for ``kind``."""
    return len(head_names(kind, n_schools))


def _wmean(loss: Tensor, weight: Tensor) -> Tensor:
    return (loss * weight).sum() / weight.sum().clamp_min(1e-8)


def bt_nll(d: Tensor, y: Tensor, tie: Tensor, log_nu: Tensor | None) -> Tensor:
    """Per-comparison negative log-likelihood: half-win BT, or Davidson when ``log_nu``."""
    if log_nu is None:
        return F.binary_cross_entropy_with_logits(d, y, reduction="none")
    logits = torch.stack([d / 2, -d / 2, log_nu.expand_as(d)], dim=-1)
    log_p = torch.log_softmax(logits, dim=-1)
    chosen = torch.where(tie, 2, torch.where(y > 0.5, 0, 1))
    return -log_p.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)


def school_lean_offsets(shares: Tensor) -> Tensor:
    """c_k for two school shares (normalised here): sum pi c = 0, sum pi c^2 = 1."""
    pi = shares.float() / shares.float().sum()
    if pi.numel() != 2 or bool((pi <= 0).any()):
        raise RewardInputError(
            f"school leans need two schools with positive shares, got {pi.tolist()}",
            where="distributional reward model, spread_from='schools'",
            expected="an annotator fit with two schools, each with training votes",
            fix="train on a fit with --schools 2, or use spread_from='votes'",
        )
    return torch.stack([(pi[1] / pi[0]).sqrt(), -(pi[0] / pi[1]).sqrt()])


def population_win_logit(out_1: Tensor, out_2: Tensor) -> Tensor:
    """Probit-approximated logit of E_k[sigma(d_k)] from (mean, lean) outputs."""
    lean = out_1[:, 1] - out_2[:, 1]
    return (out_1[:, 0] - out_2[:, 0]) / torch.sqrt(1 + math.pi * lean.square() / 8)


def distributional_z(out_1: Tensor, out_2: Tensor, min_log_var: float) -> Tensor:
    """z = (mu_1 - mu_2) / sqrt(sigma_1^2 + sigma_2^2) from (mean, log_var) outputs."""
    var = out_1[:, 1].clamp_min(min_log_var).exp() + out_2[:, 1].clamp_min(min_log_var).exp()
    return (out_1[:, 0] - out_2[:, 0]) / var.sqrt()


def distributional_nll(z: Tensor, y: Tensor, link: str) -> Tensor:
    """-[y log F(z) + (1 - y) log F(-z)], F = Phi or the logistic sigma."""
    if link == "probit":
        return -(y * torch.special.log_ndtr(z) + (1 - y) * torch.special.log_ndtr(-z))
    return -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z))


def preference_loss(
    kind: str,
    out_1: Tensor,
    out_2: Tensor,
    y: Tensor,
    tie: Tensor,
    weight: Tensor,
    schools: Tensor,
    *,
    log_nu: Tensor | None = None,
    consensus_weight: float = 1.0,
    link: str = "probit",
    min_log_var: float = -6.0,
    spread_from: str = "votes",
    school_offsets: Tensor | None = None,
) -> Tensor:
    """The training loss of ``kind`` for a batch (outputs in float32; see the module doc)."""
    out_1, out_2 = out_1.float(), out_2.float()
    if kind == "distributional" and spread_from == "schools":
        if school_offsets is None:
            raise RewardInputError(
                "spread_from='schools' needs the school offsets c_k",
                where="distributional reward model loss",
                expected="school_offsets from school_lean_offsets(shares)",
                fix="train through train_model, which sets them",
            )
        d = out_1 - out_2
        total = torch.zeros((), device=d.device)
        for school in range(school_offsets.numel()):
            nll = bt_nll(d[:, 0] + d[:, 1] * school_offsets[school], y, tie, None)
            total = total + _wmean(nll, weight * schools[:, school])
        return total
    if kind == "distributional":
        z = distributional_z(out_1, out_2, min_log_var)
        return _wmean(distributional_nll(z, y, link), weight)
    d = out_1 - out_2
    if kind in SCHOOL_HEAD_KINDS:
        k = schools.shape[1]
        total = consensus_weight * _wmean(bt_nll(d[:, k], y, tie, log_nu), weight)
        for school in range(k):
            nll = bt_nll(d[:, school], y, tie, log_nu)
            total = total + _wmean(nll, weight * schools[:, school])
        return total
    return _wmean(bt_nll(d[:, 0], y, tie, log_nu), weight)


def win_probability(
    kind: str, out_1: Tensor, out_2: Tensor, link: str = "probit", min_log_var: float = -6.0,
    spread_from: str = "votes",
) -> Tensor:
    """P(response 1 beats response 2) per head: (n, heads); distributional gives one column.

    Under Davidson the decisive-outcome probability P(1) / (P(1) + P(2)) is sigma(d) too.
    """
    out_1, out_2 = out_1.float(), out_2.float()
    if kind == "distributional" and spread_from == "schools":
        return torch.sigmoid(population_win_logit(out_1, out_2)).unsqueeze(-1)
    if kind == "distributional":
        z = distributional_z(out_1, out_2, min_log_var)
        p = torch.special.ndtr(z) if link == "probit" else torch.sigmoid(z)
        return p.unsqueeze(-1)
    return torch.sigmoid(out_1 - out_2)
