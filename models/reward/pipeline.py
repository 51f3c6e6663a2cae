"""From a warehouse to trained, evaluated reward models: the steps the jobs and benchmarks share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch

from dissensus.models.reward.config import (
    DistributionalConfig,
    MixtureConfig,
    RewardConfig,
    WeightedConfig,
)
from dissensus.models.reward.data import PreferenceData, check_fit, load_preferences
from dissensus.models.reward.encoder import (
    EmbeddingCache,
    Progress,
    TextEncoder,
    load_encoder,
    with_length_features,
)
from dissensus.models.reward.ensemble import Ensemble, train_ensemble
from dissensus.models.reward.errors import MissingFitError, RewardModelError
from dissensus.models.reward.evaluate import evaluate_model
from dissensus.models.reward.finetune import finetune_encoder
from dissensus.models.reward.heads import head_names
from dissensus.models.reward.mixture import (
    MIXTURE_AUTO,
    MixtureState,
    n_mixture_schools,
    train_mixture,
)
from dissensus.models.reward.selection import select_architecture
from dissensus.models.reward.train import (
    Tensors,
    TrainResult,
    resolve_device,
    reward_stats,
    train_model,
)
from dissensus.warehouse.fits import latest_fit

Log = Callable[[str], None]


@dataclass
class Prepared:
    data: PreferenceData
    embeddings: np.ndarray
    encoder_id: str
    embed_seconds: float
    texts_embedded: int
    encoder: TextEncoder | None = None
    cache_folder: Path | None = None
    ensemble: Ensemble | None = None
    """The extra ensemble members :func:`train_and_evaluate` trained (``ensemble`` > 1)."""


def encoder_for(config: RewardConfig, device: str = "cpu") -> TextEncoder:
    """The encoder of ``config`` (fails in words on unknown names / paths)."""
    return load_encoder(config.encoder, config.encode_batch_size, config.max_seq_length, device)


def model_inputs(
    config: RewardConfig, encoder: TextEncoder, cache_folder: Path | None,
    text_ids: list[str], bodies: list[str], progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """The network's per-text inputs under ``config``: cached embeddings, plus the length
    columns when ``length_features``; and how many texts were embedded now. ``progress(done,
    total)`` is called as the texts missing from the cache are embedded."""
    embeddings, n_new = EmbeddingCache(cache_folder).embed(encoder, text_ids, bodies, progress)
    if config.length_features:
        embeddings = with_length_features(embeddings, bodies)
    return embeddings, n_new


def prepare(
    con: duckdb.DuckDBPyConnection, config: RewardConfig, fit_id: str | None,
    cache_folder: Path | None, log: Log = print, encoder: TextEncoder | None = None,
    progress: Progress | None = None,
) -> Prepared:
    """Resolve the fit, load comparisons, split them and embed every text they use (cached);
    ``progress(done, total)`` follows the embedding of texts not in the cache yet."""
    if config.needs_fit or fit_id is not None:
        fit_id = check_fit(con, fit_id, config.kind)
    elif config.kind == "mixture":  # started from the latest fit's schools when there is one
        fit_id = latest_fit(con, having="comparison_weights")
    data = load_preferences(
        con, fit_id, split_by=config.split_by, seed=config.seed,
        validation_share=config.validation_share, test_share=config.test_share,
        min_weight=config.min_weight if isinstance(config, WeightedConfig) else 0.0,
        audit_batch_cap=config.audit_batch_cap,
    )
    if config.kind == "multihead" and data.n_schools < 2:
        raise MissingFitError(
            f"Fit '{fit_id}' has {data.n_schools} school(s); a multi-head model needs at least 2.",
            where="comparison_weights.school_weights",
            fix="refit the annotator model with n_schools >= 2, or train --kind weighted",
        )
    if getattr(config, "spread_from", "votes") == "schools" and data.n_schools != 2:
        raise MissingFitError(
            f"Fit '{fit_id}' has {data.n_schools} school(s); a distributional model with the "
            "spread from schools needs exactly 2.",
            where="comparison_weights.school_weights",
            fix="refit with --schools 2, or train --kind distributional --set spread_from=votes "
            "(or --kind multihead for more schools)",
        )
    if encoder is None:
        device = "cuda" if resolve_device(config.device).type == "cuda" else "cpu"
        encoder = encoder_for(config, device)
    started = time.perf_counter()
    texts = data.texts
    embeddings, n_new = model_inputs(config, encoder, cache_folder, texts["text_id"].to_list(),
                                     texts["body"].to_list(), progress)
    seconds = time.perf_counter() - started
    log(f"encoder {encoder.encoder_id}: {len(texts):,} texts, {n_new:,} embedded now "
        f"({seconds:.1f} s), the rest from the cache")
    return Prepared(data, embeddings, encoder.encoder_id, seconds, n_new, encoder, cache_folder)


def use_mixture_schools(data: PreferenceData, metrics: dict[str, object]) -> None:
    """Give ``data`` the reviewer schools a mixture run learned (stored in its metrics), so a
    later evaluation scores its heads against their own schools, not the fit's."""
    stored = (metrics.get("mixture") or {}).get("reviewers") or {}  # type: ignore[union-attr]
    if not stored.get("memberships"):
        return
    state = MixtureState(list(stored["reviewer_id"]), np.asarray(stored["memberships"]),
                         np.zeros(0), [], "stored")
    data.n_schools = state.memberships.shape[1]
    data.comparisons = data.comparisons.with_columns(pl.Series(
        "school_weights", state.comparison_weights(
            data.comparisons["reviewer_id"].cast(pl.String).to_list()).tolist()))


