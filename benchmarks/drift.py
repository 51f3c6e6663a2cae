"""Deployment drift: alarms, extrapolation and speed, side by side in one run.

    .venv/bin/python benchmarks/drift.py [--sims 20] [--rows 1000000] [--encoder all-MiniLM-L6-v2]
        [--ensemble 5] [--extrapolation-only] [--speed-only]

1. **Alarms.** A multi-head run is trained on the demo world (oracle fit, the real encoder).
   Pools of live turns are embedded and scored once: the baseline traffic, urgent-symptom
   messages that press to skip safety advice, and prescription-refill requests (a request type
   never judged). Each simulation draws ``--windows`` weekly windows of ``--per-cell`` turns per
   category from the baseline pool; a drift simulation replaces ``--drift-share`` of one
   category's turns from window 3 on (urgent: pressure; the others: refill requests filed under
   that category). ``dissensus drift``'s report (Benjamini-Hochberg at 5%) is then read: a
   false alarm is any alarm in a no-drift run; a detection is an alarm in the drifted category
   in window 3 or 4; "named" means no other category alarmed first. ``--tags`` says what
   the observability rates read: ``none`` (no rates, so no rate tests), ``predicted`` (the
   traffic carries no tags; the run's tag classifier tags it, as ``dissensus score`` does) or
   ``given`` (the simulated traffic's own tags and thumbs feedback).
2. **Extrapolation.** A plain run trained without the billing category scores held-out pairs of
   a fresh world (billing is the new request type); pairs are cut into deciles of their
   extrapolation distance (the larger of the two replies') and the error against the world's
   consensus margin is reported per decile. The run is trained with ``--ensemble N`` members
   (default 5), and the same table is made for the ensemble spread (the larger of the two
   replies'), for the members' spread of the pair's margin, and for the margin's leverage
   under a ridge fit on the training replies' joint features (three ridge strengths); training
   time with and without the ensemble is reported beside it.
3. **Speed.** Scoring from cached embeddings (heads, kNN distance, projection) in turns per
   second; ``drift_report`` on a traffic table of ``--rows`` scored turns.
4. **Reward-shift power** (``--reward-power``, alone): could a test of the heads' rewards find
   the pressure that the embedding tests miss at ``--per-cell`` turns? Draws of one baseline
   cell against a cell with ``--drift-share`` pressured turns, each head's rewards compared by
   Welch's t-test and the Mann-Whitney test; the share of draws below p = 0.05, 0.005 and
   0.0008 (about what one discovery among the report's 60-odd tests needs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from dissensus.analytics.drift.report import drift_report
from dissensus.analytics.jobs.reward import train_run
from dissensus.analytics.jobs.traffic import (
    Scorer,
    load_scorer,
    standardised_head_names,
    turn_features,
)
from dissensus.models.reward.config import make_config
from dissensus.models.reward.oracle import write_oracle_fit
from dissensus.warehouse.db import connect, connect_memory
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic
from dissensus.warehouse.ids import text_id
from dissensus.warehouse.ingest import ingest_file

CATEGORIES = ("scheduling", "cancellation", "billing", "account_access", "urgent_symptoms")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_run(folder: Path, world: pl.DataFrame, name: str, kind: str, config: dict,
              judgments=None, reviewers=None, schools: int = 2) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    """A warehouse of ``world`` comparisons with a trained run; (open connection, run id)."""
    path = folder / f"{name}.parquet"
    world.write_parquet(path)
    for old in (f"{name}.duckdb", f"{name}.duckdb.wal"):  # a reused folder keeps only its cache
        (folder / old).unlink(missing_ok=True)
    con = connect(folder / f"{name}.duckdb")
    ingest_file(con, path)
    if judgments is not None:
        write_oracle_fit(con, judgments, reviewers, schools)
    run = train_run(con, kind, None, make_config(kind, **config), log=lambda _: None,
                    cache_folder=folder / "embeddings")
    return con, run


def embedded_pool(scorer: Scorer, rows: pl.DataFrame) -> dict[str, np.ndarray]:
    """Embed (cached) a frame of turns; prompt and reply embeddings."""
    prompts, replies = rows["prompt"].to_list(), rows["response"].to_list()
    ids = [text_id(t) for t in prompts + replies]
    embedded = scorer.embed(ids, prompts + replies)
    return {"prompt": embedded[: rows.height], "reply": embedded[rows.height:]}


def pools(scorer: Scorer, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """The baseline, pressured-urgent and refill pools, scored, with categories."""
    specs = {
        "baseline": TrafficConfig(turns_per_week=2000, n_weeks=1, drift_from_week=99,
                                  ab_share=0.0, seed=seed),
        "pressure": TrafficConfig(turns_per_week=400, n_weeks=1, drift_from_week=1,
                                  drifted_urgent_share=1.0, new_type_share=0.0,
                                  pressure_share=1.0, ab_share=0.0, seed=seed + 1),
        "refill": TrafficConfig(turns_per_week=400, n_weeks=1, drift_from_week=1,
                                drifted_urgent_share=0.0, new_type_share=1.0, ab_share=0.0,
                                seed=seed + 2),
    }
    out = {}
    for name, config in specs.items():
        rows, _ = simulate_traffic(config)
        started = time.perf_counter()
        emb = embedded_pool(scorer, rows)
        log(f"pool {name}: {rows.height} turns embedded in {time.perf_counter() - started:.0f} s")
        features = turn_features(scorer.checkpoint, emb["prompt"], emb["reply"])
        predicted = scorer.tags.predict(features) if scorer.tags else [None] * rows.height
        out[name] = {**emb, "category": rows["category"].to_numpy(),
                     "tags": _objects(rows["response_tags"].to_list()),
                     "predicted_tags": _objects(predicted),
                     "feedback": _objects(rows["user_feedback"].to_list())}
    live = np.concatenate([turn_features(scorer.checkpoint, p["prompt"], p["reply"])
                           for p in out.values()])
    scorer.reference.refit_projection(np.concatenate([scorer.reference_features, live]))
    rows = scorer.reference_rows
    scorer.reference_rows = rows.with_columns(pl.Series("projection", scorer.reference.project(
        scorer.reference_features[rows["_item"].to_numpy()]).tolist(), pl.List(pl.Float32)))
    for pool in out.values():
        pool.update(scorer.score(pool["prompt"], pool["reply"]))
    return out


def _objects(values: list) -> np.ndarray:  # type: ignore[type-arg]
    """A list (of lists or None) as a 1-d object array, indexable like the numeric signals."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def warehouse_for(scorer: Scorer, signals: dict[str, np.ndarray], windows: np.ndarray,
                  categories: np.ndarray, con=None, tags: str = "none"):  # type: ignore[no-untyped-def]
    """A warehouse holding scored traffic with these signals (reference rows included);
    ``tags``: none, predicted (the classifier's, traffic untagged) or given (with feedback)."""
    con = con or connect_memory()
    n = len(windows)
    given = tags == "given" and "tags" in signals
    heads = standardised_head_names(scorer.checkpoint)
    start = np.datetime64("2026-06-01T09:00:00")
    created = start + windows.astype("timedelta64[W]") + (
        np.arange(n) % 5000).astype("timedelta64[m]")
    created = created.astype("datetime64[us]")
    ids = pl.Series("traffic_id", np.arange(n)).cast(pl.String)
    traffic = pl.DataFrame({
        "traffic_id": ids, "id_given": True, "row_hash": ids, "batch_id": 1,
        "source_line": np.arange(n), "created_at": created, "prompt_id": ids,
        "response_text_id": ids, "category": categories, "model": None,
        "tags": pl.Series(list(signals["tags"]) if given else [None] * n,
                          dtype=pl.List(pl.String)),
        "user_feedback": pl.Series(list(signals["feedback"]) if given else [None] * n,
                                   dtype=pl.String),
        "escalated": None, "conversation_id": None})
    scores = np.stack([signals[h] for h in heads], axis=1)
    rows = pl.DataFrame({
        "run_id": "bench", "traffic_id": ids, "source": "traffic", "category": categories,
        "knn_distance": signals["distance"], "knn_percentile": signals["percentile"],
        "school_spread": signals.get("spread", np.full(n, np.nan)),
        "contested": signals.get("contested"),
        "scores": pl.Series(scores.tolist(), dtype=pl.List(pl.Float64)),
        "projection": pl.Series(signals["projection"].tolist(), dtype=pl.List(pl.Float32)),
        "predicted_tags": pl.Series(
            list(signals["predicted_tags"]) if tags == "predicted" and "predicted_tags" in signals
            else [None] * n, dtype=pl.List(pl.String))})
    ref = scorer.reference_rows.select(
        pl.lit("bench").alias("run_id"), pl.col("rid").alias("traffic_id"), "source",
        "category", pl.col("distance").alias("knn_distance"),
        pl.col("percentile").alias("knn_percentile"), pl.col("spread").alias("school_spread"),
        "contested", "scores", "projection")
    for table, frame in (("traffic", traffic), ("traffic_signals", ref),
                         ("traffic_signals", rows)):
        con.register("_f", frame.to_arrow())
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _f")
        con.unregister("_f")
    con.execute("INSERT INTO traffic_runs (run_id, scored_at, heads, n_turns, n_reference, "
                "n_calibration, k, distance_p99) VALUES ('bench', now(), ?, ?, ?, ?, ?, ?)",
                [heads, n, int(scorer.reference.index.n_samples_fit_),
                 len(scorer.reference.calibration), scorer.reference.k, scorer.reference.p99])
    return con


