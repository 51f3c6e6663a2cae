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

from dissensus.models.reward.config import RewardConfig
from dissensus.models.reward.train import Tensors, TrainResult, train_model

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


def select_architecture(
    config: RewardConfig, build: Callable[[bool], Tensors], n_schools: int = 0,
    log: Log = print,
) -> tuple[RewardConfig, TrainResult, Tensors, list[dict[str, object]]]:
    """Train every candidate, keep the lowest validation loss: (its config, its trained result,
    its tensors, the table of candidates). ``build(length)`` gives the training tensors with
    (``True``) or without the length columns; with ``config.length_features`` already on,
    every candidate gets them."""
    built: dict[bool, Tensors] = {}
    best: tuple[float, RewardConfig, TrainResult, Tensors] | None = None
    table: list[dict[str, object]] = []
    for candidate in candidates(config):
        if config.length_features:
            candidate = candidate.model_copy(update={"length_features": True})
        length = bool(candidate.length_features)
        if length not in built:
            built[length] = build(length)
        tensors = built[length]
        result = train_model(tensors, candidate, n_schools, lambda _m: None)
        loss = float(result.best_validation_loss)
        name = (f"{candidate.architecture}" + ("+length" if candidate.length_features else "")
                + (f", l2 {candidate.l2:g}" if candidate.l2 else ""))
        table.append({"candidate": name, "validation_loss": loss,
                      "epochs": len(result.history)})
        if best is None or loss < best[0] - 1e-6:
            best = (loss, candidate, result, tensors)
    assert best is not None
    loss, chosen, result, tensors = best
    for row in table:
        row["chosen"] = row["validation_loss"] == loss
    log("architecture (auto, by validation loss): " + "; ".join(
        f"{r['candidate']} {r['validation_loss']:.4f}" + (" <- chosen" if r["chosen"] else "")
        for r in table))
    return chosen, result, tensors, table
