"""When does weighting by P(careful) pay off? Plain vs weighted reward models as lapses grow.

    python benchmarks/reward_noise.py [--rushed 0.15,0.30,0.45] [--votes-kept all,2,1]
                                      [--lapse-length-lean 0] [--seeds 3] [--n 6000]
                                      [--threads N] [--cache DIR] [--out results.json]

For each share of rushed reviewers and each seed, one demo world (35% minority school, every
other setting at the demo's defaults: 3-8 reviewers per pair) is simulated. For each entry of
``--votes-kept`` its votes are thinned to at most that many reviewers per pair, picked at random
(repeats dropped; ``all`` keeps every vote), so the same pairs and texts are seen with fewer
votes. ``--lapse-length-lean`` makes that share of lapses pick the longer reply (the shorter,
when negative) instead of a coin (0, the demo world: a lapse carries no direction). Each
version is ingested and fitted with the annotator model (EM, the default), and three
Bradley-Terry models with the same split, seed and encoder are trained:

* ``plain``: every vote counts once;
* ``weighted``: each vote weighted by the annotator model's P(careful);
* ``oracle``: each vote weighted by the simulation's truth (0.95 careful, 0.05 lapse), the most
  any weighting can do.

Each is scored on the held-out pairs against the TRUE consensus direction. The paired difference
weighted - plain (and oracle - plain) is reported per world and averaged over seeds with its
standard error, together with the share of votes that were lapses.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
from reward_truth import (
    add_common_arguments,
    fit_annotator_model,
    held_out,
    progress_lines,
    score_on_truth,
    start,
)

from dissensus.models.reward.config import make_config
from dissensus.models.reward.oracle import write_oracle_fit
from dissensus.models.reward.pipeline import prepare, train_and_evaluate
from dissensus.models.reward.train import describe_device, resolve_device
from dissensus.warehouse.demo import DemoWorld, WorldConfig, simulate_world

ROOT = Path(__file__).resolve().parents[1]

#: (name, trainer kind, weights): "fit" is the annotator model's fit of the world.
RUNS = (("plain", "plain", None), ("weighted", "weighted", "fit"),
        ("oracle", "weighted", "oracle"))


def thin_votes(world: DemoWorld, keep: int | None, seed: int) -> DemoWorld:
    """``world`` with at most ``keep`` reviewers' votes per pair, drawn at random (repeats
    dropped); ``None`` keeps everything."""
    if keep is None:
        return world
    kept = (world.judgments.filter(~pl.col("is_repeat"))
            .sample(fraction=1.0, shuffle=True, seed=seed)
            .filter(pl.int_range(pl.len()).over("pair_id") < keep)["comparison_id"])
    return replace(world,
                   comparisons=world.comparisons.filter(pl.col("comparison_id").is_in(kept)),
                   judgments=world.judgments.filter(pl.col("comparison_id").is_in(kept)))


def one_world(world: DemoWorld, keep: int | None, args: argparse.Namespace,
              log) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Ingest and fit one (thinned) world; train and score the three runs on it."""
    from dissensus.warehouse.db import connect
    from dissensus.warehouse.ingest import ingest_file

    seed = world.config.seed
    world = thin_votes(world, keep, seed)
    folder = Path(tempfile.mkdtemp(prefix="reward-noise-"))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    con = connect(folder / "demo.duckdb")
    ingest_file(con, folder / "comparisons.parquet")
    fit_id = fit_annotator_model(con)
    write_oracle_fit(con, world.judgments, world.reviewers, len(world.schools))
    lapses = 1.0 - float(world.judgments["careful"].cast(pl.Float64).mean())  # type: ignore[arg-type]
    row: dict[str, object] = {"rushed_share": world.config.rushed_share,
                              "lapse_length_lean": world.config.lapse_length_lean,
                              "votes_kept": "all" if keep is None else str(keep), "seed": seed,
                              "n_votes": world.comparisons.height, "lapse_share_of_votes": lapses}
    cache = Path(args.cache) if args.cache else folder / "cache"
    for name, kind, fit in RUNS:
        config = make_config(kind, encoder=args.encoder, device=args.device, seed=seed,
                             epochs=args.epochs)
        prepared = prepare(con, config, fit_id if fit == "fit" else fit, cache, log,
                           progress=progress_lines(log))
        result, _ = train_and_evaluate(prepared, config, log=log)
        scored = score_on_truth(held_out(prepared, result.model, kind, world.pairs),
                                world.schools)
        row[name] = scored["accuracy_true_consensus"]
        row[f"{name}_by_kind"] = scored["accuracy_true_consensus_by_kind"]
        row["test_pairs_by_kind"] = scored["test_pairs_by_kind"]
        row["n_test_pairs"] = scored["n_test_pairs"]
    con.close()
    return row


