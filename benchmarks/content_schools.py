"""Schools found from what the replies say: the demo world with its response tags removed.

Run ``python benchmarks/content_schools.py`` (``--help`` for options). The demo world's two
schools differ over what the replies do (escalating an urgent symptom, offering an appointment,
hedging); its tags name those acts, and with the tags removed only the reply texts say them.
Per seed, on the same comparisons, the annotator model is fitted

* with reply-content features (``features='embeddings'``: the replies' sentence embeddings,
  reduced to ``--dims`` principal components);
* on the votes alone (``features='none'``);
* with the tags put back (``features='tags'``, what a tagged warehouse gets);

and prints the adjusted Rand index of the careful reviewers' schools (against the school
oracle's, which knows every true margin), the K chosen, the pluralism AUC and the fit times.
``--speed N`` also times the content fit against the tag fit on one world of N comparisons,
and the one-time embedding (texts/s) beside sentence-transformers' own ``encode`` of the same
texts (the floor). Experiments: ``--clusters K`` appends each reply's k-means cluster (one-hot;
with ``--dims 0`` alone), ``--by-category`` appends the components crossed with the prompt's
category (what tags get), ``--ridge L`` sets the ridge of the feature weights, ``--runs``
picks the fits and ``--first-seed`` the worlds. Every fit also reports the careful reviewers
it places (school probability >= the summary's bar) and the ARI among them; ``--diagnose``
adds how much of the true school deviation the content features can carry (a ridge on the
true deviations, cross-validated by prompt) against what the fit's own feature weights carry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from dissensus.analytics.jobs.content import ContentInfo, with_vote_axis
from dissensus.analytics.jobs.content import reply_embeddings as embed_replies
from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.content import ContentBasis, split_sentences, with_content
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.notes import PLACED_PROBABILITY
from dissensus.models.annotator.oracle import oracle_inputs, school_oracle
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.models.reward.encoder import EmbeddingCache, load_encoder
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.demo.schools import school_shares

sys.path.insert(0, str(Path(__file__).parent))
from annotators import careful_ari

TAGS = ("response_1_tags", "response_2_tags")


def reply_embeddings(replies: pl.DataFrame, encoder: Any, cache: Path | None,
                     unit: str = "replies") -> np.ndarray:
    """``(replies, dims)`` embeddings of ``replies`` (response_id, text_id, text), whole or as
    sums of their sentences, as ``dissensus fit`` embeds them (``content_unit``)."""
    return embed_replies(encoder, EmbeddingCache(cache), replies["text_id"].cast(pl.String)
                         .to_list(), replies["text"].to_list(), unit)[0]


def content_frame(world: Any, encoder: Any, cache: Path | None, dims: int,
                  clusters: int = 0, by_category: bool = False, unit: str = "replies"
                  ) -> tuple[pl.DataFrame, pl.DataFrame, float, int]:
    """(frame without tags but with content, frame with tags, embedding seconds, texts).

    ``clusters`` > 0 appends which of that many k-means clusters of the embeddings each reply
    falls in (one-hot, standardised): tags learnt from the texts, an experiment (``dims`` 0:
    the clusters alone). ``by_category`` appends the components once per prompt category,
    zero outside it: a school may weigh what a reply says differently by category, as the tag
    features allow (an experiment)."""
    tagged = model_frame_from_world(world.judgments, world.pairs, world.responses)
    replies = world.responses.select(pl.col("response_id").cast(pl.String), "text_id", "text")
    started = time.perf_counter()
    embeddings = reply_embeddings(replies, encoder, cache, unit)
    seconds = time.perf_counter() - started
    parts = [ContentBasis.fit(embeddings, dims).transform(embeddings)] if dims else []
    if by_category and dims:
        category = dict(zip(world.pairs["prompt_id"], world.pairs["category"], strict=False))
        of_reply = np.array([category.get(p) for p in world.responses["prompt_id"]], dtype=object)
        parts += [parts[0] * (of_reply == c)[:, None]
                  for c in sorted(set(category.values()))]
    if clusters:
        from sklearn.cluster import KMeans

        label = KMeans(clusters, n_init=4, random_state=0).fit_predict(embeddings)
        onehot = np.eye(clusters)[label]
        if by_category:  # a cluster means one thing per category, as tags crossed with it do
            category = dict(zip(world.pairs["prompt_id"], world.pairs["category"], strict=False))
            of_reply = np.array([category.get(p) for p in world.responses["prompt_id"]],
                                dtype=object)
            onehot = np.hstack([onehot * (of_reply == c)[:, None]
                                for c in sorted(set(category.values()))])
            onehot = onehot[:, onehot.std(axis=0) > 0]
        parts.append((onehot - onehot.mean(axis=0)) / np.maximum(onehot.std(axis=0), 1e-9))
    coords = np.hstack(parts)
    plain = tagged.drop(*TAGS)
    return (with_content(plain, replies["response_id"].to_list(), coords), tagged, seconds,
            replies.height)


def from_true_schools(model: AnnotatorModel, frame: pl.DataFrame,
                      reviewers: pl.DataFrame) -> dict[str, float]:
    """The default content fit against the same featured EM started from the true schools
    (warm from the default fit's state): where the truth start ends lower or no better, the
    model holds no better split of these votes, whatever the search."""
    from dissensus.models.annotator.data import encode_frame
    from dissensus.models.annotator.grid_em import GridEM

    state = model.result_.grid_state
    enc = encode_frame(frame, None, "embeddings")
    school = dict(zip(reviewers["reviewer_id"], reviewers["school_index"], strict=True))
    true = np.array([school[r] for r in enc.reviewer_ids])
    init = np.full((true.size, 2), 0.05)
    init[np.arange(true.size), np.minimum(true, 1)] = 1.0
    held = GridEM(enc.judgments, 2, model.config).run(
        school_init=init / init.sum(axis=1, keepdims=True), warm=state)
    found = pl.DataFrame({"reviewer_id": enc.reviewer_ids,
                          "school": held.school_probs().argmax(axis=1)})
    return {"default_elpd": float(state.loo.sum()), "truth_start_elpd": float(held.loo.sum()),
            "truth_start_ari": careful_ari(found, reviewers)}


def placed(estimates: pl.DataFrame, reviewers: pl.DataFrame) -> dict[str, float]:
    """The careful reviewers the fit places in a school (probability >= the summary's bar):
    their share and the ARI among them."""
    careful = estimates.join(reviewers.filter(~pl.col("is_rushed")).select("reviewer_id"),
                             on="reviewer_id")
    sure = estimates.filter(pl.col("school_probability") >= PLACED_PROBABILITY)
    out: dict[str, Any] = {
        "placed_share": sure.join(careful.select("reviewer_id"), on="reviewer_id").height
        / max(careful.height, 1), "placed_ari": careful_ari(sure, reviewers)}
    if careful["school"].n_unique() == 2:
        # calibration: each careful reviewer's school probability and whether the school is
        # right (the fit's two labels matched to the true ones the way most reviewers fall)
        t = careful.join(reviewers.select("reviewer_id", "school_index"), on="reviewer_id")
        same = (t["school"].cast(pl.Int64) == t["school_index"]).to_numpy()
        right = same if same.mean() >= 0.5 else ~same
        out["calibration"] = list(zip(t["school_probability"].to_list(), right.tolist(),
                                      strict=True))
    return out


def calibration_table(pairs: list[tuple[float, bool]]) -> str:
    """School probability bands against how often the school is right."""
    p = np.array([q for q, _ in pairs])
    right = np.array([r for _, r in pairs], dtype=float)
    lines = []
    for low, high in ((0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.99), (0.99, 1.01)):
        band = (p >= low) & (p < high)
        if band.any():
            lines.append(f"  school probability {low:.2f}-{min(high, 1.0):.2f}: {band.sum():>4} "
                         f"careful reviewers, mean {p[band].mean():.3f}, right "
                         f"{right[band].mean():.3f}")
    return "\n".join(lines)


def feature_reach(model: AnnotatorModel, frame: pl.DataFrame, world: Any) -> dict[str, float]:
    """How much of the true school deviation (caution-first minus access-first margin, per
    pair) the content features carry: R^2 of a ridge fitted on the true deviations
    (5 folds grouped by prompt; the ceiling for a linear use of these features), against the
    squared correlation of the fit's own feature prediction ``d_j . (V_1 - V_0)``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, cross_val_score

    from dissensus.models.annotator.data import encode_frame

    enc = encode_frame(frame, None, "embeddings")
    truth = (pl.DataFrame({"pair_id": enc.pair_ids})
             .join(world.pairs.select(pl.col("pair_id").cast(pl.String), "prompt_id",
                                      dev=pl.col("margin_caution_first")
                                      - pl.col("margin_access_first")),
                   on="pair_id", how="left"))
    diff, dev = enc.features.diff, truth["dev"].to_numpy()
    ceiling = cross_val_score(RidgeCV(alphas=np.logspace(-3, 3, 13)), diff, dev,
                              cv=GroupKFold(5), groups=truth["prompt_id"].to_list(),
                              scoring="r2").mean()
    prior = model.result_.grid_state.deviation_prior
    fitted = diff @ (prior.coef[-1] - prior.coef[0]) if prior is not None else np.zeros(len(dev))
    r = np.corrcoef(fitted, dev)[0, 1] if fitted.std() > 0 else 0.0
    return {"ridge_r2_on_truth": float(ceiling), "fit_r2": float(r * r)}


def one_world(seed: int, n: int, encoder: Any, cache: Path | None, dims: int,
              truth_start: bool = False, clusters: int = 0,
              runs: tuple[str, ...] = ("content", "votes", "tags"), by_category: bool = False,
              diagnose: bool = False) -> dict[str, Any]:
    world = simulate_world(WorldConfig(n_comparisons=n, seed=seed))
    frame, tagged, _, _ = content_frame(world, encoder, cache, dims, clusters, by_category)
    cfg = world.config
    truth = oracle_inputs(world.judgments, world.reviewers.filter(pl.col("n_comparisons") > 0),
                          world.pairs)
    oracle = school_oracle(truth, cfg.tie_threshold, school_shares(cfg.n_schools,
                                                                   cfg.minority_share))
    out: dict[str, Any] = {"seed": seed,
                           "ari_oracle": careful_ari(oracle, world.reviewers)}
    for name, features, data in (("content", "embeddings", frame), ("votes", "none", frame),
                                 ("tags", "tags", tagged)):
        if name not in runs:
            continue
        started = time.perf_counter()
        model = AnnotatorModel(AnnotatorConfig(features=features)).fit(data)
        if name == "content" and truth_start:
            out["truth_start"] = from_true_schools(model, data, world.reviewers)
        pairs = model.pair_estimates_.join(world.pairs.select("pair_id", "contested"),
                                           on="pair_id")
        out[name] = {
            "ari": careful_ari(model.reviewer_estimates_, world.reviewers),
            "k": model.n_schools_,
            "pluralism_auc": float(roc_auc_score(pairs["contested"], pairs["pluralism_share"])),
            "seconds": time.perf_counter() - started,
            "feature_share": model.fit_summary_["diagnostics"].get("feature_share"),
            **placed(model.reviewer_estimates_, world.reviewers),
        }
        if name == "content" and diagnose and model.n_schools_ == 2:
            out[name] |= feature_reach(model, data, world)
        print(f"seed {seed} {name:<8} ARI {out[name]['ari']:.3f} K={out[name]['k']} pluralism "
              f"AUC {out[name]['pluralism_auc']:.3f} ({out[name]['seconds']:.1f} s); placed "
              f"{out[name]['placed_share']:.0%} of the careful, ARI among them "
              f"{out[name]['placed_ari']:.3f}"
              + (f"; deviation R^2: fit {out[name]['fit_r2']:.3f}, ridge on the truth "
                 f"{out[name]['ridge_r2_on_truth']:.3f}" if "fit_r2" in out[name] else ""),
              file=sys.stderr, flush=True)
    return out


def speed(n: int, encoder: Any, dims: int, unit: str, axis: bool) -> dict[str, Any]:
    """Content fit vs tag fit on one world of ``n`` comparisons, the content read as
    ``dissensus fit`` reads it (``unit``, and the content axis's refit when ``axis``);
    embedding texts/s (no cache) vs the encoder's own ``encode`` of the same texts."""
    world = simulate_world(WorldConfig(n_comparisons=n, n_reviewers=2000 if n >= 100_000
                                       else None, seed=0))
    tagged = model_frame_from_world(world.judgments, world.pairs, world.responses)
    replies = world.responses.select(pl.col("response_id").cast(pl.String), "text_id", "text")
    n_texts = replies.height
    started = time.perf_counter()
    embeddings = reply_embeddings(replies, encoder, None, unit)
    embed_s = time.perf_counter() - started
    coords = ContentBasis.fit(embeddings, dims).transform(embeddings)
    frame = with_content(tagged.drop(*TAGS), replies["response_id"].to_list(), coords)
    floor, encoded = float("nan"), n_texts
    if hasattr(encoder, "model"):
        texts = world.responses["text"].to_list()
        if unit == "sentences":  # what the cached path encodes: each distinct sentence once
            texts = sorted({s for t in texts for s in split_sentences(t)})
        encoded = len(texts)
        started = time.perf_counter()
        encoder.model.encode(texts, batch_size=64, normalize_embeddings=True,
                             show_progress_bar=False)
        floor = encoded / (time.perf_counter() - started)
    config = AnnotatorConfig(features="embeddings", content_unit=unit, content_axis=axis)
    started = time.perf_counter()
    model = AnnotatorModel(config).fit(frame)
    first_s = time.perf_counter() - started
    axis_s, axis_pairs = 0.0, 0
    if axis:
        info = ContentInfo(replies["response_id"].to_list(), coords, replies["text"].to_list(),
                           getattr(encoder, "encoder_id", "?"), 0, 0.0, embeddings, unit)
        started = time.perf_counter()
        model, info, _ = with_vote_axis(frame, model, info, config)
        axis_s, axis_pairs = time.perf_counter() - started, info.axis_pairs
    started = time.perf_counter()
    AnnotatorModel(AnnotatorConfig(features="tags")).fit(tagged)
    tag_s = time.perf_counter() - started
    content_s = first_s + axis_s
    return {"comparisons": n, "unit": unit, "axis": axis, "texts": n_texts,
            "encoded": encoded, "embed_texts_per_s": encoded / embed_s,
            "embed_replies_per_s": n_texts / embed_s,
            "encode_floor_texts_per_s": floor, "content_fit_s": content_s,
            "first_fit_s": first_s, "axis_refit_s": axis_s, "axis_pairs": axis_pairs,
            "tag_fit_s": tag_s, "ratio": content_s / tag_s}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=["content", "votes", "tags"],
                        choices=["content", "votes", "tags"], help="which fits to run")
    parser.add_argument("--clusters", type=int, default=0,
                        help="experiment: append each reply's k-means cluster of this many "
                             "(one-hot) to its content features (--dims 0: clusters alone)")
    parser.add_argument("--ridge", type=float, default=None,
                        help="experiment: the ridge of the feature weights (the model's "
                             "deviation_prior.RIDGE, 1.0)")
    parser.add_argument("--by-category", action="store_true",
                        help="experiment: append the components crossed with the prompt "
                             "category, as the tag features are")
    parser.add_argument("--diagnose", action="store_true",
                        help="also report how much of the true school deviation the content "
                             "features carry, in the fit and for a ridge on the truth")
    parser.add_argument("--dims", type=int, default=AnnotatorConfig().content_dims)
    parser.add_argument("--encoder", default=AnnotatorConfig().content_encoder)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    parser.add_argument("--speed", nargs="*", type=int, default=[],
                        help="comparison counts for the content-vs-tags fit time (e.g. 100000)")
    parser.add_argument("--speed-unit", default=AnnotatorConfig().content_unit,
                        choices=("replies", "sentences"),
                        help="--speed: embed replies whole or as sums of sentences")
    parser.add_argument("--speed-axis", action=argparse.BooleanOptionalAction,
                        default=AnnotatorConfig().content_axis,
                        help="--speed: also learn the content axis and refit (content_axis)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--truth-start", action="store_true",
                        help="also start the content fit's EM from the true schools")
    args = parser.parse_args(argv)
    if args.ridge is not None:
        from dissensus.models.annotator import deviation_prior

        deviation_prior.RIDGE = args.ridge
    encoder = load_encoder(args.encoder)
    results = [one_world(s, args.comparisons, encoder, args.cache, args.dims, args.truth_start,
                         args.clusters, tuple(args.runs), args.by_category, args.diagnose)
               for s in range(args.first_seed, args.first_seed + args.seeds)]
    for r in results:
        if "truth_start" in r:
            t = r["truth_start"]
            print(f"seed {r['seed']}: default content fit elpd {t['default_elpd']:.1f}, ARI "
                  f"{r['content']['ari']:.3f}; started from the true schools elpd "
                  f"{t['truth_start_elpd']:.1f}, ARI {t['truth_start_ari']:.3f}")
    print(f"{'features':<10}{'ARI':>8}{'K':>20}{'pluralism AUC':>16}{'seconds':>10}"
          f"{'placed':>8}{'ARI placed':>12}")
    for name in args.runs:
        rows = [r[name] for r in results]
        print(f"{name:<10}{np.mean([r['ari'] for r in rows]):>8.3f}"
              f"{[r['k'] for r in rows]!s:>20}"
              f"{np.mean([r['pluralism_auc'] for r in rows]):>16.3f}"
              f"{np.mean([r['seconds'] for r in rows]):>10.1f}"
              f"{np.mean([r['placed_share'] for r in rows]):>8.0%}"
              f"{np.mean([r['placed_ari'] for r in rows]):>12.3f}")
    for name in args.runs:
        pairs = [c for r in results for c in r[name].get("calibration", [])]
        if pairs:
            print(f"{name}: are the school probabilities honest?\n{calibration_table(pairs)}")
    print(f"school oracle ARI {np.mean([r['ari_oracle'] for r in results]):.3f}; per seed, "
          f"content: {[round(r['content']['ari'], 3) for r in results]}")
    speeds = [speed(n, encoder, args.dims, args.speed_unit, args.speed_axis)
              for n in args.speed]
    for s in speeds:
        print(f"{s['comparisons']:,} comparisons: content fit {s['content_fit_s']:.1f} s (first "
              f"fit {s['first_fit_s']:.1f} s, content axis and refit {s['axis_refit_s']:.1f} s "
              f"on {s['axis_pairs']} pairs), tag fit {s['tag_fit_s']:.1f} s, ratio "
              f"{s['ratio']:.2f}; embedding {s['texts']:,} replies ({s['unit']}: "
              f"{s['encoded']:,} texts encoded) at {s['embed_texts_per_s']:.0f} texts/s "
              f"({s['embed_replies_per_s']:.0f} replies/s), the encoder's own encode of the "
              f"same texts {s['encode_floor_texts_per_s']:.0f} texts/s")
    out = {"worlds": results, "speed": speeds}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    main()
