"""A small deep ensemble of a run's main reward head; its spread is a sign of extrapolation.

Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and scalable predictive
uncertainty estimation using deep ensembles", NeurIPS): networks trained independently on the
same data agree where the data pin the function down and drift apart where they do not, so
their disagreement is a cheap sign that a reward is extrapolated.

With ``ensemble = M`` (config), member 0 is the run's own network and its *main head*: the
``consensus`` head of the school-head kinds, ``reward`` of plain and weighted runs, ``mean`` of
distributional ones. Members m = 1 .. M-1 are single-output networks of the run's (resolved)
architecture, trained on the same cached embeddings with the Bradley-Terry loss of the main
head and the run's per-comparison weights w_n (P(careful) where the run weights comparisons,
times an audit batch's cap), each with

* its own seed ``seed + m`` (initialisation, dropout and batch order), **and**
* a bootstrap resample of the training comparisons: counts c ~ Multinomial(n, 1/n) over the n
  training comparisons, the loss weight of comparison i becoming c_i w_i (bagging, Breiman
  1996). The validation comparisons that stop training early are not resampled.

Lakshminarayanan et al. found random initialisation and shuffling enough and bagging slightly
worse for *predictive accuracy*. The members here never give the reward (member 0 does, as
without an ensemble), so the resample costs no accuracy; it adds the disagreement that the
finite training set implies, which seeds alone understate on frozen embeddings where every
member sees the same points.

Member m's raw output r_m is standardised as the run's heads are, z_m = (r_m - mu_m) / sd_m
with mu_m, sd_m its mean and standard deviation over the validation responses, so members on
different scales (a distributional mean against a Bradley-Terry reward) compare. The spread of
a (prompt, reply) is the standard deviation over the M members (population sd, as the school
heads' spread),

    spread = sqrt((1/M) * sum_m (z_m - zbar)^2),   zbar = (1/M) * sum_m z_m,

in units of the reward's standard deviation on validation replies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from dissensus.models.reward.config import SCHOOL_HEAD_KINDS, PlainConfig, RewardConfig
from dissensus.models.reward.errors import CheckpointMismatchError
from dissensus.models.reward.heads import RewardNet
from dissensus.models.reward.train import Tensors, train_model

Log = Callable[[str], None]
FILE = "ensemble.safetensors"
RESAMPLE = "bootstrap of the training comparisons (multinomial counts as loss weights)"


def main_head(kind: str) -> str:
    """The standardised score the members copy: 'consensus', 'mean' or 'reward'."""
    if kind in SCHOOL_HEAD_KINDS:
        return "consensus"
    return "mean" if kind == "distributional" else "reward"


@dataclass
class Ensemble:
    """The extra members (member 0, the run's own network, is not held here)."""

    networks: list[RewardNet]
    head: str
    """The run's standardised score the members copy (see :func:`main_head`)."""
    reward_mean: list[float]
    reward_std: list[float]
    seeds: list[int]
    seconds: float = 0.0
    best_epochs: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Members, the run's own head included."""
        return len(self.networks) + 1

    def to(self, device: torch.device | str) -> Ensemble:
        for network in self.networks:
            network.to(device)
        return self

    @torch.inference_mode()
    def scores(self, prompts: Tensor, replies: Tensor,
               batch: int = 65_536) -> npt.NDArray[np.float64]:
        """(rows, M - 1) standardised rewards of the extra members for embedded rows."""
        columns = []
        for network, mean, std in zip(self.networks, self.reward_mean, self.reward_std,
                                      strict=True):
            network.eval()
            device = next(network.parameters()).device
            parts = [network(prompts[i:i + batch].to(device), replies[i:i + batch].to(device))
                     [:, 0].float().cpu().numpy() for i in range(0, len(prompts), batch)]
            raw = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            columns.append((raw.astype(np.float64) - mean) / std)
        return np.stack(columns, axis=1) if columns else np.zeros((len(prompts), 0))

    def spread(self, main: npt.NDArray[np.float64], prompts: Tensor,
               replies: Tensor) -> npt.NDArray[np.float64]:
        """The spread (module docstring) given member 0's standardised ``main`` scores."""
        members = np.column_stack([np.asarray(main, np.float64), self.scores(prompts, replies)])
        return members.std(axis=1)


def member_config(config: RewardConfig, seed: int) -> PlainConfig:
    """A one-head Bradley-Terry config with the run's architecture and optimisation settings.

    ``architecture='auto'`` must have been resolved (the run's chosen head is copied, not
    chosen again); weights come with the tensors, so a plain config trains a weighted head."""
    shared = {name: value for name, value in config.model_dump().items()
              if name in PlainConfig.model_fields and name != "kind"}
    shared |= {"seed": seed, "ensemble": 1, "finetune_encoder": False,
               "length_features": False}  # the embeddings already carry any length columns
    if shared.get("architecture") == "auto":
        shared["architecture"] = "mlp"
    return PlainConfig(**shared)


def bootstrap_counts(n: int, seed: int) -> npt.NDArray[np.float32]:
    """How often each of ``n`` items is drawn in a resample of size ``n`` with replacement."""
    rng = np.random.default_rng(seed)
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float32)


