"""Training loop: seeded, early stopping on validation loss, CPU / CUDA (bf16), DDP-aware.

Device: ``auto`` takes CUDA when ``torch.cuda.is_available()``, else CPU; asking for ``cuda``
where there is none fails in words. The device is printed. Under ``torchrun`` (an initialised
``torch.distributed`` process group, gloo on CPU, NCCL on GPUs) the model is wrapped in
DistributedDataParallel and each rank takes an equal share of every epoch's shuffled training
rows; gradients are averaged by DDP, so all ranks hold the same parameters, compute the same
validation loss and stop at the same epoch. Embeddings are frozen and live on the device.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from dissensus.models.reward.config import (
    DistributionalConfig,
    MixtureConfig,
    MultiHeadConfig,
    RewardConfig,
)
from dissensus.models.reward.data import PreferenceData
from dissensus.models.reward.errors import DeviceUnavailableError
from dissensus.models.reward.heads import RewardNet, n_outputs, preference_loss, school_lean_offsets

Log = Callable[[str], None]


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present else CPU; 'cuda' without CUDA fails in words."""
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "CUDA was asked for, but this machine has no usable CUDA GPU.",
                where=f"torch {torch.__version__} (cuda build: {torch.version.cuda or 'none'})",
                expected="an NVIDIA GPU and a CUDA build of torch",
                fix="pass --device cpu (or auto), or run on a machine with a GPU",
            )
        return torch.device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceUnavailableError(f"Unknown device '{name}'.", expected="auto, cpu or cuda")


def describe_device(device: torch.device) -> str:
    """'cpu (2 threads)' or 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass
class Tensors:
    """Everything the loop needs, as tensors: embeddings and per-comparison rows."""

    embeddings: Tensor  # (texts, dim)
    prompt: Tensor  # (n,) long
    r1: Tensor
    r2: Tensor
    y: Tensor  # (n,) float
    tie: Tensor  # (n,) bool
    weight: Tensor  # (n,) float
    schools: Tensor  # (n, K) float
    split: Tensor  # (n,) long: 0 train, 1 validation, 2 test

    @classmethod
    def build(cls, data: PreferenceData, embeddings: np.ndarray, use_weights: bool) -> Tensors:
        c = data.comparisons
        weight = c["weight"].to_numpy() if use_weights else np.ones(c.height)
        if "cap" in c.columns:  # audit batches scaled down to their cap
            weight = weight * c["cap"].to_numpy()
        codes = {"train": 0, "validation": 1, "test": 2}
        return cls(
            embeddings=torch.as_tensor(embeddings, dtype=torch.float32),
            prompt=torch.tensor(c["prompt_idx"].to_numpy(), dtype=torch.long),
            r1=torch.tensor(c["r1_idx"].to_numpy(), dtype=torch.long),
            r2=torch.tensor(c["r2_idx"].to_numpy(), dtype=torch.long),
            y=torch.tensor(c["y"].to_numpy(), dtype=torch.float32),
            tie=torch.tensor(c["tie"].to_numpy()),
            weight=torch.tensor(weight, dtype=torch.float32),
            schools=torch.tensor(data.school_matrix()),
            split=torch.tensor(c["split"].replace_strict(codes).to_numpy(), dtype=torch.long),
        )

    def to(self, device: torch.device) -> Tensors:
        return Tensors(**{k: v.to(device) for k, v in self.__dict__.items()})

    def rows(self, split: int) -> Tensor:
        return torch.nonzero(self.split == split).squeeze(-1)


@dataclass
class TrainResult:
    model: RewardNet
    device: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_loss: float = float("nan")
    seconds: float = 0.0
    pairs_per_second: float = 0.0
    reward_mean: list[float] = field(default_factory=list)
    reward_std: list[float] = field(default_factory=list)
    config: RewardConfig | None = None
    """The settings the model was trained under (``architecture='auto'`` resolved)."""


def _loss_kwargs(config: RewardConfig) -> dict[str, object]:
    kwargs: dict[str, object] = {}
    if isinstance(config, MultiHeadConfig | MixtureConfig):
        kwargs["consensus_weight"] = config.consensus_weight
    if isinstance(config, DistributionalConfig):
        kwargs["link"], kwargs["min_log_var"] = config.link, config.min_log_var
        kwargs["spread_from"] = config.spread_from
    return kwargs


def batch_loss(
    model: torch.nn.Module, core: RewardNet, t: Tensors, rows: Tensor, config: RewardConfig,
    autocast: bool,
) -> Tensor:
    """Loss of ``config.kind`` on comparison ``rows``."""
    device_type = t.embeddings.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        prompt = t.embeddings[t.prompt[rows]]
        both = model(torch.cat([prompt, prompt]), t.embeddings[torch.cat([t.r1[rows], t.r2[rows]])])
    out_1, out_2 = both.split(len(rows))
    return preference_loss(
        config.kind, out_1, out_2, t.y[rows], t.tie[rows], t.weight[rows], t.schools[rows],
        log_nu=core.log_nu, school_offsets=core.school_offsets,
        **_loss_kwargs(config),  # type: ignore[arg-type]
    )


@torch.no_grad()
def response_outputs(model: RewardNet, embeddings: Tensor, prompt: Tensor, response: Tensor,
                     batch: int = 8192) -> Tensor:
    """Raw head outputs (n, heads) in float32 for (prompt index, response index) rows."""
    model.eval()
    parts = [
        model(embeddings[prompt[i : i + batch]], embeddings[response[i : i + batch]]).float()
        for i in range(0, len(prompt), batch)
    ]
    return torch.cat(parts) if parts else torch.zeros((0, model.n_outputs))


def reward_stats(model: RewardNet, embeddings: Tensor, t: Tensors) -> tuple[list[float], ...]:
    """Mean and standard deviation of each head's output over the validation responses."""
    val_rows = t.rows(1)
    if len(val_rows) == 0:
        val_rows = t.rows(0)
    responses = torch.unique(torch.cat([torch.stack([t.prompt[val_rows], t.r1[val_rows]], 1),
                                        torch.stack([t.prompt[val_rows], t.r2[val_rows]], 1)]),
                             dim=0)
    outputs = response_outputs(model, embeddings, responses[:, 0], responses[:, 1])
    std = outputs.std(0).clamp_min(1e-6).tolist() if len(outputs) > 1 else \
        [1.0] * outputs.shape[1]
    return outputs.mean(0).tolist(), std


