"""Reward-model benchmark: demo world (weighted vs plain vs multi-head), UKPConvArg1, throughput.

    python benchmarks/reward.py [--device auto|cpu|cuda] [--encoder NAME]
                                [--part demo|ukp|finetune|ceiling|all]
                                [--n 6000] [--folds 32] [--threads N] [--out results.json]

* Demo world (15% rushed reviewers, a 35% minority school): held-out pairs scored against the
  TRUE consensus margin and each school's true margin. Weights come from an annotator-model fit
  when ``models.annotator.AnnotatorModel`` exists; otherwise from simulation truth, reported as
  ``"weights": "ORACLE weights (simulation truth)"``.
* UKPConvArg1 (Habernal & Gurevych 2016): leave-one-debate-side-out over the 32 topics; trained on
  the raw crowd votes of the other 31 (votes aggregated per pair into a soft target with the
  vote count as weight: the same Bradley-Terry likelihood as one row per vote), tested on the
  Strict gold labels (``in_strict``, ``strict_label``) of the held-out topic: accuracy, ROC AUC,
  cross-entropy, and the length-only baseline on the same pairs. ``--ukp-variants`` compares
  heads side by side in one run: the MLP over frozen embeddings and the linear head with the
  length features (``RewardConfig.architecture`` / ``length_features`` / ``l2``).
* Throughput: texts embedded per second (encoder) and pairs per second (head training).
* Ceiling of weighting (``--part ceiling``): pair majority labels from every vote against those
  from the truly careful votes only (perfect weights), scored against the true consensus.
  ``benchmarks/reward_noise.py`` measures the gain of the weighted model itself over several
  worlds and shares of rushed reviewers, next to truth-weighted training.
* Fine-tuning (``--part finetune``): the plain model with frozen embeddings against the same
  model after fine-tuning the encoder's top layers; pairs and texts per second with gradients.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from reward_truth import (
    add_common_arguments,
    fit_annotator_model,
    held_out,
    progress_lines,
    score_on_truth,
    start,
    uncertainty_on_truth,
)

from dissensus.models.reward.config import RewardConfig, make_config
from dissensus.models.reward.encoder import EmbeddingCache, load_encoder, with_length_features
from dissensus.models.reward.evaluate import binary_metrics, pair_probabilities
from dissensus.models.reward.pipeline import prepare, train_and_evaluate
from dissensus.models.reward.selection import select_architecture
from dissensus.models.reward.train import Tensors, describe_device, resolve_device, train_model

ROOT = Path(__file__).resolve().parents[1]

UKP = ROOT.parent / "shared" / "data" / "ukpconvarg1_convincingness"


#: (name in the results, trainer kind, config fields) of the demo part's runs
DEMO_RUNS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("plain", "plain", {}), ("weighted", "weighted", {}), ("multihead", "multihead", {}),
    ("distributional", "distributional", {}),
    ("distributional_schools", "distributional", {"spread_from": "schools"}),
)


def demo_part(args: argparse.Namespace, log) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from dissensus.warehouse.db import connect
    from dissensus.warehouse.demo import WorldConfig, simulate_world
    from dissensus.warehouse.ingest import ingest_file

    world = simulate_world(WorldConfig(n_comparisons=args.n, rushed_share=0.15,
                                       minority_share=0.35, seed=args.seed))
    folder = Path(tempfile.mkdtemp(prefix="reward-bench-"))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    con = connect(folder / "demo.duckdb")
    ingest_file(con, folder / "comparisons.parquet")
    fit_id = fit_annotator_model(con)
    out: dict[str, object] = {"n_comparisons": args.n, "weights": "annotator-model fit",
                              "schools": world.schools}
    cache = Path(args.cache) if args.cache else folder / "cache"
    for name, kind, extra in DEMO_RUNS:
        config = make_config(kind, encoder=args.encoder, device=args.device, seed=args.seed,
                             epochs=args.epochs, **extra)
        prepared = prepare(con, config, None if kind == "plain" else fit_id, cache, log,
                           progress=progress_lines(log))
        result, metrics = train_and_evaluate(prepared, config, log=log)
        held = held_out(prepared, result.model, kind, world.pairs)
        row = score_on_truth(held, world.schools)
        row |= {"pairs_per_second": metrics["training"]["pairs_per_second"],  # type: ignore[index]
                "embed_seconds": prepared.embed_seconds,
                "texts_embedded": prepared.texts_embedded}
        row["uncertainty"] = uncertainty_on_truth(held)
        row["contested_auc_from_held_out_votes"] = metrics.get("contested_detection")
        row["ece"] = metrics["ece"]
        row["length_baseline_accuracy"] = metrics["length_baseline_accuracy"]
        row["reward_length_spearman"] = metrics["reward_length_spearman"]
        out[name] = row
        log(f"demo {name}: {json.dumps(row)}")
    con.close()
    return out


def ceiling_part(args: argparse.Namespace, log) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """How much could perfect weights help? Pair-level majority labels from every vote against
    those from the truly careful votes only, both scored against the true consensus."""
    from dissensus.warehouse.demo import WorldConfig, simulate_world

    out: dict[str, object] = {}
    for seed in range(args.seed, args.seed + 3):
        world = simulate_world(WorldConfig(n_comparisons=args.n, rushed_share=0.15,
                                           minority_share=0.35, seed=seed))
        j = world.judgments
        per = j.group_by("pair_id").agg(
            every=pl.col("outcome").sum(),
            careful=pl.col("outcome").filter(pl.col("careful")).sum(),
        ).join(world.pairs.select("pair_id", "consensus_margin"), on="pair_id")
        decided = per.filter(pl.col("consensus_margin").abs() > 1e-9)
        truth = decided["consensus_margin"].sign()
        row = {
            "lapse_share_of_votes": float(1 - j["careful"].cast(pl.Float64).mean()),  # type: ignore[operator]
            "majority_accuracy_every_vote": float((decided["every"].sign() == truth).mean()),
            "majority_accuracy_careful_votes": float((decided["careful"].sign() == truth).mean()),
            "pairs": decided.height,
        }
        out[f"seed {seed}"] = row
        log(f"ceiling, seed {seed}: {json.dumps(row)}")
    return out


def finetune_part(args: argparse.Namespace, log) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Encoder fine-tuning throughput (and held-out accuracy before / after) on the demo world."""
    from dissensus.warehouse.db import connect
    from dissensus.warehouse.demo import WorldConfig, simulate_world
    from dissensus.warehouse.ingest import ingest_file

    world = simulate_world(WorldConfig(n_comparisons=args.n, seed=args.seed))
    folder = Path(tempfile.mkdtemp(prefix="reward-finetune-"))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    con = connect(folder / "demo.duckdb")
    ingest_file(con, folder / "comparisons.parquet")
    cache = Path(args.cache) if args.cache else folder / "cache"
    out: dict[str, object] = {"n_comparisons": args.n}
    for tuned in (False, True):
        config = make_config(
            "plain", encoder=args.encoder, device=args.device, seed=args.seed, epochs=args.epochs,
            finetune_encoder=tuned, finetune_epochs=args.finetune_epochs,
            finetune_max_comparisons=args.finetune_max, finetune_layers=args.finetune_layers,
        )
        prepared = prepare(con, config, None, cache, log,
                           progress=progress_lines(log))
        _, metrics = train_and_evaluate(prepared, config, log=log)
        row = {"accuracy_consensus": metrics["accuracy_consensus"],
               "n_labelled_pairs": metrics["n_labelled_pairs"]}
        if tuned:
            row |= {k: metrics["finetune"][k] for k in  # type: ignore[index]
                    ("pairs_per_second", "texts_per_second", "seconds", "epochs", "best_epoch",
                     "trainable_tensors")}
        out["finetuned" if tuned else "frozen"] = row
        log(f"finetune part, {'fine-tuned' if tuned else 'frozen'}: {json.dumps(row)}")
    con.close()
    return out