def uses_weights(config: RewardConfig, data: PreferenceData) -> bool:
    """Whether the loss weights comparisons by P(careful)."""
    if config.kind in ("weighted", "multihead"):
        return True
    if config.kind == "mixture":
        return data.fit_id is not None
    return (isinstance(config, DistributionalConfig)
            and (config.use_weights or config.spread_from == "schools")
            and data.fit_id is not None)


def train_and_evaluate(
    prepared: Prepared, config: RewardConfig, responses: pl.DataFrame | None = None,
    log: Log = print,
) -> tuple[TrainResult, dict[str, object]]:
    """Train on the train split (early stopping on validation), evaluate on test. The config
    the model was trained under (``architecture='auto'`` resolved) is ``result.config``; the
    extra ensemble members, when ``config.ensemble`` > 1, are ``prepared.ensemble``."""
    data = prepared.data
    mixture, selection = None, None
    if isinstance(config, MixtureConfig) and config.architecture == "auto":
        # EM would have to run once per candidate; linear heads (the ridge of the UKP choice)
        # gave the best school heads on unseen prompts (benchmarks/reward_schools.py)
        config = config.model_copy(update=MIXTURE_AUTO)
    if config.architecture == "auto":
        weighted = uses_weights(config, data)
        bodies = data.texts["body"].to_list()
        base, has_length = prepared.embeddings, config.length_features

        def inputs(length: bool) -> np.ndarray:
            return with_length_features(base, bodies) if length and not has_length else base

        config, result, tensors, selection = select_architecture(
            config, lambda length: Tensors.build(data, inputs(length), weighted),
            data.n_schools, log)
        prepared.embeddings = inputs(bool(config.length_features))
    elif isinstance(config, MixtureConfig):
        tensors = Tensors.build(data, prepared.embeddings, uses_weights(config, data))
        k = n_mixture_schools(config, data)
        if data.n_schools != k:  # no fit, or another K: memberships start at random
            data.fit_id, data.n_schools, data.pair_verdicts = None, k, None
        result, mixture = train_mixture(tensors, data, config, log)
        # evaluation reads the schools the mixture learned, not the fit's
        data.comparisons = data.comparisons.with_columns(pl.Series(
            "school_weights", mixture.comparison_weights(
                data.comparisons["reviewer_id"].cast(pl.String).to_list()).tolist()))
    else:
        tensors = Tensors.build(data, prepared.embeddings, uses_weights(config, data))
        result = train_model(tensors, config, data.n_schools, log)
    finetuned = None
    if config.finetune_encoder:
        if prepared.encoder is None:
            raise RewardModelError("Fine-tuning needs the encoder object from prepare().")
        finetuned = finetune_encoder(
            prepared.encoder, result.model, tensors, data.texts["body"].to_list(), config, log
        )
        # everything downstream (evaluation, checkpoint, scores) uses the fine-tuned encoder
        prepared.embeddings = finetuned.embeddings
        prepared.encoder = finetuned.encoder
        prepared.encoder_id = finetuned.encoder.encoder_id
        EmbeddingCache(prepared.cache_folder).put(
            prepared.encoder_id, data.texts["text_id"].to_list(), finetuned.embeddings
        )
        device = next(result.model.parameters()).device
        result.reward_mean, result.reward_std = reward_stats(
            result.model, torch.as_tensor(finetuned.embeddings, device=device),
            tensors.to(device),
        )
    device = next(result.model.parameters()).device
    link = getattr(config, "link", "probit")
    min_log_var = getattr(config, "min_log_var", -6.0)
    metrics = evaluate_model(
        result.model, config.kind, data, torch.as_tensor(prepared.embeddings, device=device),
        responses, link=link, min_log_var=min_log_var,
        reward_mean=result.reward_mean, reward_std=result.reward_std,
    )
    # scores are stored standardised; this undoes it (e.g. for the schools' disagreement)
    metrics["reward_scale"] = {"mean": list(result.reward_mean), "std": list(result.reward_std)}
    metrics["training"] = {
        "epochs": len(result.history), "best_epoch": result.best_epoch,
        "best_validation_loss": result.best_validation_loss, "seconds": result.seconds,
        "pairs_per_second": result.pairs_per_second, "device": result.device,
        "n_train": int((data.comparisons["split"] == "train").sum()),
        "n_validation": int((data.comparisons["split"] == "validation").sum()),
        "n_test": int((data.comparisons["split"] == "test").sum()),
        "heads": head_names(config.kind, data.n_schools, getattr(config, "spread_from", "votes")),
    }
    result.config = config
    # trained after the evaluation, so the run's own heads and metrics are those of a run
    # without an ensemble; on the embeddings the run scores with (fine-tuned ones included)
    ensemble = prepared.ensemble = train_ensemble(
        replace(tensors, embeddings=torch.as_tensor(prepared.embeddings, dtype=torch.float32)),
        config, log)
    if ensemble is not None:
        metrics["ensemble"] = {"size": ensemble.size, "head": ensemble.head,
                               "seconds": ensemble.seconds, "best_epochs": ensemble.best_epochs}
    if selection is not None:
        metrics["architecture_selection"] = selection
    if mixture is not None:
        metrics["mixture"] = {
            "n_schools": int(mixture.memberships.shape[1]),
            "shares": [float(x) for x in mixture.shares],
            "initialised_from": mixture.initialised_from, "rounds": mixture.rounds,
            "reviewers": {"reviewer_id": mixture.reviewer_ids,
                          "school": mixture.memberships.argmax(axis=1).tolist(),
                          "probability": mixture.memberships.max(axis=1).round(4).tolist(),
                          "memberships": mixture.memberships.round(4).tolist()},
        }
    if finetuned is not None:
        metrics["finetune"] = {
            "encoder": prepared.encoder_id, "trainable_tensors": len(finetuned.trainable),
            "epochs": len(finetuned.history), "best_epoch": finetuned.best_epoch,
            "history": finetuned.history, "seconds": finetuned.seconds,
            "pairs_per_second": finetuned.pairs_per_second,
            "texts_per_second": finetuned.texts_per_second,
        }
    return result, metrics