def summarise(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Mean accuracy per run and the mean paired gain over plain (with its standard error)."""
    table = pl.DataFrame(rows).with_columns(
        (pl.col("weighted") - pl.col("plain")).alias("weighted_gain"),
        (pl.col("oracle") - pl.col("plain")).alias("oracle_gain"))
    summary = []
    for (rushed, lean, keep), group in table.group_by("rushed_share", "lapse_length_lean",
                                                      "votes_kept", maintain_order=True):
        entry: dict[str, object] = {"rushed_share": rushed, "lapse_length_lean": lean,
                                    "votes_kept": keep,
                                    "worlds": group.height,
                                    "votes": int(group["n_votes"].sum()),
                                    "lapse_share_of_votes": float(group["lapse_share_of_votes"]
                                                                  .mean()),  # type: ignore[arg-type]
                                    "test_pairs": int(group["n_test_pairs"].sum())}
        for name, _, _ in RUNS:
            entry[name] = float(group[name].mean())  # type: ignore[arg-type]
            by_kind = group[f"{name}_by_kind"].struct.unnest()
            entry[f"{name}_by_kind"] = {k: float(by_kind[k].mean())  # type: ignore[arg-type]
                                        for k in by_kind.columns}
        for gain in ("weighted_gain", "oracle_gain"):
            values = group[gain].to_numpy()
            entry[gain] = float(values.mean())
            # one world has no spread to estimate: null, not NaN (which is not JSON)
            entry[f"{gain}_se"] = (float(values.std(ddof=1) / np.sqrt(len(values)))
                                   if len(values) > 1 else None)
        summary.append(entry)
    return summary


def parse_votes_kept(text: str) -> list[int | None]:
    """``"all,2,1"`` -> ``[None, 2, 1]``; a clear error for anything else."""
    caps: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "all":
            caps.append(None)
        elif part.isdigit() and int(part) >= 1:
            caps.append(int(part))
        else:
            raise SystemExit(f"--votes-kept takes 'all' or whole numbers >= 1, comma-separated "
                             f"(e.g. all,2,1); got {part!r} in {text!r}")
    return caps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rushed", default="0.15,0.30,0.45",
                        help="shares of rushed reviewers to simulate, comma-separated")
    parser.add_argument("--votes-kept", default="all",
                        help="reviewers' votes kept per pair, comma-separated: 'all' (3-8 in "
                             "the demo world) or a number to thin to, e.g. all,2,1")
    parser.add_argument("--lapse-length-lean", type=float, default=0.0,
                        help="share of lapses that pick the longer reply, in [-1, 1] (negative: "
                             "the shorter; 0: a coin, as in the demo world)")
    parser.add_argument("--seeds", type=int, default=3, help="worlds per share (seeds 0..N-1)")
    parser.add_argument("--n", type=int, default=6000, help="comparisons per world")
    parser.add_argument("--epochs", type=int, default=60)
    add_common_arguments(parser)
    args = parser.parse_args()
    log = start(args)
    shares = [float(s) for s in args.rushed.split(",") if s.strip()]
    if not shares or any(not 0.0 <= s <= 1.0 for s in shares):
        raise SystemExit(f"--rushed takes shares in [0, 1], comma-separated; got {args.rushed!r}")

    caps = parse_votes_kept(args.votes_kept)
    if not -1.0 <= args.lapse_length_lean <= 1.0:
        raise SystemExit(f"--lapse-length-lean takes a share in [-1, 1] (negative: lapses pick "
                         f"the shorter reply); got {args.lapse_length_lean}")

    device = describe_device(resolve_device(args.device))
    log(f"device: {device}")
    rows = []
    started = time.perf_counter()
    for rushed in shares:
        for seed in range(args.seeds):
            world = simulate_world(WorldConfig(n_comparisons=args.n, rushed_share=rushed,
                                               minority_share=0.35, seed=seed,
                                               lapse_length_lean=args.lapse_length_lean))
            for keep in caps:
                row = one_world(world, keep, args, log)
                rows.append(row)
                log(f"world rushed={rushed} seed={seed} votes kept={keep or 'all'}: "
                    f"{json.dumps(row)} ({time.perf_counter() - started:.0f} s so far)")
    result = {"device": device, "encoder": args.encoder, "n_comparisons": args.n,
              "per_world": rows, "summary": summarise(rows)}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