def simulate(scorer: Scorer, pool: dict, seed: int, drift: str | None, args) -> dict:  # type: ignore[no-untyped-def]
    """One simulated deployment; what the report said."""
    rng = np.random.default_rng(seed)
    base = pool["baseline"]
    picks, windows, cats = [], [], []
    for w in range(args.windows):
        for c in CATEGORIES:
            where = np.flatnonzero(base["category"] == c)
            picks.append(("baseline", rng.choice(where, args.per_cell, replace=False)))
            windows += [w] * args.per_cell
            cats += [c] * args.per_cell
            if drift == c and w >= 2:
                k = round(args.drift_share * args.per_cell)
                source = "pressure" if c == "urgent_symptoms" else "refill"
                picks[-1] = ("mixed", (picks[-1][1][k:], source,
                                       rng.choice(len(pool[source]["distance"]), k,
                                                  replace=False)))
    keys = [k for k in pool["baseline"] if k not in ("prompt", "reply", "category")]
    signals = {k: [] for k in keys}
    for kind, chosen in picks:
        for k in keys:
            if kind == "baseline":
                signals[k].append(base[k][chosen])
            else:
                kept, source, extra = chosen
                signals[k].append(np.concatenate([base[k][kept], pool[source][k][extra]]))
    merged = {k: np.concatenate(v) for k, v in signals.items()}
    con = warehouse_for(scorer, merged, np.array(windows), np.array(cats), tags=args.tags)
    report = drift_report(con, "bench")
    con.close()
    alarms = report.cells.filter(pl.col("alarm")).with_columns(
        pl.col("window").rank("dense").alias("w"))
    weeks = sorted(report.cells["window"].unique().to_list())
    first = alarms.sort("window").head(1)
    return {
        "any_alarm": alarms.height > 0,
        "detected": drift is not None and alarms.filter(
            (pl.col("category") == drift) & pl.col("window").is_in(weeks[2:4])).height > 0,
        "named": drift is not None and first.height > 0 and first["category"][0] == drift,
        "alarmed_cells": alarms.select("window", "category").rows(),
        # which tests fired in the drifted category's windows 3-4
        "kinds": [] if drift is None else sorted({kind for row in alarms.filter(
            (pl.col("category") == drift) & pl.col("window").is_in(weeks[2:4])).iter_rows(
                named=True) for kind, hit in (("support", row["alarm_support"]),
                                              ("mmd", row["alarm_mmd"]),
                                              ("rates", bool(row["rate_changes"]))) if hit}),
    }


