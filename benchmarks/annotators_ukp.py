"""Held-out judgment prediction on UKPConvArg1 (issue 3, "Real data").

    .venv/bin/python benchmarks/annotators_ukp.py [--seed 0] [--db PATH] [--no-crowdkit]
        [--tie-per-reviewer] [--content [--content-unit sentences] [--content-axis]]

Ingests ``shared/data/ukpconvarg1_convincingness`` into a temporary warehouse (or reuses
``--db``), holds out 10% of the individual judgments at random (seeded), fits the annotator model
(default config: grid EM, K chosen by cavity LOO) on the other 90% and predicts each held-out
judgment (response 1 / tie / response 2) from its reviewer and pair. Scores: log loss (natural
log, mean per judgment) and accuracy (argmax), for

* dissensus: ``AnnotatorModel.predict_proba`` (posterior predictive, see
  ``models/annotator/predict.py``);
* pair frequency: ``p_c = (n_{j,c} + alpha) / (n_j + 3 alpha)`` from the pair's training votes,
  ``alpha`` chosen by leave-one-out log loss on the training split (the best peer);
* global frequency: the training split's class shares;
* crowd-kit Dawid-Skene: ``P(y | r, j) = sum_z P(z | j) pi_r(y | z)`` from the fitted item
  posteriors and worker confusion matrices (unknown worker: the mean matrix).

Then the school-vs-stance table: each (reviewer, topic) with a stated ``stance@<topic>`` in
``reviewer_attributes`` (same / opposite / none), cross-tabulated against the reviewer's school,
with a chi-square test of independence.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import chi2_contingency

from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file
from dissensus.warehouse.queries import model_frame

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
UKP = DATA / "ukpconvarg1_convincingness"
CLASSES = (1, 0, -1)  # columns of every probability matrix: response 1, tie, response 2
ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


def column(y: np.ndarray) -> np.ndarray:
    """Column index of outcome ``y`` in the (response 1, tie, response 2) layout."""
    return np.select([y == 1, y == 0], [0, 1], 2)


def scores(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(log loss, accuracy)`` of probability rows ``p`` for outcomes ``y``."""
    col = column(y)
    loss = -np.mean(np.log(np.clip(p[np.arange(y.size), col], 1e-15, 1.0)))
    return float(loss), float(np.mean(p.argmax(axis=1) == col))


def pair_counts(frame: pl.DataFrame) -> pl.DataFrame:
    """Votes per pair and class: columns pair_id, n0 (response 1), n1 (tie), n2 (response 2)."""
    return frame.group_by("pair_id").agg(
        [(pl.col("outcome") == c).sum().cast(pl.Float64).alias(f"n{i}")
         for i, c in enumerate(CLASSES)]
    )


def choose_alpha(train: pl.DataFrame) -> float:
    """Additive-smoothing ``alpha`` minimising the leave-one-out log loss on the training split."""
    counts = train.select("pair_id", "outcome").join(pair_counts(train), on="pair_id")
    n = counts.select("n0", "n1", "n2").to_numpy()
    col = column(counts["outcome"].to_numpy())
    own = n[np.arange(n.shape[0]), col] - 1.0
    rest = n.sum(axis=1) - 1.0
    losses = [float(-np.mean(np.log((own + a) / (rest + 3 * a)))) for a in ALPHAS]
    return ALPHAS[int(np.argmin(losses))]


def pair_frequency(train: pl.DataFrame, test: pl.DataFrame, alpha: float) -> np.ndarray:
    """Smoothed per-pair vote frequency (uniform for a pair with no training votes)."""
    joined = test.select("pair_id").join(pair_counts(train), on="pair_id", how="left")
    n = joined.fill_null(0.0).select("n0", "n1", "n2").to_numpy() + alpha
    return n / n.sum(axis=1, keepdims=True)


