"""Reviewer-audit benchmark: time every audit function on a 1M-comparison demo warehouse, and
compare reliability rankings against gold on the gold sets (RTE, temporal, bluebirds;
Spearman) with the peers.

    .venv/bin/python benchmarks/audit.py --workdir benchmarks/out/audit [--n 1000000] [--skip-speed]
        [--repeat 3] [--only reviewer_audit report_card] [--skip-gold]

Each function is called once to warm DuckDB's caches, then ``--repeat`` times on a read-only
connection; the table gives the best and the median time, and the load average is printed
beside it (the machine is shared: compare the best figures, and say how loaded it was).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import polars as pl
from gold_sets import gold_warehouses
from scipy.stats import spearmanr

from dissensus.analytics import agreement as ag
from dissensus.analytics import audit
from dissensus.analytics import consistency as cs
from dissensus.warehouse.db import connect
from dissensus.warehouse.ingest import ingest_file


def demo_db(workdir: Path, n: int) -> Path:
    """The cached demo warehouse with ``n`` comparisons (built once: simulate + ingest)."""
    from dissensus.warehouse.demo import WorldConfig, simulate_world, write_world

    db = workdir / f"demo_{n}.duckdb"
    if db.exists():
        return db
    workdir.mkdir(parents=True, exist_ok=True)
    paths = write_world(simulate_world(WorldConfig(n_comparisons=n, seed=0)), workdir / "world",
                        fmt="jsonl")
    tmp = db.with_suffix(".tmp.duckdb")
    con = connect(tmp)
    ingest_file(con, paths["comparisons"])
    con.close()
    tmp.rename(db)
    return db


def speed_table(db: Path, repeat: int = 3, only: list[str] | None = None) -> pl.DataFrame:
    con = connect(db, read_only=True)
    rid = con.execute("SELECT min(reviewer_id) FROM comparisons").fetchall()[0][0]
    calls = {
        "krippendorff_alpha": lambda: ag.krippendorff_alpha(con),
        "krippendorff_alpha(by=week)": lambda: ag.krippendorff_alpha(con, by="week"),
        "krippendorff_alpha(by=category)": lambda: ag.krippendorff_alpha(con, by="category"),
        "fleiss_kappa": lambda: ag.fleiss_kappa(con),
        "pairwise_agreement": lambda: ag.pairwise_agreement(con),
        "leave_one_out_agreement": lambda: ag.leave_one_out_agreement(con),
        "model_free_reliability": lambda: ag.model_free_reliability(con),
        "position_bias": lambda: cs.position_bias(con),
        "tie_use": lambda: cs.tie_use(con),
        "self_consistency": lambda: cs.self_consistency(con),
        "gold_accuracy": lambda: cs.gold_accuracy(con),
        "speed": lambda: cs.speed(con),
        "drift": lambda: cs.drift(con),
        "drift_series": lambda: cs.drift_series(con, rid),
        "speed_vs_reliability": lambda: audit.speed_vs_reliability(con),
        "school_disagreements": lambda: audit.school_disagreements(con, rid),
        "reviewer_audit": lambda: audit.reviewer_audit(con),
        "report_card": lambda: audit.report_card(con, rid),
    }
    rows = []
    for name, fn in calls.items():
        if only and name not in only:
            continue
        fn()  # warm the DuckDB caches once
        times = []
        for _ in range(max(repeat, 1)):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        rows.append({"function": name, "best_s": round(min(times), 3),
                     "median_s": round(statistics.median(times), 3),
                     "rows": getattr(out, "height", None), "under_1s": min(times) < 1.0})
    con.close()
    return pl.DataFrame(rows)


def dawid_skene_accuracy(votes: pl.DataFrame) -> pl.DataFrame:
    """crowd-kit Dawid-Skene: each worker's estimated accuracy sum_l prior_l * P(l | l)."""
    from crowdkit.aggregation import DawidSkene

    df = votes.select(pl.col("reviewer_id").alias("worker"), pl.col("pair_id").alias("task"),
                      pl.col("outcome").alias("label")).to_pandas()
    ds = DawidSkene(n_iter=100).fit(df)
    rows = []
    for worker in df["worker"].unique():
        err = ds.errors_.loc[worker]
        acc = sum(ds.priors_[lab] * err.loc[lab, lab] for lab in ds.priors_.index
                  if lab in err.index and lab in err.columns)
        rows.append({"reviewer_id": worker, "ds": float(acc)})
    return pl.DataFrame(rows)


def gold_table(workdir: Path) -> pl.DataFrame:
    rows = []
    for fmt, con in gold_warehouses(workdir):
        acc = con.sql("SELECT reviewer_id, avg((outcome = gold_outcome)::DOUBLE) AS accuracy "
                      "FROM comparisons WHERE gold_outcome IS NOT NULL GROUP BY ALL").pl()
        votes = con.sql(f"SELECT reviewer_id, pair_id, outcome FROM ({ag.VOTES_SQL})").pl()
        j = (acc.join(ag.model_free_reliability(con), on="reviewer_id")
             .join(ag.leave_one_out_agreement(con), on="reviewer_id")
             .join(dawid_skene_accuracy(votes), on="reviewer_id"))
        for name, col in (("dissensus model-free reliability", "reliability"),
                          ("agreement with majority", "majority_agreement"),
                          ("leave-one-out agreement", "loo_agreement"),
                          ("crowd-kit Dawid-Skene accuracy", "ds")):
            rows.append({"data": fmt, "workers": j.height, "method": name,
                         "spearman_vs_gold_accuracy":
                             round(float(spearmanr(j[col], j["accuracy"])[0]), 4)})
    return pl.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.audit"))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-gold", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="time only these functions")
    args = parser.parse_args()
    pl.Config.set_tbl_rows(50)
    pl.Config.set_tbl_width_chars(120)
    if not args.skip_speed:
        db = demo_db(args.workdir, args.n)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"speed on {db} ({args.n:,} comparisons), {args.repeat} timed calls after a "
              f"warm-up, {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min):")
        print(speed_table(db, args.repeat, args.only))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average after: {load}")
    if not args.skip_gold:
        print(gold_table(args.workdir))


if __name__ == "__main__":
    main()
