"""Annotator-model benchmark: accuracy on the demo world against the peers and the oracles.

Run ``python benchmarks/annotators.py`` (``--help`` for options). It simulates the issue-3 world
(2 schools about 65/35, 15% rushed reviewers, 20% contested pairs, 3-8 votes per pair, skewed
workloads), fits the annotator model and the peers on the same comparisons, and prints:

* reviewers -- rank by reliability (every method, the reliability oracle and the margin-blind
  reliability oracle, see :mod:`models.annotator.oracle`), flag the bottom k (k = number of
  truly rushed reviewers): precision at k, the flag-rate gap careful-minority minus
  careful-majority (percentage points), Spearman of reliability against 1 - true lapse rate, and
  interval coverage where a method has intervals;
* pairs -- ROC AUC of the pluralism share for contested vs uncontested pairs, against the
  pluralism oracle's likelihood ratio (the ceiling) and naive vote disagreement;
* schools -- adjusted Rand index of the careful reviewers' schools, against the school oracle's
  (true margins known) and the margin-blind school oracle's;
* null worlds -- one school (K chosen, pluralism verdicts) and no rushed reviewers (flags);
* speed -- fit time at 10k and 100k comparisons as a ratio to crowd-kit GLAD on the same data.

Peers: majority-vote agreement (leave-self-out), crowd-kit Dawid-Skene, GLAD, MACE and
NoisyBradleyTerry (ties dropped, as it has none); crowd-kit is the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.oracle import (
    margin_blind_reliability_oracle,
    oracle_inputs,
    pluralism_oracle,
    reliability_oracle,
    school_oracle,
)
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import DemoWorld, WorldConfig, simulate_world
from dissensus.warehouse.demo.schools import school_shares

Scores = dict[str, float]


# ---------------------------------------------------------------- peers: reliability scores
def _labels(frame: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"task": frame["pair_id"].to_list(),
                         "worker": frame["reviewer_id"].to_list(),
                         "label": frame["outcome"].cast(pl.String).to_list()})


def majority_agreement(frame: pl.DataFrame) -> pd.Series:
    """Share of a reviewer's votes equal to the majority of the *other* votes on the pair."""
    f = frame.select("reviewer_id", "pair_id", "outcome")
    counts = f.group_by("pair_id", "outcome").len()
    joined = f.join(counts, on="pair_id", suffix="_o")
    joined = joined.with_columns(
        n=pl.col("len") - (pl.col("outcome") == pl.col("outcome_o")).cast(pl.UInt32)
    )
    best = joined.group_by("reviewer_id", "pair_id", "outcome").agg(
        top=pl.col("n").max(),
        own=pl.col("n").filter(pl.col("outcome") == pl.col("outcome_o")).max(),
    )
    best = best.with_columns(agree=(pl.col("own").fill_null(0) >= pl.col("top"))
                             & (pl.col("top") > 0))
    score = best.group_by("reviewer_id").agg(pl.col("agree").mean())
    return pd.Series(score["agree"].to_list(), index=score["reviewer_id"].to_list())


def dawid_skene(frame: pl.DataFrame) -> pd.Series:
    from crowdkit.aggregation import DawidSkene

    ds = DawidSkene(n_iter=100).fit(_labels(frame))
    out = {}
    for worker in ds.errors_.index.get_level_values(0).unique():
        err = ds.errors_.loc[worker]
        out[worker] = float(sum(ds.priors_[lab] * err.loc[lab, lab]
                                for lab in err.columns if lab in err.index))
    return pd.Series(out)


def glad(frame: pl.DataFrame) -> pd.Series:
    from crowdkit.aggregation import GLAD

    return GLAD(n_iter=100).fit(_labels(frame)).alphas_


def mace(frame: pl.DataFrame) -> pd.Series:
    from crowdkit.aggregation import MACE

    data = _labels(frame)
    model = MACE(n_restarts=3, n_iter=50, random_state=0).fit(data)
    workers = pd.factorize(data["worker"])[1]  # spamming_ rows follow first appearance
    return pd.Series(model.spamming_[:, 1], index=list(workers))