def dawid_skene(train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """crowd-kit Dawid-Skene; predicts a judgment as ``sum_z P(z | pair) pi_worker(y | z)``."""
    from crowdkit.aggregation import DawidSkene

    df = train.select(
        pl.col("pair_id").alias("task"), pl.col("reviewer_id").alias("worker"),
        pl.col("outcome").cast(pl.Int64).alias("label"),
    ).to_pandas()
    ds = DawidSkene(n_iter=100).fit(df)
    probas = ds.probas_.reindex(columns=list(CLASSES)).fillna(0.0)
    errors = ds.errors_  # index (worker, observed label), columns: true label
    workers = errors.index.get_level_values(0).unique()
    conf = {}
    for w in workers:
        m = errors.loc[w].reindex(index=list(CLASSES), columns=list(CLASSES)).fillna(0.0)
        conf[w] = m.to_numpy()  # [observed y, true z]
    mean_conf = np.mean(list(conf.values()), axis=0)
    prior = ds.priors_.reindex(list(CLASSES)).fillna(0.0).to_numpy()
    prob_index = {t: i for i, t in enumerate(probas.index)}
    pz = probas.to_numpy()
    out = np.empty((test.height, 3))
    for i, (w, t) in enumerate(zip(test["reviewer_id"], test["pair_id"], strict=True)):
        z = pz[prob_index[t]] if t in prob_index else prior
        out[i] = conf.get(w, mean_conf) @ z
    out = np.clip(out, 1e-6, None)
    return out / out.sum(axis=1, keepdims=True)


def stance_table(con: object, model: AnnotatorModel, train: pl.DataFrame) -> None:
    """Cross-tab of reviewer school against stated stance per (reviewer, topic); chi-square."""
    attrs = con.sql(  # type: ignore[attr-defined]
        "SELECT reviewer_id, attribute, scope, value FROM reviewer_attributes "
        "WHERE attribute LIKE 'stance%'"
    ).pl()
    attrs = attrs.with_columns(
        topic=pl.when(pl.col("attribute").str.starts_with("stance@"))
        .then(pl.col("attribute").str.slice(7)).otherwise(pl.col("scope")),
        stance=pl.col("value").cast(pl.String).str.strip_chars('"').str.to_lowercase(),
    )
    topics = con.sql(  # type: ignore[attr-defined]
        "SELECT comparison_id, category AS topic FROM comparisons"
    ).pl()
    seen = train.join(topics, on="comparison_id").select("reviewer_id", "topic").unique()
    table = (
        seen.join(attrs.select("reviewer_id", "topic", "stance"), on=["reviewer_id", "topic"])
        .join(model.reviewer_estimates_.select("reviewer_id", "school"), on="reviewer_id")
    )
    print(f"\nschool vs stated stance, per (reviewer, topic) with a stance: {table.height} rows "
          f"({attrs.height} stance attributes in the warehouse)")
    if table.height == 0:
        print("conclusion: no stance attributes matched the fitted reviewers")
        return
    cross = table.pivot(on="stance", index="school", values="topic", aggregate_function="len")
    cross = cross.fill_null(0).sort("school")
    print(cross)
    counts = cross.drop("school").to_numpy()
    if counts.shape[0] < 2 or counts.shape[1] < 2:
        print(f"conclusion: {model.n_schools_} school(s) found -- no split of the reviewers to "
              "line up with the stance")
        return
    chi2, p_value, dof, _ = chi2_contingency(counts)
    n = counts.sum()
    cramers_v = float(np.sqrt(chi2 / (n * (min(counts.shape) - 1))))
    print(f"chi-square = {chi2:.1f}, dof = {dof}, p = {p_value:.3g}, Cramér's V = {cramers_v:.3f}")
    lined = p_value < 0.01 and cramers_v >= 0.1
    print("conclusion: the schools " + ("DO" if lined else "do NOT")
          + f" line up with the stated stance (Cramér's V {cramers_v:.3f}, p {p_value:.2g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, help="reuse this warehouse (ingested if missing)")
    parser.add_argument("--no-crowdkit", action="store_true")
    parser.add_argument("--tie-per-reviewer", action="store_true",
                        help="fit with AnnotatorConfig(tie_per_reviewer=True): a tie threshold "
                        "per reviewer instead of one shared")
    parser.add_argument("--content", action="store_true",
                        help="attach reply-content features first, as `dissensus fit` does with "
                        "its default features='auto' on an untagged warehouse (MiniLM; the "
                        "embeddings cached beside the warehouse)")
    parser.add_argument("--content-unit", choices=("replies", "sentences"), default="replies",
                        help="with --content: embed replies whole or as sums of their sentences")
    parser.add_argument("--content-axis", action="store_true",
                        help="with --content: learn a content axis from the placed reviewers' "
                        "training votes and fit again (AnnotatorConfig.content_axis)")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "ukp.duckdb"
    fresh = not db.exists()
    con = connect(db)
    if fresh:
        t = time.perf_counter()
        ingest_file(con, UKP)
        print(f"ingested {UKP.name} in {time.perf_counter() - t:.1f} s")
    frame = model_frame(con)
    config = AnnotatorConfig(tie_per_reviewer=args.tie_per_reviewer,
                             content_unit=args.content_unit, content_axis=args.content_axis)
    info = None
    if args.content:
        from dissensus.analytics.jobs.content import attach_content
        from dissensus.warehouse.artefacts import embeddings_folder

        frame, info, notes = attach_content(con, frame, config, embeddings_folder(db))
        print("reply content: " + (f"{info.coords.shape[1]} components of {len(info.texts)} "
                                   "replies" if info else "; ".join(notes)))
    rng = np.random.default_rng(args.seed)
    test_mask = rng.random(frame.height) < 0.10  # each judgment held out with probability 0.1
    train = frame.filter(pl.Series(~test_mask))
    test = frame.filter(pl.Series(test_mask))
    y = test["outcome"].to_numpy()
    print(f"{frame.height} judgments: {train.height} train, {test.height} held out "
          f"(seed {args.seed})")

    t = time.perf_counter()
    print(f"tie thresholds: {'one per reviewer' if args.tie_per_reviewer else 'one shared'}")
    model = AnnotatorModel(config).fit(train)
    if info is not None and args.content_axis:
        from dissensus.analytics.jobs.content import with_vote_axis
        from dissensus.models.annotator.content import with_content

        first_k = model.n_schools_
        model, info, notes = with_vote_axis(train, model, info, config)
        test = with_content(test, info.response_ids, info.coords)
        print(f"content axis: K = {first_k} first; "
              + (f"learnt from {info.axis_pairs} pairs, fitted again" if info.axis_pairs
                 else "; ".join(notes) or "not learnt: one school has no difference to learn"))
    fit_s = time.perf_counter() - t
    diag = model.fit_summary_["diagnostics"]
    print(f"fit: method {model.fit_summary_['method']}, K = {model.n_schools_} chosen "
          f"({fit_s:.0f} s); tie threshold {diag['tie_threshold']:.3f} (sd across reviewers "
          f"{diag['tie_threshold_spread']:.3f})")
    for row in diag["loo_table"]:
        print(f"  K={int(row['n_schools'])}: elpd_loo {row['elpd_loo']:.1f} "
              f"(diff {row.get('elpd_diff', 0.0):+.1f} ± {row.get('dse', 0.0):.1f})"
              f"{'  <- chosen' if row.get('chosen') else ''}")

    results: dict[str, np.ndarray] = {"dissensus (annotator model)": model.predict_proba(test)}
    alpha = choose_alpha(train)
    results[f"pair frequency (alpha={alpha})"] = pair_frequency(train, test, alpha)
    shares = np.array([np.mean(train["outcome"].to_numpy() == c) for c in CLASSES])
    results["global frequency"] = np.tile(shares, (test.height, 1))
    if not args.no_crowdkit:
        t = time.perf_counter()
        results["crowd-kit Dawid-Skene"] = dawid_skene(train, test)
        print(f"Dawid-Skene: {time.perf_counter() - t:.0f} s")

    print(f"\n{'method':34s} {'log loss':>9s} {'accuracy':>9s}")
    for name, p in results.items():
        loss, acc = scores(p, y)
        print(f"{name:34s} {loss:9.4f} {acc:9.4f}")
    loss, acc = scores(results["dissensus (annotator model)"], y)
    print(f"target: log loss <= 0.90 ({'met' if loss <= 0.90 else 'missed'}), "
          f"accuracy >= 0.60 ({'met' if acc >= 0.60 else 'missed'})")
    stance_table(con, model, train)
    con.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
