"""Schools from reply content: replies cut into sentences, and a content axis learnt from votes.

Run ``python benchmarks/content_axis.py`` (``--help`` for options). On the untagged demo world of
``content_schools.py`` (10,000 comparisons a seed), every run fits the annotator model with
content features and reports the careful reviewers' ARI against the true schools:

* ``content``: the default fit (whole replies' MiniLM embeddings, 32 principal components);
* ``sentences``: each reply as the sum of its sentences' embeddings
  (:func:`dissensus.models.annotator.content.sentence_sums`), 32 components;
* ``sentences+axis``: the ``sentences`` fit, then a content axis learnt on the full summed
  embedding from the votes of the reviewers that fit places
  (:class:`dissensus.models.annotator.content.VoteAxis`), appended to the components, and the
  fit again;
* ``replies+axis``: the same axis step on the whole replies' embedding;
* ``axis alone``: the ``sentences+axis`` refit with the axis as its only feature;

and two ceilings that read the true school deviations, which no fit can:

* ``perfect``: one feature per reply whose pair difference is the true deviation exactly
  (caution-first minus access-first utility): what perfect content knowledge gives the fit;
* ``encoder ceiling``: an axis learnt by a ridge from the true deviations on the full
  embedding (sums of sentences, or whole replies with ``--unit replies``), cross-fitted by
  prompt so that no reply's own pairs train its score: the best linear reading of the encoder.

Each ceiling prints the squared correlation of its feature's pair differences with the true
deviation beside the ARI.
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
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.content import ContentBasis, VoteAxis, with_content
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.models.reward.encoder import load_encoder
from dissensus.warehouse.demo import WorldConfig, simulate_world

sys.path.insert(0, str(Path(__file__).parent))
from annotators import careful_ari
from content_schools import TAGS, placed, reply_embeddings

RUNS = ("content", "sentences", "sentences+axis", "replies+axis", "axis alone", "perfect",
        "encoder ceiling")


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


class World:
    """One untagged world: its votes, replies, embeddings and the true deviations."""

    def __init__(self, seed: int, n: int, encoder: Any, cache: Path | None, dims: int,
                 **world: Any) -> None:
        self.world = simulate_world(WorldConfig(n_comparisons=n, seed=seed, **world))
        self.plain = model_frame_from_world(self.world.judgments, self.world.pairs,
                                            self.world.responses).drop(*TAGS)
        self.replies = self.world.responses.select(pl.col("response_id").cast(pl.String),
                                                   "text_id", "text", "prompt_id")
        self.ids = self.replies["response_id"].to_list()
        self.encoder, self.cache, self.dims = encoder, cache, dims
        self._embeddings: dict[str, np.ndarray] = {}
        row = {r: i for i, r in enumerate(self.ids)}
        pairs = self.world.pairs
        self.first = np.array([row[str(r)] for r in pairs["response_1_id"]])
        self.second = np.array([row[str(r)] for r in pairs["response_2_id"]])
        self.deviation = (pairs["margin_caution_first"] - pairs["margin_access_first"]).to_numpy()

    def embeddings(self, unit: str) -> np.ndarray:
        if unit not in self._embeddings:
            self._embeddings[unit] = reply_embeddings(self.replies, self.encoder, self.cache,
                                                      unit)
        return self._embeddings[unit]

    def components(self, unit: str) -> np.ndarray:
        e = self.embeddings(unit)
        return ContentBasis.fit(e, self.dims).transform(e)

    def fit(self, coords: np.ndarray, like: AnnotatorModel | None = None) -> AnnotatorModel:
        """The fit with these content features; ``like``: an earlier fit of the same votes,
        whose choice of K is taken (only the final fit is made again, as the product does)."""
        frame = with_content(self.plain, self.ids, coords)
        return AnnotatorModel(AnnotatorConfig(features="embeddings")).fit(frame,
                                                                         same_votes_as=like)

    def reach(self, score: np.ndarray) -> float:
        """Squared correlation of a per-reply score's pair differences with the deviation."""
        d = score[self.first] - score[self.second]
        return float(np.corrcoef(d, self.deviation)[0, 1] ** 2)

    def vote_axis(self, model: AnnotatorModel, unit: str) -> VoteAxis | None:
        return VoteAxis.from_fit(self.plain, model.reviewer_estimates_, self.ids,
                                 self.embeddings(unit), model.n_schools_)

    def truth_axis(self, unit: str) -> np.ndarray:
        """Ridge of the true deviation on the embedding difference, cross-fitted by prompt."""
        e = self.embeddings(unit)
        prompts = np.array(self.world.pairs["prompt_id"].to_list())
        of_reply = np.array(self.replies["prompt_id"].to_list())
        score = np.zeros(len(self.ids))
        for train, test in GroupKFold(5).split(self.first, self.deviation, prompts):
            ridge = RidgeCV(alphas=np.logspace(-3, 3, 13), fit_intercept=False).fit(
                e[self.first[train]] - e[self.second[train]], self.deviation[train])
            held = np.isin(of_reply, np.unique(prompts[test]))
            score[held] = e[held] @ ridge.coef_
        return standardised(score)

    def perfect(self) -> np.ndarray:
        r = self.world.responses
        return standardised((r["utility_caution_first"] - r["utility_access_first"]).to_numpy())