def noisy_bt(frame: pl.DataFrame, pairs: pl.DataFrame) -> pd.Series:
    from crowdkit.aggregation import NoisyBradleyTerry

    f = frame.filter(pl.col("outcome") != 0).join(
        pairs.select("pair_id", "response_1_id", "response_2_id"), on="pair_id"
    )
    data = pd.DataFrame({
        "worker": f["reviewer_id"].to_list(),
        "left": f["response_1_id"].to_list(),
        "right": f["response_2_id"].to_list(),
        "label": np.where(f["outcome"].to_numpy() > 0, f["response_1_id"].to_numpy(),
                          f["response_2_id"].to_numpy()).tolist(),
    })
    return NoisyBradleyTerry(n_iter=100).fit(data).skills_


# ---------------------------------------------------------------- metrics
def reviewer_metrics(world: DemoWorld, scores: pd.Series,
                     low: pd.Series | None = None, high: pd.Series | None = None) -> Scores:
    """Precision at k, minority-majority flag gap, Spearman, coverage (higher score = better)."""
    truth = world.reviewers.to_pandas().set_index("reviewer_id")
    truth = truth[truth["n_comparisons"] > 0]
    s = scores.reindex(truth.index).fillna(scores.median())
    k = int(truth["is_rushed"].sum())
    flagged = pd.Series(False, index=truth.index)
    flagged[s.sort_values(kind="stable").index[:k]] = True
    careful = ~truth["is_rushed"]
    minority = careful & (truth["school_index"] > 0)
    majority = careful & (truth["school_index"] == 0)
    out = {
        "precision_at_k": float(flagged[truth["is_rushed"]].sum() / max(k, 1)),
        "minority_gap_pts": 100 * float(flagged[minority].mean() - flagged[majority].mean()),
        "spearman": float(spearmanr(s, 1 - truth["lapse_rate"]).statistic),
    }
    if low is not None and high is not None:
        true_rel = 1 - truth["lapse_rate"]
        inside = (true_rel >= low.reindex(truth.index)) & (true_rel <= high.reindex(truth.index))
        out["coverage"] = float(inside.mean())
    return out


