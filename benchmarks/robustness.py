"""Robustness suite: the annotator model on worlds built to break its story, next to the peers.

Run ``python benchmarks/robustness.py`` (``--worlds near_tie,story --seeds 3``; ``--help``).
Every world of :data:`dissensus.models.annotator.worlds.WORLDS` is drawn for each seed, and the
default ``dissensus fit`` (the annotator model with its default config), majority agreement,
crowd-kit Dawid-Skene, GLAD and MACE and the world-aware oracle are scored on the same votes.
One table is printed, one row per world and method (means over seeds):

* ``careful_flagged`` -- share of careful reviewers flagged for lapses (target <= 5%; <= 1 of 6
  with few reviewers); ``careful_bias_flagged`` -- share flagged for a position bias they do
  not have; ``rushed_prec`` / ``rushed_rec`` -- precision and recall of the flags for rushed
  reviewers (targets >= 0.7), each the mean over draws; ``prec_pooled`` / ``rec_pooled`` -- the
  same with the flags of all draws pooled (a draw with one flag weighs one flag, not a whole
  draw); ``careless_prec_pooled`` -- pooled precision counting a lapse flag on a
  position-biased reviewer (careless, but with no high lapse rate) as right;
* ``bottom_k`` -- rushed reviewers among the bottom k by reliability (k = number rushed), and
  ``vs_oracle`` its ratio to the oracle's (target >= 0.95); ``vs_blind`` the same against the
  margin-blind oracle (method ``oracle_blind``: it knows everything the oracle knows but the
  pairs' margins, :func:`~dissensus.models.annotator.world_scores.margin_blind_oracle_reliability`),
  whose recall and bottom k are what the votes allow once every reviewer's parameters are known;
* ``gap_pts`` -- careful minority flagged minus careful majority flagged, points (target <= 3);
* ``coverage`` -- true reliability inside the 94% interval (target >= 0.85);
* ``k_right`` -- the number of schools chosen is the true one (target >= 0.9), ``ari`` -- schools;
  where the fit finds more than one school, ``placed`` -- careful reviewers it places (school
  probability >= the fit summary's 0.8), ``ari_placed`` -- the ARI among them, and in a world
  without schools ``false_placed`` -- careful reviewers placed in a minority school that is not
  there;
* pair verdicts against what is true of each pair (``world_scores.pair_truth``): ``noise_prec``,
  ``plur_prec``, ``amb_prec`` -- how often the verdict is true of the pairs it is given to;
  ``noise_before`` -- the same for the rule before ``noise_probability`` (noise + unsettled);
  ``pairs_unsettled`` -- share of pairs whose cause the votes cannot tell;
* ``seconds`` and ``x_glad`` -- fit time and its ratio to GLAD's on the same votes (target <= 5).

Peers rank reviewers only (they have no flags or intervals); crowd-kit is the ``bench`` extra.
``--json PATH`` writes every per-seed figure. ``--truth-start`` instead asks, for the worlds with
schools, whether the model can hold the true schools at all (:func:`truth_start`).
``--audit`` instead runs each world through the product path (ingest, the fit job, the reviewer
audit) and scores the verdicts a lead reads (:func:`run_audit`).
``--votes-per-pair LOW,HIGH`` redraws every world with that many votes per pair and as many
fewer pairs (:func:`with_votes_per_pair`): how much of a gap to the oracle the pairs' few votes
leave.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from annotators import dawid_skene, glad, mace, majority_agreement
from pydantic import ValidationError

from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
from dissensus.models.annotator.world_rows import comparison_rows
from dissensus.models.annotator.world_scores import (
    audit_scores,
    margin_blind_oracle_reliability,
    oracle_reliability,
    pair_verdict_scores,
    verdict_scores,
)
from dissensus.models.annotator.worlds import WORLDS, WorldSpec, simulate_world

PEERS: dict[str, Callable[[pl.DataFrame], pd.Series]] = {
    "majority": majority_agreement,
    "dawid_skene": dawid_skene,
    "glad": glad,
    "mace": mace,
}
COLUMNS = ["careful_flagged", "careful_flagged_n", "careful_bias_flagged", "rushed_prec",
           "rushed_rec", "prec_pooled", "rec_pooled", "careless_prec_pooled", "bottom_k",
           "vs_oracle", "vs_blind", "gap_pts", "coverage", "k_right", "ari", "placed", "ari_placed",
           "false_placed", "reversed_found",
           "ok_rushed_before", "ok_rushed", "unsettled", "noise_before", "noise_prec",
           "plur_prec", "amb_prec", "pairs_unsettled", "seconds", "x_glad"]
RENAME = {"careful_flagged_share": "careful_flagged", "rushed_precision": "rushed_prec",
          "rushed_recall": "rushed_rec", "bottom_k_precision": "bottom_k",
          "minority_gap_pts": "gap_pts", "school_ari": "ari", "placed_share": "placed",
          "placed_ari": "ari_placed", "false_school_placed": "false_placed",
          "pair_noise_before_prec": "noise_before", "pair_noise_prec": "noise_prec",
          "pair_pluralism_prec": "plur_prec", "pair_ambiguous_prec": "amb_prec",
          "pair_unsettled": "pairs_unsettled"}


def series_frame(series: pd.Series, name: str = "reliability") -> pl.DataFrame:
    return pl.DataFrame({"reviewer_id": [str(i) for i in series.index],
                         name: series.to_numpy(dtype=float)})


def label_votes(frame: pl.DataFrame) -> pl.DataFrame:
    """A label task's votes for the peers, each as the label it names (+1: the longer label).

    Their classes are labels, and a lean toward one label is what Dawid-Skene's confusion
    matrices are for; the warehouse's canonical order would hide it behind a coin flip per
    item."""
    return frame.select("reviewer_id", "pair_id", outcome=pl.col("outcome") * pl.when(
        pl.col("response_1_length") > pl.col("response_2_length")).then(1).otherwise(-1))


def with_votes_per_pair(spec: WorldSpec, votes: tuple[int, int]) -> WorldSpec:
    """``spec`` with ``votes`` per pair and as many fewer pairs, so that each reviewer casts
    about as many votes as before: the pairs' margins are better known, the reviewers not."""
    before, after = sum(spec.votes_per_pair) / 2, sum(votes) / 2
    return replace(spec, votes_per_pair=votes,
                   n_pairs=max(10, round(spec.n_pairs * before / after)))


