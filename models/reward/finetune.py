"""Fine-tuning the text encoder itself, jointly with a trained reward head (meant for a GPU).

The head is first trained on frozen, cached embeddings (:func:`models.reward.train.train_model`:
cheap, and it gives the encoder a sensible loss surface to start from). Then the top
``finetune_layers`` transformer layers of the sentence-transformers encoder and the head are
trained together on the training comparisons, texts embedded on the fly (mean pooling and L2
normalisation as in the frozen path, so the head sees the same kind of vector), with the same
preference loss. After every epoch the validation texts are embedded again and the validation
loss decides which state is kept (early stopping, as for the head). Finally every text is
embedded with the kept encoder.

The fine-tuned encoder gets an id of its own, ``<base id>-ft-<digest>``, where the digest is a
SHA-256 of the trained parameters: embeddings are cached under it, the checkpoint records it, and
loading a checkpoint recomputes it from the saved weights (a different encoder fails loudly).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dissensus.models.reward.config import RewardConfig
from dissensus.models.reward.encoder import SentenceEncoder, TextEncoder
from dissensus.models.reward.errors import CheckpointMismatchError, RewardModelError
from dissensus.models.reward.heads import RewardNet, preference_loss
from dissensus.models.reward.train import Tensors, _loss_kwargs, resolve_device

Log = Callable[[str], None]


@dataclass
class FinetuneResult:
    encoder: SentenceEncoder
    embeddings: np.ndarray
    trainable: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    pairs_per_second: float = 0.0
    texts_per_second: float = 0.0


def _layer_list(model: nn.Module) -> nn.ModuleList | None:
    """The transformer's stack of layers (the longest ModuleList named like one)."""
    best: nn.ModuleList | None = None
    for name, module in model.named_modules():
        is_stack = isinstance(module, nn.ModuleList) and name.split(".")[-1] in (
            "layer", "layers", "h")
        if is_stack and (best is None or len(module) > len(best)):
            best = module
    return best


def trainable_parameters(encoder: SentenceEncoder, top_layers: int) -> list[str]:
    """Unfreeze the top ``top_layers`` layers (0: all) and return the trainable names."""
    model = encoder.model
    layers = _layer_list(model)
    for param in model.parameters():
        param.requires_grad = top_layers == 0 or layers is None
    if top_layers and layers is not None:
        for layer in list(layers)[-top_layers:]:
            for param in layer.parameters():
                param.requires_grad = True
    return [name for name, p in model.named_parameters() if p.requires_grad]