def by_decile(score: np.ndarray, wrong: np.ndarray, billing: np.ndarray) -> dict:
    """Error and billing share per decile of ``score``; top / bottom error ratio; ROC AUCs."""
    from sklearn.metrics import roc_auc_score

    decile = np.minimum((pl.Series(score).rank("ordinal").to_numpy() - 1) * 10
                        // len(score), 9)
    table = [{"decile": d + 1, "pairs": int((decile == d).sum()),
              "error": float(wrong[decile == d].mean()),
              "billing_share": float(billing[decile == d].mean())} for d in range(10)]
    return {"deciles": table,
            "ratio_top_bottom": table[9]["error"] / max(table[0]["error"], 1e-9),
            "auc_error": float(roc_auc_score(wrong, score)),
            "auc_billing": float(roc_auc_score(billing, score))}


def timed_train(con, config: dict, folder: Path) -> tuple[str, float, dict]:  # type: ignore[no-untyped-def, type-arg]
    """Train a plain run on an open warehouse whose texts are cached and whose encoder is
    loaded; (run id, wall seconds, metrics)."""
    started = time.perf_counter()
    run = train_run(con, "plain", None, make_config("plain", **config), log=lambda _: None,
                    cache_folder=folder / "embeddings")
    seconds = time.perf_counter() - started
    metrics = json.loads(con.execute("SELECT metrics FROM reward_runs WHERE run_id = ?",
                                     [run]).fetchall()[0][0])
    return run, seconds, metrics


def extrapolation(folder: Path, args) -> dict:  # type: ignore[no-untyped-def]
    """Error by decile of extrapolation distance and of ensemble spread on held-out pairs
    (billing never trained)."""
    world = simulate_world(WorldConfig(n_comparisons=args.comparisons, seed=11))
    train = world.comparisons.filter(pl.col("category") != "billing")
    config = {"encoder": args.encoder, "architecture": args.architecture}
    # the first run embeds the texts and loads the encoder; the timed runs find both ready
    con, _ = build_run(folder, train, "nobilling", "plain", config)
    _, seconds_single, _ = timed_train(con, config, folder)
    run, seconds, metrics = timed_train(con, {**config, "ensemble": args.ensemble}, folder)
    timing = {"train_seconds_without_ensemble": seconds_single,
              "train_seconds_with_ensemble": seconds, "ensemble": args.ensemble,
              "members_seconds": metrics.get("ensemble", {}).get("seconds"),
              "architecture": json.loads(con.execute(
                  "SELECT config FROM reward_runs WHERE run_id = ?", [run]).fetchall()[0][0]
              )["architecture"]}
    log(f"training without the ensemble {seconds_single:.1f} s, with {args.ensemble} members "
        f"{seconds:.1f} s")
    scorer = load_scorer(con, run, cache_folder=folder / "embeddings", log=log)
    fresh = simulate_world(WorldConfig(n_comparisons=args.comparisons, seed=12))
    pairs = fresh.pairs.filter(pl.col("kind") != "ambiguous").join(
        fresh.responses.select(pl.col("response_id").alias("response_1_id"),
                               pl.col("text").alias("text_1")), on="response_1_id").join(
        fresh.responses.select(pl.col("response_id").alias("response_2_id"),
                               pl.col("text").alias("text_2")), on="response_2_id")
    prompts = fresh.comparisons.select("prompt", "category").unique("prompt")
    prompt_text = dict(zip([text_id(p) for p in prompts["prompt"]], prompts["prompt"],
                           strict=True))
    p_texts = [prompt_text[p] for p in pairs["prompt_id"]]
    result, members, features = {}, {}, {}
    ensemble = scorer.checkpoint.ensemble
    for side in ("1", "2"):
        rows = pl.DataFrame({"prompt": p_texts, "response": pairs[f"text_{side}"]})
        emb = embedded_pool(scorer, rows)
        result[side] = scorer.score(emb["prompt"], emb["reply"])
        features[side] = np.asarray(turn_features(scorer.checkpoint, emb["prompt"],
                                                  emb["reply"]), np.float64)
        if ensemble is not None:  # every member's standardised reward, member 0 first
            members[side] = np.column_stack([result[side]["reward"], ensemble.scores(
                torch.as_tensor(emb["prompt"]), torch.as_tensor(emb["reply"]))])
    margin = result["1"]["reward"] - result["2"]["reward"]
    wrong = np.sign(margin) != np.sign(pairs["consensus_margin"].to_numpy())
    billing = (pairs["category"] == "billing").to_numpy()
    distance = np.maximum(result["1"]["distance"], result["2"]["distance"])
    out = {**by_decile(distance, wrong, billing),
           "error_billing": float(wrong[billing].mean()),
           "error_seen": float(wrong[~billing].mean()), "timing": timing}
    # the margin's leverage under a ridge fit on the training replies' joint
    # features, d' (X'X + l I)^-1 d with d the difference of the two replies' features
    train_x = np.asarray(scorer.reference_features, np.float64)
    centre = train_x.mean(axis=0)
    gram = (train_x - centre).T @ (train_x - centre)
    diff = features["1"] - features["2"]
    for ridge in (1e-3, 1e-1, 1.0):
        inverse = np.linalg.inv(gram + ridge * np.trace(gram) / gram.shape[0]
                                * np.eye(gram.shape[0]))
        leverage = np.einsum("ij,jk,ik->i", diff, inverse, diff)
        out[f"leverage_{ridge:g}"] = by_decile(leverage, wrong, billing)
    if ensemble is not None:
        spread = np.maximum(result["1"]["ensemble_spread"], result["2"]["ensemble_spread"])
        out["ensemble_spread"] = by_decile(spread, wrong, billing)
        # the members' disagreement about the pair itself: sd of their standardised margins
        out["ensemble_margin_spread"] = by_decile((members["1"] - members["2"]).std(axis=1),
                                                  wrong, billing)
        from scipy.stats import spearmanr

        out["spearman_spread_distance"] = float(spearmanr(spread, distance).statistic)
        out["ensemble_p99"] = scorer.ensemble_p99
    con.close()
    return out


def scoring_speed(scorer: Scorer, pool: dict, n: int) -> float:
    """Turns per second through heads, kNN distance and projection (embeddings cached)."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(pool["baseline"]["prompt"]), n)
    prompts, replies = pool["baseline"]["prompt"][idx], pool["baseline"]["reply"][idx]
    started = time.perf_counter()
    scorer.score(prompts, replies)
    return n / (time.perf_counter() - started)


def drift_speed(scorer: Scorer, pool: dict, rows: int, folder: Path) -> dict:
    """Seconds of ``drift_report`` on a warehouse file with ``rows`` scored turns."""
    rng = np.random.default_rng(1)
    base = pool["baseline"]
    idx = rng.integers(0, len(base["distance"]), rows)
    signals = {k: v[idx] for k, v in base.items() if k not in ("prompt", "reply", "category")}
    windows = rng.integers(0, 20, rows)
    for old in ("large.duckdb", "large.duckdb.wal"):
        (folder / old).unlink(missing_ok=True)
    con = connect(folder / "large.duckdb")
    started = time.perf_counter()
    warehouse_for(scorer, signals, windows, base["category"][idx], con)
    built = time.perf_counter() - started
    started = time.perf_counter()
    report = drift_report(con, "bench")
    seconds = time.perf_counter() - started
    con.close()
    return {"rows": rows, "cells": report.cells.height, "seconds": seconds,
            "load_seconds": built}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=20)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--per-cell", type=int, default=60)
    parser.add_argument("--drift-share", type=float, default=0.5)
    parser.add_argument("--comparisons", type=int, default=3000)
    parser.add_argument("--tags", choices=("none", "predicted", "given"), default="predicted",
                        help="what the observability rates read: nothing, the run's tag "
                        "classifier on untagged traffic, or the traffic's own tags and feedback")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--folder", type=Path, default=None,
                        help="work folder (reused: its embedding cache makes reruns fast)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--alarms-only", action="store_true",
                        help="skip the speed and extrapolation parts")
    parser.add_argument("--ensemble", type=int, default=5,
                        help="members of the extrapolation run's deep ensemble (1: none)")
    parser.add_argument("--architecture", default="auto",
                        help="the extrapolation run's head: auto (the default), mlp or linear")
    parser.add_argument("--extrapolation-only", action="store_true",
                        help="run only the extrapolation part")
    parser.add_argument("--reward-power", action="store_true",
                        help="run only the reward-shift power check (part 4)")
    parser.add_argument("--speed-only", action="store_true",
                        help="run only the speed part (train, embed the pools, time scoring and "
                             "drift_report)")
    args = parser.parse_args()
    if sum((args.alarms_only, args.extrapolation_only, args.speed_only, args.reward_power)) > 1:
        parser.error("choose one of --alarms-only, --extrapolation-only, --speed-only, "
                     "--reward-power")
    torch.manual_seed(0)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="dissensus-drift-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"encoder": args.encoder, "threads": torch.get_num_threads()}
    if args.extrapolation_only:
        results["extrapolation"] = extrapolation(folder, args)
        text = json.dumps(results, indent=1, default=str)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return
    world = simulate_world(WorldConfig(n_comparisons=args.comparisons, seed=0))
    started = time.perf_counter()
    con, run = build_run(folder, world.comparisons, "world", "multihead",
                         {"encoder": args.encoder}, world.judgments, world.reviewers,
                         len(world.schools))
    scorer = load_scorer(con, run, cache_folder=folder / "embeddings", log=log)
    log(f"trained {run} in {time.perf_counter() - started:.0f} s")
    pool = pools(scorer, seed=100)
    if args.reward_power:
        results["reward_power"] = reward_power(scorer, pool, args)
        text = json.dumps(results, indent=1, default=str)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return
    outcomes = {"none": [], "drift": []}
    for s in range(0 if args.speed_only else args.sims):
        outcomes["none"].append(simulate(scorer, pool, 1000 + s, None, args))
        drifted = CATEGORIES[s % len(CATEGORIES)]
        outcomes["drift"].append({**simulate(scorer, pool, 2000 + s, drifted, args),
                                  "category": drifted})
        log(f"simulation {s + 1}/{args.sims}: no-drift alarm "
            f"{outcomes['none'][-1]['any_alarm']}, drift in {drifted} detected "
            f"{outcomes['drift'][-1]['detected']}")
    if not args.speed_only:
        results["alarms"] = alarm_rates(outcomes, args)
    if not args.alarms_only:
        results["scoring_turns_per_second"] = scoring_speed(scorer, pool, 200_000)
        results["drift_report"] = drift_speed(scorer, pool, args.rows, folder)
    con.close()
    if not (args.alarms_only or args.speed_only):
        results["extrapolation"] = extrapolation(folder, args)
    text = json.dumps(results, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def reward_power(scorer: Scorer, pool: dict, args, draws: int = 500) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """Power of a reward-shift test per head on urgent cells (see part 4 of the docstring)."""
    from scipy import stats

    rng = np.random.default_rng(0)
    base, pressed = pool["baseline"], pool["pressure"]
    in_base = base["category"] == "urgent_symptoms"
    in_pressed = pressed["category"] == "urgent_symptoms"
    k = round(args.drift_share * args.per_cell)
    out: dict[str, dict] = {}  # type: ignore[type-arg]
    for head in standardised_head_names(scorer.checkpoint):
        x, y = base[head][in_base], pressed[head][in_pressed]
        found = {"t": [], "mann_whitney": []}  # type: ignore[var-annotated]
        for _ in range(draws):
            calm = rng.choice(x, args.per_cell, replace=False)
            mixed = np.concatenate([rng.choice(x, args.per_cell - k, replace=False),
                                    rng.choice(y, k, replace=False)])
            found["t"].append(stats.ttest_ind(calm, mixed, equal_var=False).pvalue)
            found["mann_whitney"].append(stats.mannwhitneyu(calm, mixed).pvalue)
        out[head] = {"effect_sd": float((y.mean() - x.mean()) / x.std()), **{
            test: {f"power_at_{level:g}": float(np.mean(np.array(ps) <= level))
                   for level in (0.05, 0.005, 0.0008)} for test, ps in found.items()}}
        log(f"{head}: pressured replies {out[head]['effect_sd']:+.2f} sd; " + "; ".join(
            f"{test} power {v['power_at_0.05']:.3f} / {v['power_at_0.005']:.3f} / "
            f"{v['power_at_0.0008']:.3f}" for test, v in out[head].items() if test != "effect_sd"))
    return {"per_cell": args.per_cell, "drift_share": args.drift_share, "draws": draws,
            "heads": out}


def alarm_rates(outcomes: dict[str, list[dict]], args) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """False-alarm, detection and naming rates of the simulations."""
    return {
        "false_alarm_rate": float(np.mean([o["any_alarm"] for o in outcomes["none"]])),
        "detection_rate": float(np.mean([o["detected"] for o in outcomes["drift"]])),
        "named_rate": float(np.mean([o["named"] for o in outcomes["drift"]])),
        "by_category": {c: float(np.mean([o["detected"] for o in outcomes["drift"]
                                          if o["category"] == c])) for c in CATEGORIES},
        "detected_by": {kind: int(sum(kind in o["kinds"] for o in outcomes["drift"]))
                        for kind in ("support", "mmd", "rates")},
        "false_alarm_cells": [o["alarmed_cells"] for o in outcomes["none"] if o["any_alarm"]],
        "sims": args.sims, "windows": args.windows, "per_cell": args.per_cell,
        "drift_share": args.drift_share, "tags": args.tags}


if __name__ == "__main__":
    main()
