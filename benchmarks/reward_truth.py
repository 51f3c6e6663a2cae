"""Scoring reward models against a simulated world's truth (shared by the reward benchmarks)."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import torch

from models.reward.evaluate import pair_probabilities, pair_table


def fit_weights(con, world, log) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Weights from the annotator model when it exists, else oracle weights (labelled)."""
    try:
        from models.annotator import AnnotatorModel  # type: ignore[attr-defined]
    except ImportError:
        AnnotatorModel = None
    if AnnotatorModel is not None:
        from models.annotator.config import AnnotatorConfig
        from warehouse.queries import model_frame

        started = time.perf_counter()
        model = AnnotatorModel(AnnotatorConfig()).fit(model_frame(con))
        weights = model.comparison_weights_.with_columns(pl.lit("annotator").alias("fit_id"))
        weights = weights.select("fit_id", "comparison_id", "weight", "school_weights")
        con.execute("INSERT INTO fits (fit_id, created_at, method, n_schools, n_comparisons, "
                    "seconds) VALUES ('annotator', now(), 'annotator', ?, ?, ?)",
                    [len(world.schools), weights.height, time.perf_counter() - started])
        con.execute("INSERT INTO comparison_weights SELECT * FROM weights")
        return "annotator", "annotator-model fit"
    from models.reward.oracle import write_oracle_fit

    log("models.annotator.AnnotatorModel not found: using ORACLE weights from simulation truth")
    write_oracle_fit(con, world.judgments, world.reviewers, len(world.schools))
    return "oracle", "ORACLE weights (simulation truth)"


def score_on_truth(prepared, model, kind: str, truth: pl.DataFrame,  # type: ignore[no-untyped-def]
                   schools: list[str]) -> dict[str, object]:
    """Held-out accuracy of ``model`` against the world's TRUE consensus and each school's true
    preference, on every test pair and on the contested ones (pairs with no true consensus
    direction are left out of the consensus accuracy)."""
    pairs = pair_table(prepared.data, "test").join(truth, on="pair_id", how="inner")
    device = next(model.parameters()).device
    probs = pair_probabilities(model, kind, torch.as_tensor(prepared.embeddings, device=device),
                               pairs)
    main = probs[:, -1] if kind == "multihead" else probs[:, 0]
    decided = pairs["consensus_margin"].abs().to_numpy() > 1e-9
    label = pairs["consensus_margin"].to_numpy() > 0
    right = (main > 0.5) == label
    kinds = pairs["kind"].to_numpy()
    row: dict[str, object] = {
        "accuracy_true_consensus": float(right[decided].mean()),
        "n_test_pairs": pairs.height,
        "accuracy_true_consensus_by_kind": {
            str(k): float(right[decided & (kinds == k)].mean())
            for k in sorted(set(kinds)) if (decided & (kinds == k)).any()},
        "test_pairs_by_kind": {str(k): int((kinds == k).sum()) for k in sorted(set(kinds))},
    }
    per_school, contested = {}, {}
    is_contested = pairs["contested"].to_numpy()
    for k, name in enumerate(schools):
        p_k = probs[:, k] if kind == "multihead" else main
        lab = pairs[f"margin_{name}"].to_numpy() > 0
        per_school[name] = float(((p_k > 0.5) == lab).mean())
        if is_contested.any():
            contested[name] = float(((p_k > 0.5) == lab)[is_contested].mean())
    row["accuracy_per_school"] = per_school
    row["worst_school_accuracy"] = min(per_school.values())
    row["contested_accuracy_per_school"] = contested
    row["n_contested_test_pairs"] = int(is_contested.sum())
    return row


def uncertainty_on_truth(prepared, model, kind: str,  # type: ignore[no-untyped-def]
                         truth: pl.DataFrame) -> dict[str, object]:
    """Does the model know which held-out pairs are contested?

    Per kind of pair: the mean confidence |P(response 1 wins) - 1/2| of the model's main
    output. For the distributional model also the pair's spread sqrt(sigma_1^2 + sigma_2^2),
    and how well it picks out contested pairs from clear and from ambiguous ones (ROC AUC).
    The multi-head model's signal is how far its school heads disagree (the range of their
    reward differences); the single-head models have only low confidence.
    """
    from sklearn.metrics import roc_auc_score

    from models.reward.train import response_outputs

    pairs = pair_table(prepared.data, "test").join(truth, on="pair_id", how="inner")
    device = next(model.parameters()).device
    emb = torch.as_tensor(prepared.embeddings, device=device)
    probs = pair_probabilities(model, kind, emb, pairs)
    main = probs[:, -1] if kind == "multihead" else probs[:, 0]
    kinds = pairs["kind"].to_numpy()
    confidence = np.abs(main - 0.5)
    signal = -confidence
    out: dict[str, object] = {"mean_confidence_by_kind": {
        str(k): float(confidence[kinds == k].mean()) for k in sorted(set(kinds))}}
    if kind == "multihead":
        school_p = np.clip(probs[:, :-1], 1e-9, 1 - 1e-9)
        signal = np.ptp(np.log(school_p / (1 - school_p)), axis=1)
        out["mean_school_disagreement_by_kind"] = {str(k): float(signal[kinds == k].mean())
                                                   for k in sorted(set(kinds))}
    if kind == "distributional":
        prompt = torch.tensor(pairs["prompt_idx"].to_numpy(), device=device)
        log_var = [response_outputs(model, emb, prompt, torch.tensor(
            pairs[c].to_numpy(), device=device))[:, 1].clamp_min(-6.0).exp().cpu().numpy()
            for c in ("r1_idx", "r2_idx")]
        signal = np.sqrt(log_var[0] + log_var[1])
        out["mean_spread_by_kind"] = {str(k): float(signal[kinds == k].mean())
                                      for k in sorted(set(kinds))}
    for other in ("clear", "ambiguous"):
        keep = (kinds == "contested") | (kinds == other)
        if len(set(kinds[keep])) == 2:
            out[f"auc_contested_vs_{other}"] = float(
                roc_auc_score(kinds[keep] == "contested", signal[keep]))
    return out
