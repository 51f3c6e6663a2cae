"""Inference paths side by side: the grid EM (default) and minibatch ADVI on the same data.

Two modes:

* ``python benchmarks/annotators_methods.py --comparisons 100000`` simulates the issue-3 world
  (2,000 reviewers from 100k comparisons up), fits K = 2 with each method and prints, against
  the simulator's truth: precision at k (k = number of rushed reviewers), Spearman of
  reliability against 1 - lapse rate, interval coverage, ARI of the careful reviewers' schools,
  and seconds.
* ``python benchmarks/annotators_methods.py --db W.duckdb --truth DIR`` scores every fit stored in
  a warehouse against the truth files written with it (``dissensus simulate`` or the audit
  benchmark's world folder); used for the 1M runs, which take too long to repeat here. With
  ``--glad`` it also times crowd-kit GLAD on the same comparisons and prints each fit's time
  as a ratio to GLAD's.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import polars as pl
from annotators import careful_ari, glad, reviewer_metrics

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.synthetic import model_frame_from_world
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.queries import model_frame


def score(estimates: pl.DataFrame, truth_reviewers: pl.DataFrame) -> dict[str, Any]:
    """Reviewer metrics and school ARI of one fit's ``reviewer_estimates`` against the truth."""
    truth = truth_reviewers.filter(pl.col("n_comparisons") > 0)
    rev = estimates.to_pandas().set_index("reviewer_id")
    out: dict[str, Any] = reviewer_metrics(
        SimpleNamespace(reviewers=truth),  # type: ignore[arg-type]
        rev["reliability"], rev["reliability_low"], rev["reliability_high"],
    )
    out["ari_careful"] = careful_ari(estimates, truth)
    return out


def simulated(n: int, seed: int, methods: tuple[str, ...] = ("em", "minibatch_advi")
              ) -> list[dict[str, Any]]:
    world = simulate_world(WorldConfig(n_comparisons=n, n_reviewers=2000 if n >= 100_000 else None,
                                       seed=seed))
    frame = model_frame_from_world(world.judgments, world.pairs, world.responses)
    rows = []
    for method in methods:
        start = time.perf_counter()
        model = AnnotatorModel(AnnotatorConfig(method=method, n_schools=2, seed=seed)).fit(frame)
        secs = time.perf_counter() - start
        rows.append({"method": method, **score(model.reviewer_estimates_, world.reviewers),
                     "seconds": secs})
    return rows


def stored(db: Path, truth_dir: Path) -> list[dict[str, Any]]:
    truth = pl.read_parquet(truth_dir / "truth_reviewers.parquet")
    con = duckdb.connect(str(db), read_only=True)
    try:
        fits = con.sql("SELECT fit_id, method, seconds FROM fits ORDER BY created_at").pl()
        rows = []
        for fit_id, method, secs in fits.iter_rows():
            est = con.sql("SELECT * FROM reviewer_estimates WHERE fit_id = ?",
                          params=[fit_id]).pl()
            rows.append({"method": f"{method} ({fit_id})", **score(est, truth), "seconds": secs})
        return rows
    finally:
        con.close()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="em,minibatch_advi",
                        help="comma-separated fit methods to simulate and compare")
    parser.add_argument("--db", type=Path, help="score the fits stored in this warehouse")
    parser.add_argument("--truth", type=Path, help="with --db: the folder of truth_*.parquet")
    parser.add_argument("--glad", action="store_true",
                        help="with --db: also time crowd-kit GLAD on the warehouse's comparisons "
                        "and print each stored fit's time as a ratio to it")
    args = parser.parse_args(argv)
    if (args.db is None) != (args.truth is None):
        parser.error("--db and --truth go together")
    if args.glad and args.db is None:
        parser.error("--glad goes with --db")
    if args.db is not None and not args.db.is_file():
        parser.error(f"--db {args.db}: no such warehouse file")
    if args.truth is not None and not (args.truth / "truth_reviewers.parquet").is_file():
        parser.error(f"--truth {args.truth}: expected a folder with truth_reviewers.parquet "
                     "(written by `dissensus simulate`)")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    known = ("em", "nuts", "advi", "minibatch_advi")
    if not methods or any(m not in known for m in methods):
        parser.error(f"--methods {args.methods!r}: expected a comma-separated list from {known}")
    rows = (stored(args.db, args.truth) if args.db
            else simulated(args.comparisons, args.seed, methods))
    cols = ("precision_at_k", "spearman", "coverage", "ari_careful", "seconds")
    print(f"{'method':<40}" + "".join(f"{c:>16}" for c in cols))
    for row in rows:
        print(f"{row['method']:<40}" + "".join(f"{row[c]:>16.3f}" for c in cols))
    if args.glad:
        glad_seconds = time_glad(args.db)
        print(f"crowd-kit GLAD on the same comparisons: {glad_seconds:.1f} s")
        for row in rows:
            print(f"  {row['method']}: {row['seconds'] / glad_seconds:.2f} x GLAD's time")
    return rows


def time_glad(db: Path) -> float:
    """Seconds crowd-kit GLAD (the bench extra; 100 iterations) takes on a warehouse's
    comparisons, as the speed part of :mod:`benchmarks.annotators` runs it."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = model_frame(con)
    finally:
        con.close()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        glad(frame)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