def train_model(
    tensors: Tensors, config: RewardConfig, n_schools: int = 0, log: Log = print,
    init: RewardNet | None = None,
) -> TrainResult:
    """Train a fresh network (or go on training ``init``) on ``tensors`` under ``config``;
    returns the best (early-stopped)."""
    device = resolve_device(config.device)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
    if rank == 0:
        log(f"device: {describe_device(device)}" + (f", DDP x{world}" if distributed else ""))
    torch.manual_seed(config.seed)
    t = tensors.to(device)
    core = init.to(device) if init is not None else RewardNet(
        t.embeddings.shape[1], config.hidden, n_outputs(config.kind, n_schools),
        config.dropout, davidson=config.ties == "davidson" and config.kind != "distributional",
        architecture=config.architecture, spread_from=getattr(config, "spread_from", "votes"),
    ).to(device)
    train_rows, val_rows = t.rows(0), t.rows(1)
    if core.spread_from == "schools":
        # the training votes' school shares, each vote counted by P(careful)
        core.school_offsets = school_lean_offsets(
            (t.weight[train_rows, None] * t.schools[train_rows]).sum(0))
    model: torch.nn.Module = DistributedDataParallel(core) if distributed else core
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    autocast = device.type == "cuda" and config.bf16
    if len(val_rows) == 0:
        val_rows = train_rows
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(model=core, device=describe_device(device))
    best_state, best, stale, seen = copy.deepcopy(core.state_dict()), float("inf"), 0, 0
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator).to(device)]
        share = len(order) // world
        order = order[rank * share : (rank + 1) * share] if world > 1 else order
        total, steps = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            loss = batch_loss(model, core, t, rows, config, autocast)
            if config.l2 > 0:
                loss = loss + 0.5 * config.l2 * core.head.weight.float().pow(2).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, steps, seen = total + float(loss.detach()), steps + 1, seen + len(rows)
        core.eval()
        with torch.no_grad():
            val = float(batch_loss(core, core, t, val_rows, config, autocast))
        result.history.append({"epoch": epoch + 1, "train_loss": total / max(steps, 1),
                               "validation_loss": val})
        if val < best - 1e-5:
            best, stale, result.best_epoch = val, 0, epoch + 1
            best_state = copy.deepcopy(core.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    result.seconds = time.perf_counter() - started
    result.pairs_per_second = seen * world / max(result.seconds, 1e-9)
    core.load_state_dict(best_state)
    result.best_validation_loss = best
    result.reward_mean, result.reward_std = reward_stats(core, t.embeddings, t)
    if rank == 0:
        log(f"trained {len(result.history)} epochs (best {result.best_epoch}, validation loss "
            f"{best:.4f}) in {result.seconds:.1f} s, {result.pairs_per_second:,.0f} pairs/s")
    return result