def parameter_digest(model: nn.Module, names: Sequence[str]) -> str:
    """SHA-256 (12 hex digits) of the named parameters' float32 bytes, in name order."""
    params = dict(model.named_parameters())
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode())
        digest.update(params[name].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _embed(encoder: SentenceEncoder, texts: Sequence[str], device: torch.device,
           autocast: bool) -> Tensor:
    """Mean-pooled, L2-normalised embeddings of ``texts`` (with gradients when enabled)."""
    model = encoder.model
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in s-t 5
    features = {k: v.to(device) if isinstance(v, Tensor) else v
                for k, v in prepare(list(texts)).items()}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(features)["sentence_embedding"]
    return F.normalize(out.float(), dim=-1)


def embed_all(encoder: SentenceEncoder, texts: Sequence[str], device: torch.device,
              batch: int, autocast: bool) -> np.ndarray:
    encoder.model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            parts.append(_embed(encoder, texts[start : start + batch], device, autocast).cpu())
    return torch.cat(parts).numpy() if parts else np.zeros((0, encoder.dim), np.float32)


def _loss(head: RewardNet, emb: Tensor, local: Tensor, t: Tensors, rows: Tensor,
          config: RewardConfig) -> Tensor:
    """Preference loss of ``rows`` with text embeddings ``emb`` (``local`` maps text index to
    its row in ``emb``)."""
    prompt = emb[local[t.prompt[rows]]]
    both = head(torch.cat([prompt, prompt]), emb[local[torch.cat([t.r1[rows], t.r2[rows]])]])
    out_1, out_2 = both.split(len(rows))
    return preference_loss(
        config.kind, out_1, out_2, t.y[rows], t.tie[rows], t.weight[rows], t.schools[rows],
        log_nu=head.log_nu, **_loss_kwargs(config),  # type: ignore[arg-type]
    )


def finetune_encoder(
    encoder: TextEncoder, head: RewardNet, tensors: Tensors, texts: Sequence[str],
    config: RewardConfig, log: Log = print,
) -> FinetuneResult:
    """Fine-tune ``encoder``'s top layers with ``head`` (see the module docstring)."""
    if not isinstance(encoder, SentenceEncoder):
        raise RewardModelError(
            f"Encoder '{encoder.encoder_id}' cannot be fine-tuned: it has no trainable weights.",
            expected="a transformer encoder (all-MiniLM-L6-v2 or a local model folder)",
            fix="train without --finetune-encoder, or pass a transformer --encoder",
        )
    device = resolve_device(config.device)
    autocast = device.type == "cuda" and config.bf16
    torch.manual_seed(config.seed)
    encoder.model.to(device)
    head = head.to(device)
    names = trainable_parameters(encoder, config.finetune_layers)
    base_id = encoder.encoder_id
    t = Tensors(**{k: v for k, v in tensors.__dict__.items() if k != "embeddings"},
                embeddings=torch.zeros(0)).to(device)
    train_rows, val_rows = t.rows(0), t.rows(1)
    if len(val_rows) == 0:
        val_rows = train_rows
    generator = torch.Generator().manual_seed(config.seed)
    if config.finetune_max_comparisons:
        pick = torch.randperm(len(train_rows), generator=generator)
        train_rows = train_rows[pick[: config.finetune_max_comparisons].to(device)]
    enc_params = [p for p in encoder.model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [{"params": enc_params, "lr": config.finetune_lr},
         {"params": list(head.parameters()), "lr": config.finetune_lr * 10}],
        weight_decay=config.weight_decay,
    )
    n_texts = len(texts)
    val_texts = torch.unique(torch.cat([t.prompt[val_rows], t.r1[val_rows], t.r2[val_rows]]))

    def validation_loss() -> float:
        emb = torch.as_tensor(embed_all(encoder, [texts[i] for i in val_texts.tolist()], device,
                                        config.finetune_batch_size * 3, autocast), device=device)
        local = torch.full((n_texts,), -1, dtype=torch.long, device=device)
        local[val_texts] = torch.arange(len(val_texts), device=device)
        head.eval()
        with torch.no_grad():
            return float(_loss(head, emb, local, t, val_rows, config))

    best = validation_loss()
    log(f"fine-tuning {len(names)} encoder tensors (top {config.finetune_layers or 'all'} "
        f"layers) on {len(train_rows):,} comparisons; validation loss before {best:.4f}")
    result = FinetuneResult(encoder=encoder, embeddings=np.zeros(0), trainable=names)
    best_encoder = copy.deepcopy({n: p.detach().clone() for n, p in
                                  encoder.model.named_parameters() if p.requires_grad})
    best_head = copy.deepcopy(head.state_dict())
    stale, seen, n_embedded = 0, 0, 0
    started = time.perf_counter()
    for epoch in range(config.finetune_epochs):
        order = train_rows[torch.randperm(len(train_rows), generator=generator).to(device)]
        total, steps = 0.0, 0
        for start in range(0, len(order), config.finetune_batch_size):
            rows = order[start : start + config.finetune_batch_size]
            used = torch.unique(torch.cat([t.prompt[rows], t.r1[rows], t.r2[rows]]))
            encoder.model.train()
            head.train()
            emb = _embed(encoder, [texts[i] for i in used.tolist()], device, autocast)
            local = torch.full((n_texts,), -1, dtype=torch.long, device=device)
            local[used] = torch.arange(len(used), device=device)
            loss = _loss(head, emb, local, t, rows, config)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, steps = total + float(loss.detach()), steps + 1
            seen, n_embedded = seen + len(rows), n_embedded + len(used)
        val = validation_loss()
        result.history.append({"epoch": epoch + 1, "train_loss": total / max(steps, 1),
                               "validation_loss": val})
        log(f"fine-tuning epoch {epoch + 1}: train {total / max(steps, 1):.4f}, "
            f"validation {val:.4f}")
        if val < best - 1e-5:
            best, stale, result.best_epoch = val, 0, epoch + 1
            best_encoder = {n: p.detach().clone() for n, p in encoder.model.named_parameters()
                            if p.requires_grad}
            best_head = copy.deepcopy(head.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    result.seconds = time.perf_counter() - started
    result.pairs_per_second = seen / max(result.seconds, 1e-9)
    result.texts_per_second = n_embedded / max(result.seconds, 1e-9)
    params = dict(encoder.model.named_parameters())
    with torch.no_grad():
        for name, value in best_encoder.items():
            params[name].copy_(value)
    head.load_state_dict(best_head)
    head.eval()
    encoder.encoder_id = f"{base_id}-ft-{parameter_digest(encoder.model, names)}"
    result.embeddings = embed_all(encoder, texts, device, config.finetune_batch_size * 3, autocast)
    log(f"fine-tuned encoder {encoder.encoder_id}: best epoch {result.best_epoch} "
        f"(validation loss {best:.4f}), {result.pairs_per_second:,.1f} pairs/s, "
        f"{result.texts_per_second:,.1f} texts/s with gradients")
    return result


def load_finetuned_encoder(folder: Path, meta: dict[str, object],
                           config: RewardConfig, device: str = "cpu") -> SentenceEncoder:
    """The fine-tuned encoder saved with a checkpoint, its id recomputed from its weights."""
    path = folder / str(meta["encoder_folder"])
    names = [str(n) for n in meta.get("finetuned_parameters") or []]  # type: ignore[attr-defined]
    if not path.is_dir() or not names:
        raise CheckpointMismatchError(
            "The checkpoint says its encoder was fine-tuned, but the encoder is missing.",
            where=str(path), expected="the encoder folder written by `dissensus train`",
            fix="copy the whole run folder, or retrain",
        )
    encoder = SentenceEncoder(path, path.name, config.encode_batch_size, config.max_seq_length,
                              device)
    have = dict(encoder.model.named_parameters())
    missing = [n for n in names if n not in have]
    if missing:
        raise CheckpointMismatchError(
            f"The saved encoder lacks {len(missing)} fine-tuned tensor(s), e.g. {missing[0]}.",
            where=str(path), expected="the encoder the reward model was trained with",
            fix="retrain",
        )
    encoder.encoder_id = f"{meta['encoder_base']}-ft-{parameter_digest(encoder.model, names)}"
    return encoder