def one_world(seed: int, args: argparse.Namespace, encoder: Any) -> dict[str, Any]:
    shares = {k: v for k, v in (("minority_share", args.minority_share),
                                 ("rushed_share", args.rushed_share)) if v is not None}
    w = World(seed, args.comparisons, encoder, args.cache, args.dims, **shares)
    out: dict[str, Any] = {"seed": seed}

    def record(name: str, model: AnnotatorModel, started: float, **extra: Any) -> None:
        out[name] = {"ari": careful_ari(model.reviewer_estimates_, w.world.reviewers),
                     "k": model.n_schools_, "seconds": time.perf_counter() - started,
                     **placed(model.reviewer_estimates_, w.world.reviewers), **extra}
        out[name].pop("calibration", None)
        print(f"seed {seed} {name:<16} ARI {out[name]['ari']:.3f} K={model.n_schools_}"
              + "".join(f" {k} {v:.3f}" for k, v in extra.items() if isinstance(v, float)),
              file=sys.stderr, flush=True)

    for unit, plain_run, axis_run in (("replies", "content", "replies+axis"),
                                      ("sentences", "sentences", "sentences+axis")):
        alone = unit == "sentences" and "axis alone" in args.runs
        if plain_run not in args.runs and axis_run not in args.runs and not alone:
            continue
        started = time.perf_counter()
        coords = w.components(unit)
        first = w.fit(coords)
        if plain_run in args.runs:
            record(plain_run, first, started)
        if axis_run not in args.runs and not alone:
            continue
        axis = w.vote_axis(first, unit)
        for name, features in ((axis_run, coords), ("axis alone", None)):
            if name not in args.runs or (features is None and not alone):
                continue
            if axis is None:  # one school, or too few shared pairs: the first fit stands
                record(name, first, started, axis_pairs=0)
                continue
            scores = axis.scores[:, None]
            second = w.fit(scores if features is None else np.hstack([features, scores]), first)
            record(name, second, started, axis_r2=w.reach(axis.scores),
                   axis_pairs=axis.n_pairs, first_ari=out.get(plain_run, {}).get("ari"))
    if "perfect" in args.runs:
        started = time.perf_counter()
        score = w.perfect()
        record("perfect", w.fit(score[:, None]), started, feature_r2=w.reach(score))
    if "encoder ceiling" in args.runs:
        started = time.perf_counter()
        score = w.truth_axis(args.ceiling_unit)
        record("encoder ceiling", w.fit(score[:, None]), started, feature_r2=w.reach(score))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--minority-share", type=float, default=None,
                        help="the world's minority school share (default: the demo world's)")
    parser.add_argument("--rushed-share", type=float, default=None,
                        help="the world's share of rushed reviewers (default: the demo world's)")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS,
                        help="which fits to run")
    parser.add_argument("--ceiling-unit", default="sentences", choices=("sentences", "replies"),
                        help="the embedding the encoder ceiling reads")
    parser.add_argument("--dims", type=int, default=AnnotatorConfig().content_dims)
    parser.add_argument("--encoder", default=AnnotatorConfig().content_encoder)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    encoder = load_encoder(args.encoder)
    results = [one_world(s, args, encoder)
               for s in range(args.first_seed, args.first_seed + args.seeds)]
    base = [r["content"]["ari"] for r in results] if "content" in args.runs else None
    print(f"{'run':<18}{'ARI mean':>9}  per seed{'':<34}{'vs content':>12}{'placed':>8}"
          f"{'ARI placed':>12}{'r2':>7}")
    for name in args.runs:
        ari = [r[name]["ari"] for r in results]
        diff = (f"{np.mean(np.subtract(ari, base)):+.3f}" if base is not None else "")
        r2 = [r[name].get("axis_r2", r[name].get("feature_r2")) for r in results]
        r2_text = f"{np.mean(r2):.3f}" if all(v is not None for v in r2) else "-"
        print(f"{name:<18}{np.mean(ari):>9.3f}  {' / '.join(f'{a:.3f}' for a in ari):<42}"
              f"{diff:>12}{np.mean([r[name]['placed_share'] for r in results]):>8.0%}"
              f"{np.mean([r[name]['placed_ari'] for r in results]):>12.3f}{r2_text:>7}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return {"worlds": results}


if __name__ == "__main__":
    main()
