"""Checkpoints: weights in safetensors, everything else in a JSON file beside them.

``<dir>/model.safetensors`` holds the network's tensors; ``<dir>/reward_model.json`` holds
the model type and version, the trainer kind, the encoder id, the full config and its hash, the
network's shape, the head names, the fit id and the reward mean / std per head on the
validation set. A run trained with ``ensemble = M > 1`` also has ``<dir>/ensemble.safetensors``
(the M - 1 extra members' tensors, keys prefixed ``0.``, ``1.``, ...) and an ``ensemble`` entry
in the JSON (size, head, seeds, resample, the members' reward mean / std, their network's
shape); checkpoints without that entry load with no members. Loading checks each of these
and fails loudly on any mismatch: a checkpoint of another type or version, another encoder
than the one expected, a config whose hash is not the one recorded (or not the one expected),
or tensors that do not fit the network described.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dissensus.models.reward.config import MODEL_TYPE, MODEL_VERSION, RewardConfig, config_from_json
from dissensus.models.reward.ensemble import Ensemble, load_members, save_members
from dissensus.models.reward.errors import CheckpointMismatchError
from dissensus.models.reward.heads import RewardNet

WEIGHTS = "model.safetensors"
META = "reward_model.json"


@dataclass
class Checkpoint:
    model: RewardNet
    config: RewardConfig
    meta: dict[str, object]
    ensemble: Ensemble | None = None
    """The run's extra ensemble members (None for runs trained without ``ensemble``)."""

    @property
    def heads(self) -> list[str]:
        return list(self.meta["heads"])  # type: ignore[call-overload]


def save_checkpoint(
    folder: Path, model: RewardNet, config: RewardConfig, *, encoder_id: str, heads: list[str],
    reward_mean: list[float], reward_std: list[float], fit_id: str | None = None,
    extra: dict[str, object] | None = None, ensemble: Ensemble | None = None,
) -> Path:
    """Write the checkpoint folder; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS))
    members = save_members(folder, ensemble) if ensemble is not None else None
    meta = {
        "model_type": MODEL_TYPE,
        "version": MODEL_VERSION,
        "kind": config.kind,
        "encoder_id": encoder_id,
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "dim": model.dim,
        "hidden": model.hidden,
        "n_outputs": model.n_outputs,
        "davidson": model.log_nu is not None,
        "heads": heads,
        "fit_id": fit_id,
        "reward_mean": reward_mean,
        "reward_std": reward_std,
        **(extra or {}),
        **({"ensemble": members} if members is not None else {}),
    }
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def _mismatch(what: str, folder: Path, expected: str, fix: str) -> CheckpointMismatchError:
    return CheckpointMismatchError(what, where=str(folder), expected=expected, fix=fix)


def load_checkpoint(
    folder: Path, *, encoder_id: str | None = None, config_hash: str | None = None,
    map_location: str = "cpu",
) -> Checkpoint:
    """Load and check a checkpoint (see the module docstring for what is checked)."""
    folder = Path(folder)
    if not (folder / META).exists() or not (folder / WEIGHTS).exists():
        raise _mismatch(f"No reward-model checkpoint in {folder}.", folder,
                        f"{META} and {WEIGHTS}", "check the run's checkpoint_path")
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("model_type") != MODEL_TYPE or meta.get("version") != MODEL_VERSION:
        raise _mismatch(
            f"The checkpoint is a '{meta.get('model_type')}' version {meta.get('version')}.",
            folder, f"{MODEL_TYPE} version {MODEL_VERSION}",
            "retrain the model with this dissensus",
        )
    config = config_from_json(meta["config"])
    if config.config_hash() != meta.get("config_hash"):
        raise _mismatch("The checkpoint's config does not match its recorded hash.", folder,
                        f"config hash {meta.get('config_hash')}",
                        "the JSON was edited or corrupted; retrain")
    if config_hash is not None and config_hash != meta["config_hash"]:
        raise _mismatch(f"The checkpoint was trained with config {meta['config_hash']}.", folder,
                        f"config hash {config_hash}", "load the checkpoint of the right run")
    if encoder_id is not None and encoder_id != meta.get("encoder_id"):
        raise _mismatch(
            f"The checkpoint was trained on encoder '{meta.get('encoder_id')}'.", folder,
            f"encoder '{encoder_id}'",
            "score with the encoder the model was trained on (--encoder), or retrain",
        )
    model = RewardNet(int(meta["dim"]), int(meta["hidden"]), int(meta["n_outputs"]),
                      float(config.dropout), davidson=bool(meta["davidson"]),
                      architecture=config.architecture,
                      spread_from=getattr(config, "spread_from", "votes"))
    tensors = load_file(str(folder / WEIGHTS), device=map_location)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise _mismatch(f"The checkpoint's tensors do not fit the network: {error}", folder,
                        "tensors written by save_checkpoint for this network", "retrain") from error
    model.eval()
    ensemble = None
    if isinstance(meta.get("ensemble"), dict):
        ensemble = load_members(folder, meta["ensemble"], float(config.dropout), map_location)
    return Checkpoint(model=model, config=config, meta=meta, ensemble=ensemble)


def state_equal(a: RewardNet, b: RewardNet) -> bool:
    """Whether two networks hold identical tensors."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
