"""``architecture="auto"``: the head and its regularisation chosen by validation loss.

No single head wins everywhere. On UKPConvArg1 (31 debates to train on, a new debate to test) the
two-layer MLP over prompt and reply over-fits the training topics and loses to a length-only
baseline, while a ridge-regularised linear head on the embeddings plus length columns clears
0.80; on the demo world the MLP is as good. So the default trains each candidate of
:data:`CANDIDATES` on the training split and keeps the one whose best validation loss (the
held-out part of the *training* data that early stopping already uses; the test split is never
looked at) is lowest. The chosen settings replace ``auto`` in the run's stored configuration, so
scoring and evaluation rebuild exactly that model, and ``metrics["architecture_selection"]``
lists every candidate's validation loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from dissensus.models.reward.config import RewardConfig
from dissensus.models.reward.train import Tensors, TrainResult, batch_loss, train_model

Log = Callable[[str], None]

CANDIDATES: tuple[dict[str, object], ...] = (
    {"architecture": "mlp", "length_features": False},
    {"architecture": "linear", "length_features": True, "l2": 2e-4, "lr": 0.01, "epochs": 100},
    {"architecture": "linear", "length_features": True, "l2": 1e-3, "lr": 0.01, "epochs": 100},
    {"architecture": "linear", "length_features": True, "l2": 5e-3, "lr": 0.01, "epochs": 100},
)
"""Settings tried by ``architecture="auto"``: the MLP as configured, and the linear head with
length features at three ridge strengths (learning rate and epochs as the UKP runs used)."""


def candidates(config: RewardConfig) -> list[RewardConfig]:
    """The resolved configs to try (no length columns when the encoder is fine-tuned, which
    re-embeds the texts without them)."""
    out = []
    for fields in CANDIDATES:
        if config.finetune_encoder and fields.get("length_features"):
            continue
        out.append(config.model_copy(update=fields))
    return out


SELECTION_SHARE = 0.2
"""Share of the training prompts (or, with fewer than MIN_PROMPTS, of the training
comparisons) held out to choose the head."""
MIN_PROMPTS = 8
SELECTION = 3
"""Split code of the selection rows: neither train (0), validation (1) nor test (2)."""


def selection_rows(tensors: Tensors, seed: int) -> tuple[torch.Tensor, bool]:
    """Rows of the training split held out for the choice: whole prompts (a seeded fifth of
    the training prompts), so the head is chosen for prompts it has not seen, as a reward
    model is used; single comparisons when the training data have few prompts."""
    train = tensors.rows(0)
    generator = torch.Generator().manual_seed(seed + 7919)
    prompts = torch.unique(tensors.prompt[train])
    if len(prompts) >= MIN_PROMPTS:
        n_held = max(1, round(SELECTION_SHARE * len(prompts)))
        held = prompts[torch.randperm(len(prompts), generator=generator)[:n_held]]
        return train[torch.isin(tensors.prompt[train], held)], True
    n_held = max(1, round(SELECTION_SHARE * len(train)))
    return train[torch.randperm(len(train), generator=generator)[:n_held]], False


@torch.no_grad()
def selection_loss(result: TrainResult, tensors: Tensors, rows: torch.Tensor,
                   config: RewardConfig) -> float:
    """The training loss of ``result``'s model on ``rows`` (eval mode, float32)."""
    model = result.model
    device = next(model.parameters()).device
    model.eval()
    return float(batch_loss(model, model, tensors.to(device), rows.to(device), config, False))


def select_architecture(
    config: RewardConfig, build: Callable[[bool], Tensors], n_schools: int = 0,
    log: Log = print,
) -> tuple[RewardConfig, TrainResult, Tensors, list[dict[str, object]]]:
    """Nested choice of the head: each candidate is trained on the training split less the
    :func:`selection_rows` (early stopping on the validation split as usual) and scored by its
    loss on those rows; the lowest wins and is trained again on the whole training split.
    Returns (its config, its trained result, its tensors, the table of candidates).
    ``build(length)`` gives the tensors with (``True``) or without the length columns; with
    ``config.length_features`` already on, every candidate gets them. The test split is never
    read."""
    built: dict[bool, Tensors] = {}
    held: torch.Tensor | None = None
    by_prompt = False
    best: tuple[float, RewardConfig] | None = None
    table: list[dict[str, object]] = []
    for candidate in candidates(config):
        if config.length_features:
            candidate = candidate.model_copy(update={"length_features": True})
        length = bool(candidate.length_features)
        if length not in built:
            built[length] = build(length)
        tensors = built[length]
        if held is None:
            held, by_prompt = selection_rows(tensors, config.seed)
        inner = replace(tensors, split=tensors.split.clone())
        inner.split[held] = SELECTION
        result = train_model(inner, candidate, n_schools, lambda _m: None)
        loss = selection_loss(result, inner, held, candidate)
        name = (f"{candidate.architecture}" + ("+length" if candidate.length_features else "")
                + (f", l2 {candidate.l2:g}" if candidate.l2 else ""))
        table.append({"candidate": name, "selection_loss": loss,
                      "epochs": len(result.history)})
        if best is None or loss < best[0] - 1e-6:
            best = (loss, candidate)
    assert best is not None and held is not None
    loss, chosen = best
    for row in table:
        row["chosen"] = row["selection_loss"] == loss
    log(f"architecture (auto: loss on {len(held):,} training comparisons held out"
        + (" by prompt" if by_prompt else "") + "): "
        + "; ".join(f"{r['candidate']} {r['selection_loss']:.4f}"
                    + (" <- chosen" if r["chosen"] else "") for r in table))
    tensors = built[bool(chosen.length_features)]
    result = train_model(tensors, chosen, n_schools, log)
    return chosen, result, tensors, table