def ukp_config(variant: str, args: argparse.Namespace) -> RewardConfig:
    """The plain trainer of a UKP variant, ``ARCHITECTURE[+length]``.

    The MLP keeps the library defaults; the linear head is a ridge-regularised linear
    Bradley-Terry model, trained longer at a higher learning rate (it has few parameters).
    """
    architecture, _, extra = variant.partition("+")
    if architecture == "auto" and not extra:  # the library default: chosen by validation
        return make_config("plain", encoder=args.encoder, device=args.device, seed=args.seed,
                           batch_size=256, hidden=256, epochs=args.epochs)
    if architecture not in ("mlp", "linear") or extra not in ("", "length"):
        raise SystemExit(f"unknown UKP variant {variant!r}: use auto, mlp, linear, mlp+length "
                         "or linear+length")
    fields: dict[str, object] = {"epochs": args.epochs}
    if architecture == "linear":
        fields = {"l2": args.l2, "lr": args.linear_lr, "epochs": args.linear_epochs}
    return make_config("plain", encoder=args.encoder, device=args.device, seed=args.seed,
                       batch_size=256, hidden=256, architecture=architecture,
                       length_features=extra == "length", **fields)


def ukp_part(args: argparse.Namespace, log) -> dict[str, object]:  # type: ignore[no-untyped-def]
    votes = pl.read_csv(UKP / "judgments.csv.gz", columns=["topic", "pair_id", "value"])
    pairs = pl.read_csv(UKP / "pairs.csv", schema_overrides={"strict_label": pl.String})
    args_tbl = pl.read_csv(UKP / "arguments.csv", columns=["topic", "arg_id", "debate_title",
                                                            "stance", "text"])
    args_tbl = args_tbl.with_columns(pl.col("text").str.replace_all("<br/>", "\n"),
                                     (pl.col("topic") + "/" + pl.col("arg_id")).alias("key"))
    prompts = args_tbl.group_by("topic").agg(pl.first("debate_title"), pl.first("stance")).sort(
        "topic").with_columns((pl.lit("Debate: ") + pl.col("debate_title") + "\nStance: "
                               + pl.col("stance") + "\nWhich argument is more convincing?")
                              .alias("text"), ("prompt/" + pl.col("topic")).alias("key"))
    texts = pl.concat([args_tbl.select("key", "text"), prompts.select("key", "text")])
    index = {k: i for i, k in enumerate(texts["key"].to_list())}
    encoder = load_encoder(args.encoder, 64, 256,
                           "cuda" if resolve_device(args.device).type == "cuda" else "cpu")
    started = time.perf_counter()
    cache = EmbeddingCache(Path(args.cache) if args.cache else None)
    emb, n_new = cache.embed(encoder, texts["key"].to_list(), texts["text"].to_list())
    embed_seconds = time.perf_counter() - started
    log(f"ukp: {len(texts)} texts, {n_new} embedded in {embed_seconds:.1f} s")
    agg = votes.with_columns(pl.col("value").replace_strict(
        {"a1": 1.0, "a2": 0.0, "equal": 0.5}, return_dtype=pl.Float64).alias("y")).group_by(
        "topic", "pair_id").agg(pl.col("y").mean(), pl.len().alias("n"))
    agg = agg.join(pairs.select("pair_id", "topic", "arg1_id", "arg2_id"),
                   on=["topic", "pair_id"])
    agg = agg.with_columns(
        (pl.col("topic") + "/" + pl.col("arg1_id")).replace_strict(index).alias("r1"),
        (pl.col("topic") + "/" + pl.col("arg2_id")).replace_strict(index).alias("r2"),
        ("prompt/" + pl.col("topic")).replace_strict(index).alias("prompt"))
    strict = pairs.filter(pl.col("in_strict") == 1).with_columns(
        (pl.col("topic") + "/" + pl.col("arg1_id")).replace_strict(index).alias("r1"),
        (pl.col("topic") + "/" + pl.col("arg2_id")).replace_strict(index).alias("r2"),
        ("prompt/" + pl.col("topic")).replace_strict(index).alias("prompt_idx"),
        (pl.col("strict_label") == "a1").cast(pl.Float64).alias("label"))
    n_chars = texts["text"].str.len_chars().to_numpy().astype(float)
    emb_t = torch.as_tensor(emb)
    emb_len = (torch.as_tensor(with_length_features(emb, texts["text"].to_list()))
               if "length" in args.ukp_variants or "auto" in args.ukp_variants else emb_t)
    topics = sorted(agg["topic"].unique().to_list())[: args.folds]
    variants = [v.strip() for v in args.ukp_variants.split(",") if v.strip()]
    per_variant: dict[str, list[dict[str, object]]] = {v: [] for v in variants}
    pooled: dict[str, list[np.ndarray]] = {v: [] for v in [*variants, "length-only", "y"]}
    speed: list[float] = []
    for topic in topics:
        rng = np.random.default_rng([args.seed, topics.index(topic)])
        train = agg.filter(pl.col("topic") != topic)
        split = np.where(rng.random(train.height) < 0.1, 1, 0)
        test = strict.filter(pl.col("topic") == topic).rename({"r1": "r1_idx", "r2": "r2_idx"})
        y = test["label"].to_numpy()
        l1, l2 = n_chars[test["r1_idx"].to_numpy()], n_chars[test["r2_idx"].to_numpy()]
        length_p = np.where(l1 == l2, 0.5, (l1 > l2).astype(float))
        pooled["length-only"].append(length_p)
        pooled["y"].append(y)
        line = [f"ukp fold {topic}: length-only {binary_metrics(length_p, y)['accuracy']:.3f}"]
        for variant in variants:
            config = ukp_config(variant, args)
            n = train.height

            def fold_tensors(length: bool, n: int = n, train: pl.DataFrame = train,
                             split: np.ndarray = split) -> Tensors:
                return Tensors(emb_len if length else emb_t,
                               torch.tensor(train["prompt"].to_numpy()),
                               torch.tensor(train["r1"].to_numpy()),
                               torch.tensor(train["r2"].to_numpy()),
                               torch.tensor(train["y"].to_numpy(), dtype=torch.float32),
                               torch.zeros(n, dtype=torch.bool),
                               torch.tensor(train["n"].to_numpy(), dtype=torch.float32),
                               torch.ones(n, 1), torch.tensor(split))

            chosen = ""
            if config.architecture == "auto":
                config, result, _, table = select_architecture(config, fold_tensors, 0,
                                                               lambda _: None)
                chosen = next(str(r["candidate"]) for r in table if r["chosen"])
            else:
                result = train_model(fold_tensors(bool(config.length_features)), config, 0,
                                     lambda _: None)
            emb_v = emb_len if config.length_features else emb_t
            speed.append(result.pairs_per_second)
            device = next(result.model.parameters()).device
            p = pair_probabilities(result.model, "plain", emb_v.to(device), test)[:, 0]
            fold = {"topic": topic, **binary_metrics(p, y), "epochs": len(result.history),
                    **({"chosen": chosen} if chosen else {})}
            per_variant[variant].append(fold)
            pooled[variant].append(p)
            line.append(f"{variant} {fold['accuracy']:.3f}" + (f" ({chosen})" if chosen else ""))
        log(", ".join(line))
    y_all = np.concatenate(pooled["y"])
    length_folds = [binary_metrics(p, y) for p, y in zip(pooled["length-only"], pooled["y"],
                                                          strict=True)]
    summary: dict[str, object] = {
        "length-only": {
            "mean_over_folds": {"accuracy": float(np.mean([f["accuracy"] for f in length_folds]))},
            "pooled": binary_metrics(np.concatenate(pooled["length-only"]), y_all),
        }
    }
    for variant in variants:
        folds = per_variant[variant]
        summary[variant] = {
            "mean_over_folds": {key: float(np.nanmean([f[key] for f in folds]))  # type: ignore[arg-type]
                                for key in ("accuracy", "roc_auc", "cross_entropy")},
            "pooled": binary_metrics(np.concatenate(pooled[variant]), y_all),
            "per_fold": folds,
        }
        log(f"ukp {variant}: mean accuracy {summary[variant]['mean_over_folds']['accuracy']:.4f}")  # type: ignore[index]
    return {"folds": len(topics), "variants": summary,
            "texts_embedded_per_second": n_new / embed_seconds if n_new else None,
            "pairs_per_second": float(np.mean(speed))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--part", default="all",
                        choices=["demo", "ukp", "finetune", "ceiling", "all"])
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--finetune-max", type=int, default=2000,
                        help="comparisons used for encoder fine-tuning (0: all)")
    parser.add_argument("--finetune-layers", type=int, default=2)
    parser.add_argument("--n", type=int, default=6000, help="demo-world comparisons")
    parser.add_argument("--folds", type=int, default=32, help="UKP folds to run (32 = all)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--ukp-variants", default="mlp,linear+length",
                        help="UKP heads to compare, comma-separated: ARCHITECTURE[+length] with "
                        "ARCHITECTURE mlp or linear; +length appends the length features")
    parser.add_argument("--l2", type=float, default=6e-4,
                        help="ridge penalty of the UKP linear heads (RewardConfig.l2)")
    parser.add_argument("--linear-lr", type=float, default=1e-2,
                        help="learning rate of the UKP linear heads")
    parser.add_argument("--linear-epochs", type=int, default=100,
                        help="maximum epochs of the UKP linear heads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    log = start(args)
    device = resolve_device(args.device)

    log(f"device: {describe_device(device)}")
    results: dict[str, object] = {"device": describe_device(device), "encoder": args.encoder,
                                  "torch": torch.__version__}
    if args.part in ("demo", "all"):
        results["demo"] = demo_part(args, log)
    if args.part in ("ukp", "all"):
        results["ukp"] = ukp_part(args, log)
    if args.part in ("ceiling", "all"):
        results["ceiling"] = ceiling_part(args, log)
    if args.part in ("finetune", "all"):
        results["finetune"] = finetune_part(args, log)
    text = json.dumps(results, indent=2, default=float)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