def careful_ari(schools: pl.DataFrame, truth_reviewers: pl.DataFrame) -> float:
    """Adjusted Rand index of ``schools`` (``reviewer_id, school``) against the true schools of
    the careful (not rushed) reviewers."""
    careful = schools.join(
        truth_reviewers.select("reviewer_id", "school_index", "is_rushed"), on="reviewer_id"
    ).filter(~pl.col("is_rushed"))
    return float(adjusted_rand_score(careful["school_index"], careful["school"]))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def accuracy(world: DemoWorld) -> dict[str, Any]:
    """Every method on one world: reviewer metrics, pluralism AUC, ARI, seconds."""
    frame = model_frame_from_world(world.judgments, world.pairs, world.responses)
    cfg = world.config
    rows: dict[str, Scores] = {}
    model, secs = _timed(lambda: AnnotatorModel().fit(frame))
    rev = model.reviewer_estimates_.to_pandas().set_index("reviewer_id")
    rows["dissensus"] = {**reviewer_metrics(world, rev["reliability"], rev["reliability_low"],
                                            rev["reliability_high"]), "seconds": secs}
    # the same model without the response tags: what the votes alone give
    plain, secs = _timed(lambda: AnnotatorModel(response_features=False).fit(frame))
    rev = plain.reviewer_estimates_.to_pandas().set_index("reviewer_id")
    rows["dissensus_no_tags"] = {**reviewer_metrics(world, rev["reliability"],
                                                    rev["reliability_low"],
                                                    rev["reliability_high"]), "seconds": secs}
    truth = oracle_inputs(world.judgments, world.reviewers.filter(pl.col("n_comparisons") > 0),
                          world.pairs)
    orc, secs = _timed(lambda: reliability_oracle(truth, cfg.tie_threshold, cfg.rushed_share))
    o = orc.to_pandas().set_index("reviewer_id")
    rows["oracle"] = {**reviewer_metrics(world, o["reliability"], o["reliability_low"],
                                         o["reliability_high"]), "seconds": secs}
    blind, secs = _timed(lambda: margin_blind_reliability_oracle(truth, cfg.tie_threshold,
                                                                 cfg.rushed_share))
    b = blind.to_pandas().set_index("reviewer_id")
    rows["oracle_blind"] = {**reviewer_metrics(world, b["reliability"], b["reliability_low"],
                                               b["reliability_high"]), "seconds": secs}
    peers: dict[str, Callable[[], pd.Series]] = {
        "majority_vote": lambda: majority_agreement(frame),
        "dawid_skene": lambda: dawid_skene(frame),
        "glad": lambda: glad(frame),
        "mace": lambda: mace(frame),
        "noisy_bt": lambda: noisy_bt(frame, world.pairs),
    }
    for name, fn in peers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores, secs = _timed(fn)
        rows[name] = {**reviewer_metrics(world, scores), "seconds": secs}
    pairs = model.pair_estimates_.join(world.pairs.select("pair_id", "contested"), on="pair_id")
    plain_pairs = plain.pair_estimates_.join(world.pairs.select("pair_id", "contested"),
                                             on="pair_id")
    plo = pluralism_oracle(truth, cfg.tie_threshold)
    disagree = frame.group_by("pair_id").agg(d=pl.col("outcome").n_unique() - 1)
    dis = disagree.join(world.pairs.select("pair_id", "contested"), on="pair_id")
    shares = school_shares(cfg.n_schools, cfg.minority_share)
    return {
        "reviewers": rows,
        "pluralism_auc": float(roc_auc_score(pairs["contested"], pairs["pluralism_share"])),
        "pluralism_auc_no_tags": float(roc_auc_score(plain_pairs["contested"],
                                                     plain_pairs["pluralism_share"])),
        "pluralism_auc_ceiling": float(roc_auc_score(plo["contested"], plo["log_lr"])),
        "pluralism_auc_disagreement": float(roc_auc_score(dis["contested"], dis["d"])),
        "ari_careful": careful_ari(model.reviewer_estimates_, world.reviewers),
        "ari_careful_no_tags": careful_ari(plain.reviewer_estimates_, world.reviewers),
        "ari_careful_oracle": careful_ari(school_oracle(truth, cfg.tie_threshold, shares),
                                          world.reviewers),
        "ari_careful_oracle_blind": careful_ari(
            school_oracle(truth, cfg.tie_threshold, shares, margins_known=False), world.reviewers
        ),
        "n_schools": model.n_schools_,
        "verdicts": model.fit_summary_["diagnostics"]["verdicts"],
    }


def null_worlds(n: int, seed: int) -> dict[str, Any]:
    """One school: K chosen and pluralism verdicts; no rushed reviewers: who is flagged."""
    one = simulate_world(WorldConfig(n_comparisons=n, n_schools=1, seed=seed))
    m1 = AnnotatorModel().fit(model_frame_from_world(one.judgments, one.pairs, one.responses))
    calm = simulate_world(WorldConfig(n_comparisons=n, rushed_share=0.0, seed=seed))
    m2 = AnnotatorModel().fit(model_frame_from_world(calm.judgments, calm.pairs,
                                                     calm.responses))
    t = m2.reviewer_estimates_.join(calm.reviewers.select("reviewer_id", "is_position_biased"),
                                    on="reviewer_id")
    lapse = t.filter(pl.col("flag_reason").str.contains("lapse").fill_null(False))
    return {
        "one_school_k": m1.n_schools_,
        "one_school_pluralism_verdicts": int((m1.pair_estimates_["verdict"] == "pluralism").sum()),
        "no_rushed_reviewers": t.height,
        "no_rushed_flagged_for_lapses": lapse.height,
        "no_rushed_flagged_unbiased": int(t.filter(pl.col("flagged")
                                                   & ~pl.col("is_position_biased")).height),
    }