def train_ensemble(tensors: Tensors, config: RewardConfig, log: Log = print) -> Ensemble | None:
    """Train members 1 .. ``config.ensemble`` - 1 on ``tensors`` (None when the ensemble is 1).

    ``tensors`` must hold the embeddings the run scores with (after any fine-tuning) and the
    run's loss weights."""
    if config.ensemble <= 1:
        return None
    started = time.perf_counter()
    train_rows = tensors.rows(0)
    networks, means, stds, seeds, epochs = [], [], [], [], []
    for member in range(1, config.ensemble):
        seed = config.seed + member
        weight = tensors.weight.clone()
        counts = torch.as_tensor(bootstrap_counts(len(train_rows), seed),
                                 device=weight.device)
        weight[train_rows] = weight[train_rows] * counts
        result = train_model(replace(tensors, weight=weight), member_config(config, seed), 0,
                             lambda _m: None)
        networks.append(result.model.cpu().eval())
        means.append(float(result.reward_mean[0]))
        stds.append(float(result.reward_std[0]))
        seeds.append(seed)
        epochs.append(result.best_epoch)
    ensemble = Ensemble(networks, main_head(config.kind), means, stds, seeds,
                        time.perf_counter() - started, epochs)
    copies = f"{len(networks)} more cop{'y' if len(networks) == 1 else 'ies'}"
    log(f"ensemble: {copies} of the {ensemble.head} head "
        f"(seeds {seeds[0]}-{seeds[-1]}, bootstrap resamples) in {ensemble.seconds:.1f} s")
    return ensemble


def save_members(folder: Path, ensemble: Ensemble) -> dict[str, object]:
    """Write the members' tensors to ``folder/ensemble.safetensors``; their metadata."""
    tensors = {f"{m}.{name}": value.detach().cpu().contiguous()
               for m, network in enumerate(ensemble.networks)
               for name, value in network.state_dict().items()}
    save_file(tensors, str(folder / FILE))
    first = ensemble.networks[0]
    return {"size": ensemble.size, "head": ensemble.head, "file": FILE, "seeds": ensemble.seeds,
            "resample": RESAMPLE, "reward_mean": ensemble.reward_mean,
            "reward_std": ensemble.reward_std, "dim": first.dim, "hidden": first.hidden,
            "architecture": first.architecture, "davidson": first.log_nu is not None,
            "seconds": ensemble.seconds, "best_epochs": ensemble.best_epochs}


def load_members(folder: Path, meta: dict[str, Any], dropout: float,
                 map_location: str = "cpu") -> Ensemble:
    """The members described by ``meta`` (:func:`save_members`' output) from ``folder``."""
    path = folder / str(meta.get("file", FILE))
    if not path.exists():
        raise CheckpointMismatchError(
            f"The checkpoint names {int(meta['size']) - 1} ensemble members, but {path.name} "
            "is missing.", where=str(folder), expected=f"{FILE} beside reward_model.json",
            fix="copy the whole checkpoint folder, or retrain the run")
    tensors = load_file(str(path), device=map_location)
    networks = []
    for m in range(int(meta["size"]) - 1):
        network = RewardNet(int(meta["dim"]), int(meta["hidden"]), 1, dropout,
                            davidson=bool(meta["davidson"]), architecture=meta["architecture"])
        prefix = f"{m}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointMismatchError(
                f"Ensemble member {m + 1}'s tensors do not fit its network: {error}",
                where=str(path), expected="tensors written by save_members", fix="retrain",
            ) from error
        networks.append(network.eval())
    return Ensemble(networks, str(meta["head"]), [float(x) for x in meta["reward_mean"]],
                    [float(x) for x in meta["reward_std"]], [int(x) for x in meta["seeds"]],
                    float(meta.get("seconds", 0.0)),
                    [int(x) for x in meta.get("best_epochs", [])])
