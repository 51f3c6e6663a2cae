"""School heads on unseen prompts, when the schools show only in what the replies say.

Run ``python benchmarks/reward_schools.py`` (``--help`` for options). Per seed: the demo world
(35% minority school, 15% rushed reviewers) with its response tags removed is ingested into a
fresh warehouse and fitted by ``dissensus fit``'s default (which then finds the schools from the
replies' content); reward models are trained with whole prompts held out (``split_by=prompt``):

* ``multihead``: school heads weighted by the annotator fit's school memberships;
* ``mixture``: the latent-class mixture, its schools started from the fit's and re-learned
  with the heads (EM);
* ``mixture_random``: the same from a random start (no fit needed);
* ``mixture_linear``: the mixture with linear heads (ridge), started from the fit;
* ``probe_true_schools``: the ceiling, linear school heads on the same embeddings trained on
  the true schools of the truly careful votes.

Printed per run: each school head's agreement with its true school on the contested test pairs
(the issue's >= 0.85), accuracy against the true consensus, the ROC AUC with which the
predicted P(schools disagree) picks the truly contested test pairs out of the rest, and that
probability's calibration against held-out cross-school votes (ECE); for the mixture also the
ARI of its careful reviewers' schools against the truth.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from reward_truth import add_common_arguments, held_out, score_on_truth, start
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from dissensus.analytics.jobs.fit import run_fit
from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.reward.config import make_config
from dissensus.models.reward.evaluate import disagreement_probability
from dissensus.models.reward.pipeline import prepare, train_and_evaluate
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.ingest import ingest_file

RUNS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("multihead", "multihead", {}),
    ("mixture", "mixture", {}),
    ("mixture_random", "mixture", {"start_from": "random"}),
    ("mixture_linear", "mixture", {"architecture": "linear", "l2": 1e-3, "lr": 0.01}),
    ("mixture_linear_heldout_estep", "mixture", {"architecture": "linear", "l2": 1e-3,
                                                 "lr": 0.01, "estep_votes": "train+validation"}),
    ("probe_true_schools", "multihead", {"architecture": "linear", "l2": 1e-3, "lr": 0.01}),
)


def true_schools(prepared: Any, world: Any) -> None:
    """Replace the run's school weights and vote weights by the world's truth (one-hot school of
    each reviewer, 1 for a careful vote and 0 for a lapse)."""
    truth = world.judgments.select("comparison_id", "careful", "school_index")
    c = prepared.data.comparisons.drop("weight", "school_weights").join(
        truth, on="comparison_id", how="left", maintain_order="left")
    k = len(world.schools)
    prepared.data.comparisons = c.with_columns(
        pl.col("careful").cast(pl.Float64).alias("weight"),
        pl.col("school_index").map_elements(lambda i: [float(i == j) for j in range(k)],
                                            return_dtype=pl.List(pl.Float64))
        .alias("school_weights"),
    ).drop("careful", "school_index")
    prepared.data.n_schools = k
    prepared.data.pair_verdicts = None


def aligned(held: Any, schools: list[str]) -> Any:
    """Heads reordered to the true schools (two schools: the order that agrees more on every
    test pair), so head k is scored against school k."""
    probs = held.probs
    if probs.shape[1] != 3:
        return held
    label = [held.pairs[f"margin_{s}"].to_numpy() > 0 for s in schools]
    keep = sum(((probs[:, k] > 0.5) == label[k]).mean() for k in range(2))
    swap = sum(((probs[:, 1 - k] > 0.5) == label[k]).mean() for k in range(2))
    if swap > keep:
        held.probs = probs[:, [1, 0, 2]]
    return held


def one_seed(seed: int, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    world = simulate_world(WorldConfig(n_comparisons=args.n, rushed_share=0.15,
                                       minority_share=0.35, seed=seed))
    folder = Path(tempfile.mkdtemp(prefix="reward-schools-"))
    world.comparisons.drop("response_a_tags", "response_b_tags").write_parquet(
        folder / "comparisons.parquet")
    db = folder / "w.duckdb"
    con = connect(db)
    ingest_file(con, folder / "comparisons.parquet")
    fit = run_fit(con, AnnotatorConfig(), db_path=db)
    careful = world.reviewers.filter(~pl.col("is_rushed")).select("reviewer_id", "school_index")
    fitted = fit.model.reviewer_estimates_.join(careful, on="reviewer_id")
    out: dict[str, Any] = {
        "seed": seed, "fit_schools": fit.model.n_schools_,
        "fit_feature_source": fit.model.fit_summary_["diagnostics"].get("feature_source"),
        "fit_ari": float(adjusted_rand_score(fitted["school_index"], fitted["school"])),
    }
    log(f"seed {seed}: fit K={out['fit_schools']}, ARI {out['fit_ari']:.3f}")
    cache = Path(args.cache) if args.cache else folder / "cache"
    for name, kind, extra in RUNS:
        if args.runs and name not in args.runs:
            continue
        config = make_config(kind, encoder=args.encoder, device=args.device, seed=seed,
                             epochs=args.epochs, split_by="prompt", **extra)
        prepared = prepare(con, config, fit.fit_id, cache, log)
        if name == "probe_true_schools":
            true_schools(prepared, world)
        result, metrics = train_and_evaluate(prepared, config, log=log)
        held = aligned(held_out(prepared, result.model, kind, world.pairs), world.schools)
        row = score_on_truth(held, world.schools)
        p_dis = disagreement_probability(held.probs[:, :-1], np.ones(held.probs.shape[1] - 1))
        contested = held.pairs["contested"].to_numpy()
        row["contested_auc_truth"] = float(roc_auc_score(contested, p_dis))
        row["disagreement_calibration"] = metrics.get("disagreement", {}).get("calibration")
        if "mixture" in metrics:
            m = metrics["mixture"]["reviewers"]
            learned = pl.DataFrame({"reviewer_id": m["reviewer_id"], "school": m["school"]})
            joined = learned.join(careful, on="reviewer_id")
            row["mixture_ari"] = float(adjusted_rand_score(joined["school_index"],
                                                           joined["school"]))
        out[name] = row
        cal = row["disagreement_calibration"] or {}
        log(f"seed {seed} {name}: contested per school {row['contested_accuracy_per_school']}, "
            f"consensus {row['accuracy_true_consensus']:.3f}, contested AUC "
            f"{row['contested_auc_truth']:.3f}, disagreement ECE {cal.get('ece', float('nan')):.3f}"
            + (f", mixture ARI {row['mixture_ari']:.3f}" if "mixture_ari" in row else ""))
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--runs", nargs="*", default=[], help="only these runs (default: all)")
    args = parser.parse_args()
    log = start(args)
    results = [one_seed(s, args, log) for s in range(args.seeds)]
    print(f"{'run':<20}{'contested: school 0 / 1':>26}{'consensus':>11}{'contested AUC':>15}"
          f"{'ECE':>7}")
    for name, _, _ in RUNS:
        if name not in results[0]:
            continue
        rows = [r[name] for r in results]
        per = [np.mean([list(r["contested_accuracy_per_school"].values())[k] for r in rows])
               for k in range(2)]
        ece = [r["disagreement_calibration"]["ece"] for r in rows
               if r.get("disagreement_calibration")]
        print(f"{name:<20}{per[0]:>13.3f} / {per[1]:<10.3f}"
              f"{np.mean([r['accuracy_true_consensus'] for r in rows]):>11.3f}"
              f"{np.mean([r['contested_auc_truth'] for r in rows]):>15.3f}"
              f"{np.mean(ece) if ece else float('nan'):>7.3f}")
    print(f"annotator fit ARI (content features): {np.mean([r['fit_ari'] for r in results]):.3f}"
          "; mixture ARI: " + ", ".join(
              f"{name} {np.mean([r[name]['mixture_ari'] for r in results]):.3f}"
              for name, kind, _ in RUNS if kind == "mixture" and name in results[0]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