def speed(n: int, n_reviewers: int | None, seed: int) -> dict[str, float]:
    """Default fit vs crowd-kit GLAD on the same comparisons."""
    world = simulate_world(WorldConfig(n_comparisons=n, n_reviewers=n_reviewers, seed=seed))
    frame = model_frame_from_world(world.judgments, world.pairs, world.responses)
    _, ours = _timed(lambda: AnnotatorModel().fit(frame))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, theirs = _timed(lambda: glad(frame))
    return {"comparisons": n, "dissensus_s": ours, "glad_s": theirs, "ratio": ours / theirs}


def _print_accuracy(results: list[dict[str, Any]]) -> None:
    methods = list(results[0]["reviewers"])
    cols = ("precision_at_k", "minority_gap_pts", "spearman", "coverage", "seconds")
    print(f"{'method':<18}" + "".join(f"{c:>18}" for c in cols))
    for m in methods:
        vals = []
        for c in cols:
            xs = [r["reviewers"][m].get(c) for r in results]
            vals.append("—" if xs[0] is None else f"{np.mean(xs):.3f}")
        print(f"{m:<18}" + "".join(f"{v:>18}" for v in vals))
    ours = np.mean([r["reviewers"]["dissensus"]["precision_at_k"] for r in results])
    orc = np.mean([r["reviewers"]["oracle"]["precision_at_k"] for r in results])
    auc = np.mean([r["pluralism_auc"] for r in results])
    ceil = np.mean([r["pluralism_auc_ceiling"] for r in results])
    blind = np.mean([r["reviewers"]["oracle_blind"]["precision_at_k"] for r in results])
    print(f"\nprecision at k vs oracle: {ours:.3f} / {orc:.3f} = {ours / orc:.1%} (target >= 95%)")
    print(f"  margin-blind oracle {blind:.3f} = {blind / orc:.1%} of the oracle; "
          f"dissensus = {ours / blind:.1%} of the margin-blind oracle")
    print(f"pluralism AUC: {auc:.3f}, ceiling {ceil:.3f} = {auc / ceil:.1%} (target >= 97%); "
          f"vote disagreement {np.mean([r['pluralism_auc_disagreement'] for r in results]):.3f}")
    print(f"ARI careful schools: {np.mean([r['ari_careful'] for r in results]):.3f} "
          "(target >= 0.80); school oracle "
          f"{np.mean([r['ari_careful_oracle'] for r in results]):.3f}, margin-blind "
          f"{np.mean([r['ari_careful_oracle_blind'] for r in results]):.3f}")
    print("without response tags (votes only): precision at k "
          f"{np.mean([r['reviewers']['dissensus_no_tags']['precision_at_k'] for r in results]):.3f}"
          f", pluralism AUC {np.mean([r['pluralism_auc_no_tags'] for r in results]):.3f}, ARI "
          f"{np.mean([r['ari_careful_no_tags'] for r in results]):.3f}")
    print(f"K chosen per seed: {[r['n_schools'] for r in results]}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--speed", nargs="*", type=int, default=[10_000, 100_000],
                        help="comparison counts for the speed ratios (empty: skip)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = [accuracy(simulate_world(WorldConfig(n_comparisons=args.comparisons, seed=s)))
               for s in range(args.seeds)]
    _print_accuracy(results)
    nulls = [null_worlds(args.comparisons, s) for s in range(args.seeds)]
    print(f"null worlds: {nulls}")
    speeds = [speed(n, 2000 if n >= 100_000 else None, 0) for n in args.speed]
    for s in speeds:
        print(f"speed at {s['comparisons']:,} comparisons: dissensus {s['dissensus_s']:.1f} s, "
              f"GLAD {s['glad_s']:.1f} s, ratio {s['ratio']:.2f}")
    out = {"accuracy": results, "null_worlds": nulls, "speed": speeds}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2, default=float)
    return out


if __name__ == "__main__":
    main()