def run_world(name: str, seed: int, config: AnnotatorConfig,
              votes: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Every method on one draw of world ``name`` (``votes``: see :func:`with_votes_per_pair`)."""
    spec = WORLDS[name] if votes is None else with_votes_per_pair(WORLDS[name], votes)
    world = simulate_world(spec, seed=seed)
    frame = world.model_frame()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    model = AnnotatorModel(config).fit(frame)
    seconds = time.perf_counter() - start
    scores = {**verdict_scores(world, model.reviewer_estimates_, model.n_schools_),
              **pair_verdict_scores(world, model.pair_estimates_, config.ambiguity_min_variance)}
    rows.append({"world": name, "seed": seed, "method": "dissensus", "seconds": seconds,
                 **scores, "summary": model.fit_summary_.get("diagnostics", {}).get("verdicts")})
    votes = (label_votes(frame) if world.spec.label_task
             else world.judgments.select("reviewer_id", "pair_id", "outcome"))
    peer_seconds: dict[str, float] = {}
    for peer, fn in PEERS.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            series = fn(votes)
        peer_seconds[peer] = time.perf_counter() - start
        rows.append({"world": name, "seed": seed, "method": peer, "seconds": peer_seconds[peer],
                     **verdict_scores(world, series_frame(series))})
    oracle = verdict_scores(world, oracle_reliability(world))
    blind = verdict_scores(world, margin_blind_oracle_reliability(world, seed=seed))
    rows.append({"world": name, "seed": seed, "method": "oracle", **oracle})
    rows.append({"world": name, "seed": seed, "method": "oracle_blind", **blind})
    for row in rows:
        for column, ceiling in (("vs_oracle", oracle), ("vs_blind", blind)):
            if "bottom_k_precision" in row and ceiling.get("bottom_k_precision"):
                row[column] = row["bottom_k_precision"] / ceiling["bottom_k_precision"]
        if row.get("seconds") is not None and peer_seconds["glad"] > 0:
            row["x_glad"] = row["seconds"] / peer_seconds["glad"]
    return rows


def truth_start(name: str, seed: int, config: AnnotatorConfig) -> dict[str, Any]:
    """Can the model hold the world's true schools at all? The K-school EM started from the
    true memberships against the fit with one school fewer (both as ``n_schools='auto'`` runs
    them: no pooling, no features, no cues): where even this start gains little and its schools
    dissolve, the votes do not carry K schools for this model, whatever the search."""
    from sklearn.metrics import adjusted_rand_score

    from dissensus.models.annotator.data import encode_frame
    from dissensus.models.annotator.grid_em import GridEM

    world = simulate_world(name, seed=seed)
    k = world.true_k
    enc = encode_frame(world.model_frame())
    cfg = config.model_copy(update={"pool_responses": False, "response_features": False,
                                    "lapse_cues": False})
    truth = world.reviewers
    school = dict(zip(truth["reviewer_id"], truth["school_index"], strict=True))
    rushed = dict(zip(truth["reviewer_id"], truth["is_rushed"], strict=True))
    true_school = np.array([school[r] for r in enc.reviewer_ids])
    careful = ~np.array([rushed[r] for r in enc.reviewer_ids])
    init = np.full((true_school.size, k), 0.05)
    init[np.arange(true_school.size), true_school] = 1.0
    one = GridEM(enc.judgments, 1, cfg).run()
    fewer = one if k == 2 else GridEM(enc.judgments, k - 1, cfg).run(warm=one)
    held = GridEM(enc.judgments, k, cfg).run(school_init=init / init.sum(1, keepdims=True),
                                             warm=one)
    found = held.school_probs().argmax(axis=1)
    return {"world": name, "seed": seed, "k": k,
            "elpd_gain_vs_fewer": round(float(held.loo.sum() - fewer.loo.sum()), 1),
            "elpd_gain_vs_one": round(float(held.loo.sum() - one.loo.sum()), 1),
            "ari_after_truth_start": round(float(adjusted_rand_score(true_school[careful],
                                                                     found[careful])), 2),
            "sweeps": held.n_iter, "swinging": held.swinging}


def run_audit(name: str, seed: int, config: AnnotatorConfig, workdir: Path,
              gold_share: float = 0.0) -> dict[str, Any]:
    """One draw of world ``name`` through the product path: its judgments written as the data
    contract's rows, ingested into a fresh warehouse, fitted as ``dissensus fit`` does (no reply
    content: the suite's replies are placeholders) and audited as ``dissensus reviewers`` does;
    the audit's verdicts scored against the truth (:func:`audit_scores`). ``gold_share``: that
    share of the pairs are gold questions the audit reads (the fit does not)."""
    from dissensus.analytics.audit import MINORITY_VIEW, reviewer_audit
    from dissensus.analytics.jobs.fit import run_fit
    from dissensus.warehouse.db import connect
    from dissensus.warehouse.ingest import ingest_file

    world = simulate_world(name, seed=seed)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}-{seed}.jsonl"
    rows = comparison_rows(world, gold_share=gold_share)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    db = workdir / f"{name}-{seed}.duckdb"
    db.unlink(missing_ok=True)
    con = connect(db)
    try:
        ingest_file(con, path)
        run_fit(con, config.model_copy(update={"features": "none"}), db_path=db)
        audit = reviewer_audit(con)
    finally:
        con.close()
    verdicts = audit["verdict"].value_counts().sort("count", descending=True)
    return {"world": name, "seed": seed, **audit_scores(world, audit, MINORITY_VIEW),
            "verdicts": dict(zip(verdicts["verdict"], verdicts["count"], strict=True))}


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Every per-seed figure as JSON (NaN as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, default=lambda v: None if v != v else v, indent=1))


def summarise(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Means over seeds, one row per world and method, in the order of the suite."""
    frame = pl.DataFrame([{RENAME.get(k, k): v for k, v in r.items() if k != "summary"}
                          for r in rows], infer_schema_length=None)
    pooled = []
    if {"flagged_n", "rushed_flagged_n", "careless_flagged_n"} <= set(frame.columns):
        # the draws pooled: flags summed over seeds, then divided (a draw with no flag adds
        # nothing to precision, where the per-draw mean skips it and a draw with one flag
        # counts 0 or 1)
        flags = pl.col("flagged_n").sum()
        pooled = [
            pl.when(flags > 0).then(pl.col("rushed_flagged_n").sum() / flags).round(3)
            .alias("prec_pooled"),
            pl.when(pl.col("n_rushed").sum() > 0).then(
                pl.col("rushed_flagged_n").sum() / pl.col("n_rushed").sum()).round(3)
            .alias("rec_pooled"),
            pl.when(flags > 0).then(pl.col("careless_flagged_n").sum() / flags).round(3)
            .alias("careless_prec_pooled"),
        ]
    present = [c for c in COLUMNS if c in frame.columns]
    out = frame.group_by("world", "method", maintain_order=True).agg(
        pl.len().alias("seeds"), *(pl.col(c).cast(pl.Float64).fill_nan(None).mean().round(3)
                                   for c in present), *pooled)
    return out.select("world", "method", "seeds",
                      *[c for c in COLUMNS if c in out.columns])


def main(argv: list[str] | None = None) -> pl.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", default=",".join(WORLDS),
                        help=f"comma-separated worlds (default all: {', '.join(WORLDS)})")
    parser.add_argument("--seeds", type=int, default=3, help="draws of each world")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="annotator config override, e.g. --set n_schools=1")
    parser.add_argument("--json", type=Path, default=None, help="write per-seed rows here")
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the gold sets (RTE, temporal, bluebirds) on their gold")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/out/robustness"))
    parser.add_argument("--votes-per-pair", default=None, metavar="LOW,HIGH",
                        help="redraw each world with this many votes per pair and as many "
                             "fewer pairs (each reviewer's workload kept): how much of a gap "
                             "to the oracle is what the pairs' few votes leave unknown")
    parser.add_argument("--audit", action="store_true",
                        help="only: run each world through the product path (ingest, the fit "
                             "job, the reviewer audit) and score the audit's verdicts")
    parser.add_argument("--gold-share", type=float, default=0.0, metavar="SHARE",
                        help="with --audit: make about this share of the pairs gold questions "
                             "(clear, uncontested pairs, the consensus side as the answer)")
    parser.add_argument("--truth-start", action="store_true",
                        help="only: for worlds with schools, start the true K from the true "
                             "schools and compare with one school fewer (see truth_start)")
    args = parser.parse_args(argv)
    unknown = [w for w in args.worlds.split(",") if w and w not in WORLDS]
    if unknown:
        parser.error(f"unknown world(s) {', '.join(unknown)}; the suite has: {', '.join(WORLDS)}")
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = (None if value == "null" else json.loads(value)
                          if value[:1] in "0123456789-[{tf\"" else value)
    try:
        config = AnnotatorConfig(**overrides)
    except ValidationError as error:
        parser.error("--set: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                           for e in error.errors()))
    votes = None
    if args.votes_per_pair:
        try:
            low, high = (int(v) for v in args.votes_per_pair.split(","))
        except ValueError:
            parser.error(f"--votes-per-pair: expected two whole numbers LOW,HIGH, got "
                         f"{args.votes_per_pair!r}")
        if not 1 <= low <= high:
            parser.error(f"--votes-per-pair: expected 1 <= LOW <= HIGH, got {low},{high}")
        votes = (low, high)
    if not 0.0 <= args.gold_share < 1.0:
        parser.error(f"--gold-share: expected a share in [0, 1), got {args.gold_share}")
    if args.gold_share and not args.audit:
        parser.error("--gold-share: only the audit reads gold questions; add --audit")
    modes = [flag for flag, on in (("--audit", args.audit), ("--truth-start", args.truth_start),
                                   ("--votes-per-pair", votes is not None)) if on]
    if len(modes) > 1:
        parser.error(f"{' and '.join(modes)} cannot be combined: choose one")
    audited_worlds = [w for w in args.worlds.split(",") if w and not WORLDS[w].label_task]
    if args.audit and not audited_worlds:
        parser.error("--audit: the worlds asked for are all label tasks, which have no reply "
                     "order to write; name at least one other world")
    if args.truth_start:
        held = [truth_start(name, seed, config)
                for name in args.worlds.split(",") if name and WORLDS[name].n_schools > 1
                for seed in range(args.seeds)]
        with pl.Config(tbl_rows=100, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
            print(pl.DataFrame(held))
        return pl.DataFrame(held)
    if args.audit:
        audited = []
        for name in [w for w in args.worlds.split(",") if w]:
            if name not in audited_worlds:
                print(f"{name}: a label task has no reply order to write; skipped")
                continue
            for seed in range(args.seeds):
                audited.append(run_audit(name, seed, config, args.workdir / "audit",
                                         args.gold_share))
                print(f"{name} seed {seed}: {audited[-1]['verdicts']}", flush=True)
        table = pl.DataFrame([{k: v for k, v in r.items() if k != "verdicts"} for r in audited])
        table = table.group_by("world", maintain_order=True).agg(
            pl.len().alias("seeds"), pl.exclude("world", "seed").cast(pl.Float64).fill_nan(None)
            .mean().round(3))
        with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=250,
                       tbl_hide_dataframe_shape=True):
            print(table)
        if args.json:
            write_rows(args.json, audited)
        return table
    rows: list[dict[str, Any]] = []
    for name in [w for w in args.worlds.split(",") if w]:
        for seed in range(args.seeds):
            drawn = run_world(name, seed, config, votes)
            rows.extend(drawn)
            done = drawn[0]  # the fit's row
            print(f"{name} seed {seed}: flagged careful {done.get('careful_flagged_n', 0):.0f}, "
                  f"K {done.get('k_chosen')}, {done['seconds']:.1f} s, verdicts {done['summary']}",
                  flush=True)
    table = summarise(rows) if rows else pl.DataFrame({"world": []})
    with pl.Config(tbl_rows=200, tbl_cols=30, tbl_width_chars=250, tbl_hide_dataframe_shape=True):
        print(table)
    if args.real:
        args.workdir.mkdir(parents=True, exist_ok=True)
        with pl.Config(tbl_rows=50, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
            print(real_gold(config, args.workdir))
    if args.json:
        write_rows(args.json, rows)
    return table



# ---------------------------------------------------------------- real labels with gold


def over_callers(frame: pl.DataFrame, share: float, seed: int) -> set[str]:
    """The workers :func:`over_call` makes over-call (the same draw)."""
    rng = np.random.default_rng(seed)
    workers = frame["reviewer_id"].unique().sort().to_list()
    return set(rng.choice(workers, size=round(share * len(workers)), replace=False).tolist())


def over_call(frame: pl.DataFrame, share: float, rate: float, seed: int) -> pl.DataFrame:
    """Make ``share`` of the workers over-call one label: each of their votes for the other
    label becomes a vote for it with probability ``rate`` (gold unchanged).

    The two labels of each gold set are fixed replies of different lengths; which one is
    response 1 is the pair's canonical order, a coin flip per item, so "the longer label" is one
    label and "response 1" is not."""
    chosen = over_callers(frame, share, seed)
    rng = np.random.default_rng(seed + 1)
    favoured = np.where(frame["response_1_length"] > frame["response_2_length"], 1, -1)
    other = frame["outcome"].to_numpy() == -favoured
    flip = frame["reviewer_id"].is_in(list(chosen)).to_numpy() & other
    flip &= rng.random(frame.height) < rate
    return frame.with_columns(pl.Series("outcome", np.where(flip, favoured, frame["outcome"]),
                                        dtype=pl.Int8))


def real_gold(config: AnnotatorConfig, workdir: Path) -> pl.DataFrame:
    """Spearman of each method's reliability with accuracy against gold, on the gold sets of
    :mod:`gold_sets` as they are and with 60% of the workers over-calling one label (half their
    votes for the other label turned); there also the precision and recall of the fit's flags
    for the over-callers. For the fit, the mean gold accuracy of the workers it flags and of
    the rest."""
    from gold_sets import gold_warehouses
    from scipy.stats import spearmanr

    from dissensus.warehouse.queries import model_frame

    rows = []
    for fmt, con in gold_warehouses(workdir):
        base = model_frame(con)
        gold = con.sql("SELECT comparison_id, gold_outcome FROM comparisons").pl()
        for variant, frame in (("as is", base), ("60% over-call", over_call(base, 0.6, 0.5, 0))):
            acc = (frame.join(gold, on="comparison_id")
                   .filter(pl.col("gold_outcome").is_not_null())
                   .group_by("reviewer_id")
                   .agg(accuracy=(pl.col("outcome") == pl.col("gold_outcome")).mean()))
            model = AnnotatorModel(config).fit(frame)
            fitted = model.reviewer_estimates_
            methods = {"dissensus": fitted.select("reviewer_id", "reliability"),
                       "dissensus agreement": fitted.select("reviewer_id",
                                                            reliability=pl.col("agreement"))}
            votes = label_votes(frame)
            for peer in ("majority", "dawid_skene"):
                methods[peer] = series_frame(PEERS[peer](votes))
            flagged = set(fitted.filter(pl.col("flagged"))["reviewer_id"].to_list())
            leaners = over_callers(base, 0.6, 0) if variant != "as is" else set()
            found = len(flagged & leaners)
            by_flag = acc.with_columns(flagged=pl.col("reviewer_id").is_in(list(flagged)))
            flagged_acc, ok_acc = (by_flag.filter(pl.col("flagged") == side)["accuracy"].mean()
                                   for side in (True, False))
            for method, est in methods.items():
                j = acc.join(est, on="reviewer_id")
                ours = method == "dissensus"
                rows.append({"data": f"{fmt} ({variant})", "method": method,
                             "workers": j.height,
                             "flagged": len(flagged) if ours else None,
                             # the failure to watch: flagged reviewers as accurate as the rest
                             "gold_acc_flagged": (round(float(flagged_acc), 3)
                                                  if ours and flagged_acc is not None else None),
                             "gold_acc_rest": (round(float(ok_acc), 3)
                                               if ours and ok_acc is not None else None),
                             "over_callers_prec": (round(found / max(len(flagged), 1), 2)
                                                   if ours and leaners else None),
                             "over_callers_rec": (round(found / len(leaners), 2)
                                                  if ours and leaners else None),
                             "spearman_vs_gold": round(float(
                                 spearmanr(j["reliability"], j["accuracy"])[0]), 3)})
    return pl.DataFrame(rows)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
