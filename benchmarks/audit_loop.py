"""Audit loop: does reviewing the product's audit sample and retraining pay, against random turns?

    .venv/bin/python benchmarks/audit_loop.py [--seeds 3] [--n 200] [--votes 3]
        [--comparisons 3000] [--drifted billing] [--keep-share 0.0] [--turns-per-week 300]
        [--audit-batch-cap 1.0] [--kind multihead] [--folder WORK] [--out results.json]

Per seed:

1. **A run that never saw one category.** A demo world (``--comparisons``) loses the
   ``--drifted`` category's comparisons (all of them, or all but ``--keep-share`` of its pairs);
   a ``--kind`` run (default multihead on an oracle fit, so ``contested`` has school heads to
   read) is trained on the rest with the product's ``train_run`` and default settings.
2. **Live traffic** from the demo traffic simulator (six weeks, the last three drifted: more
   urgent messages under pressure, prescription-refill requests), ingested with
   ``ingest_traffic_file`` (``dissensus traffic ingest``) and scored with ``score_traffic``.
3. **Audit.** For each strategy (extrapolating, contested, stratified) ``audit_sample`` picks
   ``--n`` turns and ``write_audit_sample`` writes them; the random baseline is ``--n`` turns
   drawn uniformly from the same function's output over every turn, so it has the same format
   and the same pairing. Each turn is judged by ``--votes`` simulated reviewers
   (benchmarks/audit_review.py: the world's own crowd on the true utilities); single turns are
   paired with an unserved model's reply first, as a labelling team would. The judged file is
   ingested with ``ingest_file`` as one more batch (``audit-<run>-<date>``, so
   ``audit_batch_cap`` applies), the oracle fit is extended to its judgments, and the run is
   retrained with the same config in a copy of the warehouse.
4. **Accuracy** of the consensus head (the only head for one-head kinds) against the consensus
   margin on the non-ambiguous pairs of one fresh world (seed 1000, fresh prompts,
   ``--eval-comparisons``; every pair of the drifted category, ``--eval-other`` of the rest),
   in the drifted category and in the others, before and after each retraining.

One table on stdout: per arm the mean over seeds of the drifted category's accuracy before and
after, its gain (each seed's in brackets), the gain minus the random baseline's gain of the
same seed, and the accuracy elsewhere; progress lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from dissensus.analytics.drift.audit import (
    STRATEGIES,
    AuditSample,
    audit_sample,
    write_audit_sample,
)
from dissensus.analytics.jobs.reward import embedding_cache, load_run, train_run
from dissensus.analytics.jobs.traffic import score_traffic
from dissensus.models.reward.config import make_config
from dissensus.models.reward.oracle import write_oracle_fit
from dissensus.models.reward.pipeline import model_inputs
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import DemoWorld, WorldConfig, simulate_world
from dissensus.warehouse.demo.traffic import TrafficConfig, simulate_traffic, write_traffic
from dissensus.warehouse.ids import text_id
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.traffic import ingest_traffic_file

sys.path.insert(0, str(Path(__file__).parent))
from audit_review import paired, review, traffic_truth
from drift import build_run, log

ARMS = (*STRATEGIES, "random")


def quiet(_: str) -> None:
    """Swallow the trainer's log lines (the benchmark prints its own progress)."""


