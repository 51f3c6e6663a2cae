"""What the reward benchmarks share: the annotator fit, scoring against a simulated world's truth,
and the command-line options every one of them takes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from dissensus.models.reward.config import SCHOOL_HEAD_KINDS
from dissensus.models.reward.evaluate import pair_probabilities, pair_table


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --encoder, --threads, --cache and --out."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--cache", default=None, help="embedding cache folder to reuse")
    parser.add_argument("--out", type=Path, default=None, help="write the results JSON here")


def start(args: argparse.Namespace) -> Callable[[str], None]:
    """Apply --threads; the log that prints progress to stderr (results go to stdout)."""
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return log


def progress_lines(log: Callable[[str], None]) -> Callable[[int, int], None]:
    """An embedding progress callback that logs a line per tenth of the texts (a benchmark's
    stderr usually goes to a file, where a bar would not render)."""
    reported = [-1]

    def progress(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > reported[0]:
            reported[0] = tenth
            log(f"embedding texts: {done:,} of {total:,}")

    return progress


def fit_annotator_model(con) -> str:  # type: ignore[no-untyped-def]
    """Fit the annotator model (default settings) and store every output table, as
    ``dissensus fit`` does; returns the fit id."""
    from dissensus.analytics.jobs.fit import run_fit
    from dissensus.models.annotator.config import AnnotatorConfig

    return run_fit(con, AnnotatorConfig()).fit_id


@dataclass
class HeldOut:
    """A model's predictions on the held-out pairs, joined with the world's truth."""

    model: object
    kind: str
    pairs: pl.DataFrame
    embeddings: torch.Tensor
    probs: np.ndarray

    @property
    def main(self) -> np.ndarray:
        """P(response 1 wins) of the consensus head (the only head of single-head kinds)."""
        return self.probs[:, -1] if self.kind in SCHOOL_HEAD_KINDS else self.probs[:, 0]


def held_out(prepared, model, kind: str, truth: pl.DataFrame) -> HeldOut:  # type: ignore[no-untyped-def]
    """Predict every held-out pair once, for :func:`score_on_truth` and
    :func:`uncertainty_on_truth`."""
    pairs = pair_table(prepared.data, "test").join(truth, on="pair_id", how="inner")
    device = next(model.parameters()).device
    embeddings = torch.as_tensor(prepared.embeddings, device=device)
    return HeldOut(model, kind, pairs, embeddings,
                   pair_probabilities(model, kind, embeddings, pairs))


def score_on_truth(held: HeldOut, schools: list[str]) -> dict[str, object]:
    """Held-out accuracy against the world's TRUE consensus and each school's true
    preference, on every test pair and on the contested ones (pairs with no true consensus
    direction are left out of the consensus accuracy)."""
    pairs, probs, kind, main = held.pairs, held.probs, held.kind, held.main
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
        p_k = probs[:, k] if kind in SCHOOL_HEAD_KINDS else main
        lab = pairs[f"margin_{name}"].to_numpy() > 0
        per_school[name] = float(((p_k > 0.5) == lab).mean())
        if is_contested.any():
            contested[name] = float(((p_k > 0.5) == lab)[is_contested].mean())
    row["accuracy_per_school"] = per_school
    row["worst_school_accuracy"] = min(per_school.values())
    row["contested_accuracy_per_school"] = contested
    row["n_contested_test_pairs"] = int(is_contested.sum())
    return row


def uncertainty_on_truth(held: HeldOut) -> dict[str, object]:
    """Does the model know which held-out pairs are contested?

    Per kind of pair: the mean confidence |P(response 1 wins) - 1/2| of the model's main
    output. For the distributional model also the pair's spread sqrt(sigma_1^2 + sigma_2^2),
    and how well it picks out contested pairs from clear and from ambiguous ones (ROC AUC).
    The multi-head model's signal is how far its school heads disagree (the range of their
    reward differences); the single-head models have only low confidence.
    """
    from sklearn.metrics import roc_auc_score

    from dissensus.models.reward.evaluate import contested_signal

    kind, kinds = held.kind, held.pairs["kind"].to_numpy()
    confidence = np.abs(held.main - 0.5)
    signal = contested_signal(held.model, kind, held.embeddings,  # type: ignore[arg-type]
                              held.pairs, held.probs)
    out: dict[str, object] = {"mean_confidence_by_kind": {
        str(k): float(confidence[kinds == k].mean()) for k in sorted(set(kinds))}}
    if kind in ("multihead", "distributional"):
        name = "school_disagreement" if kind == "multihead" else "spread"
        out[f"mean_{name}_by_kind"] = {str(k): float(signal[kinds == k].mean())
                                       for k in sorted(set(kinds))}
    for other in ("clear", "ambiguous"):
        keep = (kinds == "contested") | (kinds == other)
        if len(set(kinds[keep])) == 2:
            out[f"auc_contested_vs_{other}"] = float(
                roc_auc_score(kinds[keep] == "contested", signal[keep]))
    return out