def training_world(world: DemoWorld, drifted: str, keep_share: float,
                   seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(comparisons, truth judgments) without the drifted category, but for ``keep_share``
    of its pairs (whole pairs, so the category is underweighted rather than noisier)."""
    pairs = world.pairs.filter(pl.col("category") == drifted)["pair_id"]
    kept = pairs.sample(fraction=keep_share, seed=seed) if keep_share > 0 else pairs.head(0)
    judged = world.judgments.select("comparison_id", "pair_id")
    keep = judged.filter(~pl.col("pair_id").is_in(pairs.implode())
                         | pl.col("pair_id").is_in(kept.implode()))["comparison_id"]
    rows = world.comparisons.filter(pl.col("comparison_id").is_in(keep.implode()))
    return rows, world.judgments.filter(pl.col("comparison_id").is_in(keep.implode()))


def held_out_pairs(comparisons: int, seed: int, drifted: str, others: int) -> pl.DataFrame:
    """Non-ambiguous pairs of a fresh world: prompt, text_1, text_2, category, margin; every
    pair of the drifted category and ``others`` of the rest (the drifted category is the one
    measured most finely; the rest only has to show that nothing got worse)."""
    fresh = simulate_world(WorldConfig(n_comparisons=comparisons, seed=seed))
    texts = fresh.responses.select("response_id", "text")
    prompts = fresh.comparisons.select("prompt").unique()
    prompt_text = dict(zip([text_id(p) for p in prompts["prompt"]], prompts["prompt"],
                           strict=True))
    pairs = fresh.pairs.filter(pl.col("kind") != "ambiguous").join(
        texts.rename({"response_id": "response_1_id", "text": "text_1"}), on="response_1_id"
    ).join(texts.rename({"response_id": "response_2_id", "text": "text_2"}), on="response_2_id")
    rest = pairs.filter(pl.col("category") != drifted)
    pairs = pl.concat([pairs.filter(pl.col("category") == drifted),
                       rest.sample(min(others, rest.height), seed=seed)])
    return pairs.select(
        pl.col("prompt_id").replace_strict(prompt_text).alias("prompt"), "text_1", "text_2",
        "category", pl.col("consensus_margin").alias("margin"))


def accuracy(con, run: str, pairs: pl.DataFrame, folder: Path, drifted: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Share of held-out pairs whose consensus-head margin has the sign of the world's
    consensus margin, in the drifted category and elsewhere."""
    _, checkpoint, encoder = load_run(con, run)
    bodies = pl.concat([pairs["prompt"], pairs["text_1"], pairs["text_2"]]).unique().to_list()
    index = {b: i for i, b in enumerate(bodies)}
    embedded, _ = model_inputs(checkpoint.config, encoder,
                               embedding_cache(con, folder / "embeddings"),
                               [text_id(b) for b in bodies], bodies, None)
    emb = torch.as_tensor(embedded)

    def rows(column: str) -> torch.Tensor:
        return emb[[index[b] for b in pairs[column]]]

    model = checkpoint.model.eval()
    with torch.inference_mode():  # the consensus head is the last output of school-head kinds
        margin = (model(rows("prompt"), rows("text_1")) - model(rows("prompt"), rows("text_2"))
                  )[:, -1].float().numpy()
    right = np.sign(margin) == np.sign(pairs["margin"].to_numpy())
    mask = (pairs["category"] == drifted).to_numpy()
    return {"drifted": float(right[mask].mean()), "other": float(right[~mask].mean())}


def samples(con, run: str, n: int, seed: int) -> dict[str, AuditSample]:  # type: ignore[no-untyped-def]
    """The product's sample per strategy, and the random baseline of the same size."""
    out = {s: audit_sample(con, run, n, s) for s in STRATEGIES}
    turns = int(con.execute("SELECT count(*) FROM traffic_signals WHERE run_id = ? AND "
                            "source = 'traffic'", [run]).fetchall()[0][0])
    # every turn through the product's pairing, then n of them at random: the baseline differs
    # from the strategies only in which turns it reviews
    everything = audit_sample(con, run, turns, "extrapolating")
    ids = pl.concat([everything.pairs["traffic_id"], everything.singles["traffic_id"]])
    picked = ids.sample(n, seed=seed).implode()
    reason = pl.lit("random baseline: drawn uniformly from every scored turn").alias(
        "audit_reason")
    out["random"] = AuditSample(
        everything.batch,
        everything.pairs.filter(pl.col("traffic_id").is_in(picked)).with_columns(reason),
        everything.singles.filter(pl.col("traffic_id").is_in(picked)).with_columns(reason),
        ["random baseline"])
    return out


def retrain(folder: Path, name: str, base: Path, judged: Path, judgments: pl.DataFrame,
            world: DemoWorld, args: argparse.Namespace) -> tuple[object, str, dict]:  # type: ignore[type-arg]
    """A copy of the base warehouse with the judged audit file ingested and the run retrained;
    (open connection, run id, ingest summary)."""
    path = folder / f"{name}.duckdb"
    for old in (path, path.with_name(path.name + ".wal")):
        old.unlink(missing_ok=True)
    shutil.copy(base, path)
    con = connect(path)
    report = ingest_file(con, judged)
    fit = None
    if make_config(args.kind).needs_fit:
        fit = write_oracle_fit(con, judgments, world.reviewers, len(world.schools),
                               fit_id=f"oracle-{name}")
    config = make_config(args.kind, encoder=args.encoder, audit_batch_cap=args.audit_batch_cap)
    run = train_run(con, args.kind, fit, config, log=quiet, cache_folder=folder / "embeddings")
    summary = {"accepted": report.accepted, "quarantined": report.quarantined}
    return con, run, summary


def one_seed(seed: int, args: argparse.Namespace, folder: Path,
             held: pl.DataFrame) -> dict[str, dict]:  # type: ignore[type-arg]
    """Every arm's sample composition and accuracies for one seed (every seed's files in one
    folder, so one embedding cache serves them all)."""
    started = time.perf_counter()
    world = simulate_world(WorldConfig(n_comparisons=args.comparisons, seed=seed))
    rows, judgments = training_world(world, args.drifted, args.keep_share, seed)
    needs_fit = make_config(args.kind).needs_fit
    con, run = build_run(folder, rows, f"base-{seed}", args.kind, {"encoder": args.encoder},
                         judgments if needs_fit else None, world.reviewers,
                         len(world.schools))
    log(f"seed {seed}: base run {run} on {rows.height} comparisons "
        f"({time.perf_counter() - started:.0f} s)")
    traffic, truth = simulate_traffic(TrafficConfig(turns_per_week=args.turns_per_week,
                                                    seed=100 + seed, alternatives=True))
    ingest_traffic_file(con, write_traffic(traffic, truth,
                                           folder / f"traffic-{seed}")["traffic"])
    score_traffic(con, run, cache_folder=folder / "embeddings", log=quiet)
    log(f"seed {seed}: {traffic.height} traffic turns ingested and scored "
        f"({time.perf_counter() - started:.0f} s)")
    before = accuracy(con, run, held, folder, args.drifted)
    log(f"seed {seed}: before the audit, {args.drifted} accuracy {before['drifted']:.3f}, "
        f"elsewhere {before['other']:.3f} ({time.perf_counter() - started:.0f} s)")
    picked = samples(con, run, args.n, seed)
    con.close()
    lookup = traffic_truth(traffic, truth, world.schools)
    out: dict[str, dict] = {}  # type: ignore[type-arg]
    for k, arm in enumerate(ARMS):
        sample = picked[arm]
        name = f"{arm}-{seed}"
        files = write_audit_sample(sample, folder / f"audit-{name}.jsonl")
        # what comes back from the product's files is what the reviewers see
        pairs = pl.read_ndjson(files["pairs"]) if "pairs" in files else sample.pairs.head(0)
        singles = (pl.read_ndjson(files["singles"]) if "singles" in files
                   else sample.singles.head(0))
        rows_in = paired(pairs, singles, lookup)
        judged, truth_rows = review(rows_in, world, args.votes,
                                    np.random.default_rng([seed, k]), f"audit-{name}")
        judged.write_ndjson(folder / f"audit-{name}.judged.jsonl")
        con, new_run, ingested = retrain(folder, name, folder / f"base-{seed}.duckdb",
                                         folder / f"audit-{name}.judged.jsonl",
                                         pl.concat([judgments, truth_rows], how="diagonal"),
                                         world, args)
        after = accuracy(con, new_run, held, folder, args.drifted)
        con.close()
        cats = rows_in["category"]
        out[arm] = {"before": before, "after": after, "turns": rows_in.height,
                    "from_pairs": pairs.height, "paired_by_team": singles.height,
                    "drifted_turns": int((cats == args.drifted).sum()),
                    "refill_turns": int((cats == "prescription_refill").sum()),
                    "comparisons": judged.height, **ingested}
        log(f"seed {seed}: {arm}: {rows_in.height} turns ({out[arm]['drifted_turns']} "
            f"{args.drifted}), {args.drifted} accuracy {before['drifted']:.3f} -> "
            f"{after['drifted']:.3f}, elsewhere {before['other']:.3f} -> {after['other']:.3f}; "
            f"{ingested['accepted']} comparisons accepted, {ingested['quarantined']} quarantined "
            f"({time.perf_counter() - started:.0f} s)")
    return out


def table(results: dict[int, dict], args: argparse.Namespace) -> str:  # type: ignore[type-arg]
    """The markdown table: means over seeds, each seed's value in brackets."""
    seeds = sorted(results)

    def cell(values: list[float]) -> str:
        each = " / ".join(f"{v:+.3f}" for v in values)
        return f"{np.mean(values):+.3f} ({each})" if len(values) > 1 else f"{values[0]:+.3f}"

    lines = [
        f"| strategy | n | {args.drifted} turns reviewed | {args.drifted} acc. before | after "
        "| gain (per seed) | gain - random's gain (per seed) | elsewhere before | after |",
        "|---|---|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        per = [results[s][arm] for s in seeds]
        gains = [p["after"]["drifted"] - p["before"]["drifted"] for p in per]
        random = [results[s]["random"]["after"]["drifted"]
                  - results[s]["random"]["before"]["drifted"] for s in seeds]
        over = "-" if arm == "random" else cell([g - r for g, r in zip(gains, random,
                                                                          strict=True)])
        lines.append(
            f"| {arm} | {args.n} | {np.mean([p['drifted_turns'] for p in per]):.0f} "
            f"| {np.mean([p['before']['drifted'] for p in per]):.3f} "
            f"| {np.mean([p['after']['drifted'] for p in per]):.3f} | {cell(gains)} "
            f"| {over} "
            f"| {np.mean([p['before']['other'] for p in per]):.3f} "
            f"| {np.mean([p['after']['other'] for p in per]):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=200, help="turns reviewed per arm")
    parser.add_argument("--votes", type=int, default=3, help="reviewers per audited turn")
    parser.add_argument("--comparisons", type=int, default=3000)
    parser.add_argument("--eval-comparisons", type=int, default=20_000,
                        help="size of the fresh world whose pairs measure accuracy")
    parser.add_argument("--eval-other", type=int, default=600,
                        help="held-out pairs of the other categories (all of the drifted one)")
    parser.add_argument("--turns-per-week", type=int, default=300,
                        help="live traffic per week (six weeks, drift from week 4)")
    parser.add_argument("--drifted", default="billing",
                        help="the category the run is trained without")
    parser.add_argument("--keep-share", type=float, default=0.0,
                        help="share of the drifted category's pairs kept in training")
    parser.add_argument("--audit-batch-cap", type=float, default=1.0)
    parser.add_argument("--kind", default="multihead")
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--folder", type=Path, default=None,
                        help="work folder (its embedding caches make reruns fast)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="dissensus-audit-loop-"))
    folder.mkdir(parents=True, exist_ok=True)
    # one measuring stick for every seed and arm: the seeds vary the judged world, the traffic
    # and the reviewers, and the gains are differences on the very same pairs
    held = held_out_pairs(args.eval_comparisons, 1000, args.drifted, args.eval_other)
    n_drifted = int((held["category"] == args.drifted).sum())
    log(f"{held.height} held-out pairs of a fresh world, {n_drifted} of them {args.drifted}")
    results = {seed: one_seed(seed, args, folder, held) for seed in range(args.seeds)}
    print(table(results, args))
    print(f"\nheld-out pairs (fresh world, seed 1000, ambiguous left out): {n_drifted} "
          f"{args.drifted}, {held.height - n_drifted} of the other categories")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
